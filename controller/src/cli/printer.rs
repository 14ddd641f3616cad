//! kubectl's output: tables with its columns per kind, its age format, `-o name`,
//! `-o json` and `-o yaml`.
//!
//! Objects are read as JSON straight from the API, so a field the typed model does not know
//! yet still prints; every column follows the matching `print*` function of kubectl's
//! `pkg/printers/internalversion/printers.go`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kelp_shared::api::kinds::KindInfo;
use serde_json::Value;

use super::resource::kind_display;
use super::tabwriter::TabWriter;

/// The value at a dotted path (`status.podIP`); `None` when absent or null.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// The string at a path, `""` when absent.
pub fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a path, 0 when absent.
pub fn int_at(v: &Value, path: &str) -> i64 {
    at(v, path)
        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

/// The array at a path, empty when absent.
pub fn list_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The bool at a path, false when absent.
pub fn bool_at(v: &Value, path: &str) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// A string-to-string map at a path (labels, selectors), sorted.
pub fn map_at(v: &Value, path: &str) -> BTreeMap<String, String> {
    at(v, path)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// kubectl's `duration.HumanDuration`: 2-3 significant figures (`45s`, `5m12s`, `84m`,
/// `2d16h`, `2y`).
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

/// kubectl's `translateTimestampSince`: the age of a timestamp, `<unknown>` without one.
pub fn age(timestamp: &str, now: DateTime<Utc>) -> String {
    match parse_time(timestamp) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// `k=v,k2=v2` sorted by key, `<none>` when empty (kubectl's `labels.FormatLabels`).
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `LabelSelector` as kubectl prints it (`app=web,tier in (a,b),!debug`), `<none>` when
/// it selects nothing or everything.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    let Some(sel) = selector else {
        return "<none>".into();
    };
    let mut reqs: Vec<(String, String)> = map_at(sel, "matchLabels")
        .into_iter()
        .map(|(k, v)| (k.clone(), format!("{k}={v}")))
        .collect();
    for e in list_at(sel, "matchExpressions") {
        let key = str_at(e, "key").to_string();
        let mut values: Vec<String> = list_at(e, "values")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        values.sort();
        let text = match str_at(e, "operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        };
        reqs.push((key, text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    if reqs.is_empty() {
        return "<none>".into();
    }
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

fn none_if_empty(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

fn bool_ptr(v: &Value, path: &str) -> String {
    match at(v, path).and_then(Value::as_bool) {
        Some(true) => "True".into(),
        Some(false) => "False".into(),
        None => "<unset>".into(),
    }
}

/// Container names and images of a pod spec, comma-joined (kubectl's
/// `layoutContainerCells`).
fn container_cells(spec: &Value) -> (String, String) {
    let containers = list_at(spec, "containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "image")).collect();
    (names.join(","), images.join(","))
}

/// The three computed columns of a pod row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// `1/2`.
    pub ready: String,
    /// `Running`, `ContainerCreating`, `CrashLoopBackOff`, `Init:0/1`, `Terminating`, ...
    pub status: String,
    /// `0`, or `3 (2m ago)`.
    pub restarts: String,
}

fn is_restartable_init(spec_init: &[Value], name: &str) -> bool {
    spec_init
        .iter()
        .find(|c| str_at(c, "name") == name)
        .is_some_and(|c| str_at(c, "restartPolicy") == "Always")
}

fn condition_true(pod: &Value, ty: &str) -> bool {
    list_at(pod, "status.conditions")
        .iter()
        .any(|c| str_at(c, "type") == ty && str_at(c, "status") == "True")
}

/// READY, STATUS and RESTARTS of a pod, computed as kubectl's `printPod` does.
pub fn pod_summary(pod: &Value, now: DateTime<Utc>) -> PodSummary {
    let spec_init = list_at(pod, "spec.initContainers");
    let mut total = list_at(pod, "spec.containers").len();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut restartable_init_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_restartable_init_restart: Option<DateTime<Utc>> = None;

    let phase = str_at(pod, "status.phase");
    let mut reason = if phase.is_empty() {
        "Pending".to_string()
    } else {
        phase.to_string()
    };
    let status_reason = str_at(pod, "status.reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    for c in list_at(pod, "status.conditions") {
        if str_at(c, "type") == "PodScheduled" && str_at(c, "reason") == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    total += spec_init
        .iter()
        .filter(|c| str_at(c, "restartPolicy") == "Always")
        .count();

    let later = |slot: &mut Option<DateTime<Utc>>, c: &Value| {
        if let Some(t) = parse_time(str_at(c, "lastState.terminated.finishedAt")) {
            if slot.is_none_or(|cur| cur < t) {
                *slot = Some(t);
            }
        }
    };

    let mut initializing = false;
    let init_statuses = list_at(pod, "status.initContainerStatuses");
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += int_at(c, "restartCount");
        later(&mut last_restart, c);
        let restartable = is_restartable_init(spec_init, str_at(c, "name"));
        if restartable {
            restartable_init_restarts += int_at(c, "restartCount");
            later(&mut last_restartable_init_restart, c);
        }
        let terminated = at(c, "state.terminated");
        let waiting_reason = str_at(c, "state.waiting.reason");
        if terminated.is_some() && int_at(c, "state.terminated.exitCode") == 0 {
            continue;
        } else if restartable && bool_at(c, "started") {
            if bool_at(c, "ready") {
                ready += 1;
            }
            continue;
        } else if terminated.is_some() {
            let r = str_at(c, "state.terminated.reason");
            reason = if r.is_empty() {
                let signal = int_at(c, "state.terminated.signal");
                if signal != 0 {
                    format!("Init:Signal:{signal}")
                } else {
                    format!("Init:ExitCode:{}", int_at(c, "state.terminated.exitCode"))
                }
            } else {
                format!("Init:{r}")
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", spec_init.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        for c in list_at(pod, "status.containerStatuses").iter().rev() {
            restarts += int_at(c, "restartCount");
            later(&mut last_restart, c);
            let waiting_reason = str_at(c, "state.waiting.reason");
            let terminated = at(c, "state.terminated");
            let terminated_reason = str_at(c, "state.terminated.reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if terminated.is_some() && !terminated_reason.is_empty() {
                reason = terminated_reason.to_string();
            } else if terminated.is_some() {
                let signal = int_at(c, "state.terminated.signal");
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{}", int_at(c, "state.terminated.exitCode"))
                };
            } else if bool_at(c, "ready") && at(c, "state.running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let deleting = at(pod, "metadata.deletionTimestamp").is_some();
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    PodSummary {
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts: restarts_text,
    }
}

/// How a table is printed.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// `-o wide`.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first.
    pub with_namespace: bool,
    /// `--show-labels`: a LABELS column last.
    pub show_labels: bool,
    /// Prefix names with `kind/` (several types requested at once).
    pub with_kind: bool,
    /// The clock ages are computed against.
    pub now: DateTime<Utc>,
}

impl TableOptions {
    /// Plain table options at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        TableOptions {
            wide: false,
            with_namespace: false,
            show_labels: false,
            with_kind: false,
            now,
        }
    }
}

/// The column headers kubectl prints for a kind.
pub fn headers(info: &KindInfo, opts: &TableOptions) -> Vec<String> {
    let (base, wide): (&[&str], &[&str]) = match info.kind {
        "Pod" => (
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        ),
        "Namespace" => (&["NAME", "STATUS", "AGE"], &[]),
        "Node" => (
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            &[
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME",
            ],
        ),
        "Deployment" => (
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        "ReplicaSet" => (
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        "DaemonSet" => (
            &[
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE",
            ],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        "StatefulSet" => (&["NAME", "READY", "AGE"], &["CONTAINERS", "IMAGES"]),
        "Service" => (
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            &["SELECTOR"],
        ),
        "ConfigMap" => (&["NAME", "DATA", "AGE"], &[]),
        "Secret" => (&["NAME", "TYPE", "DATA", "AGE"], &[]),
        "ServiceAccount" => (&["NAME", "SECRETS", "AGE"], &[]),
        "Job" => (
            &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        "CronJob" => (
            &[
                "NAME",
                "SCHEDULE",
                "TIMEZONE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE",
            ],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        "Event" => (&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], &[]),
        "Ingress" => (&["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], &[]),
        "PersistentVolume" => (
            &[
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
        "PersistentVolumeClaim" => (
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
        "ResourceQuota" => (&["NAME", "REQUEST", "LIMIT", "AGE"], &[]),
        "RoleBinding" | "ClusterRoleBinding" => (
            &["NAME", "ROLE", "AGE"],
            &["USERS", "GROUPS", "SERVICEACCOUNTS"],
        ),
        // Kinds kubectl has no printer for get the API's default table.
        "Role" | "ClusterRole" | "LimitRange" => (&["NAME", "CREATED AT"], &[]),
        _ => (&["NAME", "AGE"], &[]),
    };
    let mut out: Vec<String> = Vec::new();
    if opts.with_namespace {
        out.push("NAMESPACE".into());
    }
    out.extend(base.iter().map(|s| s.to_string()));
    if opts.wide {
        if info.kind == "Event" {
            // Events interleave their wide columns.
            out.truncate(out.len() - 1);
            out.extend(
                [
                    "SUBOBJECT",
                    "SOURCE",
                    "MESSAGE",
                    "FIRST SEEN",
                    "COUNT",
                    "NAME",
                ]
                .map(String::from),
            );
        } else {
            out.extend(wide.iter().map(|s| s.to_string()));
        }
    }
    if opts.show_labels {
        out.push("LABELS".into());
    }
    out
}

/// One table row for an object, matching [`headers`].
pub fn row(info: &KindInfo, obj: &Value, opts: &TableOptions) -> Vec<String> {
    let now = opts.now;
    let raw_name = str_at(obj, "metadata.name");
    let name = if opts.with_kind {
        format!("{}/{raw_name}", kind_display(info))
    } else {
        raw_name.to_string()
    };
    let created = age(str_at(obj, "metadata.creationTimestamp"), now);
    let wide = opts.wide;
    let mut cells: Vec<String> = Vec::new();
    match info.kind {
        "Pod" => {
            let s = pod_summary(obj, now);
            cells.extend([name, s.ready, s.status, s.restarts, created]);
            if wide {
                let mut ip = list_at(obj, "status.podIPs")
                    .first()
                    .map(|p| str_at(p, "ip"))
                    .unwrap_or("");
                if ip.is_empty() {
                    ip = str_at(obj, "status.podIP");
                }
                let gates = list_at(obj, "spec.readinessGates");
                let readiness = if gates.is_empty() {
                    "<none>".to_string()
                } else {
                    let conditions = list_at(obj, "status.conditions");
                    let true_count = gates
                        .iter()
                        .filter(|g| {
                            let ty = str_at(g, "conditionType");
                            conditions
                                .iter()
                                .find(|c| str_at(c, "type") == ty)
                                .is_some_and(|c| str_at(c, "status") == "True")
                        })
                        .count();
                    format!("{true_count}/{}", gates.len())
                };
                cells.extend([
                    none_if_empty(ip),
                    none_if_empty(str_at(obj, "spec.nodeName")),
                    none_if_empty(str_at(obj, "status.nominatedNodeName")),
                    readiness,
                ]);
            }
        }
        "Namespace" => {
            cells.extend([name, str_at(obj, "status.phase").to_string(), created]);
        }
        "Node" => {
            let mut status: Vec<String> = Vec::new();
            if let Some(c) = list_at(obj, "status.conditions")
                .iter()
                .rev()
                .find(|c| str_at(c, "type") == "Ready")
            {
                status.push(if str_at(c, "status") == "True" {
                    "Ready".into()
                } else {
                    "NotReady".into()
                });
            }
            if status.is_empty() {
                status.push("Unknown".into());
            }
            if bool_at(obj, "spec.unschedulable") {
                status.push("SchedulingDisabled".into());
            }
            let mut roles: Vec<String> = map_at(obj, "metadata.labels")
                .into_iter()
                .filter_map(|(k, v)| {
                    if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                        (!role.is_empty()).then(|| role.to_string())
                    } else if k == "kubernetes.io/role" && !v.is_empty() {
                        Some(v)
                    } else {
                        None
                    }
                })
                .collect();
            roles.sort();
            roles.dedup();
            let roles = if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            };
            cells.extend([
                name,
                status.join(","),
                roles,
                created,
                str_at(obj, "status.nodeInfo.kubeletVersion").to_string(),
            ]);
            if wide {
                let address = |ty: &str| {
                    list_at(obj, "status.addresses")
                        .iter()
                        .find(|a| str_at(a, "type") == ty)
                        .map_or("<none>".to_string(), |a| str_at(a, "address").to_string())
                };
                let unknown = |p: &str| {
                    let s = str_at(obj, p);
                    if s.is_empty() {
                        "<unknown>".to_string()
                    } else {
                        s.to_string()
                    }
                };
                cells.extend([
                    address("InternalIP"),
                    address("ExternalIP"),
                    unknown("status.nodeInfo.osImage"),
                    unknown("status.nodeInfo.kernelVersion"),
                    unknown("status.nodeInfo.containerRuntimeVersion"),
                ]);
            }
        }
        "Deployment" => {
            let desired = desired_replicas(obj);
            cells.extend([
                name,
                format!("{}/{desired}", int_at(obj, "status.readyReplicas")),
                int_at(obj, "status.updatedReplicas").to_string(),
                int_at(obj, "status.availableReplicas").to_string(),
                created,
            ]);
            if wide {
                cells.extend(workload_wide_cells(obj));
            }
        }
        "ReplicaSet" => {
            let desired = desired_replicas(obj);
            cells.extend([
                name,
                desired.to_string(),
                int_at(obj, "status.replicas").to_string(),
                int_at(obj, "status.readyReplicas").to_string(),
                created,
            ]);
            if wide {
                cells.extend(workload_wide_cells(obj));
            }
        }
        "DaemonSet" => {
            cells.extend([
                name,
                int_at(obj, "status.desiredNumberScheduled").to_string(),
                int_at(obj, "status.currentNumberScheduled").to_string(),
                int_at(obj, "status.numberReady").to_string(),
                int_at(obj, "status.updatedNumberScheduled").to_string(),
                int_at(obj, "status.numberAvailable").to_string(),
                format_labels(&map_at(obj, "spec.template.spec.nodeSelector")),
                created,
            ]);
            if wide {
                cells.extend(workload_wide_cells(obj));
            }
        }
        "StatefulSet" => {
            let desired = desired_replicas(obj);
            cells.extend([
                name,
                format!("{}/{desired}", int_at(obj, "status.readyReplicas")),
                created,
            ]);
            if wide {
                let (names, images) =
                    container_cells(at(obj, "spec.template.spec").unwrap_or(&Value::Null));
                cells.extend([names, images]);
            }
        }
        "Service" => {
            let ty = match str_at(obj, "spec.type") {
                "" => "ClusterIP",
                t => t,
            };
            let cluster_ip = list_at(obj, "spec.clusterIPs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or_else(|| str_at(obj, "spec.clusterIP"));
            let ports: Vec<String> = list_at(obj, "spec.ports")
                .iter()
                .map(|p| {
                    let proto = match str_at(p, "protocol") {
                        "" => "TCP",
                        x => x,
                    };
                    let node_port = int_at(p, "nodePort");
                    if node_port > 0 {
                        format!("{}:{node_port}/{proto}", int_at(p, "port"))
                    } else {
                        format!("{}/{proto}", int_at(p, "port"))
                    }
                })
                .collect();
            cells.extend([
                name,
                ty.to_string(),
                none_if_empty(cluster_ip),
                service_external_ip(obj, ty, wide),
                none_if_empty(&ports.join(",")),
                created,
            ]);
            if wide {
                cells.push(format_labels(&map_at(obj, "spec.selector")));
            }
        }
        "ConfigMap" => {
            let n = at(obj, "data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + at(obj, "binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            cells.extend([name, n.to_string(), created]);
        }
        "Secret" => {
            let n = at(obj, "data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            let ty = match str_at(obj, "type") {
                "" => "Opaque",
                t => t,
            };
            cells.extend([name, ty.to_string(), n.to_string(), created]);
        }
        "ServiceAccount" => {
            cells.extend([name, list_at(obj, "secrets").len().to_string(), created]);
        }
        "Job" => {
            let succeeded = int_at(obj, "status.succeeded");
            let completions = if at(obj, "spec.completions").is_some() {
                format!("{succeeded}/{}", int_at(obj, "spec.completions"))
            } else {
                let parallelism = int_at(obj, "spec.parallelism");
                if parallelism > 1 {
                    format!("{succeeded}/1 of {parallelism}")
                } else {
                    format!("{succeeded}/1")
                }
            };
            let start = parse_time(str_at(obj, "status.startTime"));
            let end = parse_time(str_at(obj, "status.completionTime"));
            let duration = match (start, end) {
                (None, _) => String::new(),
                (Some(s), None) => human_duration(now - s),
                (Some(s), Some(e)) => human_duration(e - s),
            };
            let has = |ty: &str| {
                list_at(obj, "status.conditions")
                    .iter()
                    .find(|c| str_at(c, "type") == ty)
                    .is_some_and(|c| str_at(c, "status") == "True")
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if at(obj, "metadata.deletionTimestamp").is_some() {
                "Terminating"
            } else if has("Suspended") {
                "Suspended"
            } else if has("FailureTarget") {
                "FailureTarget"
            } else {
                "Running"
            };
            cells.extend([name, status.to_string(), completions, duration, created]);
            if wide {
                cells.extend(workload_wide_cells(obj));
            }
        }
        "CronJob" => {
            let last = match at(obj, "status.lastScheduleTime").and_then(Value::as_str) {
                Some(t) => age(t, now),
                None => "<none>".into(),
            };
            cells.extend([
                name,
                str_at(obj, "spec.schedule").to_string(),
                none_if_empty(str_at(obj, "spec.timeZone")),
                bool_ptr(obj, "spec.suspend"),
                list_at(obj, "status.active").len().to_string(),
                last,
                created,
            ]);
            if wide {
                let (names, images) = container_cells(
                    at(obj, "spec.jobTemplate.spec.template.spec").unwrap_or(&Value::Null),
                );
                cells.extend([
                    names,
                    images,
                    format_label_selector(at(obj, "spec.jobTemplate.spec.selector")),
                ]);
            }
        }
        "Event" => event_row(obj, &name, wide, now, &mut cells),
        "Ingress" => {
            let hosts: Vec<&str> = list_at(obj, "spec.rules")
                .iter()
                .map(|r| str_at(r, "host"))
                .filter(|h| !h.is_empty())
                .collect();
            let n_rules = list_at(obj, "spec.rules").len();
            let hosts = if hosts.is_empty() {
                "*".to_string()
            } else if hosts.len() > 3 {
                format!("{} + {} more...", hosts[..3].join(","), n_rules - 3)
            } else {
                hosts.join(",")
            };
            let ports = if list_at(obj, "spec.tls").is_empty() {
                "80"
            } else {
                "80, 443"
            };
            cells.extend([
                name,
                none_if_empty(str_at(obj, "spec.ingressClassName")),
                hosts,
                load_balancer_ips(obj, wide),
                ports.to_string(),
                created,
            ]);
        }
        "PersistentVolume" => {
            let claim = match at(obj, "spec.claimRef") {
                Some(c) => format!("{}/{}", str_at(c, "namespace"), str_at(c, "name")),
                None => String::new(),
            };
            let phase = if at(obj, "metadata.deletionTimestamp").is_some() {
                "Terminating"
            } else {
                str_at(obj, "status.phase")
            };
            cells.extend([
                name,
                quantity_string(at(obj, "spec.capacity.storage")),
                access_modes(list_at(obj, "spec.accessModes")),
                str_at(obj, "spec.persistentVolumeReclaimPolicy").to_string(),
                phase.to_string(),
                claim,
                str_at(obj, "spec.storageClassName").to_string(),
                unset_if_empty(str_at(obj, "spec.volumeAttributesClassName")),
                str_at(obj, "status.reason").to_string(),
                created,
            ]);
            if wide {
                cells.push(unset_if_empty(str_at(obj, "spec.volumeMode")));
            }
        }
        "PersistentVolumeClaim" => {
            let phase = if at(obj, "metadata.deletionTimestamp").is_some() {
                "Terminating"
            } else {
                str_at(obj, "status.phase")
            };
            let bound = !str_at(obj, "spec.volumeName").is_empty();
            cells.extend([
                name,
                phase.to_string(),
                str_at(obj, "spec.volumeName").to_string(),
                if bound {
                    quantity_string(at(obj, "status.capacity.storage"))
                } else {
                    String::new()
                },
                if bound {
                    access_modes(list_at(obj, "status.accessModes"))
                } else {
                    String::new()
                },
                str_at(obj, "spec.storageClassName").to_string(),
                unset_if_empty(str_at(obj, "spec.volumeAttributesClassName")),
                created,
            ]);
            if wide {
                cells.push(unset_if_empty(str_at(obj, "spec.volumeMode")));
            }
        }
        "ResourceQuota" => {
            let hard = map_at(obj, "status.hard");
            let used = map_at(obj, "status.used");
            let (mut req, mut lim) = (Vec::new(), Vec::new());
            for (res, h) in &hard {
                let u = used.get(res).map_or("0", String::as_str);
                let text = format!("{res}: {u}/{h}");
                if res.split('.').next() == Some("limits") && res.contains('.') {
                    lim.push(text);
                } else {
                    req.push(text);
                }
            }
            cells.extend([name, req.join(", "), lim.join(", "), created]);
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            cells.extend([
                name,
                format!(
                    "{}/{}",
                    str_at(obj, "roleRef.kind"),
                    str_at(obj, "roleRef.name")
                ),
                created,
            ]);
            if wide {
                let subjects = list_at(obj, "subjects");
                let of = |kind: &str| {
                    subjects
                        .iter()
                        .filter(|s| str_at(s, "kind") == kind)
                        .map(|s| {
                            if kind == "ServiceAccount" {
                                format!("{}/{}", str_at(s, "namespace"), str_at(s, "name"))
                            } else {
                                str_at(s, "name").to_string()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                cells.extend([of("User"), of("Group"), of("ServiceAccount")]);
            }
        }
        "Role" | "ClusterRole" | "LimitRange" => {
            cells.extend([name, str_at(obj, "metadata.creationTimestamp").to_string()]);
        }
        _ => cells.extend([name, created]),
    }
    let mut out = Vec::with_capacity(cells.len() + 2);
    if opts.with_namespace {
        out.push(str_at(obj, "metadata.namespace").to_string());
    }
    out.extend(cells);
    if opts.show_labels {
        out.push(format_labels(&map_at(obj, "metadata.labels")));
    }
    out
}

fn unset_if_empty(s: &str) -> String {
    if s.is_empty() {
        "<unset>".into()
    } else {
        s.to_string()
    }
}

fn quantity_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "0".into(),
    }
}

/// `RWO,ROX` as kubectl abbreviates access modes.
fn access_modes(modes: &[Value]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for (long, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.iter().any(|m| m.as_str() == Some(long)) {
            out.push(short);
        }
    }
    out.join(",")
}

fn load_balancer_ips(obj: &Value, wide: bool) -> String {
    let mut ips: Vec<String> = list_at(obj, "status.loadBalancer.ingress")
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, "ip");
            let host = str_at(i, "hostname");
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect();
    ips.sort();
    ips.dedup();
    let r = ips.join(",");
    if !wide && r.len() > 16 {
        format!("{}...", &r[..13])
    } else {
        r
    }
}

fn service_external_ip(obj: &Value, ty: &str, wide: bool) -> String {
    let external: Vec<&str> = list_at(obj, "spec.externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match ty {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ips(obj, wide);
            if !external.is_empty() {
                let mut all: Vec<String> = Vec::new();
                if !lb.is_empty() {
                    all.extend(lb.split(',').map(str::to_string));
                }
                all.extend(external.iter().map(|s| s.to_string()));
                return all.join(",");
            }
            if lb.is_empty() {
                "<pending>".into()
            } else {
                lb
            }
        }
        "ExternalName" => str_at(obj, "spec.externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn event_row(obj: &Value, name: &str, wide: bool, now: DateTime<Utc>, cells: &mut Vec<String>) {
    let first = match at(obj, "firstTimestamp").and_then(Value::as_str) {
        Some(t) => age(t, now),
        None => age(str_at(obj, "eventTime"), now),
    };
    let mut last = match at(obj, "lastTimestamp").and_then(Value::as_str) {
        Some(t) => age(t, now),
        None => first.clone(),
    };
    let mut count = int_at(obj, "count");
    if at(obj, "series").is_some() {
        last = age(str_at(obj, "series.lastObservedTime"), now);
        count = int_at(obj, "series.count");
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(obj, "involvedObject.kind").to_ascii_lowercase();
    let target = match str_at(obj, "involvedObject.name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let message = str_at(obj, "message").trim().to_string();
    cells.extend([
        last,
        str_at(obj, "type").to_string(),
        str_at(obj, "reason").to_string(),
        target,
    ]);
    if wide {
        let component = match str_at(obj, "source.component") {
            "" => str_at(obj, "reportingComponent"),
            c => c,
        };
        let instance = match str_at(obj, "source.host") {
            "" => str_at(obj, "reportingInstance"),
            h => h,
        };
        let source = if instance.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {instance}")
        };
        cells.extend([
            str_at(obj, "involvedObject.fieldPath").to_string(),
            source,
            message,
            first,
            count.to_string(),
            name.to_string(),
        ]);
    } else {
        cells.push(message);
    }
}

/// Renders a whole table (headers, then one row per object) through `w`.
pub fn render_table(
    w: &mut TabWriter,
    info: &KindInfo,
    objects: &[Value],
    opts: &TableOptions,
    no_headers: bool,
) -> String {
    if !no_headers {
        w.write_row(&headers(info, opts));
    }
    for obj in objects {
        w.write_row(&row(info, obj, opts));
    }
    w.flush()
}

/// `-o name`: `pod/myblog`, `deployment.apps/web`.
pub fn name_line(info: &KindInfo, obj: &Value) -> String {
    format!("{}/{}", kind_display(info), str_at(obj, "metadata.name"))
}

/// kubectl's `List` wrapper for several objects in `-o json|yaml`.
pub fn list_of(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// `-o json`: kubectl indents with four spaces.
pub fn to_json(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser).expect("JSON values serialize");
    let mut s = String::from_utf8(buf).expect("serde_json writes UTF-8");
    s.push('\n');
    s
}

/// `-o yaml`.
pub fn to_yaml(v: &Value) -> String {
    super::yaml::to_yaml(v)
}

/// `spec.replicas`, which Kubernetes defaults to 1.
pub(crate) fn desired_replicas(obj: &Value) -> i64 {
    at(obj, "spec.replicas").map_or(1, |_| int_at(obj, "spec.replicas"))
}

/// The `-o wide` columns every workload adds: CONTAINERS, IMAGES, SELECTOR.
fn workload_wide_cells(obj: &Value) -> [String; 3] {
    let (names, images) = container_cells(at(obj, "spec.template.spec").unwrap_or(&Value::Null));
    [
        names,
        images,
        format_label_selector(at(obj, "spec.selector")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use kelp_shared::api::kinds::by_kind;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 10, 12, 0, 0).unwrap()
    }

    fn ago(secs: i64) -> String {
        (now() - chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    #[test]
    fn human_duration_matches_apimachinery() {
        let d = chrono::Duration::seconds;
        let ms = chrono::Duration::milliseconds;
        for (dur, want) in [
            (ms(-2500), "<invalid>"),
            (d(-2), "<invalid>"),
            (ms(-1500), "0s"),
            (d(-1), "0s"),
            (d(0), "0s"),
            (d(1), "1s"),
            (d(45), "45s"),
            (d(119), "119s"),
            (d(120), "2m"),
            (d(150), "2m30s"),
            (d(5 * 60 + 12), "5m12s"),
            (d(9 * 60 + 59), "9m59s"),
            (d(10 * 60), "10m"),
            (d(10 * 60 + 59), "10m"),
            (d(84 * 60), "84m"),
            (d(179 * 60 + 59), "179m"),
            (d(3 * 3600), "3h"),
            (d(3 * 3600 + 60 * 5), "3h5m"),
            (d(7 * 3600 + 59 * 60), "7h59m"),
            (d(8 * 3600), "8h"),
            (d(47 * 3600), "47h"),
            (d(48 * 3600), "2d"),
            (d(64 * 3600), "2d16h"),
            (d(5 * 86400), "5d"),
            (d(7 * 86400 + 23 * 3600), "7d23h"),
            (d(8 * 86400), "8d"),
            (d(729 * 86400), "729d"),
            (d(730 * 86400), "2y"),
            (d(731 * 86400), "2y1d"),
            (d(3 * 365 * 86400), "3y"),
            (d(8 * 365 * 86400), "8y"),
            (d(10 * 365 * 86400 + 86400 * 100), "10y"),
        ] {
            assert_eq!(human_duration(dur), want, "{dur:?}");
        }
        assert_eq!(age("", now()), "<unknown>");
        assert_eq!(age(&ago(84 * 60), now()), "84m");
    }

    fn running_pod(name: &str, node: &str, ip: &str, age_secs: i64) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "creationTimestamp": ago(age_secs)},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
                    "state": {"running": {"startedAt": ago(age_secs)}}}]
            }
        })
    }

    #[test]
    fn pods_wide_table_matches_the_seed() {
        let age = (2 * 24 + 16) * 3600;
        let pods = [
            running_pod("coredns-58cc8c89f4-9fbh2", "k8s-master", "10.244.0.3", age),
            running_pod("etcd-k8s-master", "k8s-master", "172.17.176.31", age),
            running_pod(
                "kube-controller-manager-k8s-master",
                "k8s-master",
                "172.17.176.31",
                age,
            ),
            running_pod(
                "kube-flannel-ds-amd64-s2jx2",
                "k8s-slave-1",
                "172.17.176.32",
                age,
            ),
        ];
        let mut opts = TableOptions::new(now());
        opts.wide = true;
        let out = render_table(
            &mut TabWriter::for_tables(),
            by_kind("Pod").unwrap(),
            &pods,
            &opts,
            false,
        );
        let want = "\
NAME                                 READY   STATUS    RESTARTS   AGE     IP              NODE          NOMINATED NODE   READINESS GATES
coredns-58cc8c89f4-9fbh2             1/1     Running   0          2d16h   10.244.0.3      k8s-master    <none>           <none>
etcd-k8s-master                      1/1     Running   0          2d16h   172.17.176.31   k8s-master    <none>           <none>
kube-controller-manager-k8s-master   1/1     Running   0          2d16h   172.17.176.31   k8s-master    <none>           <none>
kube-flannel-ds-amd64-s2jx2          1/1     Running   0          2d16h   172.17.176.32   k8s-slave-1   <none>           <none>
";
        assert_eq!(out, want);
    }

    #[test]
    fn namespaces_table_matches_the_seed() {
        let ns: Vec<Value> = ["default", "kube-node-lease", "kube-public", "kube-system"]
            .iter()
            .map(|n| json!({"metadata": {"name": n, "creationTimestamp": ago(84 * 60)}, "status": {"phase": "Active"}}))
            .chain([json!({"metadata": {"name": "kubernetes-dashboard", "creationTimestamp": ago(71 * 60 + 30)}, "status": {"phase": "Active"}})])
            .collect();
        let out = render_table(
            &mut TabWriter::for_tables(),
            by_kind("Namespace").unwrap(),
            &ns,
            &TableOptions::new(now()),
            false,
        );
        assert_eq!(
            out,
            "\
NAME                   STATUS   AGE
default                Active   84m
kube-node-lease        Active   84m
kube-public            Active   84m
kube-system            Active   84m
kubernetes-dashboard   Active   71m
"
        );
    }

    #[test]
    fn all_namespaces_and_labels_columns() {
        let mut p = running_pod("a", "n1", "10.0.0.1", 30);
        p["metadata"]["labels"] = json!({"b": "2", "a": "1"});
        let mut opts = TableOptions::new(now());
        opts.with_namespace = true;
        opts.show_labels = true;
        let info = by_kind("Pod").unwrap();
        assert_eq!(
            headers(info, &opts),
            [
                "NAMESPACE",
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "LABELS"
            ]
        );
        assert_eq!(
            row(info, &p, &opts),
            ["kube-system", "a", "1/1", "Running", "0", "30s", "a=1,b=2"]
        );
        opts.with_kind = true;
        assert_eq!(row(info, &p, &opts)[1], "pod/a");
    }

    fn pod_with(status: Value) -> Value {
        json!({
            "metadata": {"name": "p", "creationTimestamp": ago(10)},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": status
        })
    }

    #[test]
    fn pod_status_like_kubectl() {
        let s = |status: Value| pod_summary(&pod_with(status), now());
        // No status at all: pending, nothing ready.
        let p = s(json!(null));
        assert_eq!(
            (p.ready.as_str(), p.status.as_str(), p.restarts.as_str()),
            ("0/2", "Pending", "0")
        );
        // Scheduled, containers being created.
        let p = s(json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
            {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(
            (p.ready.as_str(), p.status.as_str()),
            ("0/2", "ContainerCreating")
        );
        // One running, one crash-looping: the crash shows, with the restarts and when.
        let p = s(json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(90)}}}]}));
        assert_eq!(
            (p.ready.as_str(), p.status.as_str(), p.restarts.as_str()),
            ("1/2", "CrashLoopBackOff", "4 (90s ago)")
        );
        // Both done.
        let p = s(json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
        assert_eq!((p.ready.as_str(), p.status.as_str()), ("0/2", "Completed"));
        // One failed without a reason.
        let p = s(json!({"phase": "Failed", "containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "b", "state": {"terminated": {"exitCode": 137}}}]}));
        assert_eq!(
            p.status, "Completed",
            "kubectl reports the first container's state last"
        );
        let p = s(json!({"phase": "Failed", "containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 2}}},
            {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
        assert_eq!(p.status, "ExitCode:2");
        // Completed + still running: Running when the pod is Ready, else NotReady.
        let p = s(
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": [
            {"name": "a", "ready": true, "state": {"running": {}}},
            {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        );
        assert_eq!(p.status, "NotReady");
        // The pod-level reason wins over the phase.
        let p = s(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(p.status, "Evicted");
        // Being deleted.
        let mut pod = pod_with(json!({"phase": "Running"}));
        pod["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(pod_summary(&pod, now()).status, "Terminating");
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(pod_summary(&pod, now()).status, "Unknown");
    }

    #[test]
    fn init_containers_show_progress() {
        let mut pod = pod_with(json!({"phase": "Pending",
            "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "i2", "state": {"running": {}}}]}));
        pod["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
        assert_eq!(pod_summary(&pod, now()).status, "Init:1/2");
        pod["status"]["initContainerStatuses"][1]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(pod_summary(&pod, now()).status, "Init:CrashLoopBackOff");
        pod["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 3}});
        assert_eq!(pod_summary(&pod, now()).status, "Init:ExitCode:3");
        // A sidecar (restartable init container) counts in READY.
        pod["spec"]["initContainers"][1]["restartPolicy"] = json!("Always");
        pod["status"]["initContainerStatuses"][1] =
            json!({"name": "i2", "started": true, "ready": true, "state": {"running": {}}});
        let s = pod_summary(&pod, now());
        assert_eq!((s.ready.as_str(), s.status.as_str()), ("1/3", "Pending"));
    }

    #[test]
    fn other_kinds_rows() {
        let o = TableOptions::new(now());
        let deploy = json!({"metadata": {"name": "web", "creationTimestamp": ago(300)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            row(by_kind("Deployment").unwrap(), &deploy, &o),
            ["web", "2/3", "3", "2", "5m"]
        );
        let mut w = o;
        w.wide = true;
        assert_eq!(
            row(by_kind("Deployment").unwrap(), &deploy, &w)[5..],
            ["web", "nginx", "app=web"]
        );
        let svc = json!({"metadata": {"name": "s", "creationTimestamp": ago(5)},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            row(by_kind("Service").unwrap(), &svc, &o),
            [
                "s",
                "NodePort",
                "10.96.0.10",
                "<none>",
                "80:30080/TCP,53/UDP",
                "5s"
            ]
        );
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": ago(5)}, "data": {"a": "1", "b": "2"}});
        assert_eq!(
            row(by_kind("ConfigMap").unwrap(), &cm, &o),
            ["c", "2", "5s"]
        );
        let secret =
            json!({"metadata": {"name": "s", "creationTimestamp": ago(5)}, "data": {"a": "MQ=="}});
        assert_eq!(
            row(by_kind("Secret").unwrap(), &secret, &o),
            ["s", "Opaque", "1", "5s"]
        );
        let node = json!({"metadata": {"name": "pi-1", "creationTimestamp": ago(3600 * 50),
                "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "kelp-0.1.0"}}});
        assert_eq!(
            row(by_kind("Node").unwrap(), &node, &o),
            [
                "pi-1",
                "Ready,SchedulingDisabled",
                "control-plane",
                "2d2h",
                "kelp-0.1.0"
            ]
        );
        let job = json!({"metadata": {"name": "j", "creationTimestamp": ago(100)},
            "spec": {"completions": 1},
            "status": {"succeeded": 1, "startTime": ago(100), "completionTime": ago(90),
                       "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            row(by_kind("Job").unwrap(), &job, &o),
            ["j", "Complete", "1/1", "10s", "100s"]
        );
        let cj = json!({"metadata": {"name": "cj", "creationTimestamp": ago(100)}, "spec": {"schedule": "*/5 * * * *"}});
        assert_eq!(
            row(by_kind("CronJob").unwrap(), &cj, &o),
            [
                "cj",
                "*/5 * * * *",
                "<none>",
                "<unset>",
                "0",
                "<none>",
                "100s"
            ]
        );
        let ev = json!({"metadata": {"name": "e1"}, "type": "Normal", "reason": "Scheduled",
            "involvedObject": {"kind": "Pod", "name": "myblog"}, "message": " Successfully assigned ",
            "lastTimestamp": ago(30)});
        assert_eq!(
            row(by_kind("Event").unwrap(), &ev, &o),
            [
                "30s",
                "Normal",
                "Scheduled",
                "pod/myblog",
                "Successfully assigned"
            ]
        );
        let ds = json!({"metadata": {"name": "d", "creationTimestamp": ago(5)},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert_eq!(
            row(by_kind("DaemonSet").unwrap(), &ds, &o),
            ["d", "2", "2", "1", "2", "1", "<none>", "5s"]
        );
        let rs = json!({"metadata": {"name": "r", "creationTimestamp": ago(5)}, "spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            row(by_kind("ReplicaSet").unwrap(), &rs, &o),
            ["r", "2", "2", "1", "5s"]
        );
        let sts = json!({"metadata": {"name": "s", "creationTimestamp": ago(5)}, "spec": {"replicas": 2}, "status": {"readyReplicas": 2}});
        assert_eq!(
            row(by_kind("StatefulSet").unwrap(), &sts, &o),
            ["s", "2/2", "5s"]
        );
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(5)}});
        assert_eq!(
            row(by_kind("ServiceAccount").unwrap(), &sa, &o),
            ["default", "0", "5s"]
        );
    }

    #[test]
    fn label_selectors_print_like_kubectl() {
        let sel = json!({"matchLabels": {"tier": "web", "app": "blog"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                 {"key": "debug", "operator": "DoesNotExist"}]});
        assert_eq!(
            format_label_selector(Some(&sel)),
            "app=blog,!debug,env in (dev,prod),tier=web"
        );
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
    }

    #[test]
    fn structured_outputs() {
        let p = json!({"kind": "Pod", "metadata": {"name": "x"}});
        assert_eq!(name_line(by_kind("Pod").unwrap(), &p), "pod/x");
        assert_eq!(
            name_line(by_kind("Deployment").unwrap(), &p),
            "deployment.apps/x"
        );
        assert_eq!(
            to_json(&json!({"a": [1]})),
            "{\n    \"a\": [\n        1\n    ]\n}\n"
        );
        let list = list_of(vec![p]);
        assert_eq!(list["kind"], "List");
        let yaml = to_yaml(&json!({"spec": {"containers": [{"name": "a", "image": "b"}]}}));
        assert_eq!(yaml, "spec:\n  containers:\n  - image: b\n    name: a\n");
    }
}
