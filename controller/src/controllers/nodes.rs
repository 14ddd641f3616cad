//! Node lifecycle. The node hub keeps each Node's `Ready` condition from births, last wills
//! and silence (`--node-grace`); this controller turns it into taints, as Kubernetes' node
//! lifecycle controller does, and evicts only when asked to:
//!
//! - `Ready=False` → `node.kubernetes.io/not-ready:NoSchedule`; `Ready=Unknown` (or no
//!   condition yet) → `node.kubernetes.io/unreachable:NoSchedule`; `spec.unschedulable` →
//!   `node.kubernetes.io/unschedulable:NoSchedule`. Effect **NoSchedule**, not Kubernetes'
//!   NoExecute: an edge node offline keeps running its pods, and nothing is recreated
//!   elsewhere because a link went down.
//! - `MemoryPressure`/`DiskPressure`/`PIDPressure=True` (the hub computes them from the
//!   node's metrics, [`crate::metrics::pressure`]) → `node.kubernetes.io/memory-pressure`,
//!   `disk-pressure`, `pid-pressure`, all NoSchedule, as Kubernetes' taint-nodes-by-condition.
//!   The scheduler lets pods that are not BestEffort tolerate memory-pressure, as Kubernetes'
//!   admission adds that toleration to them.
//! - With `--pod-eviction-timeout`, the pods of a node not Ready for longer than that are
//!   deleted (gracefully: they stay Terminating until the node, back again, has stopped them),
//!   except mirror pods and DaemonSet pods. Their ReplicaSets replace them elsewhere.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{deleting, event, is_mirror, run_writes, Options};
use crate::api::ApiState;
use crate::store::{Durability, StoreError, Stored};

/// The taint of a node whose agent says it is not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node not heard from.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

const COMPONENT: &str = "node-controller";

/// The Ready condition's status (`True`, `False`, `Unknown`) and since when.
fn readiness(node: &Value) -> (String, Option<DateTime<Utc>>) {
    let ready = crate::hub::status::condition(node, "Ready");
    let status = ready
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
        .to_owned();
    let since = ready
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            node.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        });
    (status, since)
}

/// The taints kelp manages that `node` should carry.
pub fn wanted_taints(node: &Value) -> Vec<&'static str> {
    let mut out = Vec::new();
    match readiness(node).0.as_str() {
        "True" => {}
        "False" => out.push(NOT_READY),
        _ => out.push(UNREACHABLE),
    }
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        out.push(UNSCHEDULABLE);
    }
    for kind in crate::metrics::pressure::Kind::ALL {
        let pressure = crate::hub::status::condition(node, kind.condition())
            .is_some_and(|c| c["status"] == "True");
        if pressure {
            out.push(kind.taint());
        }
    }
    out
}

/// `node`'s taints with kelp's own ones brought in line; `None` when nothing changes.
pub fn retaint(node: &Value, now: &str) -> Option<Value> {
    let managed = [
        NOT_READY,
        UNREACHABLE,
        UNSCHEDULABLE,
        crate::metrics::pressure::Kind::Memory.taint(),
        crate::metrics::pressure::Kind::Disk.taint(),
        crate::metrics::pressure::Kind::Pid.taint(),
    ];
    let wanted = wanted_taints(node);
    let current: Vec<Value> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |key: &str| {
        current
            .iter()
            .any(|t| t["key"] == key && t["effect"] == "NoSchedule")
    };
    let stale = current.iter().any(|t| {
        t["key"]
            .as_str()
            .is_some_and(|k| managed.contains(&k) && !wanted.contains(&k))
    });
    if !stale && wanted.iter().all(|k| has(k)) {
        return None;
    }
    let mut taints: Vec<Value> = current
        .into_iter()
        .filter(|t| {
            t["key"]
                .as_str()
                .is_none_or(|k| !managed.contains(&k) || wanted.contains(&k))
        })
        .collect();
    for key in wanted {
        if !taints
            .iter()
            .any(|t| t["key"] == key && t["effect"] == "NoSchedule")
        {
            taints.push(json!({"key": key, "effect": "NoSchedule", "timeAdded": now}));
        }
    }
    let mut node = node.clone();
    if taints.is_empty() {
        if let Some(spec) = node["spec"].as_object_mut() {
            spec.remove("taints");
        }
    } else {
        node["spec"]["taints"] = Value::Array(taints);
    }
    Some(node)
}

/// One round: taints, then eviction when enabled.
pub async fn reconcile(state: &ApiState, options: &Options) -> Result<(), StoreError> {
    let (nodes, _) = state.store.list("Node", None);
    let now = kelp_shared::api::Time::now().to_string();
    let mut writes = Vec::new();
    for node in &nodes {
        if let Some(changed) = retaint(&node.object, &now) {
            writes.push(async move {
                state
                    .store
                    .update(
                        node.key.clone(),
                        changed,
                        Some(node.revision),
                        Durability::Durable,
                    )
                    .await
                    .map(drop)
            });
        }
    }
    run_writes(writes).await?;
    if let Some(timeout) = options.pod_eviction_timeout {
        evict(state, &nodes, timeout).await?;
    }
    Ok(())
}

/// Whether a pod belongs to a DaemonSet (it is meant to stay on its node).
fn daemon_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| {
            o.iter()
                .any(|o| o["controller"] == true && o["kind"] == "DaemonSet")
        })
}

async fn evict(state: &ApiState, nodes: &[Stored], timeout: Duration) -> Result<(), StoreError> {
    let now = Utc::now();
    let lost: Vec<&Stored> = nodes
        .iter()
        .filter(|n| {
            let (status, since) = readiness(&n.object);
            status != "True"
                && since.is_some_and(|t| (now - t).to_std().unwrap_or_default() >= timeout)
        })
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let (pods, _) = state.store.list("Pod", None);
    let mut writes = Vec::new();
    for node in lost {
        let name = node.key.name.as_str();
        for pod in pods.iter().filter(|p| {
            p.object.pointer("/spec/nodeName").and_then(Value::as_str) == Some(name)
                && !deleting(&p.object)
                && !is_mirror(&p.object)
                && !daemon_pod(&p.object)
        }) {
            event(
                state,
                COMPONENT,
                &pod.object,
                true,
                "NodeNotReady",
                format!(
                    "Node {name} has not been Ready for {}s (--pod-eviction-timeout): deleting the pod",
                    timeout.as_secs()
                ),
            );
            writes.push(async move {
                crate::api::handlers::delete_with(state, &pod.key, None, None)
                    .await
                    .map(drop)
                    .or_else(|e| {
                        tracing::warn!(pod = %pod.key, error = %e, "cannot evict");
                        Ok(())
                    })
            });
        }
    }
    run_writes(writes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, unschedulable: bool, taints: Value) -> Value {
        json!({
            "metadata": {"name": "n1"},
            "spec": {"unschedulable": unschedulable, "taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready,
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        })
    }

    #[test]
    fn ready_node_keeps_only_foreign_taints() {
        let n = node(
            "True",
            false,
            json!([{"key": UNREACHABLE, "effect": "NoSchedule"}, {"key": "gpu", "effect": "NoSchedule"}]),
        );
        let out = retaint(&n, "now").expect("a change");
        assert_eq!(
            out["spec"]["taints"],
            json!([{"key": "gpu", "effect": "NoSchedule"}])
        );
        assert!(retaint(&out, "now").is_none(), "settled");
    }

    #[test]
    fn not_ready_unknown_and_cordoned_nodes_are_tainted_no_schedule() {
        let out = retaint(&node("False", false, json!(null)), "t").unwrap();
        assert_eq!(
            out["spec"]["taints"],
            json!([{"key": NOT_READY, "effect": "NoSchedule", "timeAdded": "t"}])
        );
        let out = retaint(&node("Unknown", true, json!(null)), "t").unwrap();
        let keys: Vec<&str> = out["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, [UNREACHABLE, UNSCHEDULABLE]);
        assert!(out["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["effect"] == "NoSchedule"));
        // Recovered and uncordoned: both go.
        let mut back = out.clone();
        back["status"]["conditions"][0]["status"] = json!("True");
        back["spec"]["unschedulable"] = json!(false);
        let clean = retaint(&back, "t").unwrap();
        assert!(clean["spec"].get("taints").is_none());
    }

    #[test]
    fn pressure_conditions_taint_no_schedule_until_they_clear() {
        let mut n = node("True", false, json!(null));
        let conditions = n["status"]["conditions"].as_array_mut().unwrap();
        for (kind, status) in [
            ("MemoryPressure", "True"),
            ("DiskPressure", "False"),
            ("PIDPressure", "True"),
        ] {
            conditions.push(json!({"type": kind, "status": status}));
        }
        let out = retaint(&n, "t").unwrap();
        assert_eq!(
            out["spec"]["taints"],
            json!([
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule", "timeAdded": "t"},
                {"key": "node.kubernetes.io/pid-pressure", "effect": "NoSchedule", "timeAdded": "t"},
            ])
        );
        assert!(retaint(&out, "t").is_none(), "settled");
        let mut clear = out.clone();
        clear["status"]["conditions"][1]["status"] = json!("False");
        clear["status"]["conditions"][3]["status"] = json!("False");
        let clean = retaint(&clear, "t").unwrap();
        assert!(clean["spec"].get("taints").is_none(), "{clean}");
    }

    #[test]
    fn a_node_without_conditions_is_unreachable() {
        let n = json!({"metadata": {"name": "n"}, "spec": {}});
        assert_eq!(wanted_taints(&n), [UNREACHABLE]);
    }
}
