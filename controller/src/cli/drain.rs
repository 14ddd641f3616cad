//! `kelp cordon`, `kelp uncordon` and `kelp drain`: taking a node out of service as kubectl
//! does.
//!
//! Cordoning sets the Node's `spec.unschedulable` with a merge patch. Draining cordons, sorts
//! the node's pods with kubectl's rules ([`classify`], [`plan`]: pure), deletes the ones it
//! may and polls until they are gone from the API. A deleted pod bound to a node stays
//! Terminating until the node confirms it stopped (a grace period of 0 removes it at once),
//! so that wait is what says the node is empty.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kelp_shared::api::kinds::{self, KindInfo};
use serde_json::{json, Value};

use super::client::{report_errors, ApiError, Client};
use super::get::{list, list_query};
use super::printer::{at, bool_at, list_at, str_at};
use super::resource::object_path;
use super::{emit, Context, CordonArgs, DrainArgs};

/// kubectl's texts for the pods drain refuses or warns about.
pub const DAEMONSET_FATAL: &str = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)";
/// See [`DAEMONSET_FATAL`].
pub const DAEMONSET_WARNING: &str = "ignoring DaemonSet-managed Pods";
/// See [`DAEMONSET_FATAL`].
pub const LOCAL_STORAGE_FATAL: &str =
    "Pods with local storage (use --delete-emptydir-data to override)";
/// See [`DAEMONSET_FATAL`].
pub const LOCAL_STORAGE_WARNING: &str = "deleting Pods with local storage";
/// See [`DAEMONSET_FATAL`].
pub const UNMANAGED_FATAL: &str = "Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet (use --force to override)";
/// See [`DAEMONSET_FATAL`].
pub const UNMANAGED_WARNING: &str =
    "deleting Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet";

/// The annotation of a mirror pod (a node's static pod); the API refuses to delete those.
const MIRROR_ANNOTATION: &str = crate::hub::MIRROR_ANNOTATION;

/// What drain does with one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delete it; the text, when there is one, goes into a warning.
    Delete(Option<String>),
    /// Leave it alone; ditto.
    Skip(Option<String>),
    /// Do not drain because of it.
    Refuse(String),
}

/// The flags that decide what drain may delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// `--ignore-daemonsets`.
    pub ignore_daemonsets: bool,
    /// `--force`.
    pub force: bool,
    /// `--delete-emptydir-data`.
    pub delete_emptydir_data: bool,
}

impl Rules {
    /// The rules of these flags.
    pub fn from_args(args: &DrainArgs) -> Rules {
        Rules {
            ignore_daemonsets: args.ignore_daemonsets,
            force: args.force,
            delete_emptydir_data: args.delete_emptydir_data,
        }
    }
}

/// The owner reference with `controller: true`, if any.
fn controller_of(pod: &Value) -> Option<&Value> {
    list_at(pod, "metadata.ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// A pod that ran to completion can always go.
fn finished(pod: &Value) -> bool {
    matches!(str_at(pod, "status.phase"), "Succeeded" | "Failed")
}

/// kubectl's filters, in kubectl's order: DaemonSet, mirror, local storage, unmanaged. The
/// first that does not say "delete" decides; otherwise the pod is deleted, with the last
/// warning any filter gave. `daemonset_missing` is the error of looking up the pod's
/// DaemonSet when it is gone (an orphan, deleted only with `--force`).
pub fn classify(pod: &Value, rules: Rules, daemonset_missing: Option<&str>) -> Verdict {
    let controller = controller_of(pod);
    let filters: [&dyn Fn() -> Verdict; 4] = [
        &|| {
            if controller.is_none_or(|c| str_at(c, "kind") != "DaemonSet") || finished(pod) {
                return Verdict::Delete(None);
            }
            match daemonset_missing {
                Some(e) if rules.force => Verdict::Delete(Some(e.to_string())),
                Some(e) => Verdict::Refuse(e.to_string()),
                None if rules.ignore_daemonsets => {
                    Verdict::Skip(Some(DAEMONSET_WARNING.to_string()))
                }
                None => Verdict::Refuse(DAEMONSET_FATAL.to_string()),
            }
        },
        &|| {
            if at(pod, "metadata.annotations")
                .and_then(|a| a.get(MIRROR_ANNOTATION))
                .is_some()
            {
                Verdict::Skip(None)
            } else {
                Verdict::Delete(None)
            }
        },
        &|| {
            let local = list_at(pod, "spec.volumes")
                .iter()
                .any(|v| v.get("emptyDir").is_some_and(|e| !e.is_null()));
            if !local || finished(pod) {
                Verdict::Delete(None)
            } else if rules.delete_emptydir_data {
                Verdict::Delete(Some(LOCAL_STORAGE_WARNING.to_string()))
            } else {
                Verdict::Refuse(LOCAL_STORAGE_FATAL.to_string())
            }
        },
        &|| {
            if finished(pod) || controller.is_some() {
                Verdict::Delete(None)
            } else if rules.force {
                Verdict::Delete(Some(UNMANAGED_WARNING.to_string()))
            } else {
                Verdict::Refuse(UNMANAGED_FATAL.to_string())
            }
        },
    ];
    let mut warning = None;
    for filter in filters {
        match filter() {
            Verdict::Delete(None) => {}
            Verdict::Delete(Some(w)) => warning = Some(w),
            other => return other,
        }
    }
    Verdict::Delete(warning)
}

/// What a drain will do with a node's pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainPlan {
    /// The pods to delete, in the listed order.
    pub delete: Vec<Value>,
    /// `text: ns/a, ns/b`, one per text, in the order first met.
    pub warnings: Vec<String>,
    /// `cannot delete text: ns/a, ns/b`, one per text; any of these stops the drain.
    pub errors: Vec<String>,
}

/// Sorts `pods` with [`classify`]; `daemonset_missing` answers for a pod's DaemonSet.
pub fn plan<'a>(
    pods: &[Value],
    rules: Rules,
    daemonset_missing: impl Fn(&Value) -> Option<&'a str>,
) -> DrainPlan {
    fn add(groups: &mut Vec<(String, Vec<String>)>, text: String, pod: String) {
        match groups.iter_mut().find(|(t, _)| *t == text) {
            Some((_, pods)) => pods.push(pod),
            None => groups.push((text, vec![pod])),
        }
    }
    let mut out = DrainPlan::default();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for pod in pods {
        let id = pod_id(pod);
        match classify(pod, rules, daemonset_missing(pod)) {
            Verdict::Delete(w) => {
                if let Some(w) = w {
                    add(&mut warnings, w, id);
                }
                out.delete.push(pod.clone());
            }
            Verdict::Skip(w) => {
                if let Some(w) = w {
                    add(&mut warnings, w, id);
                }
            }
            Verdict::Refuse(e) => add(&mut errors, e, id),
        }
    }
    out.warnings = warnings
        .into_iter()
        .map(|(text, pods)| format!("{text}: {}", pods.join(", ")))
        .collect();
    out.errors = errors
        .into_iter()
        .map(|(text, pods)| format!("cannot delete {text}: {}", pods.join(", ")))
        .collect();
    out
}

/// `namespace/name`.
fn pod_id(pod: &Value) -> String {
    format!(
        "{}/{}",
        str_at(pod, "metadata.namespace"),
        str_at(pod, "metadata.name")
    )
}

/// Parses a Go duration as kubectl's flags take it: `0`, `90s`, `1m30s`, `1.5h`, `250ms`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut rest = s;
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        let n: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        seconds += n * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

/// Formats a duration as Go does (to the millisecond): `0s`, `500ms`, `2s`, `1m30s`,
/// `1h0m0s`.
pub fn format_go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s_ms) = (ms / 3_600_000, ms / 60_000 % 60, ms % 60_000);
    let mut secs = (s_ms / 1000).to_string();
    if s_ms % 1000 != 0 {
        let frac = format!("{:03}", s_ms % 1000);
        secs = format!("{secs}.{}", frac.trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

fn kind(name: &str) -> &'static KindInfo {
    kinds::by_kind(name).expect("a built-in kind")
}

/// Sets (`on`) or clears the node's `spec.unschedulable`; returns kubectl's line.
fn cordon(client: &Client, node: &str, on: bool) -> Result<String, ApiError> {
    let path = object_path(kind("Node"), None, node);
    let live = client.get(&path, &[])?;
    let verb = if on { "cordoned" } else { "uncordoned" };
    if bool_at(&live, "spec.unschedulable") == on {
        return Ok(format!("node/{node} already {verb}\n"));
    }
    // Uncordoning removes the field, as kubectl's patch does (`false` is its default).
    let value = if on { json!(true) } else { Value::Null };
    client.merge_patch(&path, &json!({"spec": {"unschedulable": value}}))?;
    Ok(format!("node/{node} {verb}\n"))
}

/// `kelp cordon` (`on`) and `kelp uncordon`.
pub fn run_cordon(ctx: &Context, args: &CordonArgs, on: bool) -> ExitCode {
    match ctx.client().and_then(|c| cordon(c, &args.node, on)) {
        Ok(line) => {
            emit(&line);
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

/// Why the pods of a node could not all be removed.
#[derive(Debug)]
enum DrainError {
    /// Pods drain may not delete without more flags (`cannot delete ...` lines).
    Refused(Vec<String>),
    /// Pods still there at the deadline.
    Timeout(String),
    /// A request failed.
    Api(ApiError),
}

impl From<ApiError> for DrainError {
    fn from(e: ApiError) -> Self {
        DrainError::Api(e)
    }
}

impl DrainError {
    /// The text in `unable to drain node "N" due to error: TEXT, continuing command...`.
    fn summary(&self) -> String {
        match self {
            DrainError::Refused(lines) if lines.len() == 1 => lines[0].clone(),
            DrainError::Refused(lines) => format!("[{}]", lines.join(", ")),
            DrainError::Timeout(text) => text.clone(),
            DrainError::Api(e) => e.to_string(),
        }
    }

    /// The closing lines kubectl prints for the error (several refusals: one per line).
    fn closing(&self) -> String {
        match self {
            DrainError::Refused(lines) if lines.len() > 1 => lines.join("\n"),
            DrainError::Refused(lines) => format!("error: {}", lines[0]),
            DrainError::Timeout(text) => format!("error: {text}"),
            DrainError::Api(e) => e.standard_message(),
        }
    }
}

/// `kelp drain`.
pub fn run_drain(ctx: &Context, args: &DrainArgs) -> ExitCode {
    let client = match ctx.client() {
        Ok(c) => c,
        Err(e) => {
            report_errors(&[e]);
            return ExitCode::FAILURE;
        }
    };
    match cordon(client, &args.node, true) {
        Ok(line) => {
            emit(&line);
        }
        Err(e) => {
            report_errors(&[e]);
            return ExitCode::FAILURE;
        }
    }
    match remove_pods(client, args) {
        Ok(()) => {
            emit(&format!("node/{} drained\n", args.node));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: unable to drain node {:?} due to error: {}, continuing command...",
                args.node,
                e.summary()
            );
            eprintln!("There are pending nodes to be drained:\n {}", args.node);
            eprintln!("{}", e.closing());
            ExitCode::FAILURE
        }
    }
}

/// Lists the node's pods, deletes what [`plan`] allows and waits until they are gone.
fn remove_pods(client: &Client, args: &DrainArgs) -> Result<(), DrainError> {
    let pod_info = kind("Pod");
    let field = format!("spec.nodeName={}", args.node);
    let query = list_query(args.pod_selector.as_deref(), Some(&field));
    let (pods, _) = list(client, pod_info, None, &query)?;

    // Which DaemonSets behind the pods are gone (orphans are deleted only with --force).
    let mut missing: HashMap<String, String> = HashMap::new();
    for pod in &pods {
        let Some(owner) = controller_of(pod).filter(|c| str_at(c, "kind") == "DaemonSet") else {
            continue;
        };
        if finished(pod) {
            continue;
        }
        let ns = str_at(pod, "metadata.namespace");
        let path = object_path(kind("DaemonSet"), Some(ns), str_at(owner, "name"));
        match client.get(&path, &[]) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                missing.insert(pod_id(pod), e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let plan = plan(&pods, Rules::from_args(args), |pod| {
        missing.get(&pod_id(pod)).map(String::as_str)
    });
    if !plan.errors.is_empty() {
        return Err(DrainError::Refused(plan.errors));
    }
    if !plan.warnings.is_empty() {
        eprintln!("Warning: {}", plan.warnings.join("; "));
    }

    let mut query = Vec::new();
    if args.grace_period >= 0 {
        query.push(("gracePeriodSeconds", args.grace_period.to_string()));
    }
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    let mut waiting = Vec::new();
    for pod in &plan.delete {
        let ns = str_at(pod, "metadata.namespace");
        let name = str_at(pod, "metadata.name");
        emit(&format!("evicting pod {ns}/{name}\n"));
        let path = object_path(pod_info, Some(ns), name);
        match client.delete(&path, &query, None) {
            Ok(_) => waiting.push((path, pod)),
            Err(e) if e.is_not_found() => {
                emit(&format!("pod/{name} evicted\n"));
            }
            Err(e) => return Err(e.into()),
        }
    }

    let mut delay = Duration::from_millis(100);
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for (path, pod) in waiting {
            let gone = match client.get(&path, &[]) {
                Err(e) if e.is_not_found() => true,
                Err(e) => return Err(e.into()),
                // A new pod of the same name (a StatefulSet's) is not the one deleted.
                Ok(live) => str_at(&live, "metadata.uid") != str_at(pod, "metadata.uid"),
            };
            if gone {
                emit(&format!("pod/{} evicted\n", str_at(pod, "metadata.name")));
            } else {
                still.push((path, pod));
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() + delay > d) {
            let names: Vec<String> = waiting.iter().map(|(_, p)| pod_id(p)).collect();
            return Err(DrainError::Timeout(format!(
                "drain did not complete within {}: pods still terminating: {}",
                format_go_duration(args.timeout),
                names.join(", ")
            )));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, extra: Value) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"nodeName": "pi-1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"}});
        json_patch::merge(&mut p, &extra);
        p
    }

    fn owned_by(kind: &str) -> Value {
        json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": kind, "name": "owner", "uid": "u", "controller": true}
        ]}})
    }

    const NONE: Rules = Rules {
        ignore_daemonsets: false,
        force: false,
        delete_emptydir_data: false,
    };

    #[test]
    fn kubectl_rules_per_pod() {
        let rs = pod("web", owned_by("ReplicaSet"));
        assert_eq!(classify(&rs, NONE, None), Verdict::Delete(None));

        let bare = pod("bare", json!({}));
        assert_eq!(
            classify(&bare, NONE, None),
            Verdict::Refuse(UNMANAGED_FATAL.into())
        );
        let force = Rules {
            force: true,
            ..NONE
        };
        assert_eq!(
            classify(&bare, force, None),
            Verdict::Delete(Some(UNMANAGED_WARNING.into()))
        );
        // An owner reference that is not a controller does not count.
        let mut loose = owned_by("ReplicaSet");
        loose["metadata"]["ownerReferences"][0]["controller"] = json!(false);
        assert_eq!(
            classify(&pod("loose", loose), NONE, None),
            Verdict::Refuse(UNMANAGED_FATAL.into())
        );
        // Finished pods always go.
        let done = pod("done", json!({"status": {"phase": "Succeeded"}}));
        assert_eq!(classify(&done, NONE, None), Verdict::Delete(None));

        let ds = pod("agent", owned_by("DaemonSet"));
        assert_eq!(
            classify(&ds, NONE, None),
            Verdict::Refuse(DAEMONSET_FATAL.into())
        );
        let ignore = Rules {
            ignore_daemonsets: true,
            ..NONE
        };
        assert_eq!(
            classify(&ds, ignore, None),
            Verdict::Skip(Some(DAEMONSET_WARNING.into()))
        );
        let gone = "daemonsets.apps \"owner\" not found";
        assert_eq!(
            classify(&ds, ignore, Some(gone)),
            Verdict::Refuse(gone.into())
        );
        assert_eq!(
            classify(&ds, force, Some(gone)),
            Verdict::Delete(Some(gone.into()))
        );

        let mirror = pod(
            "static-pi-1",
            json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "abc"}}}),
        );
        assert_eq!(classify(&mirror, NONE, None), Verdict::Skip(None));
        assert_eq!(classify(&mirror, force, None), Verdict::Skip(None));

        let scratch = json!({"spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}});
        let mut scratch_rs = owned_by("ReplicaSet");
        json_patch::merge(&mut scratch_rs, &scratch);
        let scratch_rs = pod("cache", scratch_rs);
        assert_eq!(
            classify(&scratch_rs, NONE, None),
            Verdict::Refuse(LOCAL_STORAGE_FATAL.into())
        );
        let data = Rules {
            delete_emptydir_data: true,
            ..NONE
        };
        assert_eq!(
            classify(&scratch_rs, data, None),
            Verdict::Delete(Some(LOCAL_STORAGE_WARNING.into())),
            "the warning of an earlier filter stays"
        );
        // The first refusal decides: a bare pod with emptyDir is refused for its storage.
        let scratch_bare = pod("scratch", scratch);
        assert_eq!(
            classify(&scratch_bare, force, None),
            Verdict::Refuse(LOCAL_STORAGE_FATAL.into())
        );
    }

    #[test]
    fn plan_groups_pods_per_message_like_kubectl() {
        let pods = [
            pod("a", json!({})),
            pod("web", owned_by("ReplicaSet")),
            pod("agent", owned_by("DaemonSet")),
            pod("b", json!({})),
        ];
        let p = plan(&pods, NONE, |_| None);
        assert_eq!(
            p.errors,
            [
                format!("cannot delete {UNMANAGED_FATAL}: default/a, default/b"),
                format!("cannot delete {DAEMONSET_FATAL}: default/agent"),
            ]
        );
        let p = plan(
            &pods,
            Rules {
                ignore_daemonsets: true,
                force: true,
                ..NONE
            },
            |_| None,
        );
        assert!(p.errors.is_empty());
        let names: Vec<&str> = p
            .delete
            .iter()
            .map(|p| str_at(p, "metadata.name"))
            .collect();
        assert_eq!(names, ["a", "web", "b"]);
        assert_eq!(
            p.warnings,
            [
                format!("{UNMANAGED_WARNING}: default/a, default/b"),
                format!("{DAEMONSET_WARNING}: default/agent"),
            ]
        );
    }

    #[test]
    fn go_durations() {
        for (text, d) in [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("2s", Duration::from_secs(2)),
            ("250ms", Duration::from_millis(250)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
        ] {
            assert_eq!(parse_go_duration(text), Ok(d), "{text}");
        }
        assert_eq!(
            parse_go_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            parse_go_duration("5d"),
            Err("time: unknown unit \"d\" in duration \"5d\"".into())
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ] {
            assert_eq!(format_go_duration(d), text);
        }
    }
}
