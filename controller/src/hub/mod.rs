//! The node hub: the controller's side of the MQTT link.
//!
//! - Out: each node's desired state ([`project`]: its Node, the pods bound to it, the
//!   ConfigMaps and Secrets they use) as a signed envelope, published retained (QoS 1) on
//!   `{prefix}/nodes/{node}/desired` when it changes, debounced. The generation is the store
//!   revision it was projected at. One that would not fit in the 1 MiB packet limit is never
//!   published: the node gets the condition `DesiredStateTooLarge` and a Warning event.
//! - In: births and last wills on `status` → the Node object ([`status`]: labels, capacity,
//!   addresses, `Ready`), reports on `reported` → pods' status (relaxed commits: rebuilt from
//!   the retained reports after a power cut), event batches on `events` → the in-memory
//!   [`EventStore`](crate::events::EventStore) (never the store), with the hub's own events,
//!   metric batches on `metrics` → the in-memory [`MetricsStore`](crate::metrics::MetricsStore)
//!   (never the store) and, from each node's latest samples, its `MemoryPressure`,
//!   `DiskPressure` and `PIDPressure` conditions (written only when they change).
//! - Each node gets a /24 pod CIDR of `--cluster-cidr` ([`cidr`]) when its Node appears.
//! - [`broker`]: the embedded rumqttd; [`link`]: the controller's rumqttc connection;
//!   [`identity`]: cluster id, signing key, MQTT password in the data dir.
//! - [`requests`]: signed requests to nodes (`kelp logs`, `kelp exec`) out on
//!   `cmd/{name}/req`; their responses on `cmd/+/resp` routed by id to the API call waiting.
//!
//! One task owns the hub's state; the MQTT event loop runs in a task of its own and hands
//! messages over a bounded channel. The hub never awaits a publish (it uses `try_publish`
//! and retries after the debounce when the client's queue is full).

pub mod broker;
pub mod cidr;
pub mod identity;
pub mod link;
pub mod mosquitto;
pub mod project;
pub mod requests;
pub mod status;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kelp_shared::wire::{
    sign, Birth, BootId, DesiredState, Envelope, Generation, MessageKind, Offline, Reported,
    StaticPods, TopicKind, Topics, WireError, MAX_PACKET,
};
use rumqttc::{AsyncClient, QoS};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::store::{Durability, Key, Revision, Store, StoreError, Stored};
use cidr::ClusterCidr;
use identity::Identity;
use link::{BrokerTarget, LinkEvent};

/// The ConfigMap (in `kube-public`) that tells `kelp node add` what goes in a join file.
pub const CLUSTER_INFO: &str = "kelp-cluster-info";
/// Its namespace.
pub const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
/// The annotation of a mirror pod (a node's static pod shown in the API, read-only there):
/// the static pod's UID, as the kubelet's.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Most static pods a node's message may carry.
const MAX_STATIC_PODS: usize = 256;
/// The Node condition of a node whose desired state does not fit in a packet.
pub const TOO_LARGE: &str = "DesiredStateTooLarge";

/// Why the hub could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A file of the data dir could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the data dir holds something unusable.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The embedded broker cannot listen.
    #[error(
        "cannot listen on {addr} for MQTT: {source} (is another broker running? see --mqtt-listen)"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `--mqtt-url` is not usable.
    #[error("invalid --mqtt-url: {reason}")]
    MqttUrl {
        /// What is wrong.
        reason: String,
    },
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The MQTT event loop task is gone.
    #[error("the MQTT link task stopped")]
    LinkGone,
}

/// How the hub runs.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Where the embedded broker listens (port 0: a free port).
    pub mqtt_listen: SocketAddr,
    /// An external broker (`mqtt://USER:PASSWORD@HOST:PORT`) instead of the embedded one.
    pub mqtt_url: Option<String>,
    /// The broker URL nodes are given in their join files (default: the embedded broker's
    /// address, or the external URL without credentials).
    pub advertise_url: Option<String>,
    /// The CA certificate (PEM) of an external `mqtts://` broker; join files carry it.
    pub mqtt_ca: Option<String>,
    /// The pod network; each node gets a /24 of it.
    pub cluster_cidr: ClusterCidr,
    /// How long the hub waits after a change before projecting (changes within it share
    /// one publish).
    pub debounce: Duration,
    /// A Ready node not heard from (no birth, heartbeat, report or will) for this long (or
    /// since the hub
    /// connected to the broker becomes `Ready=Unknown` (90 s).
    pub node_grace: Duration,
    /// The topics.
    pub topics: Topics,
    /// Mosquitto's password and ACL files to keep (external broker only).
    pub mosquitto: Option<mosquitto::Files>,
    /// A TLS listener in front of the embedded broker: its address, the server's TLS
    /// configuration and the CA (PEM) that signed its certificate (join files carry it).
    pub mqtt_tls: Option<(SocketAddr, Arc<rustls::ServerConfig>, String)>,
    /// The thresholds of nodes' pressure conditions (the kubelet's `--eviction-hard`).
    pub eviction_hard: crate::metrics::pressure::Thresholds,
}

/// What [`start`] set up.
#[derive(Debug)]
pub struct Started {
    /// The broker URL nodes are given.
    pub broker_url: String,
    /// The embedded broker's address, when there is one.
    pub embedded: Option<SocketAddr>,
    /// The hub task; it ends with an error only when something it cannot recover from
    /// happened.
    pub task: tokio::task::JoinHandle<Result<(), HubError>>,
    /// Requests to nodes, for the API.
    pub requests: Arc<requests::NodeRequests>,
    /// The events nodes and the hub report, for the API.
    pub events: Arc<crate::events::EventStore>,
    /// The metrics nodes publish, for the API.
    pub metrics: Arc<crate::metrics::MetricsStore>,
}

/// Something that publishes a retained QoS 1 message without waiting; false when it cannot
/// take it now.
pub trait Publisher {
    /// Queues the publish.
    fn publish_retained(&self, topic: &str, payload: Vec<u8>) -> bool;
}

impl Publisher for AsyncClient {
    fn publish_retained(&self, topic: &str, payload: Vec<u8>) -> bool {
        self.try_publish(topic, QoS::AtLeastOnce, true, payload)
            .is_ok()
    }
}

/// Seals, signs and encodes one node's desired state.
pub fn encode_desired(
    identity: &Identity,
    node: &str,
    revision: Revision,
    objects: &[std::sync::Arc<[u8]>],
) -> Result<Vec<u8>, WireError> {
    let desired = DesiredState {
        generation: Generation {
            cluster_id: identity.cluster_id,
            revision,
        },
        node: node.to_owned(),
        objects_json: objects.iter().map(|o| o.to_vec()).collect(),
    };
    let mut envelope = Envelope::seal_message(identity.cluster_id, &desired, true)?;
    sign(&mut envelope, &identity.key);
    Ok(envelope.encode())
}

fn digest(objects: &[std::sync::Arc<[u8]>]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for object in objects {
        object.hash(&mut hasher);
    }
    hasher.finish()
}

fn now() -> String {
    status::rfc3339(chrono::Utc::now())
}

/// A node's message, decoded.
enum Incoming {
    Birth(Birth),
    Offline(Offline),
    Reported(Reported),
    Static(StaticPods),
    Events(kelp_shared::wire::EventBatch),
    Heartbeat(kelp_shared::wire::Heartbeat),
    /// A metrics batch: into the metrics store, and a sign of life (an agent publishing
    /// metrics sends no heartbeat in that keepalive).
    Samples(kelp_shared::wire::Samples),
}

/// The latest agent run heard from, per node: (boot id, start time, sequence).
type Run = (BootId, u64, u64);

/// The hub's state, owned by its task.
pub struct Hub {
    store: Store,
    identity: Arc<Identity>,
    topics: Topics,
    cluster_cidr: ClusterCidr,
    /// Per node: the digest of what was last published (or found too large).
    published: HashMap<String, u64>,
    /// Per node: the fingerprint of the inputs of what was last published
    /// (`project::project_changed`); a node whose inputs are unchanged is not projected.
    inputs: HashMap<String, u64>,
    /// Objects as nodes get them, serialised, reused while their revision is unchanged.
    cache: project::Cache,
    /// Which pods each node holds and which nodes changed, from the store's watch.
    index: project::Index,
    /// Whether the run loop feeds the store's changes to [`Hub::observe`]; without it
    /// (tests drive [`Hub::sync`] by hand) every sync lists the store again.
    following: bool,
    /// Writes reports into the store.
    writer: ReportWriter,
    births: HashMap<String, Run>,
    reports: HashMap<String, Run>,
    statics: HashMap<String, Run>,
    /// The latest report of each node (its pods' status is applied again when mirror pods
    /// appear after it).
    last_reports: HashMap<String, Reported>,
    /// When each node was last heard from (any message) since the hub last connected to the
    /// broker.
    heard: HashMap<String, Instant>,
    /// Each node's latest birth (a heartbeat after a silence makes the node Ready again).
    last_births: HashMap<String, Birth>,
    /// When the hub last connected to the broker.
    connected_at: Instant,
    /// See [`HubOptions::node_grace`].
    node_grace: Duration,
    /// Events from nodes and the hub's own, in memory.
    events: Arc<crate::events::EventStore>,
    /// Metrics from nodes, in memory.
    metrics: Arc<crate::metrics::MetricsStore>,
    /// Per node: when its pressure thresholds were last crossed.
    pressure: HashMap<String, crate::metrics::pressure::Memory>,
    /// The pressure conditions' thresholds (`--eviction-hard`).
    thresholds: crate::metrics::pressure::Thresholds,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("cluster", &self.identity.cluster_id)
            .field("nodes_published", &self.published.len())
            .finish()
    }
}

impl Hub {
    /// A hub over `store`.
    pub fn new(
        store: Store,
        identity: Arc<Identity>,
        topics: Topics,
        cluster_cidr: ClusterCidr,
    ) -> Hub {
        let writer = ReportWriter {
            store: store.clone(),
        };
        Hub {
            store,
            identity,
            topics,
            cluster_cidr,
            published: HashMap::new(),
            inputs: HashMap::new(),
            cache: project::Cache::default(),
            index: project::Index::stale(),
            following: false,
            writer,
            births: HashMap::new(),
            reports: HashMap::new(),
            statics: HashMap::new(),
            last_reports: HashMap::new(),
            heard: HashMap::new(),
            last_births: HashMap::new(),
            connected_at: Instant::now(),
            node_grace: Duration::from_secs(90),
            events: Arc::default(),
            metrics: Arc::default(),
            pressure: HashMap::new(),
            thresholds: Default::default(),
        }
    }

    /// Sets [`HubOptions::eviction_hard`].
    pub fn set_eviction_hard(&mut self, thresholds: crate::metrics::pressure::Thresholds) {
        self.thresholds = thresholds;
    }

    /// The metrics the hub records from nodes.
    pub fn metrics(&self) -> Arc<crate::metrics::MetricsStore> {
        self.metrics.clone()
    }

    /// The events the hub records (nodes' and its own).
    pub fn events(&self) -> Arc<crate::events::EventStore> {
        self.events.clone()
    }

    /// Sets [`HubOptions::node_grace`].
    pub fn set_node_grace(&mut self, grace: Duration) {
        self.node_grace = grace;
    }

    /// Forgets what was published, so the next [`Hub::sync`] publishes every node again
    /// (after a reconnect: the embedded broker forgets retained messages when it restarts),
    /// and starts the grace period in which every node must be heard from again.
    pub fn forget_published(&mut self) {
        self.published.clear();
        self.inputs.clear();
        self.index.touch_all();
        self.heard.clear();
        self.connected_at = Instant::now();
    }

    /// Nodes still `Ready=True` that have not been heard from within the grace period (a
    /// node sends at least a heartbeat once per keepalive; a node never heard from since the
    /// hub connected counts from then) become `Ready=Unknown`. This does not rely on the
    /// broker publishing a silent node's will: rumqttd 0.19 never does, and a node that
    /// vanished while the embedded broker forgot its retained messages has none.
    pub async fn check_silence(&mut self) -> Result<(), HubError> {
        let (nodes, _) = self.store.list("Node", None);
        let now = now();
        let message = format!(
            "kelp-agent has not been heard from for {}s (no birth, heartbeat, report or last will).",
            self.node_grace.as_secs_f64()
        );
        for node in nodes {
            let name = &node.key.name;
            let ready =
                status::condition(&node.object, "Ready").is_some_and(|c| c["status"] == "True");
            let last = self.heard.get(name).copied().unwrap_or(self.connected_at);
            if !ready || last.elapsed() < self.node_grace {
                continue;
            }
            self.update_node(name, false, Durability::Relaxed, |n| {
                status::apply_unknown(n, &message, &now)
            })
            .await?;
            tracing::info!(node = %name, grace = ?self.node_grace, "node silent: Ready=Unknown");
        }
        Ok(())
    }

    /// Changes a Node with read-modify-write (retried on conflicts); `create` makes a
    /// missing one. Returns the stored node, or `None` when there is none.
    async fn update_node(
        &self,
        name: &str,
        create: bool,
        durability: Durability,
        change: impl Fn(&mut Value),
    ) -> Result<Option<Stored>, HubError> {
        let key = Key::new("Node", "", name);
        for _ in 0..5 {
            let Some(current) = self.store.get(&key) else {
                if !create {
                    return Ok(None);
                }
                let mut node = json!({
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "uid": uuid::Uuid::new_v4().to_string(),
                        "creationTimestamp": now(),
                    },
                    "spec": {},
                });
                change(&mut node);
                match self
                    .store
                    .create(key.clone(), node, Durability::Durable)
                    .await
                {
                    Ok(stored) => return Ok(Some(stored)),
                    Err(StoreError::AlreadyExists(_)) => continue,
                    Err(err) => return Err(err.into()),
                }
            };
            let mut node = (*current.object).clone();
            change(&mut node);
            if node == *current.object {
                return Ok(Some(current));
            }
            match self
                .store
                .update(key.clone(), node, Some(current.revision), durability)
                .await
            {
                Ok(stored) => return Ok(Some(stored)),
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        tracing::warn!(
            node = name,
            "gave up updating the Node after repeated conflicts"
        );
        Ok(None)
    }

    /// Gives every Node without a pod CIDR one.
    async fn allocate_cidrs(&self) -> Result<(), HubError> {
        let (nodes, _) = self.store.list("Node", None);
        for node in nodes
            .iter()
            .filter(|n| n.object["spec"]["podCIDR"].as_str().is_none())
        {
            let (all, _) = self.store.list("Node", None);
            let used: Vec<String> = all
                .iter()
                .filter_map(|n| n.object["spec"]["podCIDR"].as_str().map(str::to_owned))
                .collect();
            let Some(cidr) = self.cluster_cidr.allocate(used.iter().map(String::as_str)) else {
                tracing::warn!(node = %node.key.name, cluster_cidr = %self.cluster_cidr, "no pod CIDR left for the node");
                continue;
            };
            let cidr = cidr.to_string();
            // Durable: a pod CIDR must never be given to two nodes, even across a power cut.
            self.update_node(&node.key.name, false, Durability::Durable, |n| {
                if n["spec"]["podCIDR"].as_str().is_none() {
                    n["spec"]["podCIDR"] = json!(cidr);
                    n["spec"]["podCIDRs"] = json!([cidr]);
                }
            })
            .await?;
            tracing::info!(node = %node.key.name, pod_cidr = %cidr, "allocated pod CIDR");
        }
        Ok(())
    }

    /// From now on the caller hands every change of the store to [`Hub::observe`], from a
    /// watch started before this call; the next sync lists the store once, later ones
    /// project only the nodes the changes touched. Called again after the watch was lost.
    pub fn follow(&mut self) {
        self.following = true;
        self.index.invalidate();
    }

    /// One change of the store (see [`Hub::follow`]).
    pub fn observe(&mut self, change: &crate::store::WatchEvent) {
        self.index.observe(change, &mut self.cache);
    }

    /// Projects the nodes whose inputs changed (every node, unless [`Hub::follow`]ing the
    /// store) and publishes what changed. Returns true when something could not
    /// be published now (the client's queue was full): sync again later.
    pub async fn sync<P: Publisher + ?Sized>(&mut self, publisher: &P) -> Result<bool, HubError> {
        self.allocate_cidrs().await?;
        if !self.following {
            self.index.invalidate();
        }
        let projections = self
            .index
            .project_dirty(&self.store, &self.inputs, &mut self.cache);
        // Every object projected is at or before this revision.
        let revision = self.store.revision();
        let mut retry = false;
        for (node, (inputs, objects)) in &projections {
            let digest = digest(objects);
            if self.published.get(node) == Some(&digest) {
                self.inputs.insert(node.clone(), *inputs);
                continue;
            }
            let topic = match self.topics.desired(node) {
                Ok(topic) => topic,
                Err(err) => {
                    tracing::warn!(%node, error = %err, "node name cannot be a topic");
                    continue;
                }
            };
            match encode_desired(&self.identity, node, revision, objects) {
                Ok(payload) => {
                    let size = payload.len();
                    if !publisher.publish_retained(&topic, payload) {
                        retry = true;
                        self.index.touch(node);
                        continue;
                    }
                    tracing::debug!(%node, revision, size, objects = objects.len(), "published desired state");
                    self.published.insert(node.clone(), digest);
                    self.inputs.insert(node.clone(), *inputs);
                    self.set_too_large(node, None).await?;
                }
                Err(err @ (WireError::TooLarge { .. } | WireError::BodyTooLarge { .. })) => {
                    tracing::warn!(%node, error = %err, "desired state too large; not published");
                    self.published.insert(node.clone(), digest);
                    self.inputs.insert(node.clone(), *inputs);
                    self.set_too_large(node, Some(err.to_string())).await?;
                }
                Err(err) => {
                    tracing::error!(%node, error = %err, "cannot encode desired state");
                }
            }
        }
        // Nodes that are gone (removed): clear their retained topics, so that nothing of
        // them lingers on the broker for the next one of that name or an observer.
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|n| !self.index.nodes().contains(*n))
            .cloned()
            .collect();
        for node in gone {
            let topics = [
                self.topics.desired(&node),
                self.topics.status(&node),
                self.topics.reported(&node),
                self.topics.static_pods(&node),
            ];
            if topics
                .into_iter()
                .flatten()
                .any(|topic| !publisher.publish_retained(&topic, Vec::new()))
            {
                retry = true;
                continue;
            }
            self.published.remove(&node);
            self.inputs.remove(&node);
            self.births.remove(&node);
            self.reports.remove(&node);
            self.statics.remove(&node);
            self.last_reports.remove(&node);
            self.last_births.remove(&node);
            self.heard.remove(&node);
            self.metrics.remove_node(&node);
            self.pressure.remove(&node);
        }
        Ok(retry)
    }

    /// Sets (`Some(message)`) or clears the `DesiredStateTooLarge` condition; a Warning event
    /// when it becomes true.
    async fn set_too_large(&self, node: &str, problem: Option<String>) -> Result<(), HubError> {
        let Some(current) = self.store.get(&Key::new("Node", "", node)) else {
            return Ok(());
        };
        let was = status::condition(&current.object, TOO_LARGE)
            .map(|c| c["status"] == "True")
            .unwrap_or(false);
        match (&problem, was) {
            (None, false) => return Ok(()),
            (Some(_), true) => return Ok(()),
            _ => {}
        }
        let now = now();
        let message = match &problem {
            Some(err) => format!(
                "the node's desired state cannot be sent: {err} (the MQTT packet limit is {MAX_PACKET} bytes); the node keeps its last desired state"
            ),
            None => "the node's desired state fits in a packet".to_owned(),
        };
        let (flag, reason) = match problem {
            Some(_) => ("True", TOO_LARGE),
            None => ("False", "DesiredStateFits"),
        };
        let stored = self
            .update_node(node, false, Durability::Relaxed, |n| {
                if !n["status"].is_object() {
                    n["status"] = json!({});
                }
                status::set_condition(
                    &mut n["status"]["conditions"],
                    TOO_LARGE,
                    flag,
                    reason,
                    &message,
                    &now,
                    true,
                );
            })
            .await?;
        if flag == "True" {
            let uid = stored
                .as_ref()
                .and_then(|s| s.object["metadata"]["uid"].as_str().map(str::to_owned))
                .unwrap_or_default();
            self.event(node, &uid, TOO_LARGE, &message).await?;
        }
        Ok(())
    }

    /// Records a Warning event about a Node (in memory, as every event).
    async fn event(
        &self,
        node: &str,
        uid: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), HubError> {
        let event = crate::events::NewEvent {
            object: kelp_shared::wire::ObjectRef {
                kind: "Node".to_owned(),
                namespace: String::new(),
                name: node.to_owned(),
                uid: uid.to_owned(),
            },
            warning: true,
            reason: reason.to_owned(),
            message: message.to_owned(),
            source: crate::events::Source {
                component: "kelp-hub".to_owned(),
                host: String::new(),
            },
            count: 1,
            first: None,
            last: None,
        };
        self.events.record(event, chrono::Utc::now());
        Ok(())
    }

    /// Handles one message from a node's `status`, `reported` or `events` topic. Anything
    /// foreign, malformed, stale or addressed wrongly is dropped (logged at debug level).
    pub async fn handle(&mut self, topic: &str, payload: &[u8]) -> Result<(), HubError> {
        match self.decode(topic, payload) {
            Some((node, incoming)) => self.dispatch(&node, incoming).await,
            None => Ok(()),
        }
    }

    /// Handles messages taken off the link together. Each node's reports are coalesced — a
    /// report is the node's whole state, so only its newest counts — and the reports of all
    /// nodes are applied together (their status writes share group commits, and the Pod
    /// store is read once for finished deletions), after the batch's other messages, which
    /// keep their order. A message that cannot be applied is logged; only a closed store
    /// ends the batch with an error.
    pub async fn handle_batch(&mut self, messages: Vec<(String, Vec<u8>)>) -> Result<(), HubError> {
        let reports = self.take_batch(messages).await?;
        logged("reported", self.writer.apply(&reports).await)
    }

    /// [`Hub::handle_batch`] but for writing the reports: those are returned (coalesced and
    /// newer than their node's last), for a [`ReportWriter`].
    pub async fn take_batch(
        &mut self,
        messages: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<Reported>, HubError> {
        let mut reports: Vec<Reported> = Vec::new();
        let mut report_of: HashMap<String, usize> = HashMap::new();
        let mut later: Vec<(String, Incoming)> = Vec::new();
        for (topic, payload) in messages {
            let Some((node, incoming)) = self.decode(&topic, &payload) else {
                continue;
            };
            match incoming {
                Incoming::Reported(reported) if reported.node == node => {
                    match report_of.get(&node) {
                        Some(&i) if older(&reported, &reports[i]) => {}
                        Some(&i) => reports[i] = reported,
                        None => {
                            report_of.insert(node, reports.len());
                            reports.push(reported);
                        }
                    }
                }
                // Static pods after the reports: mirror pods take their status from the
                // node's latest report (applied again when its mirror pods are made).
                incoming @ Incoming::Static(_) => later.push((node, incoming)),
                incoming => {
                    let result = self.dispatch(&node, incoming).await;
                    logged(&topic, result)?;
                }
            }
        }
        let fresh = self.take_reports(reports);
        for (node, incoming) in later {
            let result = self.dispatch(&node, incoming).await;
            logged(&node, result)?;
        }
        Ok(fresh)
    }

    /// A writer of reports for this hub's store.
    pub fn report_writer(&self) -> ReportWriter {
        self.writer.clone()
    }

    /// Decodes a node's message: the node it comes from (by its topic) and what it says;
    /// `None` for a message to drop (the reason logged at debug level).
    fn decode(&mut self, topic: &str, payload: &[u8]) -> Option<(String, Incoming)> {
        let (node, topic_kind) = self.topics.parse(topic)?;
        if payload.is_empty() {
            return None;
        }
        let envelope = match Envelope::decode(payload) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::debug!(%topic, error = %err, "dropping undecodable message");
                return None;
            }
        };
        if envelope.cluster != self.identity.cluster_id {
            tracing::debug!(%topic, cluster = %envelope.cluster, "dropping another cluster's message");
            return None;
        }
        if !topic_kind.carries(envelope.kind) {
            tracing::debug!(%topic, kind = ?envelope.kind, "dropping a message on the wrong topic");
            return None;
        }
        let incoming = match (topic_kind, envelope.kind) {
            (TopicKind::Status, MessageKind::Birth) => envelope.open().map(Incoming::Birth),
            (TopicKind::Status, MessageKind::Offline) => envelope.open().map(Incoming::Offline),
            (TopicKind::Status, MessageKind::Heartbeat) => envelope.open().map(Incoming::Heartbeat),
            (TopicKind::Reported, MessageKind::Reported) => envelope.open().map(Incoming::Reported),
            (TopicKind::Static, MessageKind::StaticPods) => envelope.open().map(Incoming::Static),
            (TopicKind::Events, MessageKind::Events) => envelope.open().map(Incoming::Events),
            (TopicKind::Metrics, MessageKind::Samples) => envelope.open().map(Incoming::Samples),
            _ => return None,
        };
        match incoming {
            Ok(incoming) => {
                self.heard.insert(node.to_owned(), Instant::now());
                Some((node.to_owned(), incoming))
            }
            Err(err) => {
                tracing::debug!(%topic, error = %err, "dropping malformed message");
                None
            }
        }
    }

    /// Applies one decoded message of `node`.
    async fn dispatch(&mut self, node: &str, incoming: Incoming) -> Result<(), HubError> {
        match incoming {
            Incoming::Birth(birth) if birth.node == node => self.on_birth(birth).await,
            Incoming::Offline(offline) if offline.node == node => self.on_offline(offline).await,
            Incoming::Heartbeat(beat) if beat.node == node => self.on_heartbeat(beat).await,
            Incoming::Reported(reported) if reported.node == node => {
                self.on_reports(vec![reported]).await
            }
            Incoming::Static(pods) if pods.node == node => self.on_static(pods).await,
            // A batch names no node: the topic does. It counts as the run's heartbeat, and
            // goes to the metrics store.
            Incoming::Samples(samples) => {
                let beat = kelp_shared::wire::Heartbeat {
                    node: node.to_owned(),
                    boot_id: samples.boot_id,
                };
                self.on_heartbeat(beat).await?;
                self.on_samples(node, &samples).await
            }
            // A batch names no node: the topic does (the broker's ACL lets a node write only
            // its own).
            Incoming::Events(batch) => {
                let outcome = self.events.record_batch(node, &batch, chrono::Utc::now());
                tracing::debug!(%node, seq = batch.seq, events = batch.events.len(), ?outcome, "events");
                Ok(())
            }
            _ => {
                tracing::debug!(%node, "dropping a message naming another node");
                Ok(())
            }
        }
    }

    /// A node's metric batch: into the in-memory store; then its pressure conditions, written
    /// when one changes. Batches of nodes the store does not know are dropped.
    pub async fn on_samples(
        &mut self,
        node: &str,
        batch: &crate::metrics::Samples,
    ) -> Result<(), HubError> {
        use crate::metrics::pressure;
        let Some(current) = self.store.get(&Key::new("Node", "", node)) else {
            return Ok(());
        };
        let now_ms = crate::metrics::now_ms();
        let outcome = self.metrics.record(node, batch, now_ms);
        tracing::debug!(%node, seq = batch.seq, ?outcome, "metrics");
        if !matches!(outcome, crate::metrics::Outcome::Recorded { .. }) {
            return Ok(());
        }
        let Some(signals) = self
            .metrics
            .read(|nodes| nodes.get(node).map(pressure::Signals::of))
        else {
            return Ok(());
        };
        let wanted = self.pressure.entry(node.to_owned()).or_default().update(
            &signals,
            &self.thresholds,
            now_ms,
        );
        let flag = |p: bool| if p { "True" } else { "False" };
        let changed: Vec<(pressure::Kind, bool)> = wanted
            .into_iter()
            .filter(|(kind, p)| {
                status::condition(&current.object, kind.condition())
                    .is_none_or(|c| c["status"] != flag(*p))
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let now = now();
        self.update_node(node, false, Durability::Relaxed, |n| {
            if !n["status"].is_object() {
                n["status"] = json!({});
            }
            for (kind, p) in &changed {
                let (reason, message) = kind.reason_message(*p);
                status::set_condition(
                    &mut n["status"]["conditions"],
                    kind.condition(),
                    flag(*p),
                    reason,
                    message,
                    &now,
                    true,
                );
            }
        })
        .await?;
        for (kind, p) in changed {
            tracing::info!(%node, condition = kind.condition(), pressure = p, "node pressure");
        }
        Ok(())
    }

    async fn on_birth(&mut self, birth: Birth) -> Result<(), HubError> {
        let run = (birth.boot_id, birth.agent_start_unix_ms, birth.seq);
        if let Some(prev) = self.births.get(&birth.node) {
            // Within one agent run, messages are ordered by sequence; across runs the broker's
            // order stands (a second agent with the node's name is refused by the first, which
            // then publishes again).
            if prev.0 == run.0 && (run.1, run.2) < (prev.1, prev.2) {
                return Ok(());
            }
        }
        let (nodes, _) = self.store.list("Node", None);
        let used: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.object["spec"]["podCIDR"].as_str().map(str::to_owned))
            .collect();
        let cidr = self
            .cluster_cidr
            .allocate(used.iter().map(String::as_str))
            .map(|c| c.to_string());
        let now = now();
        // A pod CIDR given here is written durably (see allocate_cidrs); the rest relaxed.
        let had_cidr = nodes
            .iter()
            .any(|n| n.key.name == birth.node && n.object["spec"]["podCIDR"].is_string());
        let durability = if had_cidr {
            Durability::Relaxed
        } else {
            Durability::Durable
        };
        self.update_node(&birth.node, true, durability, |node| {
            status::apply_birth(node, &birth, cidr.as_deref(), &now)
        })
        .await?;
        tracing::info!(node = %birth.node, boot_id = %birth.boot_id, seq = birth.seq, "node birth");
        self.births.insert(birth.node.clone(), run);
        self.last_births.insert(birth.node.clone(), birth);
        Ok(())
    }

    /// A heartbeat of the node's current run: a node marked silent is Ready again (its link
    /// came back without a new session, so without a new birth).
    async fn on_heartbeat(&mut self, beat: kelp_shared::wire::Heartbeat) -> Result<(), HubError> {
        let Some(birth) = self.last_births.get(&beat.node) else {
            return Ok(());
        };
        if birth.boot_id != beat.boot_id {
            return Ok(());
        }
        let ready = self
            .store
            .get(&Key::new("Node", "", &beat.node))
            .and_then(|n| status::condition(&n.object, "Ready").map(|c| c["status"] == "True"))
            .unwrap_or(false);
        if ready {
            return Ok(());
        }
        let birth = birth.clone();
        let now = now();
        self.update_node(&beat.node, false, Durability::Relaxed, |node| {
            status::apply_birth(node, &birth, None, &now)
        })
        .await?;
        tracing::info!(node = %beat.node, "node heard from again: Ready");
        Ok(())
    }

    async fn on_offline(&mut self, offline: Offline) -> Result<(), HubError> {
        if let Some(prev) = self.births.get(&offline.node) {
            if prev.0 != offline.boot_id {
                return Ok(());
            }
        }
        let now = now();
        self.update_node(&offline.node, false, Durability::Relaxed, |node| {
            status::apply_offline(node, &now)
        })
        .await?;
        tracing::info!(node = %offline.node, "node offline (last will)");
        Ok(())
    }

    /// Applies nodes' reports (at most one per node), now.
    async fn on_reports(&mut self, reports: Vec<Reported>) -> Result<(), HubError> {
        let fresh = self.take_reports(reports);
        self.writer.apply(&fresh).await
    }

    /// The reports that are newer than the last of their node (remembered as the last).
    fn take_reports(&mut self, reports: Vec<Reported>) -> Vec<Reported> {
        let mut fresh = Vec::with_capacity(reports.len());
        for reported in reports {
            let run = (reported.boot_id, reported.agent_start_unix_ms, reported.seq);
            if let Some(prev) = self.reports.get(&reported.node) {
                // Within one agent run, messages are ordered by sequence; across runs the
                // broker's order stands (a second agent with the node's name is refused by
                // the first, which then publishes again).
                if prev.0 == run.0 && (run.1, run.2) < (prev.1, prev.2) {
                    continue;
                }
            }
            self.reports.insert(reported.node.clone(), run);
            self.last_reports
                .insert(reported.node.clone(), reported.clone());
            fresh.push(reported);
        }
        fresh
    }

    /// A node's static pods become mirror pods (`NAME` already carries the node's name;
    /// annotation [`MIRROR_ANNOTATION`], owned by the Node); mirrors of pods the node no longer
    /// has are removed. A pod of the API with the same name is left alone.
    async fn on_static(&mut self, message: StaticPods) -> Result<(), HubError> {
        let run = (message.boot_id, message.agent_start_unix_ms, message.seq);
        if let Some(prev) = self.statics.get(&message.node) {
            if prev.0 == run.0 && (run.1, run.2) < (prev.1, prev.2) {
                return Ok(());
            }
        }
        self.statics.insert(message.node.clone(), run);
        let node = &message.node;
        let node_uid = self
            .store
            .get(&Key::new("Node", "", node))
            .and_then(|n| n.object["metadata"]["uid"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let now = now();
        let mut wanted = BTreeSet::new();
        for (i, bytes) in message.pods_json.iter().take(MAX_STATIC_PODS).enumerate() {
            let Some(mirror) = status::mirror_pod(bytes, node, &node_uid, &now) else {
                tracing::debug!(%node, index = i, "dropping a static pod that is not a named Pod");
                continue;
            };
            let ns = mirror["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            let name = mirror["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let key = Key::new("Pod", &ns, &name);
            wanted.insert((ns, name));
            let uid = mirror["metadata"]["uid"].clone();
            match self.store.get(&key) {
                None => match self.store.create(key, mirror, Durability::Relaxed).await {
                    Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                    Err(err) => return Err(err.into()),
                },
                Some(live) => {
                    let annotations = live.object.pointer("/metadata/annotations");
                    let mirror_of = annotations.and_then(|a| a.get(MIRROR_ANNOTATION));
                    let same_node = live.object["spec"]["nodeName"].as_str() == Some(node);
                    if mirror_of.is_none() || !same_node {
                        tracing::warn!(%node, pod = %key, "a pod of the API has the name of the node's static pod: no mirror pod");
                        continue;
                    }
                    if live.object["metadata"]["uid"] == uid
                        && live.object["spec"] == mirror["spec"]
                    {
                        continue;
                    }
                    // A changed manifest is a new pod (new UID), as on the kubelet.
                    match self
                        .store
                        .delete(key.clone(), Some(live.revision), Durability::Relaxed)
                        .await
                    {
                        Ok(_) | Err(StoreError::NotFound(_)) | Err(StoreError::Conflict { .. }) => {
                        }
                        Err(err) => return Err(err.into()),
                    }
                    match self.store.create(key, mirror, Durability::Relaxed).await {
                        Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
            }
        }
        let (pods, _) = self.store.list("Pod", None);
        for pod in pods {
            let o = &pod.object;
            let is_mirror = o
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(MIRROR_ANNOTATION))
                .is_some();
            if !is_mirror || o["spec"]["nodeName"].as_str() != Some(node.as_str()) {
                continue;
            }
            if wanted.contains(&(pod.key.namespace.clone(), pod.key.name.clone())) {
                continue;
            }
            match self
                .store
                .delete(pod.key.clone(), Some(pod.revision), Durability::Relaxed)
                .await
            {
                Ok(_) | Err(StoreError::NotFound(_)) | Err(StoreError::Conflict { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        // The node's report may have come before its mirror pods existed.
        if let Some(reported) = self.last_reports.get(node) {
            self.writer.apply_report(reported).await?;
        }
        Ok(())
    }
}

/// Writes nodes' reports into the store: pod status, and the end of deletions the nodes have
/// carried out. The hub's task hands reports to one of these running beside it, so that
/// waiting for those writes never holds up the projection of desired states.
#[derive(Clone)]
pub struct ReportWriter {
    store: Store,
}

impl ReportWriter {
    /// Applies `reports` (at most one per node): each pod's status, then the deletions the
    /// reports finish.
    pub async fn apply(&self, reports: &[Reported]) -> Result<(), HubError> {
        use futures_util::stream::{self, StreamExt};
        let writes: Vec<_> = reports.iter().map(|r| self.apply_report(r)).collect();
        let results: Vec<Result<(), HubError>> =
            stream::iter(writes).buffer_unordered(16).collect().await;
        let outcome: Result<(), HubError> = results.into_iter().collect();
        self.finish_deletions(reports).await?;
        outcome
    }

    /// Writes each reported pod's status into its pod (when the pod of that UID is bound to
    /// the node).
    async fn apply_report(&self, reported: &Reported) -> Result<(), HubError> {
        use futures_util::stream::{self, StreamExt};
        let node = self.store.get(&Key::new("Node", "", &reported.node));
        let host_ip = node
            .as_ref()
            .and_then(|n| status::internal_ip(&n.object).map(str::to_owned));
        let now = now();
        let mut seen = BTreeSet::new();
        let reports: Vec<&kelp_shared::wire::PodReport> = reported
            .pods
            .iter()
            .filter(|r| seen.insert((r.namespace.as_str(), r.name.as_str())))
            .collect();
        // The pods' status writes go to the store together (one group commit), not one
        // after another.
        let mut writes = Vec::with_capacity(reports.len());
        for report in reports {
            writes.push(self.apply_pod_report(&reported.node, report, host_ip.as_deref(), &now));
        }
        let results: Vec<Result<(), HubError>> =
            stream::iter(writes).buffer_unordered(64).collect().await;
        results.into_iter().collect()
    }

    /// Writes one pod's status from its node's report (when it changed), retrying on a
    /// conflicting write.
    async fn apply_pod_report(
        &self,
        node: &str,
        report: &kelp_shared::wire::PodReport,
        host_ip: Option<&str>,
        now: &str,
    ) -> Result<(), HubError> {
        let key = Key::new("Pod", &report.namespace, &report.name);
        for _ in 0..3 {
            let Some(pod) = self.store.get(&key) else {
                break;
            };
            if pod.object["metadata"]["uid"].as_str() != Some(report.uid.as_str())
                || pod.object["spec"]["nodeName"].as_str() != Some(node)
            {
                break;
            }
            let new_status = status::pod_status(&pod.object["status"], report, host_ip, now);
            if new_status == pod.object["status"] {
                break;
            }
            let mut object = (*pod.object).clone();
            object["status"] = new_status;
            match self
                .store
                .update(key.clone(), object, Some(pod.revision), Durability::Relaxed)
                .await
            {
                Ok(_) => break,
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// A pod deleted in the API stays Terminating until its node reports it gone; then (with
    /// no finalizers left) it is removed from the store.
    async fn finish_deletions(&self, reports: &[Reported]) -> Result<(), HubError> {
        use futures_util::stream::{self, StreamExt};
        if reports.is_empty() {
            return Ok(());
        }
        let on_node: HashMap<&str, BTreeSet<&str>> = reports
            .iter()
            .map(|r| {
                let uids = r.pods.iter().map(|p| p.uid.as_str()).collect();
                (r.node.as_str(), uids)
            })
            .collect();
        let (pods, _) = self.store.list("Pod", None);
        let finished = pods.into_iter().filter(|pod| {
            let o = &pod.object;
            if o.pointer("/metadata/deletionTimestamp").is_none()
                || o.pointer("/metadata/finalizers")
                    .and_then(|f| f.as_array())
                    .is_some_and(|f| !f.is_empty())
            {
                return false;
            }
            let Some(there) = o
                .pointer("/spec/nodeName")
                .and_then(|n| n.as_str())
                .and_then(|n| on_node.get(n))
            else {
                return false;
            };
            let uid = o
                .pointer("/metadata/uid")
                .and_then(|u| u.as_str())
                .unwrap_or("");
            !there.contains(uid)
        });
        let deletes: Vec<_> = finished
            .map(|pod| {
                self.store
                    .delete(pod.key, Some(pod.revision), Durability::Durable)
            })
            .collect();
        let results: Vec<Result<(), HubError>> = stream::iter(deletes)
            .buffer_unordered(64)
            .map(|result| match result {
                Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound(_)) => Ok(()),
                Err(err) => Err(err.into()),
            })
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// Whether report `a` is older than `b` of the same node (same agent run, lower sequence).
fn older(a: &Reported, b: &Reported) -> bool {
    a.boot_id == b.boot_id && (a.agent_start_unix_ms, a.seq) < (b.agent_start_unix_ms, b.seq)
}

/// Logs a message's failure to apply; only a closed store is passed on.
fn logged(what: &str, result: Result<(), HubError>) -> Result<(), HubError> {
    match result {
        Ok(()) => Ok(()),
        Err(err @ HubError::Store(StoreError::Closed)) => Err(err),
        Err(err) => {
            tracing::warn!(topic = %what, error = %err, "cannot apply a node's message");
            Ok(())
        }
    }
}

/// Writes the cluster info ConfigMap `kelp node add` reads (created or updated).
async fn write_cluster_info(
    store: &Store,
    identity: &Identity,
    broker_url: &str,
    topics: &Topics,
    broker_ca: Option<&str>,
    broker: &str,
) -> Result<(), HubError> {
    let key = Key::new("ConfigMap", CLUSTER_INFO_NAMESPACE, CLUSTER_INFO);
    let mut data = json!({
        "clusterId": identity.cluster_id.to_string(),
        "controllerPublicKey": identity.key.public_key().to_string(),
        "brokerUrl": broker_url,
        "topicPrefix": topics.prefix(),
        "broker": broker,
    });
    if let Some(pem) = broker_ca {
        data["brokerCaPem"] = json!(pem);
    }
    match store.get(&key) {
        Some(current) if current.object["data"] == data => Ok(()),
        Some(current) => {
            let mut object = (*current.object).clone();
            object["data"] = data;
            store
                .update(key, object, Some(current.revision), Durability::Durable)
                .await?;
            Ok(())
        }
        None => {
            let object = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": CLUSTER_INFO,
                    "namespace": CLUSTER_INFO_NAMESPACE,
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": now(),
                },
                "data": data,
            });
            store.create(key, object, Durability::Durable).await?;
            Ok(())
        }
    }
}

/// `broker` in the cluster info: the server's embedded broker.
pub const BROKER_EMBEDDED: &str = "embedded";
/// `broker` in the cluster info: Mosquitto, whose password and ACL files the server keeps.
pub const BROKER_MOSQUITTO_MANAGED: &str = "mosquitto-managed";
/// `broker` in the cluster info: an external broker whose users are set up by hand.
pub const BROKER_EXTERNAL: &str = "external";

/// Starts the hub: identity, the embedded broker (unless `--mqtt-url`), the cluster info,
/// the MQTT link and the hub task.
pub async fn start(
    store: Store,
    data_dir: &Path,
    options: HubOptions,
) -> Result<Started, HubError> {
    let identity = Arc::new(Identity::load_or_create(data_dir)?);
    let (target, embedded, broker_url) = match &options.mqtt_url {
        Some(url) => {
            let target = BrokerTarget::parse(url)?;
            if target.tls && options.mqtt_ca.is_none() {
                return Err(HubError::MqttUrl {
                    reason: "mqtts:// needs --mqtt-ca, the broker's CA certificate (PEM)".into(),
                });
            }
            let scheme = if target.tls { "mqtts" } else { "mqtt" };
            let advertised = options
                .advertise_url
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{}:{}", target.host, target.port));
            (target, None, advertised)
        }
        None => {
            let addr = broker::start(
                options.mqtt_listen,
                store.clone(),
                identity.mqtt_password.clone(),
            )?;
            let target = BrokerTarget {
                host: addr.ip().to_string(),
                port: addr.port(),
                username: broker::CONTROLLER_USER.to_owned(),
                password: identity.mqtt_password.clone(),
                tls: false,
            };
            let mut advertised = format!("mqtt://{addr}");
            if let Some((listen, config, _)) = &options.mqtt_tls {
                let plain = if addr.ip().is_unspecified() {
                    SocketAddr::from(([127, 0, 0, 1], addr.port()))
                } else {
                    addr
                };
                let front = broker::start_tls_front(*listen, plain, config.clone()).await?;
                println!("kelp mqtt broker listening on mqtts://{front}");
                advertised = format!("mqtts://{front}");
            }
            let advertised = options.advertise_url.clone().unwrap_or(advertised);
            (target, Some(addr), advertised)
        }
    };
    let broker_ca = match (&embedded, &options.mqtt_tls) {
        (Some(_), Some((_, _, ca))) => Some(ca.clone()),
        _ => options.mqtt_ca.clone(),
    };
    let tls = match (&options.mqtt_ca, target.tls) {
        (Some(pem), true) => Some(Arc::new(kelp_shared::tls::client_config(pem).map_err(
            |e| HubError::MqttUrl {
                reason: format!("--mqtt-ca: {e}"),
            },
        )?)),
        _ => None,
    };
    // What `kelp node add` needs to know about the broker's own user list.
    let broker_kind = match (&embedded, &options.mosquitto) {
        (Some(_), _) => BROKER_EMBEDDED,
        (None, Some(_)) => BROKER_MOSQUITTO_MANAGED,
        (None, None) => BROKER_EXTERNAL,
    };
    write_cluster_info(
        &store,
        &identity,
        &broker_url,
        &options.topics,
        broker_ca.as_deref(),
        broker_kind,
    )
    .await?;
    if let Some(files) = options.mosquitto.clone() {
        if embedded.is_some() {
            return Err(HubError::MqttUrl {
                reason: "--mosquitto-passwd/--mosquitto-acl keep an external Mosquitto's files: give its --mqtt-url".into(),
            });
        }
        // Written once before connecting (the controller's own login may be in it), then
        // kept in line with the store.
        let (s, t, f, user, password) = (
            store.clone(),
            options.topics.clone(),
            files.clone(),
            target.username.clone(),
            target.password.clone(),
        );
        tokio::task::spawn_blocking(move || mosquitto::sync(&s, &t, &f, (&user, &password)))
            .await
            .map_err(|e| HubError::MqttUrl {
                reason: format!("writing Mosquitto's files: {e}"),
            })?
            .map_err(|e| HubError::MqttUrl {
                reason: format!(
                    "writing Mosquitto's files {} and {}: {e}",
                    files.passwd.display(),
                    files.acl.display()
                ),
            })?;
        tokio::spawn(mosquitto::run(
            store.clone(),
            options.topics.clone(),
            files,
            (target.username.clone(), target.password.clone()),
        ));
    }
    let subscriptions = vec![
        (options.topics.all_status(), QoS::AtLeastOnce),
        (options.topics.all_reported(), QoS::AtLeastOnce),
        (options.topics.all_static(), QoS::AtLeastOnce),
        (options.topics.all_events(), QoS::AtLeastOnce),
        (options.topics.all_metrics(), QoS::AtMostOnce),
        (options.topics.all_cmd_resp(), QoS::AtLeastOnce),
    ];
    let client_id = format!("kelp-controller-{}", identity.cluster_id);
    let (client, events) = link::connect(&target, &client_id, subscriptions, tls);
    let node_requests = requests::NodeRequests::new(
        identity.clone(),
        options.topics.clone(),
        Box::new(client.clone()),
    );
    let mut hub = Hub::new(
        store.clone(),
        identity,
        options.topics.clone(),
        options.cluster_cidr,
    );
    hub.set_node_grace(options.node_grace);
    hub.set_eviction_hard(options.eviction_hard);
    let event_store = hub.events();
    let metrics = hub.metrics();
    let task = tokio::spawn(run(
        hub,
        store,
        client,
        events,
        options.debounce,
        node_requests.clone(),
    ));
    Ok(Started {
        broker_url,
        embedded,
        task,
        requests: node_requests,
        events: event_store,
        metrics,
    })
}

const RELEVANT: [&str; 4] = ["Node", "Pod", "ConfigMap", "Secret"];

/// The hub task: follows the store and the link until the store closes.
/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The most messages handled in one batch.
const MAX_BATCH: usize = 4096;

async fn run(
    mut hub: Hub,
    store: Store,
    client: AsyncClient,
    mut events: tokio::sync::mpsc::Receiver<LinkEvent>,
    debounce: Duration,
    node_requests: Arc<requests::NodeRequests>,
) -> Result<(), HubError> {
    let mut watch = match store.watch(None, store.revision()) {
        Ok(watch) => watch,
        Err(StoreError::Closed) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    hub.follow();
    let mut due: Option<Instant> = Some(Instant::now());
    // Reports are written beside the hub (see ReportWriter), each node's newest only when
    // they come faster than the store takes them.
    let (reports_tx, mut reports_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Reported>>();
    let writer = hub.report_writer();
    let reports_task = tokio::spawn(async move {
        while let Some(mut reports) = reports_rx.recv().await {
            while let Ok(more) = reports_rx.try_recv() {
                reports.extend(more);
            }
            // In arrival order, each newer than the one before of its node: the last wins.
            let mut newest: HashMap<String, Reported> = HashMap::new();
            for reported in reports {
                newest.insert(reported.node.clone(), reported);
            }
            let reports: Vec<Reported> = newest.into_values().collect();
            match writer.apply(&reports).await {
                Ok(()) => {}
                Err(HubError::Store(StoreError::Closed)) => return,
                Err(err) => tracing::warn!(error = %err, "cannot apply nodes' reports"),
            }
        }
    });
    let _abort_reports = AbortOnDrop(reports_task);
    // How long the last sync took: the next waits at least that long after a change, so that
    // with a large store syncing leaves the hub time for the nodes' messages.
    let mut last_sync = Duration::ZERO;
    let mut silence = tokio::time::interval((hub.node_grace / 4).max(Duration::from_millis(100)));
    silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wait = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A due sync first: desired states are the latency that counts, and a busy
            // fleet's messages would otherwise keep it waiting.
            biased;
            () = wait => {
                due = None;
                let started = Instant::now();
                let result = hub.sync(&client).await;
                last_sync = started.elapsed();
                tracing::debug!(took = ?last_sync, "hub sync");
                match result {
                    Ok(false) => {}
                    Ok(true) => due = Some(Instant::now() + debounce.max(last_sync)),
                    Err(HubError::Store(StoreError::Closed)) => return Ok(()),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot publish desired state; retrying");
                        due = Some(Instant::now() + debounce.max(Duration::from_millis(500)));
                    }
                }
            }
            change = watch.next() => match change {
                Some(change) => {
                    hub.observe(&change);
                    if RELEVANT.contains(&change.object.key.kind.as_str()) && due.is_none() {
                        due = Some(Instant::now() + debounce.max(last_sync));
                    }
                }
                None => {
                    // The store closed, or this watch fell behind the change log: list
                    // again (a sync reads everything) and follow on from now.
                    watch = match store.watch(None, store.revision()) {
                        Ok(watch) => watch,
                        Err(StoreError::Closed) => return Ok(()),
                        Err(err) => return Err(err.into()),
                    };
                    hub.follow();
                    due = Some(Instant::now());
                }
            },
            event = events.recv() => match event {
                None => return Err(HubError::LinkGone),
                Some(LinkEvent::Connected) => {
                    tracing::info!("connected to the MQTT broker");
                    hub.forget_published();
                    due = Some(Instant::now());
                }
                Some(LinkEvent::Message { topic, payload }) => {
                    // Every message waiting is handled in one batch (see Hub::handle_batch):
                    // a busy fleet's reports are coalesced and written together.
                    let mut batch = Vec::new();
                    let mut connected = false;
                    let mut next = Some((topic, payload));
                    while let Some((topic, payload)) = next.take() {
                        if !node_requests.deliver(&topic, &payload) {
                            batch.push((topic, payload));
                        }
                        if batch.len() >= MAX_BATCH {
                            break;
                        }
                        match events.try_recv() {
                            Ok(LinkEvent::Message { topic, payload }) => next = Some((topic, payload)),
                            Ok(LinkEvent::Connected) => connected = true,
                            Err(_) => {}
                        }
                    }
                    let (size, started) = (batch.len(), Instant::now());
                    let result = hub.take_batch(batch).await;
                    tracing::debug!(size, took = ?started.elapsed(), "hub batch");
                    match result {
                        Ok(reports) if !reports.is_empty() => {
                            let _ = reports_tx.send(reports);
                        }
                        Ok(_) => {}
                        Err(_) => return Ok(()),
                    }
                    if connected {
                        tracing::info!("connected to the MQTT broker");
                        hub.forget_published();
                        due = Some(Instant::now());
                    }
                }
            },
            _ = silence.tick() => {
                match hub.check_silence().await {
                    Ok(()) => {}
                    Err(HubError::Store(StoreError::Closed)) => return Ok(()),
                    Err(err) => tracing::warn!(error = %err, "cannot mark silent nodes"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
