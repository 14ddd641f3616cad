//! Static pods: every Pod manifest in a directory (default `/etc/kelp/manifests`) runs on this
//! node, as the kubelet's `staticPodPath` does. ConfigMaps and Secrets in the same directory
//! serve the pods' env references.
//!
//! As in the kubelet, a static pod's name gets the node name appended (`web` on node `pi1`
//! becomes `web-pi1`), its namespace defaults to `default`, and its UID is a hash of its
//! content and node: editing the file replaces the pod, an untouched file keeps it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use kelp_shared::api::core::{ConfigMap, Pod, Secret};
use kelp_shared::api::kinds::LegacyVersion;
use kelp_shared::api::object::Object;
use kelp_shared::api::{defaults, validation};
use kelp_shared::manifest;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// One pod to run.
#[derive(Debug, Clone)]
pub struct DesiredPod {
    pub uid: String,
    pub pod: Pod,
    pub source: PathBuf,
}

/// What the manifest directory asks for.
#[derive(Debug, Default)]
pub struct Desired {
    pub pods: Vec<DesiredPod>,
    pub config_maps: BTreeMap<(String, String), ConfigMap>,
    pub secrets: BTreeMap<(String, String), Secret>,
    /// One line per file or document that could not be used, naming it.
    pub errors: Vec<String>,
}

/// The kinds a static manifest may hold. Only their deserializers are compiled into the
/// agent (the manifest loader is generic over its kinds): the others would add about a
/// megabyte to the binary for documents the agent refuses anyway.
struct StaticKinds;

impl manifest::Kinds for StaticKinds {
    fn accept(&self, kind: &str) -> Result<(), String> {
        match kind {
            "Pod" | "ConfigMap" | "Secret" => Ok(()),
            _ => Err(refusal(kind)),
        }
    }

    fn current<'de, D: Deserializer<'de>>(
        &self,
        kind: &str,
        de: D,
    ) -> Result<Option<Object>, D::Error> {
        Ok(Some(match kind {
            "Pod" => Object::Pod(Pod::deserialize(de)?),
            "ConfigMap" => Object::ConfigMap(ConfigMap::deserialize(de)?),
            "Secret" => Object::Secret(Secret::deserialize(de)?),
            _ => return Ok(None),
        }))
    }

    fn legacy<'de, D: Deserializer<'de>>(
        &self,
        _legacy: &'static LegacyVersion,
        _de: D,
    ) -> Option<Result<manifest::Converted, D::Error>> {
        None
    }
}

fn refusal(kind: &str) -> String {
    format!("kind {kind} cannot run as a static pod; only Pod, ConfigMap and Secret are read")
}

fn namespace_of(meta: &kelp_shared::api::meta::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// The pod's UID: a hash of what it is and where it runs, in UUID form.
pub fn pod_uid(pod: &Pod, node: &str) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(pod).expect("a Pod serializes"));
    h.update(node.as_bytes());
    let hex: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Reads every manifest of `dir` (files ending in .yaml, .yml or .json; hidden files and
/// editors' backups are skipped). A missing directory means no static pods.
pub fn read_dir(dir: &Path, node: &str) -> Desired {
    let mut desired = Desired::default();
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                !name.starts_with('.')
                    && [".yaml", ".yml", ".json"]
                        .iter()
                        .any(|ext| name.ends_with(ext))
                    && p.is_file()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return desired,
        Err(e) => {
            desired.errors.push(format!("{}: {e}", dir.display()));
            return desired;
        }
    };
    files.sort();
    for file in files {
        let docs = match manifest::load_path_kinds(&file, &StaticKinds) {
            Ok(docs) => docs,
            Err(e) => {
                desired.errors.push(e.to_string());
                continue;
            }
        };
        for doc in docs {
            let loaded = match doc {
                Ok(l) => l,
                Err(e) => {
                    desired.errors.push(e.to_string());
                    continue;
                }
            };
            let mut object = loaded.object;
            if object.metadata().namespace.is_none() {
                object.metadata_mut().namespace = Some("default".into());
            }
            defaults::apply(&mut object);
            let errs = validation::validate(&object);
            if !errs.is_empty() {
                desired.errors.push(format!(
                    "{} (document {}): {}",
                    file.display(),
                    loaded.document,
                    validation::invalid_message(&object, &errs)
                ));
                continue;
            }
            match object {
                Object::Pod(mut pod) => {
                    let uid = pod_uid(&pod, node);
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    pod.metadata.name = Some(format!("{name}-{node}"));
                    pod.metadata.uid = Some(uid.clone());
                    let annotations = pod
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default);
                    annotations.insert("kubernetes.io/config.source".into(), "file".into());
                    annotations.insert("kubernetes.io/config.hash".into(), uid.clone());
                    if let Some(spec) = pod.spec.as_mut() {
                        spec.node_name = Some(node.to_string());
                    }
                    desired.pods.push(DesiredPod {
                        uid,
                        pod,
                        source: file.clone(),
                    });
                }
                Object::ConfigMap(cm) => {
                    let key = (
                        namespace_of(&cm.metadata),
                        cm.metadata.name.clone().unwrap_or_default(),
                    );
                    desired.config_maps.insert(key, cm);
                }
                Object::Secret(s) => {
                    let key = (
                        namespace_of(&s.metadata),
                        s.metadata.name.clone().unwrap_or_default(),
                    );
                    desired.secrets.insert(key, s);
                }
                // StaticKinds types no other kind.
                other => desired.errors.push(format!(
                    "{} (document {}): {}",
                    file.display(),
                    loaded.document,
                    refusal(other.kind())
                )),
            }
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_node_suffix_stable_uid_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: c, image: busybox}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("bad.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: []}\n",
        )
        .unwrap();
        fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let d = read_dir(dir.path(), "pi1");
        assert_eq!(d.pods.len(), 1);
        assert_eq!(d.pods[0].pod.metadata.name.as_deref(), Some("web-pi1"));
        assert_eq!(d.config_maps.len(), 1);
        assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
        assert!(d.errors[0].contains("bad.yaml"), "{}", d.errors[0]);
        let again = read_dir(dir.path(), "pi1");
        assert_eq!(again.pods[0].uid, d.pods[0].uid);
        assert_ne!(read_dir(dir.path(), "pi2").pods[0].uid, d.pods[0].uid);
    }

    #[test]
    fn other_kinds_are_refused_by_file_document_and_item_and_lists_are_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("mixed.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n---\n\
             apiVersion: v1\nkind: List\nitems:\n\
             - {apiVersion: v1, kind: Pod, metadata: {name: listed}, spec: {containers: [{name: c, image: busybox}]}}\n\
             - {apiVersion: v1, kind: Service, metadata: {name: s}}\n\
             - {apiVersion: v1, kind: Secret, metadata: {name: t}, stringData: {k: v}}\n\
             ---\napiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: old}\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {name: typo}\nspec: {containers: [{name: c, image: busybox, imagePullPolicy: Sometimes}]}\n",
        )
        .unwrap();
        let d = read_dir(dir.path(), "pi1");
        let names: Vec<_> = d
            .pods
            .iter()
            .map(|p| p.pod.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["listed-pi1"]);
        assert_eq!(d.secrets.len(), 1);
        let file = dir.path().join("mixed.yaml").display().to_string();
        let refused = |place: &str, kind: &str| {
            format!("{file} ({place}): kind {kind} cannot run as a static pod; only Pod, ConfigMap and Secret are read")
        };
        assert_eq!(d.errors.len(), 4, "{:#?}", d.errors);
        assert_eq!(d.errors[0], refused("document 1", "Deployment"));
        assert_eq!(d.errors[1], refused("document 2, items[1]", "Service"));
        assert_eq!(d.errors[2], refused("document 3", "Deployment"));
        // Pods are still typed and checked as the API checks them.
        assert!(
            d.errors[3].contains("document 4") && d.errors[3].contains("imagePullPolicy"),
            "{}",
            d.errors[3]
        );
    }
}
