//! The scheduler's decision, as a pure function: for each pod without a node, the most
//! suitable node (seed §1.4), or why there is none, in Kubernetes' words.
//!
//! Filters: the node is Ready and schedulable; `spec.nodeName` (when set, the pod is not
//! scheduled at all); `nodeSelector`; `NoSchedule`/`NoExecute` taints the pod does not
//! tolerate; CPU and memory requests against allocatable minus what the node's pods request;
//! host ports in use; the node's pod count. Score: the least allocated node (mean of free CPU
//! and memory fractions), minus a spread penalty for pods of the same owner already there;
//! ties go to the node name, so the result is deterministic.
//!
//! The list-watch task that binds (sets `spec.nodeName`) and writes `PodScheduled` is not
//! wired yet (issue 9).

use std::collections::{BTreeMap, BTreeSet};

use kelp_shared::api::quantity::Quantity;
use serde_json::Value;

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// `Ready=True`.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its taints: (key, value, effect).
    pub taints: Vec<(String, String, String)>,
    /// Allocatable CPU (millicores), memory (bytes) and pods.
    pub allocatable: Resources,
}

/// CPU in millicores, memory in bytes, a pod count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu_millis: i64,
    /// Bytes.
    pub memory: i64,
    /// Pods.
    pub pods: i64,
}

/// A pod as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// `namespace/name`.
    pub key: String,
    /// `spec.nodeName`, when bound.
    pub node_name: Option<String>,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// `spec.tolerations`: (key, operator, value, effect); empty strings for absent fields.
    pub tolerations: Vec<(String, String, String, String)>,
    /// What its containers request (init containers: the largest of them counts).
    pub requests: Resources,
    /// Its host ports: (protocol, port).
    pub host_ports: Vec<(String, i64)>,
    /// The uid of its controlling owner, for spreading.
    pub owner: Option<String>,
}

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Bind it to this node.
    Node(String),
    /// No node fits: `PodScheduled=False`, reason `Unschedulable`, with this message.
    Unschedulable(String),
}

fn quantity(value: &Value) -> Option<Quantity> {
    value
        .as_str()
        .map(str::to_owned)
        .or_else(|| value.as_i64().map(|n| n.to_string()))?
        .parse()
        .ok()
}

fn resources(list: &Value) -> Resources {
    let get = |name: &str| list.get(name).and_then(quantity);
    Resources {
        cpu_millis: get("cpu").map_or(0, |q| q.milli_value()),
        memory: get("memory").map_or(0, |q| q.milli_value() / 1000),
        pods: get("pods").map_or(0, |q| q.milli_value() / 1000),
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn str_of(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

impl NodeView {
    /// The view of a stored Node object.
    pub fn from_object(node: &Value) -> NodeView {
        let ready = node["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let status = &node["status"];
        let allocatable = if status["allocatable"].is_object() {
            &status["allocatable"]
        } else {
            &status["capacity"]
        };
        NodeView {
            name: str_of(&node["metadata"], "name"),
            ready,
            unschedulable: node["spec"]["unschedulable"].as_bool().unwrap_or(false),
            labels: string_map(&node["metadata"]["labels"]),
            taints: node["spec"]["taints"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| (str_of(t, "key"), str_of(t, "value"), str_of(t, "effect")))
                        .collect()
                })
                .unwrap_or_default(),
            allocatable: resources(allocatable),
        }
    }
}

impl PodView {
    /// The view of a stored Pod object.
    pub fn from_object(pod: &Value) -> PodView {
        let spec = &pod["spec"];
        let containers = spec["containers"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let inits = spec["initContainers"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let sum = containers.iter().fold(Resources::default(), |acc, c| {
            let r = resources(&c["resources"]["requests"]);
            Resources {
                cpu_millis: acc.cpu_millis + r.cpu_millis,
                memory: acc.memory + r.memory,
                pods: 0,
            }
        });
        let requests = inits.iter().fold(sum, |acc, c| {
            let r = resources(&c["resources"]["requests"]);
            Resources {
                cpu_millis: acc.cpu_millis.max(r.cpu_millis),
                memory: acc.memory.max(r.memory),
                pods: 0,
            }
        });
        let host_ports = containers
            .iter()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| {
                let port = p["hostPort"].as_i64().filter(|p| *p > 0)?;
                let protocol = p["protocol"].as_str().unwrap_or("TCP").to_owned();
                Some((protocol, port))
            })
            .collect();
        let owner = pod["metadata"]["ownerReferences"].as_array().and_then(|o| {
            o.iter()
                .find(|o| o["controller"] == true)
                .and_then(|o| o["uid"].as_str().map(str::to_owned))
        });
        PodView {
            key: format!(
                "{}/{}",
                pod["metadata"]["namespace"].as_str().unwrap_or("default"),
                str_of(&pod["metadata"], "name")
            ),
            node_name: spec["nodeName"].as_str().map(str::to_owned),
            node_selector: string_map(&spec["nodeSelector"]),
            tolerations: spec["tolerations"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| {
                            (
                                str_of(t, "key"),
                                str_of(t, "operator"),
                                str_of(t, "value"),
                                str_of(t, "effect"),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            requests,
            host_ports,
            owner,
        }
    }

    fn tolerates(&self, (key, value, effect): &(String, String, String)) -> bool {
        self.tolerations.iter().any(|(k, op, v, e)| {
            let key_ok = k.is_empty() && op == "Exists" || k == key;
            let value_ok = op == "Exists" || v == value;
            let effect_ok = e.is_empty() || e == effect;
            key_ok && value_ok && effect_ok
        })
    }
}

/// What is already placed on a node.
#[derive(Debug, Default, Clone)]
struct Load {
    used: Resources,
    ports: BTreeSet<(String, i64)>,
    owners: BTreeMap<String, usize>,
}

impl Load {
    fn add(&mut self, pod: &PodView) {
        self.used.cpu_millis += pod.requests.cpu_millis;
        self.used.memory += pod.requests.memory;
        self.used.pods += 1;
        self.ports.extend(pod.host_ports.iter().cloned());
        if let Some(owner) = &pod.owner {
            *self.owners.entry(owner.clone()).or_default() += 1;
        }
    }
}

/// Why a node does not fit, as Kubernetes words it in "0/N nodes are available: …".
fn misfit(pod: &PodView, node: &NodeView, load: &Load) -> Option<&'static str> {
    if !node.ready {
        return Some("node(s) were not ready");
    }
    if node.unschedulable {
        return Some("node(s) were unschedulable");
    }
    if pod
        .node_selector
        .iter()
        .any(|(k, v)| node.labels.get(k) != Some(v))
    {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    if node
        .taints
        .iter()
        .any(|t| (t.2 == "NoSchedule" || t.2 == "NoExecute") && !pod.tolerates(t))
    {
        return Some("node(s) had untolerated taint");
    }
    if load.used.pods + 1 > node.allocatable.pods {
        return Some("Too many pods");
    }
    if load.used.cpu_millis + pod.requests.cpu_millis > node.allocatable.cpu_millis {
        return Some("Insufficient cpu");
    }
    if load.used.memory + pod.requests.memory > node.allocatable.memory {
        return Some("Insufficient memory");
    }
    if pod.host_ports.iter().any(|p| load.ports.contains(p)) {
        return Some("node(s) didn't have free ports for the requested pod ports");
    }
    None
}

fn score(pod: &PodView, node: &NodeView, load: &Load) -> f64 {
    let free = |alloc: i64, used: i64| {
        if alloc <= 0 {
            0.0
        } else {
            (alloc - used) as f64 / alloc as f64
        }
    };
    let cpu = free(
        node.allocatable.cpu_millis,
        load.used.cpu_millis + pod.requests.cpu_millis,
    );
    let memory = free(
        node.allocatable.memory,
        load.used.memory + pod.requests.memory,
    );
    let siblings = pod
        .owner
        .as_ref()
        .and_then(|o| load.owners.get(o))
        .copied()
        .unwrap_or(0);
    (cpu + memory) / 2.0 - siblings as f64
}

/// Places every unbound pod of `pods` (in order) on `nodes`, counting the bound pods and
/// each placement made before it. Returns (pod key, placement) for each unbound pod.
pub fn schedule(pods: &[PodView], nodes: &[NodeView]) -> Vec<(String, Placement)> {
    let mut loads: BTreeMap<&str, Load> = nodes
        .iter()
        .map(|n| (n.name.as_str(), Load::default()))
        .collect();
    for pod in pods {
        if let Some(load) = pod.node_name.as_deref().and_then(|n| loads.get_mut(n)) {
            load.add(pod);
        }
    }
    let mut out = Vec::new();
    for pod in pods.iter().filter(|p| p.node_name.is_none()) {
        let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut best: Option<(f64, &NodeView)> = None;
        for node in nodes {
            let load = &loads[node.name.as_str()];
            match misfit(pod, node, load) {
                Some(reason) => *reasons.entry(reason).or_default() += 1,
                None => {
                    let s = score(pod, node, load);
                    if best.is_none_or(|(b, _)| s > b) {
                        best = Some((s, node));
                    }
                }
            }
        }
        let placement = match best {
            Some((_, node)) => {
                let mut placed = pod.clone();
                placed.node_name = Some(node.name.clone());
                if let Some(load) = loads.get_mut(node.name.as_str()) {
                    load.add(&placed);
                }
                Placement::Node(node.name.clone())
            }
            None => Placement::Unschedulable(unschedulable_message(nodes.len(), &reasons)),
        };
        out.push((pod.key.clone(), placement));
    }
    out
}

/// "0/3 nodes are available: 2 Insufficient memory, 1 node(s) didn't match Pod's node
/// affinity/selector." — reasons by count, most first, then by text.
fn unschedulable_message(total: usize, reasons: &BTreeMap<&'static str, usize>) -> String {
    let mut counted: Vec<(&&str, &usize)> = reasons.iter().collect();
    counted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = counted.iter().map(|(r, n)| format!("{n} {r}")).collect();
    if parts.is_empty() {
        format!("0/{total} nodes are available.")
    } else {
        format!("0/{total} nodes are available: {}.", parts.join(", "))
    }
}

#[cfg(test)]
mod tests;
