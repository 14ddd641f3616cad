//! The node's local copy of its desired state: what a node restarted without network runs.
//!
//! The controller's envelope is verified (cluster, key, node) when it arrives and is not kept:
//! agent.redb holds the *decoded* desired state ([`LocalCopy`]) with every Secret replaced by
//! a reference (namespace, name, sha256 of the Secret object), and each Secret a desired pod
//! uses goes, whole, to a file of its own in the secrets directory ([`SecretDir`]). Secrets no
//! pod of the state uses are kept nowhere, and their files are deleted.
//!
//! Trust: the signature covers the whole envelope, which is no longer on disk. The copy was
//! verified before it was written, and the agent's state directory is the agent's own (root,
//! as are the keys of the join file); the copy names the controller key, cluster and node it
//! was verified for, and is used only while those are still the pinned ones. A Secret whose
//! file is missing or does not hash to the digest of its reference is refused with an error
//! line (pods using it wait as for any missing Secret) and the state is marked incomplete, so
//! the controller's copy of the same generation replaces it when the link comes up.
//!
//! Before this copy existed agent.redb held the envelope itself; such an envelope is still
//! verified and used once, then migrated ([`load`]).

use std::collections::BTreeSet;

use kelp_shared::api::core::Pod;
use kelp_shared::wire::{DesiredState, Generation, PublicKey};
use serde::{Deserialize, Serialize};

use super::secret_dir::{sha256, SecretDir, Sha256Digest};
use super::{open_desired, LinkConfig};
use crate::store::LocalState;

/// What agent.redb keeps of a desired state (postcard; the enum may only grow at its end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalCopy {
    /// The controller key the state was verified with.
    pub controller_key: [u8; 32],
    pub generation: Generation,
    pub node: String,
    pub objects: Vec<LocalObject>,
}

/// One object of the desired state, in the order the controller sent them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LocalObject {
    /// Any object but a Secret, as JSON.
    Json(Vec<u8>),
    /// A Secret, kept in the secrets directory under the digest of its JSON.
    Secret {
        namespace: String,
        name: String,
        sha256: Sha256Digest,
    },
}

/// A Secret of the desired state that some pod of it uses: its key and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretObject {
    pub namespace: String,
    pub name: String,
    pub json: Vec<u8>,
}

/// Splits a verified desired state: the copy for agent.redb, and the Secrets to keep on
/// their own. Secrets no pod of the state uses are dropped.
pub fn split(state: &DesiredState, key: &PublicKey) -> (LocalCopy, Vec<SecretObject>) {
    let used = used_secrets(&state.objects_json);
    let mut objects = Vec::with_capacity(state.objects_json.len());
    let mut secrets = Vec::new();
    for bytes in &state.objects_json {
        let Some((namespace, name)) = secret_key(bytes) else {
            objects.push(LocalObject::Json(bytes.clone()));
            continue;
        };
        if !used.contains(&(namespace.clone(), name.clone())) {
            continue;
        }
        objects.push(LocalObject::Secret {
            namespace: namespace.clone(),
            name: name.clone(),
            sha256: sha256(bytes),
        });
        secrets.push(SecretObject {
            namespace,
            name,
            json: bytes.clone(),
        });
    }
    let copy = LocalCopy {
        controller_key: key.0,
        generation: state.generation,
        node: state.node.clone(),
        objects,
    };
    (copy, secrets)
}

/// A Secret of the copy that is not used: its file is missing or altered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Secret {namespace}/{name} of the local desired state is refused: {why}")]
pub struct Refused {
    pub namespace: String,
    pub name: String,
    pub why: String,
}

/// The desired state a copy stands for, with each Secret read by `read` (the bytes of the
/// file of a digest) and checked against its digest; the Secrets refused.
pub fn merge<E: std::fmt::Display>(
    copy: LocalCopy,
    read: impl Fn(&Sha256Digest) -> Result<Vec<u8>, E>,
) -> (DesiredState, Vec<Refused>) {
    let mut objects_json = Vec::with_capacity(copy.objects.len());
    let mut refused = Vec::new();
    for object in copy.objects {
        match object {
            LocalObject::Json(bytes) => objects_json.push(bytes),
            LocalObject::Secret {
                namespace,
                name,
                sha256: digest,
            } => match read(&digest) {
                Ok(bytes) if sha256(&bytes) == digest => objects_json.push(bytes),
                Ok(_) => refused.push(Refused {
                    namespace,
                    name,
                    why: "its file was altered (sha256 mismatch)".into(),
                }),
                Err(e) => refused.push(Refused {
                    namespace,
                    name,
                    why: format!("its file cannot be read: {e}"),
                }),
            },
        }
    }
    let state = DesiredState {
        generation: copy.generation,
        node: copy.node,
        objects_json,
    };
    (state, refused)
}

/// Namespace and name of a Secret object; None for other objects.
fn secret_key(bytes: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Head {
        kind: Option<String>,
        #[serde(default)]
        metadata: Meta,
    }
    #[derive(Deserialize, Default)]
    struct Meta {
        namespace: Option<String>,
        name: Option<String>,
    }
    // An object that is not JSON cannot be told apart: kept away from agent.redb if it
    // might be a Secret.
    let head: Head = match serde_json::from_slice(bytes) {
        Ok(h) => h,
        Err(_) => return Some((String::new(), String::new())),
    };
    (head.kind.as_deref() == Some("Secret")).then(|| {
        (
            head.metadata.namespace.unwrap_or_else(|| "default".into()),
            head.metadata.name.unwrap_or_default(),
        )
    })
}

/// (namespace, name) of every Secret a Pod of `objects` uses.
pub fn used_secrets(objects: &[Vec<u8>]) -> BTreeSet<(String, String)> {
    let mut used = BTreeSet::new();
    for bytes in objects {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            continue;
        };
        if value.get("kind").and_then(|k| k.as_str()) != Some("Pod") {
            continue;
        }
        let Ok(pod) = serde_json::from_value::<Pod>(value) else {
            continue;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        for name in pod_secrets(&pod) {
            used.insert((namespace.to_string(), name));
        }
    }
    used
}

/// The names of the Secrets a pod uses: volumes (secret, projected), env and envFrom of
/// every container, imagePullSecrets.
pub fn pod_secrets(pod: &Pod) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Some(spec) = pod.spec.as_ref() else {
        return names;
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            names.insert(name);
        }
        let sources = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
        for source in sources.into_iter().flatten() {
            if let Some(name) = source.secret.as_ref().and_then(|s| s.name.clone()) {
                names.insert(name);
            }
        }
    }
    let containers = crate::pod::init_containers(pod)
        .iter()
        .chain(crate::pod::app_containers(pod));
    for c in containers {
        for from in c.env_from.iter().flatten() {
            if let Some(name) = from.secret_ref.as_ref().and_then(|r| r.name.clone()) {
                names.insert(name);
            }
        }
        for env in c.env.iter().flatten() {
            let key_ref = env
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref());
            if let Some(name) = key_ref.and_then(|r| r.name.clone()) {
                names.insert(name);
            }
        }
    }
    for r in spec.image_pull_secrets.iter().flatten() {
        if let Some(name) = r.name.clone() {
            names.insert(name);
        }
    }
    names
}

/// A local copy that cannot be used or kept.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("agent.redb: {0:#}")]
    Store(anyhow::Error),
    #[error("the secrets directory: {0}")]
    Secrets(#[from] super::secret_dir::SecretDirError),
    #[error("the local desired state cannot be decoded: {0}")]
    Decode(kelp_shared::wire::WireError),
}

/// Keeps a verified desired state: its Secrets' files first, then the copy (durably, in one
/// agent.redb commit that also drops an envelope left by an older agent), then the files no
/// longer named are deleted.
pub fn save(
    store: &LocalState,
    secrets: &SecretDir,
    state: &DesiredState,
    key: &PublicKey,
) -> Result<(), CopyError> {
    let (copy, objects) = split(state, key);
    let mut keep = BTreeSet::new();
    for secret in &objects {
        keep.insert(secrets.put(&secret.json)?);
    }
    let bytes = kelp_shared::wire::encode_message(&copy).map_err(CopyError::Decode)?;
    store.put_desired(&bytes).map_err(CopyError::Store)?;
    let removed = secrets.retain(&keep)?;
    if removed > 0 {
        tracing::info!(removed, "Secret files no desired pod uses deleted");
    }
    Ok(())
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub state: Option<DesiredState>,
    /// Some Secret was refused: the same generation from the controller is to replace it.
    pub incomplete: bool,
}

/// The persisted desired state, if it is for the node, cluster and controller key of
/// `config`. An envelope persisted by an older agent is verified as one from the link, then
/// migrated (Secrets to their files, the envelope out of agent.redb).
pub fn load(
    store: &mut LocalState,
    secrets: &SecretDir,
    config: &LinkConfig,
) -> Result<Loaded, CopyError> {
    if let Some(bytes) = store.desired().map_err(CopyError::Store)? {
        let copy: LocalCopy =
            kelp_shared::wire::decode_message(&bytes).map_err(CopyError::Decode)?;
        if copy.controller_key != config.controller_key.0
            || copy.generation.cluster_id != config.cluster
            || copy.node != config.node
        {
            tracing::warn!(
                "the persisted desired state is not used: it is of another cluster, controller key or node"
            );
            return Ok(Loaded::default());
        }
        let (state, refused) = merge(copy, |digest| secrets.read(digest));
        for r in &refused {
            tracing::error!(
                "{r}; pods using it wait until the controller sends it again ({})",
                secrets.path().display()
            );
        }
        // Files of no Secret of the copy (a state that was never committed) go.
        let keep = kept_digests(&state);
        secrets.retain(&keep)?;
        return Ok(Loaded {
            state: Some(state),
            incomplete: !refused.is_empty(),
        });
    }
    let Some(envelope) = store.legacy_envelope().map_err(CopyError::Store)? else {
        return Ok(Loaded::default());
    };
    match open_desired(&envelope, config) {
        Ok(Some(state)) => {
            save(store, secrets, &state, &config.controller_key)?;
            store.compact().map_err(CopyError::Store)?;
            tracing::info!(
                generation = state.generation.revision,
                "the persisted desired-state envelope was migrated: Secrets to {}",
                secrets.path().display()
            );
            Ok(Loaded {
                state: Some(state),
                incomplete: false,
            })
        }
        Ok(None) => Ok(Loaded::default()),
        Err(why) => {
            tracing::warn!("the persisted desired state is not used: {why}");
            Ok(Loaded::default())
        }
    }
}

/// The digests of the Secrets of a merged state that a pod of it uses.
fn kept_digests(state: &DesiredState) -> BTreeSet<Sha256Digest> {
    let used = used_secrets(&state.objects_json);
    state
        .objects_json
        .iter()
        .filter(|b| secret_key(b).is_some_and(|k| used.contains(&k)))
        .map(|b| sha256(b))
        .collect()
}

#[cfg(test)]
#[path = "local_copy_tests.rs"]
mod tests;
