//! kelp's own messages: the bodies of [`Envelope`](super::Envelope)s.
//!
//! # The one rule
//!
//! postcard is not self-describing: a struct is its fields' encodings back to back, an
//! enum is a varint variant index and then the variant's fields. So a decoder built from
//! an older or newer struct reads garbage. Therefore:
//!
//! > **Never add, remove, reorder or retype a field of a type in this module. Never
//! > reorder or remove an enum variant. To change a message, append an enum variant at
//! > the end, or bump the wire version.**
//!
//! `shared/tests/wire_golden.rs` pins every message's bytes; a change that breaks this
//! rule fails there.
//!
//! Kubernetes objects (pods, ConfigMaps, Secrets, the Node, Services and whatever else a
//! node needs) do not follow this rule: they travel as **JSON bytes** inside
//! [`DesiredState`], so a new PodSpec field never breaks an older agent.
//!
//! # Conventions
//!
//! - Times are milliseconds since the Unix epoch (`*_unix_ms`), `u64`.
//! - Node→controller messages carry the agent's `(boot_id, agent_start_unix_ms, seq)`:
//!   the controller orders messages of one agent run by `seq` and tells runs apart by
//!   boot id and start time, so QoS 1 duplicates and replays are dropped.
//! - Strings that Kubernetes keeps as enums of its own (condition types, reasons) stay
//!   strings here; small closed sets (phases, statuses) are Rust enums.

use std::cmp::Ordering;
use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::envelope::MessageKind;
use super::ids::{BootId, ClusterId};

/// A message type that travels as the body of an envelope of one [`MessageKind`].
pub trait Message: Serialize + DeserializeOwned {
    /// The envelope kind that carries this message.
    const KIND: MessageKind;
}

/// Serde helpers for `Vec<Vec<u8>>` as a sequence of byte strings (same postcard bytes
/// as the default, decoded without a per-byte loop).
mod vec_of_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(items: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(items.iter().map(|item| Bytes::new(item)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let bufs = Vec::<ByteBuf>::deserialize(deserializer)?;
        Ok(bufs.into_iter().map(ByteBuf::into_vec).collect())
    }
}

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

/// A desired-state generation: the store revision it was projected at, in one cluster.
///
/// Generations of the same cluster are ordered by revision; generations of different
/// clusters are not comparable at all (`partial_cmp` is `None`), so "never apply a lower
/// generation" can be written as `new > applied` and is false across clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Generation {
    /// The cluster whose store produced it.
    pub cluster_id: ClusterId,
    /// The store revision the desired state was projected at.
    pub revision: u64,
}

impl PartialOrd for Generation {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.cluster_id == other.cluster_id {
            Some(self.revision.cmp(&other.revision))
        } else {
            None
        }
    }
}

/// Compute resources, as a node reports its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in millicores (a 4-core Pi is 4000).
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// How many pods the node accepts.
    pub pods: u32,
}

/// The kind of a node address, as in Kubernetes' `NodeAddress.type`. **Append-only.**
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressKind {
    /// `Hostname`.
    Hostname,
    /// `InternalIP`: the address other nodes and the controller reach it on.
    InternalIp,
    /// `ExternalIP`.
    ExternalIp,
}

impl AddressKind {
    /// The Kubernetes spelling (`InternalIP`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            AddressKind::Hostname => "Hostname",
            AddressKind::InternalIp => "InternalIP",
            AddressKind::ExternalIp => "ExternalIP",
        }
    }
}

/// One address of a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeAddress {
    /// What kind of address.
    pub kind: AddressKind,
    /// The address (an IP in text form, or a host name).
    pub address: String,
}

// ---------------------------------------------------------------------------------------
// node → controller: status topic
// ---------------------------------------------------------------------------------------

/// The birth message, published retained on `status` after every CONNACK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Birth {
    /// Node name (a DNS-1123 subdomain, see [`super::valid_node_name`]).
    pub node: String,
    /// This agent run.
    pub boot_id: BootId,
    /// When this agent run started.
    pub agent_start_unix_ms: u64,
    /// Connection sequence number within this agent run: 1 for the first CONNACK, +1 for
    /// every reconnect.
    pub seq: u64,
    /// The agent's version (`kelp_shared::VERSION`).
    pub agent_version: String,
    /// Wire versions the agent speaks; the controller uses the highest one it shares
    /// (see [`super::negotiate_version`]).
    pub wire_versions: Vec<u16>,
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture, as Kubernetes names it (`arm64`, `arm`, `amd64`).
    pub arch: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// What the node has for pods.
    pub capacity: Resources,
    /// cgroup version in use: 1 or 2.
    pub cgroup_version: u8,
    /// The node's addresses (the InternalIP is the next hop of pod routes).
    pub addresses: Vec<NodeAddress>,
    /// Labels the agent registers the node with (like kubelet's `--node-labels`).
    pub labels: Vec<(String, String)>,
}

impl Message for Birth {
    const KIND: MessageKind = MessageKind::Birth;
}

/// The last will, published retained on `status` by the broker when the agent vanishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offline {
    /// Node name.
    pub node: String,
    /// The agent run that went away (a will from an older run than the current birth is
    /// stale).
    pub boot_id: BootId,
}

impl Message for Offline {
    const KIND: MessageKind = MessageKind::Offline;
}

/// "Still here": published on `status` (QoS 0, not retained) once per keepalive by a node
/// that sent nothing else, so the controller notices a silent node itself (not every broker
/// publishes the last will of a client that stopped answering: rumqttd 0.19 does not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Node name.
    pub node: String,
    /// This agent run.
    pub boot_id: BootId,
}

impl Message for Heartbeat {
    const KIND: MessageKind = MessageKind::Heartbeat;
}

// ---------------------------------------------------------------------------------------
// node → controller: reported topic
// ---------------------------------------------------------------------------------------

/// The observed state of a node and its pods, published retained on `reported`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    /// Node name.
    pub node: String,
    /// This agent run.
    pub boot_id: BootId,
    /// When this agent run started.
    pub agent_start_unix_ms: u64,
    /// Report sequence number within this agent run.
    pub seq: u64,
    /// The desired-state generation the agent has applied; `None` before the first one.
    pub applied_generation: Option<Generation>,
    /// Every pod the agent runs (the whole set each time: level-triggered).
    pub pods: Vec<PodReport>,
    /// Node conditions (`Ready`, `MemoryPressure`, `DiskPressure`, ...).
    pub conditions: Vec<Condition>,
}

impl Message for Reported {
    const KIND: MessageKind = MessageKind::Reported;
}

/// A pod's phase, as in Kubernetes. **Append-only.**
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, not all containers running yet.
    Pending,
    /// Bound and at least one container running.
    Running,
    /// All containers terminated successfully and will not restart.
    Succeeded,
    /// All containers terminated, at least one in failure.
    Failed,
    /// The state could not be obtained.
    Unknown,
}

impl PodPhase {
    /// The Kubernetes spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
        }
    }
}

/// The observed state of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodReport {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid` of the pod the agent runs (tells a re-created pod of the same name
    /// apart).
    pub uid: String,
    /// Phase.
    pub phase: PodPhase,
    /// The pod's IP, once its sandbox has one.
    pub pod_ip: Option<IpAddr>,
    /// App containers, in spec order.
    pub containers: Vec<ContainerReport>,
    /// Init containers, in spec order.
    pub init_containers: Vec<ContainerReport>,
    /// Short CamelCase reason for the pod's state (`Evicted`), or empty.
    pub reason: String,
    /// Human-readable detail, or empty.
    pub message: String,
    /// When the agent accepted the pod.
    pub start_unix_ms: Option<u64>,
}

/// The state of one container, as in Kubernetes' `ContainerState`. **Append-only.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Not running yet.
    Waiting {
        /// `ContainerCreating`, `ErrImagePull`, `CrashLoopBackOff`, ...
        reason: String,
        /// Human-readable detail, or empty.
        message: String,
    },
    /// Running.
    Running {
        /// When it (last) started.
        started_at_unix_ms: u64,
    },
    /// Exited.
    Terminated {
        /// Exit code (128 + signal when killed by a signal).
        exit_code: i32,
        /// `Completed`, `Error`, `OOMKilled`, ...
        reason: String,
        /// Human-readable detail, or empty.
        message: String,
        /// When it started.
        started_at_unix_ms: u64,
        /// When it exited.
        finished_at_unix_ms: u64,
    },
}

/// The observed state of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    /// Container name from the pod spec.
    pub name: String,
    /// Current state.
    pub state: ContainerState,
    /// The previous state (usually the last termination), if any.
    pub last_state: Option<ContainerState>,
    /// Whether its readiness probe passes.
    pub ready: bool,
    /// How many times it has restarted.
    pub restart_count: u32,
    /// Image as written in the spec.
    pub image: String,
    /// Resolved image digest (`sha256:...`), or empty before the pull.
    pub image_id: String,
    /// Runtime container id, or empty before creation.
    pub container_id: String,
}

/// A condition's status. **Append-only.**
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

/// A node condition, as in Kubernetes' `NodeCondition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// The condition type (`Ready`, `MemoryPressure`, ...).
    pub kind: String,
    /// Its status.
    pub status: ConditionStatus,
    /// Short CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// When the status last changed.
    pub last_transition_unix_ms: u64,
}

// ---------------------------------------------------------------------------------------
// node → controller: static topic
// ---------------------------------------------------------------------------------------

/// The node's static pods (from its manifest directory), published retained on `static`
/// when the set changes: the controller shows each as a read-only mirror pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticPods {
    /// Node name.
    pub node: String,
    /// This agent run.
    pub boot_id: BootId,
    /// When this agent run started.
    pub agent_start_unix_ms: u64,
    /// Sequence number within this agent run.
    pub seq: u64,
    /// Each static pod as a JSON `Pod` (name with the node's name appended, its UID, its
    /// `spec.nodeName`).
    #[serde(with = "vec_of_bytes")]
    pub pods_json: Vec<Vec<u8>>,
}

impl Message for StaticPods {
    const KIND: MessageKind = MessageKind::StaticPods;
}

// ---------------------------------------------------------------------------------------
// controller → node: desired topic
// ---------------------------------------------------------------------------------------

/// The whole desired state of one node, published retained (and signed) on `desired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// The generation: agents never apply a lower one, nor one of another cluster.
    pub generation: Generation,
    /// The node it is for: an agent drops a desired state addressed to another node.
    pub node: String,
    /// Kubernetes objects as JSON (pods bound to the node, the ConfigMaps and Secrets they
    /// use, the Node itself, Services, ...): JSON so that new Kubernetes fields never break
    /// an older agent.
    #[serde(with = "vec_of_bytes")]
    pub objects_json: Vec<Vec<u8>>,
}

impl Message for DesiredState {
    const KIND: MessageKind = MessageKind::Desired;
}

// ---------------------------------------------------------------------------------------
// node → controller: events topic
// ---------------------------------------------------------------------------------------

/// A batch of events, published on `events` (QoS 1, not retained).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// This agent run.
    pub boot_id: BootId,
    /// When this agent run started.
    pub agent_start_unix_ms: u64,
    /// Batch sequence number within this agent run, for de-duplication.
    pub seq: u64,
    /// The events, already aggregated by (object, reason, message).
    pub events: Vec<NodeEvent>,
}

impl Message for EventBatch {
    const KIND: MessageKind = MessageKind::Events;
}

/// Which object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Kind (`Pod`, `Node`).
    pub kind: String,
    /// Namespace, or empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`, or empty.
    pub uid: String,
}

/// An event's type. **Append-only.**
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

/// One aggregated event, as in Kubernetes' `Event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// The object it is about.
    pub object: ObjectRef,
    /// Short CamelCase reason (`Pulled`, `BackOff`).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Normal or Warning.
    pub event_type: EventType,
    /// How many times it happened.
    pub count: u32,
    /// When it first happened.
    pub first_unix_ms: u64,
    /// When it last happened.
    pub last_unix_ms: u64,
}

// ---------------------------------------------------------------------------------------
// node → controller: metrics topic
// ---------------------------------------------------------------------------------------

/// **Unused, reserved.** An early design of the metrics batch that no kelp version ever
/// sent (it spells names and labels out and sends `f64` samples: too large for an idle
/// node's 600 bytes a minute). It stays so [`MessageKind::Metrics`] keeps its meaning and
/// its golden fixture; agents send [`Samples`] instead. Receivers may ignore it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsBatch {
    /// This agent run.
    pub boot_id: BootId,
    /// When this agent run started.
    pub agent_start_unix_ms: u64,
    /// Batch sequence number within this agent run.
    pub seq: u64,
    /// The series sampled in this batch.
    pub series: Vec<Series>,
}

impl Message for MetricsBatch {
    const KIND: MessageKind = MessageKind::Metrics;
}

/// One time series: a cAdvisor/kubelet metric name and labels, with its samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Metric name as cAdvisor names it (`container_cpu_usage_seconds_total`).
    pub name: String,
    /// Labels (`namespace`, `pod`, `container`, ...), sorted by name.
    pub labels: Vec<(String, String)>,
    /// Samples, oldest first.
    pub samples: Vec<Sample>,
}

/// One sample of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken.
    pub unix_ms: u64,
    /// The value.
    pub value: f64,
}

/// A batch of metric samples, published on `metrics` (QoS 0, not retained).
///
/// The agent samples every `interval_ms` (10 s by default) and publishes every minute or
/// so; a batch covers `slots` consecutive sampling slots from `start_unix_ms`. It is
/// compact on purpose (an idle node's whole link may cost 600 bytes a minute): metrics are
/// enum indices, subjects (node, pods, containers) travel once per batch and series name
/// them by index, values are integers in the metric's unit, delta-encoded (postcard writes
/// small deltas as one-byte zigzag varints), and a series that did not change since the
/// previous batch may be left out (`complete: false`).
///
/// A receiver keeps, per (subject, metric), the last value it saw. A `complete` batch
/// replaces everything it knows about the node: a subject or series missing from it is
/// gone. QoS 0 may lose a batch; the agent sends a complete one after every (re)connect,
/// whenever a pod or container came or went, and regularly (every 30 batches by default),
/// so a receiver is never wrong for long. Batches of one agent run are ordered by `seq`; a
/// receiver drops a batch whose `seq` is not newer than one it has (after an agent
/// restart, `(boot_id, agent_start_unix_ms)` changes).
///
/// What kelp's agent sends (a receiver must not rely on more):
///
/// - A series may cover only some slots: it starts at `first_slot`, and a series that
///   does not change through a batch, or changes only from some slot on, starts where it
///   changes (at the last slot when constant). Before `first_slot` its value is the one
///   the receiver held (in a complete batch: the same as at `first_slot`).
/// - Several series of one (metric, subject) in a batch are runs of consecutive slots
///   with a gap between them (a read that failed).
/// - Pods' and containers' CPU usage and working set have a value at every slot; every
///   other series, and all of the node's, only at the batch's last slot.
/// - In an incomplete batch a series is left out while its value stays within a dead band
///   of the value last sent (10 ms of CPU time, 1% or 1 MiB of memory and disk, 5% of RSS
///   and cache, 4 KiB and 16 packets of network, 10% of load); so a receiver's value is at
///   most that far from the truth, and exact after a complete batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Samples {
    /// This agent run.
    pub boot_id: BootId,
    /// When this agent run started.
    pub agent_start_unix_ms: u64,
    /// Batch sequence number within this agent run.
    pub seq: u64,
    /// Unix ms of slot 0; slot i was sampled at start_unix_ms + i * interval_ms.
    pub start_unix_ms: u64,
    /// The sampling interval, ms.
    pub interval_ms: u32,
    /// Sampling slots covered by this batch.
    pub slots: u32,
    /// True: every series the node has is here. False: a series left out is unchanged since the last batch (receiver keeps its last value).
    pub complete: bool,
    /// What the series are about; a series names one by index.
    pub subjects: Vec<Subject>,
    /// The values, one series per (metric, subject).
    pub series: Vec<SampleSeries>,
}

impl Message for Samples {
    const KIND: MessageKind = MessageKind::Samples;
}

impl Samples {
    /// When slot `slot` was sampled (saturating: an untrusted batch cannot overflow it).
    pub fn slot_unix_ms(&self, slot: u32) -> u64 {
        self.start_unix_ms
            .saturating_add(u64::from(slot).saturating_mul(u64::from(self.interval_ms)))
    }

    /// The subject series `series` is about, or `None` when its index is out of range.
    pub fn subject_of(&self, series: &SampleSeries) -> Option<&Subject> {
        self.subjects.get(usize::try_from(series.subject).ok()?)
    }

    /// The pod subject a container subject belongs to (`None` for a node or pod subject,
    /// or when the index does not name a pod).
    pub fn pod_of(&self, container: &Subject) -> Option<(&str, &str)> {
        let Subject::Container { pod, .. } = container else {
            return None;
        };
        match self.subjects.get(usize::try_from(*pod).ok()?)? {
            Subject::Pod { namespace, name } => Some((namespace, name)),
            _ => None,
        }
    }
}

/// What a series is about. **Append-only.**
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// The node itself (procfs, the root cgroup, the node's filesystems, the board).
    Node,
    /// A pod (its cgroup, its network namespace).
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A container of a pod.
    Container {
        /// `pod` is the index of the Pod subject in `subjects`.
        pod: u32,
        /// Container name from the pod spec.
        name: String,
    },
}

/// What a series is about, with names resolved (a container carries its pod's): the key
/// agents and the controller keep series by (the wire names subjects by index per batch).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectKey {
    /// The node itself.
    Node,
    /// A pod.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A container of a pod.
    Container {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The container's name.
        name: String,
    },
}

impl SubjectKey {
    /// The pod a pod or container subject belongs to.
    pub fn pod(&self) -> Option<(&str, &str)> {
        match self {
            SubjectKey::Node => None,
            SubjectKey::Pod { namespace, name } => Some((namespace, name)),
            SubjectKey::Container { namespace, pod, .. } => Some((namespace, pod)),
        }
    }
}

/// Values of one metric of one subject at consecutive sampling slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleSeries {
    /// What is measured.
    pub metric: Metric,
    /// Index of the subject in [`Samples::subjects`].
    pub subject: u32,
    /// Slot of the first value.
    pub first_slot: u32,
    /// Values at slots first_slot, first_slot+1, ..., in the metric's unit; each is the difference from the previous value (the first: from 0).
    pub deltas: Vec<i64>,
}

impl SampleSeries {
    /// A series holding `values` (absolute, in the metric's unit) from `first_slot` on.
    pub fn from_values(metric: Metric, subject: u32, first_slot: u32, values: &[i64]) -> Self {
        let mut previous = 0i64;
        let deltas = values
            .iter()
            .map(|&value| {
                let delta = value.wrapping_sub(previous);
                previous = value;
                delta
            })
            .collect();
        SampleSeries {
            metric,
            subject,
            first_slot,
            deltas,
        }
    }

    /// The absolute values, oldest first: the running sum of the deltas (saturating, so
    /// untrusted deltas cannot overflow; exact for every value [`Self::from_values`] was
    /// given that lies in `0..=i64::MAX`, as every metric's does).
    pub fn values(&self) -> Vec<i64> {
        let mut sum = 0i64;
        self.deltas
            .iter()
            .map(|&delta| {
                sum = sum.saturating_add(delta);
                sum
            })
            .collect()
    }

    /// The last (newest) value and its slot, or `None` for an empty series.
    pub fn last(&self) -> Option<(u32, i64)> {
        let count = u32::try_from(self.deltas.len()).ok()?.checked_sub(1)?;
        let value = self
            .deltas
            .iter()
            .fold(0i64, |sum, &delta| sum.saturating_add(delta));
        Some((self.first_slot.saturating_add(count), value))
    }
}

/// A measured quantity, cAdvisor/kubelet style. Values are integers in the unit the name
/// says; counters (`*Nanoseconds`, `*Periods`, `OomEvents`, network) are cumulative since
/// the subject started. **Append-only.**
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    /// CPU time used, user + system (`container_cpu_usage_seconds_total` × 10⁹).
    CpuUsageNanoseconds,
    /// CPU time in user mode.
    CpuUserNanoseconds,
    /// CPU time in kernel mode.
    CpuSystemNanoseconds,
    /// CFS enforcement periods that elapsed.
    CpuPeriods,
    /// CFS periods in which the quota ran out.
    CpuThrottledPeriods,
    /// Time spent throttled.
    CpuThrottledNanoseconds,
    /// Memory usage, page cache included.
    MemoryUsageBytes,
    /// Working set: usage − inactive_file, never below 0 (what the kubelet evicts on).
    MemoryWorkingSetBytes,
    /// Anonymous memory (RSS).
    MemoryRssBytes,
    /// Page cache.
    MemoryCacheBytes,
    /// The memory limit (absent when unlimited).
    MemoryLimitBytes,
    /// OOM kills.
    OomEvents,
    /// Bytes received (a pod's network namespace, `lo` excluded).
    NetworkRxBytes,
    /// Packets received.
    NetworkRxPackets,
    /// Receive errors.
    NetworkRxErrors,
    /// Received packets dropped.
    NetworkRxDropped,
    /// Bytes sent.
    NetworkTxBytes,
    /// Packets sent.
    NetworkTxPackets,
    /// Send errors.
    NetworkTxErrors,
    /// Packets dropped on send.
    NetworkTxDropped,
    /// Container writable layer.
    FsUsedBytes,
    /// Container logs.
    LogsUsedBytes,
    /// Node: the image store.
    ImageFsUsedBytes,
    /// Node: capacity of the filesystem holding the image store.
    ImageFsCapacityBytes,
    /// Node: bytes available on the filesystem holding the image store.
    ImageFsAvailableBytes,
    /// Node: the filesystem of the agent's state dir (nodefs).
    FsCapacityBytes,
    /// Node: bytes available on nodefs.
    FsAvailableBytes,
    /// Node: inodes of nodefs.
    FsInodes,
    /// Node: free inodes of nodefs.
    FsInodesFree,
    /// Processes (tasks) in the subject's cgroup.
    Processes,
    /// Container start, unix seconds.
    StartTimeSeconds,
    /// Node: load average × 1000.
    Load1Milli,
    /// Node: 5-minute load average × 1000.
    Load5Milli,
    /// Node: 15-minute load average × 1000.
    Load15Milli,
    /// Node: seconds since boot.
    UptimeSeconds,
    /// Node: MemAvailable and MemTotal.
    MemoryAvailableBytes,
    /// Node: MemTotal.
    MemoryCapacityBytes,
    /// Node: processes/threads in use and the kernel's pid_max.
    PidsInUse,
    /// Node: the kernel's pid_max.
    PidsMax,
    /// Raspberry Pi: SoC temperature in millidegrees Celsius.
    TemperatureMillicelsius,
    /// Raspberry Pi firmware get_throttled bits (under-voltage, throttling; current and since boot).
    ThrottledFlags,
}

impl Metric {
    /// Every metric, in wire order.
    pub const ALL: [Metric; 41] = [
        Metric::CpuUsageNanoseconds,
        Metric::CpuUserNanoseconds,
        Metric::CpuSystemNanoseconds,
        Metric::CpuPeriods,
        Metric::CpuThrottledPeriods,
        Metric::CpuThrottledNanoseconds,
        Metric::MemoryUsageBytes,
        Metric::MemoryWorkingSetBytes,
        Metric::MemoryRssBytes,
        Metric::MemoryCacheBytes,
        Metric::MemoryLimitBytes,
        Metric::OomEvents,
        Metric::NetworkRxBytes,
        Metric::NetworkRxPackets,
        Metric::NetworkRxErrors,
        Metric::NetworkRxDropped,
        Metric::NetworkTxBytes,
        Metric::NetworkTxPackets,
        Metric::NetworkTxErrors,
        Metric::NetworkTxDropped,
        Metric::FsUsedBytes,
        Metric::LogsUsedBytes,
        Metric::ImageFsUsedBytes,
        Metric::ImageFsCapacityBytes,
        Metric::ImageFsAvailableBytes,
        Metric::FsCapacityBytes,
        Metric::FsAvailableBytes,
        Metric::FsInodes,
        Metric::FsInodesFree,
        Metric::Processes,
        Metric::StartTimeSeconds,
        Metric::Load1Milli,
        Metric::Load5Milli,
        Metric::Load15Milli,
        Metric::UptimeSeconds,
        Metric::MemoryAvailableBytes,
        Metric::MemoryCapacityBytes,
        Metric::PidsInUse,
        Metric::PidsMax,
        Metric::TemperatureMillicelsius,
        Metric::ThrottledFlags,
    ];

    /// Whether the value only grows while its subject lives (a counter, whose rate is
    /// what one plots), rather than a gauge.
    pub const fn is_counter(self) -> bool {
        matches!(
            self,
            Metric::CpuUsageNanoseconds
                | Metric::CpuUserNanoseconds
                | Metric::CpuSystemNanoseconds
                | Metric::CpuPeriods
                | Metric::CpuThrottledPeriods
                | Metric::CpuThrottledNanoseconds
                | Metric::OomEvents
                | Metric::NetworkRxBytes
                | Metric::NetworkRxPackets
                | Metric::NetworkRxErrors
                | Metric::NetworkRxDropped
                | Metric::NetworkTxBytes
                | Metric::NetworkTxPackets
                | Metric::NetworkTxErrors
                | Metric::NetworkTxDropped
        )
    }
}

// ---------------------------------------------------------------------------------------
// commands: cmd/{name}/req and cmd/{name}/resp
// ---------------------------------------------------------------------------------------

/// A request from the controller to a node (signed), on `cmd/{name}/req`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Request id, unique per controller run; responses carry it back.
    pub id: u64,
    /// After this time the agent ignores the request (and stops streaming for it).
    pub deadline_unix_ms: u64,
    /// The node it is for: an agent drops a request addressed to another node.
    pub node: String,
    /// What is asked.
    pub body: RequestBody,
}

impl Message for Request {
    const KIND: MessageKind = MessageKind::Request;
}

/// What a request asks. **Append-only.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Container logs (`kelp logs`).
    Logs {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
        /// Only the last N lines.
        tail_lines: Option<u32>,
        /// Keep streaming new lines until the deadline or a [`RequestBody::Cancel`].
        follow: bool,
        /// The previous (terminated) instance's logs.
        previous: bool,
    },
    /// Run a command in a container (`kelp exec`).
    Exec {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
        /// Command and arguments.
        command: Vec<String>,
        /// Whether stdin will follow in [`RequestBody::Stdin`] requests.
        stdin: bool,
        /// Whether to allocate a terminal.
        tty: bool,
    },
    /// Input for a running exec.
    Stdin {
        /// The id of the exec request.
        request_id: u64,
        /// Bytes to write.
        data: Vec<u8>,
        /// Close stdin after writing.
        eof: bool,
    },
    /// Stop a running request (a followed log, an exec).
    Cancel {
        /// The id of the request to stop.
        request_id: u64,
    },
}

/// A response from a node, on `cmd/{name}/resp`. A request gets any number of chunks and
/// then exactly one `End` or `Error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// Position in this request's response stream, from 0 (QoS 1 may duplicate).
    pub seq: u64,
    /// The content.
    pub body: ResponseBody,
}

impl Message for Response {
    const KIND: MessageKind = MessageKind::Response;
}

/// The content of a response. **Append-only.**
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseBody {
    /// Output bytes (log lines, or an exec's stdout).
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The request finished; an exec's exit code.
    End {
        /// Exit code of an exec; `None` for logs.
        exit_code: Option<i32>,
    },
    /// The request failed.
    Error(String),
    /// An exec's stderr bytes.
    Stderr(#[serde(with = "serde_bytes")] Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::{decode_message, encode_message};

    #[test]
    fn generation_order_is_per_cluster() {
        let a = ClusterId([1; 16]);
        let b = ClusterId([2; 16]);
        let g = |cluster_id, revision| Generation {
            cluster_id,
            revision,
        };
        assert!(g(a, 5) > g(a, 4));
        assert!(g(a, 4) < g(a, 5));
        assert!(g(a, 5) >= g(a, 5));
        // "Never apply a lower generation" written as `new > applied` is false across
        // clusters, and so is the opposite.
        let newer = g(b, 9) > g(a, 4);
        let older = g(b, 9) < g(a, 4);
        assert!(!newer && !older);
        assert_eq!(g(b, 9).partial_cmp(&g(a, 4)), None);
    }

    #[test]
    fn bytes_fields_match_the_default_encoding() {
        // serde_bytes and the per-byte default produce the same postcard bytes.
        let objects = vec![b"{}".to_vec(), Vec::new(), vec![0xff; 200]];
        let desired = DesiredState {
            generation: Generation {
                cluster_id: ClusterId([3; 16]),
                revision: 7,
            },
            node: "n".into(),
            objects_json: objects.clone(),
        };
        let ours = encode_message(&desired).unwrap();
        let plain = encode_message(&(desired.generation, "n", &objects)).unwrap();
        assert_eq!(ours, plain);
        assert_eq!(decode_message::<DesiredState>(&ours).unwrap(), desired);

        let chunk = Response {
            id: 1,
            seq: 0,
            body: ResponseBody::Chunk(vec![1, 2, 3]),
        };
        assert_eq!(encode_message(&chunk).unwrap(), [1, 0, 0, 3, 1, 2, 3]);
    }

    #[test]
    fn metric_all_is_every_variant_in_wire_order() {
        for (index, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(encode_message(metric).unwrap(), [index as u8], "{metric:?}");
        }
        // One past the end is no metric: ALL leaves none out.
        assert!(decode_message::<Metric>(&[Metric::ALL.len() as u8]).is_err());
    }

    #[test]
    fn series_values_round_trip() {
        let values = [0, 5, 3, i64::MAX, 0, 1 << 40, 1 << 40];
        let series = SampleSeries::from_values(Metric::MemoryUsageBytes, 2, 4, &values);
        assert_eq!(series.values(), values);
        assert_eq!(series.last(), Some((10, 1 << 40)));
        let empty = SampleSeries::from_values(Metric::Processes, 0, 0, &[]);
        assert_eq!(empty.values(), Vec::<i64>::new());
        assert_eq!(empty.last(), None);
        // Untrusted deltas saturate instead of overflowing.
        let hostile = SampleSeries {
            metric: Metric::OomEvents,
            subject: 0,
            first_slot: u32::MAX,
            deltas: vec![i64::MAX, i64::MAX, i64::MIN, i64::MIN, i64::MIN],
        };
        assert_eq!(
            hostile.values(),
            [i64::MAX, i64::MAX, -1, i64::MIN, i64::MIN]
        );
        assert_eq!(hostile.last(), Some((u32::MAX, i64::MIN)));
    }

    #[test]
    fn small_deltas_are_one_byte() {
        // A counter that grew by 60 in a slot and a gauge that did not move cost a byte.
        let series = SampleSeries::from_values(Metric::Processes, 0, 0, &[3, 3, 63]);
        // metric, subject, first_slot, length, then zigzag deltas 3 → 6, 0 → 0, 60 → 120.
        assert_eq!(
            encode_message(&series).unwrap(),
            [Metric::Processes as u8, 0, 0, 3, 6, 0, 120]
        );
    }

    #[test]
    fn samples_helpers() {
        let samples = Samples {
            boot_id: BootId([1; 16]),
            agent_start_unix_ms: 1,
            seq: 1,
            start_unix_ms: 1_000,
            interval_ms: 10_000,
            slots: 6,
            complete: true,
            subjects: vec![
                Subject::Pod {
                    namespace: "ns".into(),
                    name: "p".into(),
                },
                Subject::Container {
                    pod: 0,
                    name: "c".into(),
                },
                Subject::Container {
                    pod: 1,
                    name: "bad".into(),
                },
                Subject::Container {
                    pod: 9,
                    name: "worse".into(),
                },
            ],
            series: Vec::new(),
        };
        assert_eq!(samples.slot_unix_ms(3), 31_000);
        assert_eq!(
            samples.slot_unix_ms(u32::MAX),
            1_000 + 10_000 * u64::from(u32::MAX)
        );
        let in_range = SampleSeries::from_values(Metric::Processes, 1, 0, &[1]);
        let out_of_range = SampleSeries::from_values(Metric::Processes, 4, 0, &[1]);
        assert_eq!(samples.subject_of(&in_range), Some(&samples.subjects[1]));
        assert_eq!(samples.subject_of(&out_of_range), None);
        assert_eq!(samples.pod_of(&samples.subjects[1]), Some(("ns", "p")));
        assert_eq!(samples.pod_of(&samples.subjects[0]), None);
        assert_eq!(samples.pod_of(&samples.subjects[2]), None, "not a pod");
        assert_eq!(samples.pod_of(&samples.subjects[3]), None, "out of range");
    }

    #[test]
    fn ip_addresses_are_compact() {
        let v4: Option<IpAddr> = Some("10.42.0.7".parse().unwrap());
        assert_eq!(encode_message(&v4).unwrap(), [1, 0, 10, 42, 0, 7]);
    }
}
