//! The ReplicaSet controller (seed §1.1 #5, "Replication controller"): each ReplicaSet keeps
//! `spec.replicas` active pods made from its template.
//!
//! A ReplicaSet's pods are the pods whose controlling ownerReference carries its uid; active
//! ones are not being deleted and have not ended (`Succeeded`/`Failed`). As in Kubernetes, it
//! adopts active orphan pods its selector matches (say, left by `--cascade=orphan`) and
//! releases pods its selector no longer matches. Missing pods are
//! created through the API's own admission (name from `generateName` `<set>-`, the template's
//! labels and annotations, the ownerReference with `controller` and `blockOwnerDeletion`);
//! extra ones are deleted, unscheduled first, then not ready, then the newest. The status
//! (`replicas`, `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas`,
//! `observedGeneration`) is written when it changes. Nothing is remembered between rounds:
//! after `kill -9` the next round counts what the store holds, so no pod is made twice.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{controller_uid, deleting, event, run_writes, uid};
use crate::api::selectors::LabelSelector;
use crate::api::ApiState;
use crate::store::{Durability, StoreError, Stored};

const COMPONENT: &str = "replicaset-controller";

/// At most this many pods are created or deleted per ReplicaSet per round (Kubernetes' burst).
const BURST: usize = 500;

fn active(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    !deleting(pod) && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

fn ready(pod: &Value) -> bool {
    crate::hub::status::condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
}

/// The order in which extra pods go: unscheduled, then pending, then not ready, then newest.
fn deletion_rank(pod: &Value) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let created = pod
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    (
        u8::from(bound),
        u8::from(running),
        u8::from(ready(pod)),
        std::cmp::Reverse(created),
    )
}

/// The pod a ReplicaSet makes from its template.
pub fn pod_from_template(set: &Value) -> Value {
    let meta = &set["metadata"];
    let template = &set["spec"]["template"];
    let mut pod_meta = json!({
        "generateName": format!("{}-", meta["name"].as_str().unwrap_or_default()),
        "namespace": meta["namespace"],
        "ownerReferences": [{
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    for field in ["labels", "annotations"] {
        if let Some(v) = template["metadata"].get(field).filter(|v| v.is_object()) {
            pod_meta[field] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": template["spec"],
    })
}

/// One round over every ReplicaSet.
pub async fn reconcile(state: &ApiState) -> Result<(), StoreError> {
    let (sets, _) = state.store.list("ReplicaSet", None);
    if sets.is_empty() {
        return Ok(());
    }
    let (pods, _) = state.store.list("Pod", None);
    let mut owned: HashMap<&str, Vec<&Stored>> = HashMap::new();
    for pod in &pods {
        if let Some(owner) = controller_uid(&pod.object) {
            owned.entry(owner).or_default().push(pod);
        }
    }
    for set in &sets {
        let mine = owned.remove(uid(&set.object)).unwrap_or_default();
        let orphans: Vec<&Stored> = pods
            .iter()
            .filter(|p| p.key.namespace == set.key.namespace && controller_uid(&p.object).is_none())
            .collect();
        if adopt_and_release(state, set, &mine, &orphans).await? {
            // Ownership changed: the next round counts again.
            continue;
        }
        sync(state, set, &mine).await?;
    }
    Ok(())
}

/// Kubernetes' ownership rules: a ReplicaSet adopts active orphan pods of its namespace that
/// its selector matches, and releases pods it owns that the selector no longer matches.
/// True when it changed an ownerReference.
async fn adopt_and_release(
    state: &ApiState,
    set: &Stored,
    mine: &[&Stored],
    orphans: &[&Stored],
) -> Result<bool, StoreError> {
    if deleting(&set.object) {
        return Ok(false);
    }
    let Ok(selector) = LabelSelector::from_structured(&set.object["spec"]["selector"]) else {
        return Ok(false);
    };
    if selector.is_empty() {
        return Ok(false);
    }
    let owner = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": set.key.name,
        "uid": uid(&set.object),
        "controller": true,
        "blockOwnerDeletion": true,
    });
    let mut writes = Vec::new();
    for pod in orphans
        .iter()
        .filter(|p| active(&p.object) && selector.matches(&p.object))
    {
        let mut object = (*pod.object).clone();
        let refs = &mut object["metadata"]["ownerReferences"];
        if !refs.is_array() {
            *refs = json!([]);
        }
        if let Some(list) = refs.as_array_mut() {
            list.push(owner.clone());
        }
        writes.push(write_pod(state, pod, object));
    }
    let set_uid = uid(&set.object);
    for pod in mine
        .iter()
        .filter(|p| !deleting(&p.object) && !selector.matches(&p.object))
    {
        let mut object = (*pod.object).clone();
        if let Some(list) = object
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            list.retain(|o| o["uid"] != set_uid);
        }
        writes.push(write_pod(state, pod, object));
    }
    Ok(run_writes(writes).await? > 0)
}

async fn write_pod(state: &ApiState, pod: &Stored, object: Value) -> Result<(), StoreError> {
    state
        .store
        .update(
            pod.key.clone(),
            object,
            Some(pod.revision),
            Durability::Durable,
        )
        .await
        .map(drop)
}

async fn sync(state: &ApiState, set: &Stored, pods: &[&Stored]) -> Result<(), StoreError> {
    let object = &set.object;
    let mut active_pods: Vec<&Stored> =
        pods.iter().copied().filter(|p| active(&p.object)).collect();
    if !deleting(object) {
        let want = object
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        if active_pods.len() < want {
            let missing = (want - active_pods.len()).min(BURST);
            create(state, set, missing).await?;
        } else if active_pods.len() > want {
            let extra = (active_pods.len() - want).min(BURST);
            active_pods.sort_by_key(|p| deletion_rank(&p.object));
            let doomed: Vec<&Stored> = active_pods.drain(..extra).collect();
            let writes = doomed.into_iter().map(|pod| async move {
                match crate::api::handlers::delete_with(state, &pod.key, None, None).await {
                    Ok(_) => {
                        event(
                            state,
                            COMPONENT,
                            object,
                            false,
                            "SuccessfulDelete",
                            format!("Deleted pod: {}", pod.key.name),
                        );
                        Ok(())
                    }
                    Err(e) if e.code == 404 || e.code == 409 => Ok(()),
                    Err(e) => {
                        tracing::warn!(pod = %pod.key, error = %e, "cannot delete an extra replica");
                        Ok(())
                    }
                }
            });
            run_writes(writes.collect()).await?;
        }
    }
    write_status(state, set, pods).await
}

async fn create(state: &ApiState, set: &Stored, count: usize) -> Result<(), StoreError> {
    let info = kelp_shared::api::kinds::by_kind("Pod").expect("Pod is a known kind");
    let object = &set.object;
    let template = pod_from_template(object);
    let namespace = set.key.namespace.as_str();
    let writes = (0..count).map(|_| {
        let body = template.clone();
        async move {
            match crate::api::handlers::create_object(state, info, Some(namespace), body).await {
                Ok((pod, _)) => {
                    event(
                        state,
                        COMPONENT,
                        object,
                        false,
                        "SuccessfulCreate",
                        format!(
                            "Created pod: {}",
                            pod.object["metadata"]["name"].as_str().unwrap_or_default()
                        ),
                    );
                    Ok(())
                }
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => {
                    event(
                        state,
                        COMPONENT,
                        object,
                        true,
                        "FailedCreate",
                        format!("Error creating: {}", e.message),
                    );
                    Ok(())
                }
            }
        }
    });
    run_writes(writes.collect()).await?;
    Ok(())
}

async fn write_status(state: &ApiState, set: &Stored, pods: &[&Stored]) -> Result<(), StoreError> {
    let object = &set.object;
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let template_selector =
        LabelSelector::from_structured(&json!({ "matchLabels": labels })).unwrap_or_default();
    let active: Vec<&&Stored> = pods.iter().filter(|p| active(&p.object)).collect();
    let ready_count = active.iter().filter(|p| ready(&p.object)).count();
    let mut status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": active.iter().filter(|p| template_selector.matches(&p.object)).count(),
        "readyReplicas": ready_count,
        "availableReplicas": ready_count,
        "observedGeneration": object.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
    });
    let terminating = pods.iter().filter(|p| deleting(&p.object)).count();
    if terminating > 0 {
        status["terminatingReplicas"] = json!(terminating);
    }
    if let Some(conditions) = object.pointer("/status/conditions") {
        status["conditions"] = conditions.clone();
    }
    if object.get("status") == Some(&status) {
        return Ok(());
    }
    let mut updated = (**object).clone();
    updated["status"] = status;
    match state
        .store
        .update(
            set.key.clone(),
            updated,
            Some(set.revision),
            Durability::Relaxed,
        )
        .await
    {
        Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_becomes_an_owned_pod() {
        let set = json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {"replicas": 3, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }},
        });
        let pod = pod_from_template(&set);
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["namespace"], "shop");
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(pod["spec"]["containers"][0]["name"], "c");
        assert!(pod["metadata"].get("annotations").is_none());
    }

    #[test]
    fn extra_pods_go_unscheduled_then_not_running_then_newest() {
        let pod = |name: &str, node: Option<&str>, phase: &str, created: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": created},
                   "spec": {"nodeName": node}, "status": {"phase": phase}})
        };
        let mut pods = [
            pod("old-running", Some("n"), "Running", "2026-01-01T00:00:00Z"),
            pod("new-running", Some("n"), "Running", "2026-01-02T00:00:00Z"),
            pod("pending", Some("n"), "Pending", "2026-01-01T00:00:00Z"),
            pod("unscheduled", None, "Pending", "2026-01-01T00:00:00Z"),
        ];
        pods.sort_by_key(deletion_rank);
        let names: Vec<&str> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["unscheduled", "pending", "new-running", "old-running"]
        );
    }

    #[test]
    fn ended_and_deleting_pods_are_not_active() {
        assert!(active(&json!({"status": {"phase": "Running"}})));
        assert!(!active(&json!({"status": {"phase": "Failed"}})));
        assert!(!active(&json!({"status": {"phase": "Succeeded"}})));
        assert!(!active(
            &json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}})
        ));
    }
}
