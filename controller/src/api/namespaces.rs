//! Namespaces (seed §2.3): the system ones exist from the start and cannot be deleted; a
//! deleted namespace is Terminating until everything in it is gone, then disappears.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::handlers::{delete_object, namespaced_kinds};
use super::ApiState;
use crate::store::{Durability, Key, Store, StoreError};
use kelp_shared::api::Time;

/// The namespaces every cluster has; they cannot be deleted.
pub const SYSTEM: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces that are missing.
pub async fn ensure_system(store: &Store) -> Result<(), StoreError> {
    for name in SYSTEM {
        let key = Key::new("Namespace", "", name);
        if store.get(&key).is_some() {
            continue;
        }
        let ns = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": Time::now().to_string(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        match store.create(key, ns, Durability::Durable).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Wakes the namespace controller.
pub fn kick(state: &ApiState) {
    state.namespace_kick.notify_one();
}

/// The namespace controller: for every Terminating namespace, deletes what it holds, says in
/// its status what it still waits for, and removes it once empty. Runs until the process
/// ends; `resync` bounds how long a waiting namespace goes unchecked.
pub async fn run(state: Arc<ApiState>, resync: Duration) {
    loop {
        let (namespaces, _) = state.store.list("Namespace", None);
        for ns in namespaces {
            if ns.object.pointer("/metadata/deletionTimestamp").is_some() {
                if let Err(e) = finish(&state, &ns.key.name).await {
                    tracing::warn!(namespace = %ns.key.name, error = %e, "namespace cleanup");
                }
            }
        }
        let _ = tokio::time::timeout(resync, state.namespace_kick.notified()).await;
    }
}

async fn finish(state: &ApiState, namespace: &str) -> Result<(), String> {
    let mut remaining: Vec<(String, usize)> = Vec::new();
    for info in namespaced_kinds() {
        let (items, _) = state.store.list(info.kind, Some(namespace));
        for item in &items {
            if item.object.pointer("/metadata/deletionTimestamp").is_none() {
                delete_object(state, &item.key)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let (left, _) = state.store.list(info.kind, Some(namespace));
        if !left.is_empty() {
            remaining.push((info.plural.to_string(), left.len()));
        }
    }
    let key = Key::new("Namespace", "", namespace);
    let Some(live) = state.store.get(&key) else {
        return Ok(());
    };
    if remaining.is_empty() {
        return match state
            .store
            .delete(key, Some(live.revision), Durability::Durable)
            .await
        {
            Ok(_) | Err(StoreError::NotFound(_)) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
    }
    // Say what we wait for, as Kubernetes' NamespaceContentRemaining condition does.
    let names: Vec<String> = remaining.iter().map(|(p, _)| p.clone()).collect();
    let counts: Vec<String> = remaining
        .iter()
        .map(|(p, n)| format!("{p} has {n} resource instances"))
        .collect();
    let condition = json!({
        "type": "NamespaceContentRemaining",
        "status": "True",
        "reason": "SomeResourcesRemain",
        "message": format!("Some resources are remaining: {}", counts.join(", ")),
        "lastTransitionTime": Time::now().to_string(),
    });
    let mut v: Value = (*live.object).clone();
    let old_msg = v.pointer("/status/conditions/0/message").cloned();
    if old_msg.as_ref() == Some(&condition["message"]) {
        return Ok(());
    }
    v["status"]["conditions"] = json!([condition]);
    tracing::debug!(namespace, waiting_for = ?names, "namespace still has content");
    match state
        .store
        .update(key, v, Some(live.revision), Durability::Durable)
        .await
    {
        Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
