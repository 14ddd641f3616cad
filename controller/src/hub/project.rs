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

    /// Forgets one object (deleted).
    fn forget(&mut self, key: &Key) {
        self.objects.remove(key);
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
    wanted: &[Wanted],
    found: &[Option<Stored>],
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    node.revision.hash(&mut hasher);
    for pod in pods {
        (&pod.key.namespace, &pod.key.name, pod.revision).hash(&mut hasher);
    }
    for ((is_secret, key), found) in wanted.iter().zip(found) {
        (is_secret, key, found.as_ref().map(|s| s.revision)).hash(&mut hasher);
    }
    hasher.finish()
}

/// A mirror pod is the node's own static pod: never sent back to it.
fn mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(super::MIRROR_ANNOTATION))
        .is_some()
}

/// The node a pod is projected onto: its `spec.nodeName`, unless it is a mirror pod.
fn projected_onto(pod: &Value) -> Option<&str> {
    if mirror(pod) {
        return None;
    }
    str_at(pod, &["spec", "nodeName"]).filter(|n| !n.is_empty())
}

/// A ConfigMap (false) or Secret (true), by namespace and name.
type Wanted = (bool, NsName);

/// One node's projection: the fingerprint of its inputs, what it references, and its objects
/// unless the fingerprint equals `seen`. `lookup` finds a ConfigMap (false) or Secret (true).
fn project_node(
    node: &Stored,
    pods: &[&Stored],
    lookup: &dyn Fn(bool, &NsName) -> Option<Stored>,
    seen: Option<u64>,
    cache: &mut Cache,
) -> (u64, Vec<Wanted>, Option<Projection>) {
    let mut wanted_cms = BTreeSet::new();
    let mut wanted_secrets = BTreeSet::new();
    for pod in pods {
        let refs = cache.references(pod);
        let ns = &pod.key.namespace;
        wanted_cms.extend(refs.0.iter().map(|n| (ns.clone(), n.clone())));
        wanted_secrets.extend(refs.1.iter().map(|n| (ns.clone(), n.clone())));
    }
    let wanted: Vec<Wanted> = wanted_cms
        .into_iter()
        .map(|k| (false, k))
        .chain(wanted_secrets.into_iter().map(|k| (true, k)))
        .collect();
    let found: Vec<Option<Stored>> = wanted.iter().map(|(s, k)| lookup(*s, k)).collect();
    let print = fingerprint(node, pods, &wanted, &found);
    if seen == Some(print) {
        return (print, wanted, None);
    }
    let mut objects = vec![cache.json(node)];
    objects.extend(pods.iter().map(|pod| cache.json(pod)));
    // A reference to an object that does not exist is the agent's to report (the pod
    // waits, as with the kubelet); it is simply not sent. ConfigMaps come before Secrets.
    for stored in found.iter().flatten() {
        objects.push(cache.json(stored));
    }
    (print, wanted, Some(objects))
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
    let lookup = |secret: bool, key: &NsName| {
        let map = if secret { &secrets } else { &configmaps };
        map.get(key).map(|s| (*s).clone())
    };
    let mut by_node: BTreeMap<&str, Vec<&Stored>> = BTreeMap::new();
    for pod in pods {
        if let Some(node) = projected_onto(&pod.object) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let mut out = BTreeMap::new();
    let mut names = BTreeSet::new();
    for node in nodes {
        let name = node.key.name.as_str();
        names.insert(name.to_owned());
        let node_pods = by_node.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let (print, _, objects) =
            project_node(node, node_pods, &lookup, seen.get(name).copied(), cache);
        if let Some(objects) = objects {
            out.insert(name.to_owned(), (print, objects));
        }
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

/// Which pods each node holds and which nodes must be projected again, kept from the store's
/// watch, so that a sync projects only the nodes a change touched instead of listing and
/// fingerprinting every pod (with 10,000 pods that list was most of a sync).
///
/// The index follows the watch; the objects themselves are read from the store when a node
/// is projected, so a projection is never older than the index. A pod the index places on a
/// node but whose current state says otherwise is left out; its change is on its way and
/// marks the right nodes.
#[derive(Default)]
pub struct Index {
    /// Rebuild from a list before the next projection (at the start, and after the watch
    /// was lost).
    stale: bool,
    /// The revision of the list the index was last rebuilt from: the watch's older changes
    /// are already in it.
    rebuilt_at: Revision,
    /// Every Node's name.
    nodes: BTreeSet<String>,
    /// Pod → the node it is projected onto.
    node_of: HashMap<Key, String>,
    /// Node → its pods, in the store's order.
    pods_of: HashMap<String, BTreeSet<Key>>,
    /// ConfigMap or Secret → the nodes whose last projection referenced it.
    wanted_by: HashMap<Wanted, BTreeSet<String>>,
    /// Node → what its last projection referenced.
    wants: HashMap<String, Vec<Wanted>>,
    /// Nodes to project again.
    dirty: BTreeSet<String>,
}

impl Index {
    /// An index that rebuilds itself from the store before its first projection.
    pub fn stale() -> Index {
        Index {
            stale: true,
            ..Index::default()
        }
    }

    /// Rebuild from a list before the next projection (the watch was lost).
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Projects every node again at the next sync (fingerprints still skip unchanged ones).
    pub fn touch_all(&mut self) {
        self.dirty.extend(self.nodes.iter().cloned());
    }

    /// Every Node's name.
    pub fn nodes(&self) -> &BTreeSet<String> {
        &self.nodes
    }

    /// Marks `node` to be projected again (its publish must be retried).
    pub fn touch(&mut self, node: &str) {
        self.dirty.insert(node.to_owned());
    }

    fn rebuild(&mut self, store: &crate::store::Store, cache: &mut Cache) {
        let (nodes, r1) = store.list("Node", None);
        let (pods, r2) = store.list("Pod", None);
        self.rebuilt_at = r1.max(r2);
        self.nodes = nodes.iter().map(|n| n.key.name.clone()).collect();
        self.node_of.clear();
        self.pods_of.clear();
        for pod in &pods {
            if let Some(node) = projected_onto(&pod.object) {
                self.node_of.insert(pod.key.clone(), node.to_owned());
                self.pods_of
                    .entry(node.to_owned())
                    .or_default()
                    .insert(pod.key.clone());
            }
        }
        self.dirty = self.nodes.clone();
        let live: HashSet<&Key> = nodes.iter().chain(&pods).map(|s| &s.key).collect();
        cache.retain(|key| live.contains(key) || key.kind == "ConfigMap" || key.kind == "Secret");
        self.stale = false;
    }

    /// Takes in one change of the store.
    pub fn observe(&mut self, change: &crate::store::WatchEvent, cache: &mut Cache) {
        let stored = &change.object;
        if self.stale || stored.revision <= self.rebuilt_at {
            return;
        }
        let deleted = change.event_type == crate::store::EventType::Deleted;
        if deleted {
            cache.forget(&stored.key);
        }
        match stored.key.kind.as_str() {
            "Node" => {
                let name = &stored.key.name;
                if deleted {
                    self.nodes.remove(name);
                } else {
                    self.nodes.insert(name.clone());
                    self.dirty.insert(name.clone());
                }
            }
            "Pod" => {
                let now = if deleted {
                    None
                } else {
                    projected_onto(&stored.object)
                };
                let before = self.node_of.get(&stored.key).cloned();
                if before.as_deref() != now {
                    if let Some(before) = &before {
                        self.node_of.remove(&stored.key);
                        if let Some(set) = self.pods_of.get_mut(before) {
                            set.remove(&stored.key);
                            if set.is_empty() {
                                self.pods_of.remove(before);
                            }
                        }
                    }
                    if let Some(now) = now {
                        self.node_of.insert(stored.key.clone(), now.to_owned());
                        self.pods_of
                            .entry(now.to_owned())
                            .or_default()
                            .insert(stored.key.clone());
                    }
                }
                self.dirty.extend(before);
                if let Some(now) = now {
                    self.dirty.insert(now.to_owned());
                }
            }
            kind @ ("ConfigMap" | "Secret") => {
                let wanted = (kind == "Secret", ns_name(stored));
                if let Some(nodes) = self.wanted_by.get(&wanted) {
                    self.dirty.extend(nodes.iter().cloned());
                }
            }
            _ => {}
        }
    }

    /// Projects the nodes marked since the last call (all of them after a rebuild) whose
    /// inputs' fingerprint differs from `seen`, reading the objects from `store`.
    pub fn project_dirty(
        &mut self,
        store: &crate::store::Store,
        seen: &HashMap<String, u64>,
        cache: &mut Cache,
    ) -> BTreeMap<String, (u64, Projection)> {
        if self.stale {
            self.rebuild(store, cache);
        }
        let lookup = |secret: bool, (ns, name): &NsName| {
            let kind = if secret { "Secret" } else { "ConfigMap" };
            store.get(&Key::new(kind, ns, name))
        };
        let mut out = BTreeMap::new();
        for name in std::mem::take(&mut self.dirty) {
            if !self.nodes.contains(&name) {
                continue;
            }
            let Some(node) = store.get(&Key::new("Node", "", &name)) else {
                continue;
            };
            let pods: Vec<Stored> = self
                .pods_of
                .get(&name)
                .into_iter()
                .flatten()
                .filter_map(|key| store.get(key))
                .filter(|pod| projected_onto(&pod.object) == Some(name.as_str()))
                .collect();
            let pods: Vec<&Stored> = pods.iter().collect();
            let (print, wanted, objects) =
                project_node(&node, &pods, &lookup, seen.get(&name).copied(), cache);
            self.set_wants(&name, wanted);
            if let Some(objects) = objects {
                out.insert(name, (print, objects));
            }
        }
        out
    }

    fn set_wants(&mut self, node: &str, wanted: Vec<Wanted>) {
        if self.wants.get(node) == Some(&wanted) {
            return;
        }
        for old in self.wants.remove(node).unwrap_or_default() {
            if let Some(set) = self.wanted_by.get_mut(&old) {
                set.remove(node);
                if set.is_empty() {
                    self.wanted_by.remove(&old);
                }
            }
        }
        for w in &wanted {
            self.wanted_by
                .entry(w.clone())
                .or_default()
                .insert(node.to_owned());
        }
        if !wanted.is_empty() {
            self.wants.insert(node.to_owned(), wanted);
        }
    }
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
