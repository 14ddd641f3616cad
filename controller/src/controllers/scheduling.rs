//! The scheduler's task (seed §1.5 steps 3–4): every pod without a node and not being
//! deleted is placed by [`crate::scheduler::schedule`] against the Nodes and the pods already
//! bound. A placement is a binding: `spec.nodeName` and `PodScheduled=True`, written with the
//! pod's revision as precondition (durable: it is what the node will run). A pod no node fits
//! gets `PodScheduled=False`, reason `Unschedulable`, with Kubernetes' message, rewritten only
//! when the message changes; it is placed again in every round, so a Node that joins, turns
//! Ready or is uncordoned takes it.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{deleting, event, run_writes};
use crate::api::ApiState;
use crate::hub::status::set_condition;
use crate::scheduler::{schedule, NodeView, Placement, PodView};
use crate::store::{Durability, Key, Revision, StoreError, Stored};

const COMPONENT: &str = "default-scheduler";

fn bound(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

/// The key the scheduler knows a pod by.
fn pod_key(pod: &Stored) -> String {
    format!("{}/{}", pod.key.namespace, pod.key.name)
}

/// Each pod's [`PodView`] and each node's [`NodeView`] while its revision stays the same: reading a pod (its requests,
/// affinity, its size as its node will get it) costs more than placing it, and with 10,000
/// bound pods a round would otherwise spend nearly all its time reading pods it does not move.
#[derive(Default)]
pub struct Views {
    pods: HashMap<Key, (Revision, PodView)>,
    nodes: HashMap<Key, (Revision, NodeView)>,
}

impl Views {
    fn node(&mut self, node: &Stored) -> NodeView {
        match self.nodes.get(&node.key) {
            Some((revision, view)) if *revision == node.revision => view.clone(),
            _ => {
                let view = NodeView::from_object(&node.object);
                self.nodes
                    .insert(node.key.clone(), (node.revision, view.clone()));
                view
            }
        }
    }

    fn view(&mut self, pod: &Stored) -> PodView {
        match self.pods.get(&pod.key) {
            Some((revision, view)) if *revision == pod.revision => view.clone(),
            _ => {
                let view = PodView::from_object(&pod.object);
                self.pods
                    .insert(pod.key.clone(), (pod.revision, view.clone()));
                view
            }
        }
    }
}

/// One round: places every pending pod. `views` carries what is reused from round to round.
pub async fn reconcile(state: &ApiState, views: &mut Views) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let result = place(state, views).await;
    tracing::debug!(took = ?started.elapsed(), "scheduling round");
    result
}

async fn place(state: &ApiState, cache: &mut Views) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let (pods, _) = state.store.list("Pod", None);
    let mut pending: Vec<&Stored> = pods
        .iter()
        .filter(|p| !bound(&p.object) && !deleting(&p.object))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    // Oldest first, as Kubernetes' queue orders pods of one priority.
    pending.sort_by(|a, b| {
        let created = |p: &Stored| {
            p.object
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        created(a)
            .cmp(&created(b))
            .then(a.revision.cmp(&b.revision))
    });
    let (nodes, _) = state.store.list("Node", None);
    if cache.nodes.len() > nodes.len() {
        let live: std::collections::HashSet<&Key> = nodes.iter().map(|n| &n.key).collect();
        cache.nodes.retain(|key, _| live.contains(key));
    }
    let nodes: Vec<NodeView> = nodes.iter().map(|n| cache.node(n)).collect();
    // Bound pods count against their node until they end (terminating ones still run).
    let finished = |p: &Stored| {
        matches!(
            p.object.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded") | Some("Failed")
        )
    };
    let views: Vec<PodView> = pods
        .iter()
        .filter(|p| bound(&p.object) && !finished(p))
        .chain(pending.iter().copied())
        .map(|p| cache.view(p))
        .collect();
    // Forget pods that are gone.
    let live: std::collections::HashSet<&Key> = pods.iter().map(|p| &p.key).collect();
    cache.pods.retain(|key, _| live.contains(key));
    let by_key: HashMap<String, &Stored> = pending.iter().map(|p| (pod_key(p), *p)).collect();
    let now = kelp_shared::api::Time::now().to_string();
    let mut writes = Vec::new();
    let read = started.elapsed();
    let placements = schedule(&views, &nodes);
    tracing::debug!(?read, placed = ?started.elapsed() - read, pending = pending.len(), "scheduling compute");
    for (key, placement) in placements {
        let Some(pod) = by_key.get(&key).copied() else {
            continue;
        };
        writes.push(write(state, pod, placement, now.clone()));
    }
    run_writes(writes).await?;
    Ok(())
}

async fn write(
    state: &ApiState,
    pod: &Stored,
    placement: Placement,
    now: String,
) -> Result<(), StoreError> {
    let mut object = (*pod.object).clone();
    match placement {
        Placement::Node(node) => {
            object["spec"]["nodeName"] = json!(node);
            set_condition(
                &mut object["status"]["conditions"],
                "PodScheduled",
                "True",
                "",
                "",
                &now,
                false,
            );
            strip_empty_reason(&mut object);
            state
                .store
                .update(
                    pod.key.clone(),
                    object,
                    Some(pod.revision),
                    Durability::Durable,
                )
                .await?;
            event(
                state,
                COMPONENT,
                &pod.object,
                false,
                "Scheduled",
                format!(
                    "Successfully assigned {}/{} to {node}",
                    pod.key.namespace, pod.key.name
                ),
            );
        }
        Placement::Unschedulable(message) => {
            let old = crate::hub::status::condition(&object, "PodScheduled");
            if old.is_some_and(|c| c["status"] == "False" && c["message"] == message.as_str()) {
                return Ok(());
            }
            set_condition(
                &mut object["status"]["conditions"],
                "PodScheduled",
                "False",
                "Unschedulable",
                &message,
                &now,
                false,
            );
            state
                .store
                .update(
                    pod.key.clone(),
                    object,
                    Some(pod.revision),
                    Durability::Relaxed,
                )
                .await?;
            event(
                state,
                COMPONENT,
                &pod.object,
                true,
                "FailedScheduling",
                message,
            );
        }
    }
    Ok(())
}

/// `PodScheduled=True` carries no reason or message in Kubernetes.
fn strip_empty_reason(pod: &mut Value) {
    if let Some(list) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in list.iter_mut().filter(|c| c["type"] == "PodScheduled") {
            if let Some(map) = c.as_object_mut() {
                map.retain(|k, v| !((k == "reason" || k == "message") && v == ""));
            }
        }
    }
}
