//! The projection of the store onto one node: the objects its desired state carries.
//!
//! A node's desired state is its Node object (metadata and spec: the pod CIDR, labels), every
//! pod bound to it (`spec.nodeName`), and the ConfigMaps and Secrets those pods reference
//! (volumes, projected sources, `env[].valueFrom`, `envFrom`, `imagePullSecrets`). Status and
//! bookkeeping that changes without the node having anything new to do
//! (`resourceVersion`, `managedFields`, the last-applied annotation, pod and node status)
//! is left out, so a status write never republishes a desired state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::store::{Key, Revision, Stored};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What one node's desired state holds, as serialised JSON objects, in a stable order: the
/// Node, then pods, ConfigMaps and Secrets, each by namespace and name.
pub type Projection = Vec<Arc<[u8]>>;

/// What the hub remembers of each object between projections, while its revision stays the
/// same: the ConfigMaps and Secrets a pod references, and the object as nodes get it,
/// serialised. With 10,000 pods a projection then serialises only what changed.
#[derive(Default)]
pub struct Cache {
    objects: HashMap<Key, Cached>,
}

struct Cached {
    revision: Revision,
    references: Option<Arc<References>>,
    json: Option<Arc<[u8]>>,
}

/// A pod's ConfigMaps and Secrets (names in its namespace).
type References = (BTreeSet<String>, BTreeSet<String>);

impl Cache {
    /// The entry of `stored`, fresh for its revision.
    fn entry(&mut self, stored: &Stored) -> &mut Cached {
        let entry = self
            .objects
            .entry(stored.key.clone())
            .or_insert_with(|| Cached {
                revision: stored.revision,
                references: None,
                json: None,
            });
        if entry.revision != stored.revision {
            *entry = Cached {
                revision: stored.revision,
                references: None,
                json: None,
            };
        }
        entry
    }

    fn references(&mut self, pod: &Stored) -> Arc<References> {
        let entry = self.entry(pod);
        entry
            .references
            .get_or_insert_with(|| Arc::new(references(&pod.object)))
            .clone()
    }

    /// `stored` as nodes get it (see [`trimmed`] and [`node_for_agent`]), serialised.
    fn json(&mut self, stored: &Stored) -> Arc<[u8]> {
        let entry = self.entry(stored);
        entry
            .json
            .get_or_insert_with(|| {
                let object = match stored.key.kind.as_str() {
                    "Node" => node_for_agent(&stored.object),
                    "Pod" => trimmed(&stored.object, false),
                    _ => trimmed(&stored.object, true),
                };
                serde_json::to_vec(&object)
                    .expect("JSON values serialise")
                    .into()
            })
            .clone()
    }

    /// Forgets objects the store no longer has.
    fn retain(&mut self, keep: impl Fn(&Key) -> bool) {
        self.objects.retain(|key, _| keep(key));
    }
}

/// Namespace and name.
type NsName = (String, String);

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

fn array_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The ConfigMaps and Secrets a pod references (names in the pod's namespace).
pub fn references(pod: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut configmaps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let add = |set: &mut BTreeSet<String>, name: Option<&str>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            set.insert(name.to_owned());
        }
    };
    for volume in array_at(pod, &["spec", "volumes"]) {
        add(&mut configmaps, str_at(volume, &["configMap", "name"]));
        add(&mut secrets, str_at(volume, &["secret", "secretName"]));
        for source in array_at(volume, &["projected", "sources"]) {
            add(&mut configmaps, str_at(source, &["configMap", "name"]));
            add(&mut secrets, str_at(source, &["secret", "name"]));
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in array_at(pod, &["spec", list]) {
            for env in array_at(container, &["env"]) {
                add(
                    &mut configmaps,
                    str_at(env, &["valueFrom", "configMapKeyRef", "name"]),
                );
                add(
                    &mut secrets,
                    str_at(env, &["valueFrom", "secretKeyRef", "name"]),
                );
            }
            for source in array_at(container, &["envFrom"]) {
                add(&mut configmaps, str_at(source, &["configMapRef", "name"]));
                add(&mut secrets, str_at(source, &["secretRef", "name"]));
            }
        }
    }
    for secret in array_at(pod, &["spec", "imagePullSecrets"]) {
        add(&mut secrets, str_at(secret, &["name"]));
    }
    (configmaps, secrets)
}

/// An object as the node gets it: without `resourceVersion`, `managedFields`, the
/// last-applied annotation and, unless `keep_status`, its status.
pub fn trimmed(object: &Value, keep_status: bool) -> Value {
    let mut out = object.clone();
    if let Some(map) = out.as_object_mut() {
        if !keep_status {
            map.remove("status");
        }
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
            let empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
                Some(annotations) => {
                    annotations.remove(LAST_APPLIED);
                    annotations.is_empty()
                }
                None => false,
            };
            if empty {
                meta.remove("annotations");
            }
        }
    }
    out
}

/// The Node as its agent gets it: without what only the scheduler reads (`spec.taints`,
/// `spec.unschedulable`), so that a readiness taint coming and going (a link that drops)
/// or a cordon sends the node nothing.
fn node_for_agent(node: &Value) -> Value {
    let mut out = trimmed(node, false);
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("taints");
        spec.remove("unschedulable");
    }
    out
}

fn ns_name(stored: &Stored) -> NsName {
    (stored.key.namespace.clone(), stored.key.name.clone())
}

/// Projects the store's objects onto every node in `nodes`: node name → its objects.
pub fn project_all(
    nodes: &[Stored],
    pods: &[Stored],
    configmaps: &[Stored],
    secrets: &[Stored],
) -> BTreeMap<String, Vec<Value>> {
    let mut cache = Cache::default();
    project_changed(
        nodes,
        pods,
        configmaps,
        secrets,
        &HashMap::new(),
        &mut cache,
    )
    .1
    .into_iter()
    .map(|(node, (_, objects))| {
        let objects = objects
            .iter()
            .map(|json| serde_json::from_slice(json).expect("projected JSON"))
            .collect();
        (node, objects)
    })
    .collect()
}

/// What a node's projection is made of, as one number: the revisions of its Node, of its
/// pods and of the ConfigMaps and Secrets they use (and which of those are missing). Equal
/// inputs give an equal projection, so a node whose inputs did not change need not be
/// projected (cloned, trimmed, serialised) again.
fn fingerprint(
    node: &Stored,
    pods: &[&Stored],
    wanted: &[(bool, NsName)],
    configmaps: &BTreeMap<NsName, &Stored>,
    secrets: &BTreeMap<NsName, &Stored>,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    node.revision.hash(&mut hasher);
    for pod in pods {
        (&pod.key.namespace, &pod.key.name, pod.revision).hash(&mut hasher);
    }
    for (is_secret, key) in wanted {
        let found = if *is_secret {
            secrets.get(key)
        } else {
            configmaps.get(key)
        };
        (is_secret, key, found.map(|s| s.revision)).hash(&mut hasher);
    }
    hasher.finish()
}

/// Every node's name, and the projections of the nodes whose inputs' fingerprint differs
/// from `seen` (node name → fingerprint), with their new fingerprints. `cache` carries what
/// can be reused from one call to the next.
pub fn project_changed(
    nodes: &[Stored],
    pods: &[Stored],
    configmaps: &[Stored],
    secrets: &[Stored],
    seen: &HashMap<String, u64>,
    cache: &mut Cache,
) -> (BTreeSet<String>, BTreeMap<String, (u64, Projection)>) {
    let configmaps: BTreeMap<NsName, &Stored> =
        configmaps.iter().map(|s| (ns_name(s), s)).collect();
    let secrets: BTreeMap<NsName, &Stored> = secrets.iter().map(|s| (ns_name(s), s)).collect();
    let mut by_node: BTreeMap<&str, Vec<&Stored>> = BTreeMap::new();
    for pod in pods {
        // A mirror pod is the node's own static pod: never sent back to it.
        if pod
            .object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(super::MIRROR_ANNOTATION))
            .is_some()
        {
            continue;
        }
        if let Some(node) = str_at(&pod.object, &["spec", "nodeName"]) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let mut out = BTreeMap::new();
    let mut names = BTreeSet::new();
    for node in nodes {
        let name = node.key.name.as_str();
        names.insert(name.to_owned());
        let node_pods = by_node.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let mut wanted_cms = BTreeSet::new();
        let mut wanted_secrets = BTreeSet::new();
        for pod in node_pods {
            let refs = cache.references(pod);
            let ns = &pod.key.namespace;
            wanted_cms.extend(refs.0.iter().map(|n| (ns.clone(), n.clone())));
            wanted_secrets.extend(refs.1.iter().map(|n| (ns.clone(), n.clone())));
        }
        let wanted: Vec<(bool, NsName)> = wanted_cms
            .iter()
            .map(|k| (false, k.clone()))
            .chain(wanted_secrets.iter().map(|k| (true, k.clone())))
            .collect();
        let print = fingerprint(node, node_pods, &wanted, &configmaps, &secrets);
        if seen.get(name) == Some(&print) {
            continue;
        }
        let mut objects = vec![cache.json(node)];
        objects.extend(node_pods.iter().map(|pod| cache.json(pod)));
        // A reference to an object that does not exist is the agent's to report (the pod
        // waits, as with the kubelet); it is simply not sent.
        for key in &wanted_cms {
            if let Some(cm) = configmaps.get(key) {
                objects.push(cache.json(cm));
            }
        }
        for key in &wanted_secrets {
            if let Some(secret) = secrets.get(key) {
                objects.push(cache.json(secret));
            }
        }
        out.insert(name.to_owned(), (print, objects));
    }
    let live: HashSet<&Key> = nodes
        .iter()
        .chain(pods)
        .chain(configmaps.values().copied())
        .chain(secrets.values().copied())
        .map(|s| &s.key)
        .collect();
    cache.retain(|key| live.contains(key));
    (names, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Key;
    use serde_json::json;
    use std::sync::Arc;

    fn stored(kind: &str, ns: &str, name: &str, object: Value) -> Stored {
        Stored {
            key: Key::new(kind, ns, name),
            revision: 1,
            object: Arc::new(object),
        }
    }

    fn node(name: &str) -> Stored {
        stored(
            "Node",
            "",
            name,
            json!({"kind": "Node", "metadata": {"name": name, "resourceVersion": "5"},
                   "spec": {"podCIDR": "10.42.0.0/24"}, "status": {"capacity": {"cpu": "4"}}}),
        )
    }

    fn pod(ns: &str, name: &str, node: Option<&str>, spec: Value) -> Stored {
        let mut spec = spec;
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        stored(
            "Pod",
            ns,
            name,
            json!({"kind": "Pod", "metadata": {"name": name, "namespace": ns, "resourceVersion": "9",
                   "annotations": {LAST_APPLIED: "{}"}},
                   "spec": spec, "status": {"phase": "Running"}}),
        )
    }

    fn cm(ns: &str, name: &str) -> Stored {
        stored(
            "ConfigMap",
            ns,
            name,
            json!({"kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": name}}),
        )
    }

    fn secret(ns: &str, name: &str) -> Stored {
        stored(
            "Secret",
            ns,
            name,
            json!({"kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": {"k": "dg=="}}),
        )
    }

    fn names(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn taints_and_cordons_are_not_sent_to_the_node() {
        let mut n = node("pi-1");
        Arc::make_mut(&mut n.object)["spec"]["taints"] =
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]);
        Arc::make_mut(&mut n.object)["spec"]["unschedulable"] = json!(true);
        let out = project_all(&[n], &[], &[], &[]);
        let spec = &out["pi-1"][0]["spec"];
        assert!(spec.get("taints").is_none() && spec.get("unschedulable").is_none());
        assert_eq!(spec["podCIDR"], "10.42.0.0/24");
    }

    #[test]
    fn every_kind_of_reference_is_found() {
        let p = pod(
            "default",
            "web",
            Some("pi-1"),
            json!({
                "volumes": [
                    {"name": "a", "configMap": {"name": "cm-vol"}},
                    {"name": "b", "secret": {"secretName": "sec-vol"}},
                    {"name": "c", "projected": {"sources": [
                        {"configMap": {"name": "cm-proj"}}, {"secret": {"name": "sec-proj"}},
                        {"downwardAPI": {"items": []}}]}},
                    {"name": "d", "emptyDir": {}}
                ],
                "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cm-init"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}},
                    {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "sec-env", "key": "k"}}},
                    {"name": "Z", "value": "plain"}],
                    "envFrom": [{"secretRef": {"name": "sec-from"}}]}],
                "imagePullSecrets": [{"name": "regcred"}]
            }),
        );
        let (cms, secrets) = references(&p.object);
        assert_eq!(
            cms.into_iter().collect::<Vec<_>>(),
            ["cm-env", "cm-init", "cm-proj", "cm-vol"]
        );
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            ["regcred", "sec-env", "sec-from", "sec-proj", "sec-vol"]
        );
    }

    #[test]
    fn each_node_gets_its_pods_and_their_references_only() {
        let nodes = [node("pi-1"), node("pi-2")];
        let pods = [
            pod(
                "default",
                "web",
                Some("pi-1"),
                json!({"volumes": [{"name": "v", "configMap": {"name": "shared"}}],
                       "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "creds"}}]}]}),
            ),
            pod(
                "other",
                "db",
                Some("pi-2"),
                json!({"volumes": [{"name": "v", "configMap": {"name": "shared"}}]}),
            ),
            pod("default", "pending", None, json!({"containers": []})),
            pod("default", "ghost", Some("gone"), json!({"containers": []})),
        ];
        let cms = [
            cm("default", "shared"),
            cm("other", "shared"),
            cm("default", "unused"),
        ];
        let secrets = [secret("default", "creds"), secret("other", "creds")];
        let all = project_all(&nodes, &pods, &cms, &secrets);
        assert_eq!(all.keys().collect::<Vec<_>>(), ["pi-1", "pi-2"]);
        assert_eq!(
            names(&all["pi-1"]),
            ["Node/pi-1", "Pod/web", "ConfigMap/shared", "Secret/creds"]
        );
        assert_eq!(all["pi-1"][2]["metadata"]["namespace"], "default");
        assert_eq!(all["pi-1"][3]["metadata"]["namespace"], "default");
        assert_eq!(
            names(&all["pi-2"]),
            ["Node/pi-2", "Pod/db", "ConfigMap/shared"]
        );
        assert_eq!(all["pi-2"][2]["metadata"]["namespace"], "other");
    }

    #[test]
    fn status_and_bookkeeping_are_left_out() {
        let all = project_all(
            &[node("pi-1")],
            &[pod(
                "default",
                "web",
                Some("pi-1"),
                json!({"containers": []}),
            )],
            &[],
            &[],
        );
        let objects = &all["pi-1"];
        assert_eq!(objects[0]["spec"]["podCIDR"], "10.42.0.0/24");
        for object in objects {
            assert!(object.get("status").is_none(), "{object}");
            assert!(object["metadata"].get("resourceVersion").is_none());
            assert!(object["metadata"].get("annotations").is_none());
        }
        // A status-only change projects to the same objects.
        let mut changed = pod("default", "web", Some("pi-1"), json!({"containers": []}));
        Arc::make_mut(&mut changed.object)["status"] = json!({"phase": "Failed"});
        Arc::make_mut(&mut changed.object)["metadata"]["resourceVersion"] = json!("99");
        let again = project_all(&[node("pi-1")], &[changed], &[], &[]);
        assert_eq!(again["pi-1"], *objects);
    }

    #[test]
    fn a_missing_reference_is_skipped() {
        let all = project_all(
            &[node("pi-1")],
            &[pod(
                "default",
                "web",
                Some("pi-1"),
                json!({"volumes": [{"name": "v", "secret": {"secretName": "nope"}}]}),
            )],
            &[],
            &[],
        );
        assert_eq!(names(&all["pi-1"]), ["Node/pi-1", "Pod/web"]);
    }
}
