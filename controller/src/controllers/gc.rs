//! The garbage collector: dependents (objects with `ownerReferences`) follow their owners.
//!
//! - **Background** (the default): an object none of whose owners exists any more is deleted.
//! - **Foreground** (`propagationPolicy: Foreground`): the API gives the owner a
//!   `deletionTimestamp` and the `foregroundDeletion` finalizer; its dependents are deleted,
//!   and once none is left the finalizer goes and the owner with it.
//! - **Orphan** (`propagationPolicy: Orphan`, `kelp delete --cascade=orphan`): the `orphan`
//!   finalizer; the owner's reference is removed from every dependent, then the owner goes.
//!
//! A terminating pod bound to a Node that no longer exists is removed too once its grace
//! period and a 40 s quarantine have passed (nothing will ever confirm that it stopped), as
//! Kubernetes' pod garbage collector does.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{deleting, run_writes, uid};
use crate::api::ApiState;
use crate::store::{Durability, Key, StoreError, Stored};

/// The finalizer of an owner deleted in the foreground.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an owner whose dependents are to be orphaned.
pub const ORPHAN: &str = "orphan";

fn owner_uids(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o["uid"].as_str())
        .collect()
}

fn has_finalizer(object: &Value, name: &str) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == name))
}

/// One round over every object.
pub async fn reconcile(state: &ApiState) -> Result<(), StoreError> {
    let mut all: Vec<Stored> = Vec::new();
    for info in kelp_shared::api::kinds::KINDS {
        all.extend(state.store.list(info.kind, None).0);
    }
    let by_uid: HashMap<&str, &Stored> = all.iter().map(|o| (uid(&o.object), o)).collect();
    let mut dependents: HashMap<&str, Vec<&Stored>> = HashMap::new();
    for object in &all {
        for owner in owner_uids(&object.object) {
            dependents.entry(owner).or_default().push(object);
        }
    }
    let mut deletes: Vec<&Stored> = Vec::new();
    let mut orphan: Vec<(&Stored, HashSet<&str>)> = Vec::new();
    let mut release: Vec<(&Stored, &'static str)> = Vec::new();
    // Dependents whose owners are all gone.
    for object in &all {
        let owners = owner_uids(&object.object);
        if !owners.is_empty()
            && !deleting(&object.object)
            && owners.iter().all(|o| !by_uid.contains_key(o))
        {
            deletes.push(object);
        }
    }
    // Owners waiting on their dependents.
    for owner in all.iter().filter(|o| deleting(&o.object)) {
        let id = uid(&owner.object);
        let deps = dependents.get(id).map(Vec::as_slice).unwrap_or(&[]);
        if has_finalizer(&owner.object, ORPHAN) {
            if deps.is_empty() {
                release.push((owner, ORPHAN));
            } else {
                for dep in deps {
                    orphan.push((dep, HashSet::from([id])));
                }
            }
        } else if has_finalizer(&owner.object, FOREGROUND) {
            if deps.is_empty() {
                release.push((owner, FOREGROUND));
            } else {
                deletes.extend(deps.iter().copied().filter(|d| !deleting(&d.object)));
            }
        }
    }
    let mut writes: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>>> =
        Vec::new();
    let mut seen = HashSet::new();
    for object in deletes {
        if seen.insert(&object.key) {
            writes.push(Box::pin(async move {
                match crate::api::handlers::delete_with(state, &object.key, None, None).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.code == 404 || e.code == 409 => Ok(()),
                    Err(e) => {
                        tracing::warn!(object = %object.key, error = %e, "garbage collector: cannot delete");
                        Ok(())
                    }
                }
            }));
        }
    }
    for (object, owners) in orphan {
        writes.push(Box::pin(async move {
            let mut updated = (*object.object).clone();
            if let Some(list) = updated
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                list.retain(|o| o["uid"].as_str().is_none_or(|u| !owners.contains(u)));
            }
            if let Some(meta) = updated["metadata"].as_object_mut() {
                if meta["ownerReferences"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
                {
                    meta.remove("ownerReferences");
                }
            }
            update(state, &object.key, updated, object.revision).await
        }));
    }
    for (owner, finalizer) in release {
        writes.push(Box::pin(async move {
            let mut updated = (*owner.object).clone();
            if let Some(list) = updated
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                list.retain(|f| f != finalizer);
            }
            update(state, &owner.key, updated, owner.revision).await
        }));
    }
    // Terminating pods of Nodes that are gone.
    let nodes: HashSet<&str> = all
        .iter()
        .filter(|o| o.key.kind == "Node")
        .map(|o| o.key.name.as_str())
        .collect();
    let now = chrono::Utc::now();
    for pod in all
        .iter()
        .filter(|o| o.key.kind == "Pod" && deleting(&o.object))
    {
        let node = pod.object.pointer("/spec/nodeName").and_then(Value::as_str);
        if node.is_some_and(|n| !n.is_empty() && !nodes.contains(n))
            && grace_over(&pod.object, now)
            && !has_finalizer(&pod.object, FOREGROUND)
            && !has_finalizer(&pod.object, ORPHAN)
        {
            writes.push(Box::pin(async move {
                state
                    .store
                    .delete(pod.key.clone(), Some(pod.revision), Durability::Durable)
                    .await
                    .map(drop)
            }));
        }
    }
    run_writes(writes).await?;
    Ok(())
}

/// How long past its grace period a terminating pod of a vanished Node is kept (Kubernetes'
/// pod garbage collector quarantines such pods for 40 s too).
const QUARANTINE_SECONDS: i64 = 40;

/// Whether a terminating pod's grace period and the quarantine have passed.
fn grace_over(pod: &Value, now: chrono::DateTime<chrono::Utc>) -> bool {
    let Some(since) = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return false;
    };
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    (now - since.with_timezone(&chrono::Utc)).num_seconds() >= grace + QUARANTINE_SECONDS
}

/// Writes `object`; a deletion that waited only on the finalizer just removed ends.
async fn update(
    state: &ApiState,
    key: &Key,
    object: Value,
    revision: u64,
) -> Result<(), StoreError> {
    let stored = state
        .store
        .update(key.clone(), object, Some(revision), Durability::Durable)
        .await?;
    if deleting(&stored.object) && !crate::api::handlers::must_wait(&key.kind, &stored.object) {
        state
            .store
            .delete(key.clone(), Some(stored.revision), Durability::Durable)
            .await?;
    }
    Ok(())
}
