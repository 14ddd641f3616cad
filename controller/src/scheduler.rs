//! The scheduler's decision, as a pure function: for each pod without a node, the most
//! suitable node (seed §1.4), or why there is none, in Kubernetes' words.
//!
//! Filters, in this order (a node is counted under the first one it fails):
//! - the node is Ready, and not cordoned (`spec.unschedulable`);
//! - `nodeSelector` and required node affinity ([`affinity`]): "node(s) didn't match Pod's
//!   node affinity/selector";
//! - `NoSchedule`/`NoExecute` taints the pod does not tolerate; as in Kubernetes, a pod that
//!   is not BestEffort tolerates `node.kubernetes.io/memory-pressure` (Kubernetes' admission
//!   adds that toleration; kelp adds it here, [`implicit_tolerations`]) and a DaemonSet's pod
//!   tolerates memory-, disk- and pid-pressure (as the DaemonSet controller adds them), so
//!   under pressure only the pods Kubernetes would refuse are refused;
//! - the node's pod count, then CPU and memory requests against allocatable minus what the
//!   pods bound to it request (static pods' mirrors and running pods alike);
//! - host ports in use;
//! - the desired-state size: the node's desired state (its Node and bound pods, as the hub
//!   trims them) goes out as one MQTT message of at most [`DESIRED_STATE_LIMIT`] bytes, and
//!   a node whose pods' JSON plus this pod's would exceed it is refused with "node(s) had
//!   too large a desired state" (kelp's own reason; Kubernetes has none). The hub compresses
//!   the message, so the uncompressed sum is a cautious estimate, and cheap: each view
//!   measures its object once. ConfigMaps and Secrets the pods use are not seen here unless
//!   the caller adds their size to [`PodView::desired_bytes`].
//!
//! A pod with `spec.nodeName` is not scheduled; it counts on its node.
//!
//! Scores, as Kubernetes' default profile combines them: each is brought to 0..=100 over the
//! nodes found feasible, then weighted and summed.
//! - Least allocated (weight 1): the mean of the free CPU and memory percentages once the pod
//!   is there, counting 100m CPU and 200 MiB for a container that requests nothing (as
//!   Kubernetes does), so that pods without requests spread too.
//! - Spreading (weight 2): with `max` the most pods of this pod's controlling owner on any
//!   feasible node, a node with `n` of them scores `100 × (max − n) / max` (100 when none).
//! - Preferred node affinity (weight 2): the sum of the weights of the matching preferred
//!   terms, scaled so the best feasible node scores 100 (0 everywhere when none matches).
//!
//! Ties go to the node found first (the first in `nodes` when all are searched), so the
//! result is deterministic.
//!
//! Large clusters are not searched whole, as Kubernetes' `percentageOfNodesToScore`: the
//! search stops once [`feasible_to_find`] feasible nodes are found (all nodes under 100, then
//! 50% less one point per 125 nodes, at least 5% and at least 100), and the next pod's search
//! starts where this one stopped, round-robin. A pod that fits nowhere has had every node
//! checked, so its message counts them all.
//!
//! The list-watch task that binds (sets `spec.nodeName`) and writes `PodScheduled` is not
//! wired yet (issue 9).

pub mod affinity;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use kelp_shared::api::quantity::Quantity;
use kelp_shared::wire::MAX_PACKET;
use serde_json::Value;

use crate::hub::{project, MIRROR_ANNOTATION};
use affinity::Term;

/// The most bytes of JSON a node's desired state may hold: the MQTT packet limit.
pub const DESIRED_STATE_LIMIT: usize = MAX_PACKET;

/// CPU counted for scoring for a container that requests none, as Kubernetes.
const DEFAULT_CPU_MILLIS: i64 = 100;
/// Memory counted for scoring for a container that requests none, as Kubernetes.
const DEFAULT_MEMORY: i64 = 200 << 20;

/// Score weights, those of Kubernetes' default profile (NodeResourcesFit 1, NodeAffinity 2,
/// PodTopologySpread 2).
const LEAST_ALLOCATED_WEIGHT: i64 = 1;
const SPREAD_WEIGHT: i64 = 2;
const PREFERRED_AFFINITY_WEIGHT: i64 = 2;

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
    /// The bytes of JSON its Node object adds to its desired state.
    pub desired_bytes: usize,
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
    /// Required node affinity: its `nodeSelectorTerms`, when it has any.
    pub required_affinity: Option<Vec<Term>>,
    /// Preferred node affinity: (weight, term).
    pub preferred_affinity: Vec<(i64, Term)>,
    /// `spec.tolerations`: (key, operator, value, effect); empty strings for absent fields.
    pub tolerations: Vec<(String, String, String, String)>,
    /// What its containers request (init containers: the largest of them counts).
    pub requests: Resources,
    /// The same, with Kubernetes' defaults for containers that request nothing: what the
    /// least-allocated score counts.
    pub score_requests: Resources,
    /// Its host ports: (protocol, port).
    pub host_ports: Vec<(String, i64)>,
    /// The uid of its controlling owner, for spreading.
    pub owner: Option<String>,
    /// The bytes of JSON it adds to its node's desired state (as the hub trims it; 0 for a
    /// mirror pod, which is not sent back). A caller may add its ConfigMaps and Secrets.
    pub desired_bytes: usize,
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

/// Counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size of `object` in its node's desired state: its JSON as the hub trims it.
fn desired_bytes(object: &Value) -> usize {
    let mut count = ByteCount(0);
    // Writing a Value to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, &project::trimmed(object, false));
    count.0
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
            desired_bytes: desired_bytes(node),
        }
    }
}

/// What `containers` and `inits` request: the containers' sum, or the largest init
/// container where that is more. With `nonzero`, a container that requests no CPU or no
/// memory counts Kubernetes' default for it.
fn pod_requests(containers: &[Value], inits: &[Value], nonzero: bool) -> Resources {
    let of = |c: &Value| {
        let mut r = resources(&c["resources"]["requests"]);
        if nonzero && r.cpu_millis == 0 {
            r.cpu_millis = DEFAULT_CPU_MILLIS;
        }
        if nonzero && r.memory == 0 {
            r.memory = DEFAULT_MEMORY;
        }
        r
    };
    let sum = containers.iter().fold(Resources::default(), |acc, c| {
        let r = of(c);
        Resources {
            cpu_millis: acc.cpu_millis + r.cpu_millis,
            memory: acc.memory + r.memory,
            pods: 0,
        }
    });
    inits.iter().fold(sum, |acc, c| {
        let r = of(c);
        Resources {
            cpu_millis: acc.cpu_millis.max(r.cpu_millis),
            memory: acc.memory.max(r.memory),
            pods: 0,
        }
    })
}

/// Whether a pod is BestEffort: no container (init containers included) requests or limits
/// CPU or memory.
pub fn best_effort(pod: &Value) -> bool {
    let spec = &pod["spec"];
    ["containers", "initContainers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().cloned().unwrap_or_default())
        .all(|c| {
            ["requests", "limits"].iter().all(|part| {
                let r = &c["resources"][*part];
                r.get("cpu").is_none() && r.get("memory").is_none()
            })
        })
}

/// The tolerations Kubernetes adds to pods on its own: `memory-pressure` for pods that are
/// not BestEffort (admission), and the three pressure taints for a DaemonSet's pods (the
/// DaemonSet controller), all `Exists`/`NoSchedule`.
pub fn implicit_tolerations(pod: &Value) -> Vec<(String, String, String, String)> {
    use crate::metrics::pressure::Kind;
    let daemon = pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| {
            o.iter()
                .any(|o| o["kind"] == "DaemonSet" && o["controller"] == true)
        });
    let kinds: &[Kind] = if daemon {
        &Kind::ALL
    } else if !best_effort(pod) {
        &[Kind::Memory]
    } else {
        &[]
    };
    kinds
        .iter()
        .map(|k| {
            (
                k.taint().to_owned(),
                "Exists".to_owned(),
                String::new(),
                "NoSchedule".to_owned(),
            )
        })
        .collect()
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
        let mirror = pod["metadata"]["annotations"]
            .get(MIRROR_ANNOTATION)
            .is_some();
        PodView {
            key: format!(
                "{}/{}",
                pod["metadata"]["namespace"].as_str().unwrap_or("default"),
                str_of(&pod["metadata"], "name")
            ),
            node_name: spec["nodeName"].as_str().map(str::to_owned),
            node_selector: string_map(&spec["nodeSelector"]),
            required_affinity: affinity::required(spec),
            preferred_affinity: affinity::preferred(spec),
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
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
                .into_iter()
                .chain(implicit_tolerations(pod))
                .collect(),
            requests: pod_requests(containers, inits, false),
            score_requests: pod_requests(containers, inits, true),
            host_ports,
            owner,
            desired_bytes: if mirror { 0 } else { desired_bytes(pod) },
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

    /// What the static filters and the preferred-affinity score read of the pod, as one
    /// key: equal keys give equal answers on every node.
    fn constraints(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}",
            self.node_selector, self.required_affinity, self.preferred_affinity, self.tolerations
        )
    }

    /// `nodeSelector` and required node affinity both hold on `node`.
    fn selects(&self, node: &NodeView) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
            && self
                .required_affinity
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(&node.labels, &node.name)))
    }

    /// The sum of the weights of the preferred terms `node` matches.
    fn preference(&self, node: &NodeView) -> i64 {
        self.preferred_affinity
            .iter()
            .filter(|(_, t)| t.matches(&node.labels, &node.name))
            .map(|(w, _)| w)
            .sum()
    }
}

/// What is already placed on a node.
#[derive(Debug, Default, Clone)]
struct Load {
    used: Resources,
    /// What the least-allocated score counts.
    score_used: Resources,
    ports: BTreeSet<(String, i64)>,
    desired_bytes: usize,
}

/// Why a node does not fit. The order is the filters' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misfit {
    NotReady,
    Unschedulable,
    Selector,
    Taint,
    TooManyPods,
    Cpu,
    Memory,
    Ports,
    TooLarge,
}

impl Misfit {
    const COUNT: usize = 9;
    const ALL: [Misfit; Misfit::COUNT] = [
        Misfit::NotReady,
        Misfit::Unschedulable,
        Misfit::Selector,
        Misfit::Taint,
        Misfit::TooManyPods,
        Misfit::Cpu,
        Misfit::Memory,
        Misfit::Ports,
        Misfit::TooLarge,
    ];

    /// As Kubernetes words it in "0/N nodes are available: …".
    fn text(self) -> &'static str {
        match self {
            Misfit::NotReady => "node(s) were not ready",
            Misfit::Unschedulable => "node(s) were unschedulable",
            Misfit::Selector => "node(s) didn't match Pod's node affinity/selector",
            Misfit::Taint => "node(s) had untolerated taint",
            Misfit::TooManyPods => "Too many pods",
            Misfit::Cpu => "Insufficient cpu",
            Misfit::Memory => "Insufficient memory",
            Misfit::Ports => "node(s) didn't have free ports for the requested pod ports",
            Misfit::TooLarge => "node(s) had too large a desired state",
        }
    }
}

/// The filters that depend on the pod's constraints and the node alone (readiness, cordon,
/// selector and affinity, taints): the same for every pod with the same constraints.
fn static_misfit(pod: &PodView, node: &NodeView) -> Option<Misfit> {
    if !node.ready {
        return Some(Misfit::NotReady);
    }
    if node.unschedulable {
        return Some(Misfit::Unschedulable);
    }
    if !pod.selects(node) {
        return Some(Misfit::Selector);
    }
    if node
        .taints
        .iter()
        .any(|t| (t.2 == "NoSchedule" || t.2 == "NoExecute") && !pod.tolerates(t))
    {
        return Some(Misfit::Taint);
    }
    None
}

#[cfg(test)]
fn misfit(pod: &PodView, node: &NodeView, load: &Load) -> Option<Misfit> {
    static_misfit(pod, node).or_else(|| load_misfit(pod, node, load))
}

/// The filters that depend on what is already on the node.
fn load_misfit(pod: &PodView, node: &NodeView, load: &Load) -> Option<Misfit> {
    if load.used.pods + 1 > node.allocatable.pods {
        return Some(Misfit::TooManyPods);
    }
    if load.used.cpu_millis + pod.requests.cpu_millis > node.allocatable.cpu_millis {
        return Some(Misfit::Cpu);
    }
    if load.used.memory + pod.requests.memory > node.allocatable.memory {
        return Some(Misfit::Memory);
    }
    if pod.host_ports.iter().any(|p| load.ports.contains(p)) {
        return Some(Misfit::Ports);
    }
    if node.desired_bytes + load.desired_bytes + pod.desired_bytes > DESIRED_STATE_LIMIT {
        return Some(Misfit::TooLarge);
    }
    None
}

/// The least-allocated score, 0..=100: the mean free percentage of CPU and memory with the
/// pod there.
fn least_allocated(pod: &PodView, node: &NodeView, load: &Load) -> i64 {
    let free = |allocatable: i64, used: i64| {
        if allocatable <= 0 || used > allocatable {
            0
        } else {
            (allocatable - used) * 100 / allocatable
        }
    };
    let cpu = free(
        node.allocatable.cpu_millis,
        load.score_used.cpu_millis + pod.score_requests.cpu_millis,
    );
    let memory = free(
        node.allocatable.memory,
        load.score_used.memory + pod.score_requests.memory,
    );
    (cpu + memory) / 2
}

/// How many feasible nodes to look for among `total`, as Kubernetes' adaptive
/// `percentageOfNodesToScore`: all of them under 100 nodes; otherwise 50% less one point per
/// 125 nodes, at least 5%, and at least 100 nodes.
pub fn feasible_to_find(total: usize) -> usize {
    const MIN_NODES: usize = 100;
    if total < MIN_NODES {
        return total;
    }
    let percent = 50usize.saturating_sub(total / 125).max(5);
    (total * percent / 100).max(MIN_NODES)
}

/// A feasible node and its raw scores.
struct Candidate {
    node: usize,
    least_allocated: i64,
    siblings: u32,
    preference: i64,
}

/// The best candidate's node: scores brought to 0..=100 over the candidates, weighted and
/// summed; ties to the candidate found first.
fn best(candidates: &[Candidate]) -> Option<usize> {
    let most_siblings = i64::from(candidates.iter().map(|c| c.siblings).max()?);
    let best_preference = candidates.iter().map(|c| c.preference).max().unwrap_or(0);
    candidates
        .iter()
        .map(|c| {
            let spread = if most_siblings == 0 {
                100
            } else {
                100 * (most_siblings - i64::from(c.siblings)) / most_siblings
            };
            let preferred = if best_preference <= 0 {
                0
            } else {
                100 * c.preference / best_preference
            };
            let total = LEAST_ALLOCATED_WEIGHT * c.least_allocated
                + SPREAD_WEIGHT * spread
                + PREFERRED_AFFINITY_WEIGHT * preferred;
            (Reverse(total), c.node)
        })
        // The first of the smallest: the first found of the best.
        .min_by_key(|(total, _)| *total)
        .map(|(_, node)| node)
}

/// For one set of pod constraints: each node's static misfit, and its preferred-affinity
/// weight (empty when the pod prefers nothing).
struct StaticFit {
    misfit: Vec<Option<Misfit>>,
    preference: Vec<i64>,
}

impl StaticFit {
    fn new(pod: &PodView, nodes: &[NodeView]) -> StaticFit {
        StaticFit {
            misfit: nodes.iter().map(|n| static_misfit(pod, n)).collect(),
            preference: if pod.preferred_affinity.is_empty() {
                Vec::new()
            } else {
                nodes.iter().map(|n| pod.preference(n)).collect()
            },
        }
    }
}

/// Pods per owner, per node position.
type Siblings<'a> = HashMap<&'a str, HashMap<usize, u32>>;

fn add<'a>(loads: &mut [Load], siblings: &mut Siblings<'a>, pod: &'a PodView, node: usize) {
    let load = &mut loads[node];
    load.used.cpu_millis += pod.requests.cpu_millis;
    load.used.memory += pod.requests.memory;
    load.used.pods += 1;
    load.score_used.cpu_millis += pod.score_requests.cpu_millis;
    load.score_used.memory += pod.score_requests.memory;
    load.ports.extend(pod.host_ports.iter().cloned());
    load.desired_bytes += pod.desired_bytes;
    if let Some(owner) = &pod.owner {
        *siblings
            .entry(owner.as_str())
            .or_default()
            .entry(node)
            .or_default() += 1;
    }
}

/// Places every unbound pod of `pods` (in order) on `nodes`, counting the bound pods and
/// each placement made before it. Returns (pod key, placement) for each unbound pod.
pub fn schedule(pods: &[PodView], nodes: &[NodeView]) -> Vec<(String, Placement)> {
    let positions: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut loads = vec![Load::default(); nodes.len()];
    let mut siblings = Siblings::new();
    for pod in pods {
        if let Some(&node) = pod.node_name.as_deref().and_then(|n| positions.get(n)) {
            add(&mut loads, &mut siblings, pod, node);
        }
    }
    let to_find = feasible_to_find(nodes.len());
    let mut start = 0;
    let mut candidates = Vec::with_capacity(to_find);
    let mut out = Vec::new();
    // The static filters and the preferred-affinity score, per node, for each distinct set
    // of constraints: pods of one owner share theirs, so a node's labels and taints are
    // read once per set rather than once per pod.
    let mut per_constraints: HashMap<String, StaticFit> = HashMap::new();
    for pod in pods.iter().filter(|p| p.node_name.is_none()) {
        let mut reasons = [0usize; Misfit::COUNT];
        candidates.clear();
        let own = pod.owner.as_deref().and_then(|o| siblings.get(o));
        let fit = per_constraints
            .entry(pod.constraints())
            .or_insert_with(|| StaticFit::new(pod, nodes));
        let mut checked = 0;
        while checked < nodes.len() && candidates.len() < to_find {
            let i = (start + checked) % nodes.len();
            checked += 1;
            if let Some(reason) = fit.misfit[i] {
                reasons[reason as usize] += 1;
                continue;
            }
            let (node, load) = (&nodes[i], &loads[i]);
            match load_misfit(pod, node, load) {
                Some(reason) => reasons[reason as usize] += 1,
                None => candidates.push(Candidate {
                    node: i,
                    least_allocated: least_allocated(pod, node, load),
                    siblings: own.and_then(|o| o.get(&i)).copied().unwrap_or(0),
                    preference: fit.preference.get(i).copied().unwrap_or(0),
                }),
            }
        }
        if !nodes.is_empty() {
            start = (start + checked) % nodes.len();
        }
        let placement = match best(&candidates) {
            Some(node) => {
                add(&mut loads, &mut siblings, pod, node);
                Placement::Node(nodes[node].name.clone())
            }
            None => Placement::Unschedulable(unschedulable_message(nodes.len(), &reasons)),
        };
        out.push((pod.key.clone(), placement));
    }
    out
}

/// "0/3 nodes are available: 2 Insufficient memory, 1 node(s) didn't match Pod's node
/// affinity/selector." — reasons by count, most first, then by text.
fn unschedulable_message(total: usize, reasons: &[usize; Misfit::COUNT]) -> String {
    let mut counted: Vec<(usize, &str)> = Misfit::ALL
        .iter()
        .filter(|m| reasons[**m as usize] > 0)
        .map(|m| (reasons[*m as usize], m.text()))
        .collect();
    counted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let parts: Vec<String> = counted.iter().map(|(n, r)| format!("{n} {r}")).collect();
    if parts.is_empty() {
        format!("0/{total} nodes are available.")
    } else {
        format!("0/{total} nodes are available: {}.", parts.join(", "))
    }
}

#[cfg(test)]
mod tests;
