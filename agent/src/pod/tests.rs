use super::*;
use crate::runtime::state::{Exit, ProcessId};

fn pod(yaml: &str) -> Pod {
    serde_yaml_ng::from_str(yaml).unwrap()
}

const TWO: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec:
  restartPolicy: Always
  initContainers:
  - {name: i1, image: busybox}
  - {name: i2, image: busybox}
  containers:
  - {name: a, image: busybox}
  - {name: b, image: busybox}
"#;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

fn running(name: &str, at: i64) -> ContainerRun {
    ContainerRun {
        name: name.into(),
        process: Some(ProcessId {
            pid: 1,
            start_time: 1,
        }),
        started_at: Some(t(at).to_rfc3339()),
        ..Default::default()
    }
}

fn exited(name: &str, started: i64, finished: i64, code: i32) -> ContainerRun {
    ContainerRun {
        finished_at: Some(t(finished).to_rfc3339()),
        exit: Some(Exit {
            code,
            signal: None,
            oom_killed: false,
        }),
        ..running(name, started)
    }
}

struct Case {
    runs: BTreeMap<String, ContainerRun>,
    restarts: BTreeMap<String, Restarts>,
    blocked: BTreeMap<String, (String, String)>,
}

impl Case {
    fn new(runs: Vec<ContainerRun>) -> Self {
        Self {
            runs: runs.into_iter().map(|r| (r.name.clone(), r)).collect(),
            restarts: BTreeMap::new(),
            blocked: BTreeMap::new(),
        }
    }
    fn view<'a>(&'a self, pod: &'a Pod, now: i64) -> PodView<'a> {
        PodView {
            pod,
            runs: &self.runs,
            restarts: &self.restarts,
            blocked: &self.blocked,
            backoff: BackOff::default(),
            now: t(now),
        }
    }
}

fn start(kind: Kind, index: usize) -> Action {
    Action::Start { kind, index }
}

#[test]
fn init_containers_run_one_at_a_time_in_order_before_apps() {
    let p = pod(TWO);
    let c = Case::new(vec![]);
    assert_eq!(c.view(&p, 0).actions(), vec![start(Kind::Init, 0)]);
    let c = Case::new(vec![running("i1", 0)]);
    assert_eq!(c.view(&p, 1).actions(), vec![]);
    let c = Case::new(vec![exited("i1", 0, 1, 0)]);
    assert_eq!(c.view(&p, 1).actions(), vec![start(Kind::Init, 1)]);
    let c = Case::new(vec![exited("i1", 0, 1, 0), exited("i2", 1, 2, 0)]);
    assert_eq!(
        c.view(&p, 2).actions(),
        vec![start(Kind::App, 0), start(Kind::App, 1)]
    );
    let status = c.view(&p, 2).status(None);
    assert_eq!(status.phase.as_deref(), Some("Pending"));
}

#[test]
fn failed_init_container_is_retried_after_backoff_and_gates_apps() {
    let p = pod(TWO);
    let c = Case::new(vec![exited("i1", 0, 1, 1)]);
    assert_eq!(c.view(&p, 5).actions(), vec![], "back-off of 10 s");
    assert_eq!(c.view(&p, 11).actions(), vec![start(Kind::Init, 0)]);
    let s = c.view(&p, 5).status(None);
    let init = &s.init_container_statuses.unwrap()[0];
    let waiting = init.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        s.container_statuses.unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("PodInitializing")
    );
}

#[test]
fn init_failure_with_restart_never_fails_the_pod() {
    let p = pod(&TWO.replace("restartPolicy: Always", "restartPolicy: Never"));
    let c = Case::new(vec![exited("i1", 0, 1, 2)]);
    assert_eq!(c.view(&p, 100).actions(), vec![]);
    assert_eq!(
        c.view(&p, 100).status(None).phase.as_deref(),
        Some("Failed")
    );
}

fn apps_only(policy: &str) -> Pod {
    pod(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  restartPolicy: {policy}\n  containers:\n  - {{name: a, image: x}}\n"
    ))
}

#[test]
fn restart_policies_decide_on_exit_codes() {
    for (policy, code, restart, phase) in [
        ("Always", 0, true, "Running"),
        ("Always", 1, true, "Running"),
        ("OnFailure", 0, false, "Succeeded"),
        ("OnFailure", 3, true, "Running"),
        ("Never", 0, false, "Succeeded"),
        ("Never", 3, false, "Failed"),
    ] {
        let p = apps_only(policy);
        let c = Case::new(vec![exited("a", 0, 1, code)]);
        let v = c.view(&p, 1000);
        assert_eq!(
            v.actions(),
            if restart {
                vec![start(Kind::App, 0)]
            } else {
                vec![]
            },
            "{policy} exit {code}"
        );
        assert_eq!(
            v.status(None).phase.as_deref(),
            Some(phase),
            "{policy} exit {code}"
        );
    }
}

#[test]
fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
    let b = BackOff::default();
    let waits: Vec<u64> = (0..8).map(|l| b.delay(l).as_secs()).collect();
    assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(b.delay(u32::MAX).as_secs(), 300);

    let short = exited("a", 0, 5, 1);
    let r = next_restarts(Restarts::default(), &short, &b);
    assert_eq!(r, Restarts { count: 1, level: 1 });
    let r = next_restarts(r, &short, &b);
    assert_eq!(r, Restarts { count: 2, level: 2 });
    let long = exited("a", 0, 700, 1);
    let r = next_restarts(r, &long, &b);
    assert_eq!(r, Restarts { count: 3, level: 1 });

    // The wait before a restart follows the level: after two short runs, 40 s.
    let p = apps_only("Always");
    let mut c = Case::new(vec![exited("a", 100, 105, 1)]);
    c.restarts
        .insert("a".into(), Restarts { count: 2, level: 2 });
    assert_eq!(c.view(&p, 105 + 39).actions(), vec![]);
    assert_eq!(c.view(&p, 105 + 40).actions(), vec![start(Kind::App, 0)]);
    assert_eq!(c.view(&p, 106).next_wakeup(), Some(t(145)));
    // ... but a long last run waits only the base.
    let c2 = Case {
        runs: Case::new(vec![exited("a", 0, 700, 1)]).runs,
        restarts: c.restarts.clone(),
        blocked: BTreeMap::new(),
    };
    assert_eq!(c2.view(&p, 710).actions(), vec![start(Kind::App, 0)]);
}

#[test]
fn statuses_name_kubernetes_reasons() {
    let p = apps_only("Never");
    let mut oom = exited("a", 0, 1, 137);
    oom.exit.as_mut().unwrap().oom_killed = true;
    oom.exit.as_mut().unwrap().signal = Some(9);
    let c = Case::new(vec![oom]);
    let s = c.view(&p, 2).status(None);
    let term = s.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(term.exit_code, 137);

    let c = Case::new(vec![exited("a", 0, 1, 0)]);
    let s = c.view(&p, 2).status(None);
    let term = s.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.reason.as_deref(), Some("Completed"));

    let mut c = Case::new(vec![]);
    c.blocked.insert(
        "a".into(),
        (
            "CreateContainerConfigError".into(),
            "configmap \"x\" not found".into(),
        ),
    );
    let s = c.view(&p, 2).status(None);
    assert_eq!(c.view(&p, 2).actions(), vec![]);
    let w = s.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));

    let c = Case::new(vec![running("a", 0)]);
    let s = c.view(&p, 2).status(None);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let ready = s
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
}
