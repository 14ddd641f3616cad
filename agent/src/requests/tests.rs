use std::time::{Duration, UNIX_EPOCH};

use kelp_shared::api::core::{ContainerStatus, PodStatus};

use super::logs::window;
use super::*;
use crate::runtime::state::write_json;

fn status(app: &[&str], init: &[&str]) -> PodStatus {
    let statuses = |names: &[&str]| {
        Some(
            names
                .iter()
                .map(|n| ContainerStatus {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
        )
    };
    PodStatus {
        container_statuses: statuses(app),
        init_container_statuses: statuses(init),
        ..Default::default()
    }
}

/// A run dir with pod `default/web` (uid `u1`) holding containers `a` and `b` (and init
/// container `setup`), `a` in its second run.
fn run_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let paths = PodPaths::new(dir.path(), "u1");
    std::fs::create_dir_all(paths.container("a")).unwrap();
    write_json(
        &paths.status(),
        &PodReport {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            status: status(&["a", "b"], &["setup"]),
            events: Vec::new(),
        },
    )
    .unwrap();
    let first = ContainerRun {
        name: "a".into(),
        started_at: Some("2024-05-01T10:00:00.000Z".into()),
        finished_at: Some("2024-05-01T10:00:05.000Z".into()),
        ..Default::default()
    };
    let second = ContainerRun {
        name: "a".into(),
        attempt: 1,
        started_at: Some("2024-05-01T10:00:15.250Z".into()),
        last: Some(Box::new(first)),
        ..Default::default()
    };
    write_json(&paths.container_state("a"), &second).unwrap();
    dir
}

fn at(text: &str) -> Option<std::time::SystemTime> {
    parse_time(Some(text))
}

#[test]
fn a_missing_pod_or_container_is_named_with_what_there_is() {
    let dir = run_dir();
    let err = locate(dir.path(), "pi-1", "default", "api", "a").unwrap_err();
    assert_eq!(
        err,
        "pod default/api is not running on node \"pi-1\" (the agent has no such pod)"
    );
    let err = locate(dir.path(), "pi-1", "other", "web", "a").unwrap_err();
    assert!(err.contains("pod other/web is not running"), "{err}");
    let err = locate(dir.path(), "pi-1", "default", "web", "x").unwrap_err();
    assert_eq!(
        err,
        "container \"x\" not found in pod default/web; it has: a, b, setup"
    );
    let found = locate(dir.path(), "pi-1", "default", "web", "setup").unwrap();
    assert!(found.run.is_none(), "never started");
}

#[test]
fn the_current_run_and_the_previous_one_are_windows_of_the_log() {
    let dir = run_dir();
    let a = locate(dir.path(), "pi-1", "default", "web", "a").unwrap();
    assert_eq!(
        window(&a, false).unwrap(),
        crate::logs::Window {
            since: at("2024-05-01T10:00:15.250Z"),
            until: None,
        }
    );
    // The previous run ends where the current one starts (its last output may be read
    // after it exited).
    assert_eq!(
        window(&a, true).unwrap(),
        crate::logs::Window {
            since: at("2024-05-01T10:00:00Z"),
            until: at("2024-05-01T10:00:15.250Z"),
        }
    );
    assert_eq!(
        at("2024-05-01T10:00:15.250Z"),
        Some(UNIX_EPOCH + Duration::from_millis(1_714_557_615_250))
    );

    let b = locate(dir.path(), "pi-1", "default", "web", "b").unwrap();
    assert_eq!(
        window(&b, false).unwrap_err(),
        "container \"b\" in pod default/web is waiting to start: ContainerCreating"
    );
    assert_eq!(
        window(&b, true).unwrap_err(),
        "previous terminated container \"b\" in pod default/web not found"
    );
    let mut only_one = a.clone();
    only_one.run.as_mut().unwrap().last = None;
    assert!(window(&only_one, true).is_err());
}
