//! The agent's loop: level-triggered, like the kubelet's sync loop. Every period it reads what
//! should run (static pod manifests for now), lists what runs (monitors' state files), and lets
//! each pod worker act: start containers, restart them after their back-off, terminate pods
//! that are no longer wanted, and record each pod's status. Nothing it keeps in memory is
//! needed to carry on after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use kelp_shared::api::core::{ConfigMap, Pod, Secret};
use kelp_shared::api::meta::Time;

use std::cell::RefCell;

use crate::image::{
    pull_decision, DockerConfigJson, ImageRecord, ImageStore, PullDecision, PullOptions,
    PullPolicy, RegistriesConfig, RegistryOptions,
};
use crate::link::local_copy;
use crate::link::secret_dir::SecretDir;
use crate::link::{Link, LinkConfig};
use crate::network::{nft, NetworkConfig};
use crate::pod::{self, Action, BackOff, Kind, PodView};
use crate::runtime::spec::{self, EnvLookup, EtcFiles, SpecInput};
use crate::runtime::state::{read_json, write_json, MonitorInfo, PodNetwork, SandboxConfig};
use crate::runtime::{
    monitor, ContainerRequest, ContainerRuntime, MonitorRuntime, RuntimeConfig, SandboxRequest,
};
use crate::static_pods::{self, Desired, DesiredPod};
use crate::store::{LocalState, PodRecord};
use kelp_shared::wire::{DesiredState, Generation};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub manifests_dir: PathBuf,
    pub runtime: RuntimeConfig,
    /// How often the loop relists (the kubelet's PLEG relists every second).
    pub sync_period: Duration,
    pub backoff: BackOff,
    pub pids_limit: Option<i64>,
    /// The node's registries file ([`crate::image::REGISTRIES_FILE`]); absent is fine.
    pub registries_file: PathBuf,
    /// Image garbage collection: above this percentage of the image store's disk in use,
    /// unused images go, oldest first, until usage is below `image_gc_low` (the kubelet's
    /// 85 and 80).
    pub image_gc_high: f64,
    pub image_gc_low: f64,
    /// The node's pod network (bridge and pod CIDR); None gives pods only `lo` (unless
    /// `link_bridge` is set).
    pub network: Option<NetworkConfig>,
    /// With a link and no `network`: the bridge of a pod network whose CIDR is the one the
    /// controller gave the node (its Node's `spec.podCIDR`, in the desired state). Pods that
    /// need the network wait until it is known.
    pub link_bridge: Option<String>,
    /// The node's address (`--node-ip`); detected when None.
    pub node_ip: Option<Ipv4Addr>,
    /// The cluster the node joined (`--join-file`); None runs static pods only.
    pub link: Option<LinkConfig>,
    /// Multiplies every probe duration (delays, periods, timeouts, probe kill grace): 0.1 runs
    /// probes at a tenth of real time, for tests.
    pub probe_time_scale: f64,
    /// Metrics sampling and publishing (with a link); None: no metrics.
    pub metrics: Option<crate::metrics::MetricsConfig>,
}

/// The status file of a pod (`<run-dir>/pods/<uid>/status.json`), read by `kelp-agent pods`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub status: kelp_shared::api::core::PodStatus,
    /// The pod's recent events (pulls, back-offs), newest last.
    #[serde(default)]
    pub events: Vec<crate::events::Event>,
}

#[derive(Default)]
struct Worker {
    last_report: Option<PodReport>,
    /// When termination was asked for, and by when it must be over.
    terminating: Option<Instant>,
    /// Last problem logged, so a persistent one is logged once.
    last_problem: Option<String>,
    events: Vec<crate::events::Event>,
    /// What the probes of each container's run had reported at the last sync, so each new
    /// failure and probe kill becomes one event; None before the first sync.
    probes_seen: Option<BTreeMap<String, ProbesSeen>>,
    /// Per container in crash-loop back-off: the restart count its `BackOff` event was
    /// recorded at (one event per back-off, not one per sync).
    backoff_noted: BTreeMap<String, i32>,
    /// The pod's sandbox could not be created: failed attempts in a row and when to try
    /// again (the restart back-off's delays).
    sandbox_failure: Option<(u32, Instant)>,
}

/// A run (by start time) and its probes' record, as last seen.
type ProbesSeen = (Option<String>, crate::probe::RunProbes);

pub struct Agent {
    config: AgentConfig,
    runtime: MonitorRuntime,
    images: ImageStore,
    state: LocalState,
    records: BTreeMap<String, PodRecord>,
    workers: BTreeMap<String, Worker>,
    last_errors: Vec<String>,
    /// The node's registries file (mirrors, plain-HTTP registries, credentials, CAs).
    registries: RegistriesConfig,
    /// Failed pulls by (pod UID, image): when the next try may happen, and the back-off level.
    pull_backoff: RefCell<BTreeMap<(String, String), PullBackOff>>,
    /// Events recorded while a pod is synced: (pod UID, warning, reason, message).
    pending_events: RefCell<Vec<(String, bool, &'static str, String)>>,
    /// The node's own events (image garbage collection), in `<run-dir>/events.json`.
    node_events: RefCell<Vec<crate::events::Event>>,
    /// Events on their way to the controller (when the node joined a cluster).
    outbox: RefCell<crate::events::Outbox>,
    /// The node's address (`status.hostIP`).
    node_ip: Option<Ipv4Addr>,
    /// The pod address handed out last: the next pod gets the next free one.
    last_pod_ip: Option<Ipv4Addr>,
    /// The nftables script applied last (rules change only when pods come and go).
    applied_rules: Option<String>,
    /// Whether veths left by pods that vanished while the agent was down have been swept.
    swept_veths: bool,
    /// The pod network's last problem, logged once.
    network_problem: Option<String>,
    /// The MQTT link to the controller, when the node joined a cluster.
    link: Option<LinkState>,
    /// Stops the metrics collector's thread (when there is one) when the agent goes.
    metrics_stop: Arc<AtomicBool>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.metrics_stop.store(true, Ordering::Relaxed);
    }
}

/// The agent's side of the link: the session, the desired state it applies, what it
/// reported last.
struct LinkState {
    link: Link,
    config: LinkConfig,
    /// The newest verified desired state (persisted before it is used: agent.redb, and its
    /// Secrets in `secrets`; see [`crate::link::local_copy`]).
    desired: Option<DesiredState>,
    /// The Secrets of the desired state, apart from agent.redb.
    secrets: SecretDir,
    /// Some Secret of the persisted copy was refused: the controller's copy of the same
    /// generation is taken.
    incomplete: bool,
    boot_id: kelp_shared::wire::BootId,
    start_unix_ms: u64,
    seq: u64,
    /// What was published last (pods and generation); None forces the next publish.
    published: Option<(Vec<kelp_shared::wire::PodReport>, Option<Generation>)>,
    /// Whether the link said the session is up and the node's name is ours: nothing is
    /// reported before.
    ready: bool,
    /// The static pods published last (as JSON); None forces the next publish.
    static_published: Option<Vec<Vec<u8>>>,
}

struct Lookup<'a> {
    namespace: &'a str,
    desired: &'a Desired,
}

impl EnvLookup for Lookup<'_> {
    fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        self.desired
            .config_maps
            .get(&(self.namespace.to_string(), name.to_string()))
    }
    fn secret(&self, name: &str) -> Option<&Secret> {
        self.desired
            .secrets
            .get(&(self.namespace.to_string(), name.to_string()))
    }
}

/// When a failed pull may be tried again, and its back-off level.
type PullBackOff = (chrono::DateTime<Utc>, u32);

/// The link ended because another live agent runs as this node; the agent must stop.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// A container that cannot be created until something changes: Kubernetes reason + message.
struct Blocked(&'static str, String);

impl Agent {
    pub fn new(config: AgentConfig) -> Result<Self> {
        if crate::runtime::fsutil::ensure_tmpfs(&config.runtime.run_dir)? {
            tracing::info!(
                "{} was not on tmpfs: mounted one there",
                config.runtime.run_dir.display()
            );
        }
        let runtime = MonitorRuntime::new(config.runtime.clone())?;
        if let Some(network) = &config.network {
            network.setup_host().context("setting up the pod network")?;
        }
        let node_ip = config.node_ip.or_else(|| {
            crate::network::detect_node_ip(config.network.as_ref().map(|n| n.pod_cidr))
        });
        let images = ImageStore::open(config.runtime.state_dir.join("images"))?;
        let mut state = LocalState::open(&config.runtime.state_dir.join("agent.redb"))?;
        let records = state.pods()?;
        let link = match &config.link {
            Some(link_config) => {
                let requests =
                    crate::requests::Requests::new(config.runtime.clone(), &config.node_name);
                Some(start_link(
                    link_config,
                    &mut state,
                    &config.runtime.state_dir,
                    &config.node_name,
                    node_ip,
                    requests,
                )?)
            }
            None => None,
        };
        let metrics_stop = Arc::new(AtomicBool::new(false));
        if let (Some(metrics), Some(link)) = (&config.metrics, &link) {
            // Metrics are not worth stopping pods for: without them the node runs on.
            match crate::metrics::Collector::open(config.runtime.clone()) {
                Ok(collector) => {
                    crate::metrics::spawn(
                        metrics.clone(),
                        collector,
                        Box::new(link.link.metrics_publisher()?),
                        link.boot_id,
                        link.start_unix_ms,
                        metrics_stop.clone(),
                    )
                    .context("starting the metrics thread")?;
                }
                Err(e) => tracing::error!("metrics are off: the collector cannot start: {e:#}"),
            }
        }
        Ok(Self {
            metrics_stop,
            runtime,
            images,
            state,
            records,
            workers: BTreeMap::new(),
            last_errors: Vec::new(),
            registries: RegistriesConfig::load_if_present(&config.registries_file)
                .with_context(|| format!("{}", config.registries_file.display()))?,
            pull_backoff: RefCell::new(BTreeMap::new()),
            pending_events: RefCell::new(Vec::new()),
            node_events: RefCell::new(Vec::new()),
            outbox: RefCell::default(),
            node_ip,
            last_pod_ip: None,
            applied_rules: None,
            swept_veths: false,
            network_problem: None,
            link,
            config,
        })
    }

    /// Runs the loop until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        tracing::info!(
            node = %self.config.node_name,
            manifests = %self.config.manifests_dir.display(),
            "kelp-agent running"
        );
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.sync_once() {
                if let Some(Refused(why)) = e.downcast_ref::<Refused>() {
                    anyhow::bail!("{why}");
                }
                tracing::error!("sync: {e:#}");
            }
            std::thread::sleep(self.config.sync_period);
        }
        Ok(())
    }

    /// One pass of the loop.
    pub fn sync_once(&mut self) -> Result<()> {
        self.runtime.reap_children();
        self.receive_desired()?;
        self.adopt_pod_cidr();
        let mut desired = static_pods::read_dir(&self.config.manifests_dir, &self.config.node_name);
        let statics = self.static_pods_json(&desired);
        if let Some(state) = self.link.as_ref().and_then(|l| l.desired.as_ref()) {
            add_linked(&mut desired, state);
        }
        if desired.errors != self.last_errors {
            for e in &desired.errors {
                tracing::error!("manifest: {e}");
            }
            self.last_errors = desired.errors.clone();
        }
        let wanted: BTreeSet<String> = desired.pods.iter().map(|p| p.uid.clone()).collect();
        // The table's masquerade rule must exist before a pod's first packet: a connection
        // conntrack has seen without NAT stays without it.
        if self.config.network.is_some() && self.applied_rules.is_none() {
            let result = self.sync_network();
            self.report_network(result);
        }
        for dp in &desired.pods {
            if let Err(e) = self.sync_pod(dp, &desired) {
                self.problem(
                    &dp.uid,
                    format!(
                        "pod {}: {e:#}",
                        dp.pod.metadata.name.as_deref().unwrap_or("")
                    ),
                );
            }
        }
        let mut gone: BTreeSet<String> = self.runtime.sandboxes()?.into_iter().collect();
        gone.extend(self.records.keys().cloned());
        for uid in gone.difference(&wanted) {
            if let Err(e) = self.terminate_pod(uid) {
                self.problem(uid, format!("terminating pod {uid}: {e:#}"));
            }
        }
        let result = self.sync_network();
        self.report_network(result);
        if let Err(e) = self.publish_reported() {
            tracing::warn!("publishing the reported state: {e:#}");
        }
        if let Err(e) = self.publish_static(statics) {
            tracing::warn!("publishing the static pods: {e:#}");
        }
        if let Some(link) = self.link.as_ref().filter(|l| l.ready) {
            let sent = self.outbox.borrow_mut().flush(
                link.boot_id,
                link.start_unix_ms,
                Instant::now(),
                |batch| link.link.publish_events(batch),
            );
            if let Err(e) = sent {
                tracing::warn!("publishing events: {e:#}");
            }
        }
        if let Err(e) = self.collect_images(&desired) {
            tracing::error!("image garbage collection: {e:#}");
        }
        Ok(())
    }

    /// Takes what the link received: a newer desired state is persisted, then used.
    fn receive_desired(&mut self) -> Result<()> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        while let Ok(message) = link.link.inbox.try_recv() {
            match message {
                crate::link::Inbound::Connected => {
                    link.published = None;
                    link.static_published = None;
                    link.ready = true;
                }
                crate::link::Inbound::Dropped(why) => tracing::warn!("{why}"),
                crate::link::Inbound::Refused(why) => anyhow::bail!(Refused(why)),
                crate::link::Inbound::Desired(state) => {
                    let newer = link.desired.as_ref().is_none_or(|old| {
                        state.generation.revision > old.generation.revision
                            || (link.incomplete
                                && state.generation.revision == old.generation.revision)
                    });
                    if !newer {
                        // The same generation again (every reconnection) is no news.
                        let applied = link.desired.as_ref().map(|d| d.generation.revision);
                        if applied != Some(state.generation.revision) {
                            tracing::warn!(
                                "desired state of generation {} ignored: generation {} applied already",
                                state.generation.revision,
                                link.desired.as_ref().map_or(0, |d| d.generation.revision)
                            );
                        }
                        continue;
                    }
                    local_copy::save(
                        &self.state,
                        &link.secrets,
                        &state,
                        &link.config.controller_key,
                    )
                    .context("persisting the desired state")?;
                    link.incomplete = false;
                    tracing::info!(
                        generation = state.generation.revision,
                        objects = state.objects_json.len(),
                        "desired state received"
                    );
                    link.desired = Some(*state);
                    link.published = None;
                }
            }
        }
        Ok(())
    }

    /// Takes the pod CIDR the controller gave the node (its Node's `spec.podCIDR` in the
    /// desired state) as the pod network's, when the node runs with `link_bridge`.
    fn adopt_pod_cidr(&mut self) {
        let Some(bridge) = self.config.link_bridge.clone() else {
            return;
        };
        let Some(state) = self.link.as_ref().and_then(|l| l.desired.as_ref()) else {
            return;
        };
        let Some(cidr) = node_pod_cidr(state) else {
            return;
        };
        let cidr: crate::network::Cidr = match cidr.parse() {
            Ok(c) => c,
            Err(e) => {
                self.report_network(Err(anyhow::anyhow!(
                    "the Node's spec.podCIDR {cidr:?} from the controller: {e}"
                )));
                return;
            }
        };
        if self.config.network.as_ref().map(|n| n.pod_cidr) == Some(cidr) {
            return;
        }
        let result = NetworkConfig::new(&bridge, cidr).and_then(|network| {
            network.setup_host().context("setting up the pod network")?;
            Ok(network)
        });
        match result {
            Ok(network) => {
                tracing::info!(pod_cidr = %cidr, bridge = %bridge, "pod network from the controller");
                if self.node_ip.is_none() {
                    self.node_ip = crate::network::detect_node_ip(Some(cidr));
                }
                self.config.network = Some(network);
                self.applied_rules = None;
                self.swept_veths = false;
            }
            Err(e) => self.report_network(Err(e)),
        }
    }

    /// Publishes the node's pod statuses when they changed (or a new session began).
    fn publish_reported(&mut self) -> Result<()> {
        let Some(link) = self.link.as_mut().filter(|l| l.ready) else {
            return Ok(());
        };
        let pods: Vec<kelp_shared::wire::PodReport> = self
            .workers
            .iter()
            .filter_map(|(uid, w)| {
                let r = w.last_report.as_ref()?;
                Some(crate::link::report::pod_report(
                    &r.namespace,
                    &r.name,
                    uid,
                    &r.status,
                ))
            })
            .collect();
        let generation = link.desired.as_ref().map(|d| d.generation);
        let current = (pods, generation);
        if link.published.as_ref() == Some(&current) {
            return Ok(());
        }
        link.seq += 1;
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let reported = kelp_shared::wire::Reported {
            node: link.config.node.clone(),
            boot_id: link.boot_id,
            agent_start_unix_ms: link.start_unix_ms,
            seq: link.seq,
            applied_generation: generation,
            pods: current.0.clone(),
            conditions: crate::link::report::node_conditions(now_ms),
        };
        if link.link.publish_reported(&reported)? {
            link.published = Some(current);
        }
        Ok(())
    }

    /// The static pods of `desired` (read from the manifest directory) as the JSON Pods the
    /// controller mirrors: UID, namespace and `spec.nodeName` filled in.
    fn static_pods_json(&self, desired: &Desired) -> Vec<Vec<u8>> {
        if self.link.is_none() {
            return Vec::new();
        }
        desired
            .pods
            .iter()
            .filter_map(|dp| {
                let mut pod = dp.pod.clone();
                pod.metadata.uid = Some(dp.uid.clone());
                if pod.metadata.namespace.is_none() {
                    pod.metadata.namespace = Some("default".into());
                }
                if let Some(spec) = pod.spec.as_mut() {
                    spec.node_name = Some(self.config.node_name.clone());
                }
                serde_json::to_vec(&pod).ok()
            })
            .collect()
    }

    /// Publishes the node's static pods when they changed (or a new session began).
    fn publish_static(&mut self, pods: Vec<Vec<u8>>) -> Result<()> {
        let Some(link) = self.link.as_mut().filter(|l| l.ready) else {
            return Ok(());
        };
        if link.static_published.as_ref() == Some(&pods) {
            return Ok(());
        }
        link.seq += 1;
        let message = kelp_shared::wire::StaticPods {
            node: link.config.node.clone(),
            boot_id: link.boot_id,
            agent_start_unix_ms: link.start_unix_ms,
            seq: link.seq,
            pods_json: pods.clone(),
        };
        if link.link.publish_static(&message)? {
            link.static_published = Some(pods);
        }
        Ok(())
    }

    /// Records an event of pod `uid`, kept with its status at the end of its sync.
    fn event(&self, uid: &str, warning: bool, reason: &'static str, message: String) {
        self.pending_events
            .borrow_mut()
            .push((uid.to_string(), warning, reason, message));
    }

    /// Queues an event about `object` for the controller, when the node joined a cluster.
    fn send_event(
        &self,
        object: kelp_shared::wire::ObjectRef,
        warning: bool,
        reason: &str,
        message: &str,
    ) {
        if self.link.is_some() {
            let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
            self.outbox
                .borrow_mut()
                .record(object, warning, reason, message, now_ms);
        }
    }

    /// Percentage of the image store's filesystem in use.
    fn image_disk_used(&self) -> Result<f64> {
        let st = rustix::fs::statvfs(self.images.root())?;
        if st.f_blocks == 0 {
            return Ok(0.0);
        }
        Ok(100.0 * (st.f_blocks - st.f_bfree) as f64 / st.f_blocks as f64)
    }

    /// Image garbage collection by disk thresholds, as the kubelet's: unused images, the
    /// longest unused (oldest stored) first. An image a desired pod names, or that a pod still
    /// on the node uses, is never removed: an offline node must be able to restart its pods.
    fn collect_images(&self, desired: &Desired) -> Result<()> {
        let used = self.image_disk_used()?;
        if used < self.config.image_gc_high {
            return Ok(());
        }
        // What the node was told to run (persisted in agent.redb), what it reads now, and what
        // is still on it.
        let mut in_use: Vec<Pod> = desired.pods.iter().map(|p| p.pod.clone()).collect();
        in_use.extend(self.records.values().map(|r| r.pod.clone()));
        for uid in self.runtime.sandboxes()? {
            if let Some(pod) = read_json::<Pod>(&self.runtime.config.pod_paths(&uid).pod())? {
                in_use.push(pod);
            }
        }
        let mut keep = BTreeSet::new();
        for pod in &in_use {
            for c in pod::init_containers(pod)
                .iter()
                .chain(pod::app_containers(pod))
            {
                if let Some(record) = self.images.get(c.image.as_deref().unwrap_or(""))? {
                    keep.insert(record.manifest_digest.as_str().to_string());
                }
            }
        }
        let mut unused: Vec<(std::time::SystemTime, ImageRecord)> = self
            .images
            .list()?
            .into_iter()
            .filter(|r| !keep.contains(r.manifest_digest.as_str()))
            .map(|r| {
                let stored = fs::metadata(self.images.blob_path(&r.manifest_digest))
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (stored, r)
            })
            .collect();
        unused.sort_by_key(|(t, _)| *t);
        for (_, image) in unused {
            let now_used = self.image_disk_used()?;
            if now_used < self.config.image_gc_low {
                break;
            }
            self.images.remove(&image.reference)?;
            let message = format!(
                "Removed unused image {:?} ({}) to free disk space: {now_used:.0}% used, over the {}% threshold",
                image.reference,
                image.manifest_digest.as_str(),
                self.config.image_gc_high
            );
            let node = kelp_shared::wire::ObjectRef {
                kind: "Node".into(),
                namespace: String::new(),
                name: self.config.node_name.clone(),
                uid: String::new(),
            };
            self.send_event(node, false, "ImageGCRemoved", &message);
            crate::events::record(
                &mut self.node_events.borrow_mut(),
                false,
                "ImageGCRemoved",
                message,
            );
            write_json(
                &self.runtime.config.run_dir.join("events.json"),
                &*self.node_events.borrow(),
            )?;
            tracing::info!(
                "Removed unused image {:?} ({}): disk {now_used:.0}% used, over the {}% threshold",
                image.reference,
                image.manifest_digest.as_str(),
                self.config.image_gc_high
            );
        }
        Ok(())
    }

    fn problem(&mut self, uid: &str, message: String) {
        let worker = self.workers.entry(uid.to_string()).or_default();
        if worker.last_problem.as_ref() != Some(&message) {
            tracing::error!("{message}");
            worker.last_problem = Some(message);
        }
    }

    fn sync_pod(&mut self, dp: &DesiredPod, desired: &Desired) -> Result<()> {
        let uid = dp.uid.as_str();
        if self.records.get(uid).is_none_or(|r| r.pod != dp.pod) {
            let restarts = self
                .records
                .get(uid)
                .map(|r| r.restarts.clone())
                .unwrap_or_default();
            let record = PodRecord {
                pod: dp.pod.clone(),
                restarts,
            };
            self.state.put(uid, &record)?;
            self.records.insert(uid.to_string(), record);
        }
        let pod = &dp.pod;
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let name = meta.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().context("pod without spec")?;
        // A sandbox that failed is tried again once its back-off is over.
        if self
            .workers
            .get(uid)
            .and_then(|w| w.sandbox_failure)
            .is_some_and(|(_, retry_at)| Instant::now() < retry_at)
        {
            return Ok(());
        }
        let network = self.pod_network(uid, spec.host_network.unwrap_or(false))?;
        let sandbox = self.runtime.ensure_sandbox(&SandboxRequest {
            uid: uid.to_string(),
            namespace: namespace.clone(),
            name: name.clone(),
            hostname: spec.hostname.clone().unwrap_or_else(|| name.clone()),
            share_pid: spec.share_process_namespace.unwrap_or(false),
            network: network.clone(),
        });
        let info = match sandbox {
            Ok(info) => info,
            Err(e) => {
                self.sandbox_failed(uid, pod, &network, &e);
                return Ok(());
            }
        };
        if let Some(worker) = self.workers.get_mut(uid) {
            worker.sandbox_failure = None;
        }
        let paths = self.runtime.config.pod_paths(uid);
        if !paths.pod().exists() {
            write_json(&paths.pod(), pod)?;
        }

        let mut blocked = BTreeMap::new();
        let runs = self.runtime.container_runs(uid)?;
        let restarts = self.records[uid].restarts.clone();
        let view = PodView {
            pod,
            runs: &runs,
            restarts: &restarts,
            blocked: &blocked,
            backoff: self.config.backoff,
            now: Utc::now(),
        };
        let actions = view.actions();
        let mut new_restarts = restarts.clone();
        for Action::Start { kind, index } in actions {
            let container = match kind {
                Kind::Init => &pod::init_containers(pod)[index],
                Kind::App => &pod::app_containers(pod)[index],
            };
            let previous = runs.get(&container.name);
            let count = new_restarts
                .get(&container.name)
                .copied()
                .unwrap_or_default();
            let next = match previous {
                Some(run) => pod::next_restarts(count, run, &self.config.backoff),
                None => count,
            };
            match self.start_container(dp, desired, (&info, &network), kind, index, next.count) {
                Ok(pid) => {
                    tracing::info!(pod = %name, container = %container.name, pid, restarts = next.count, "started");
                    let c = &container.name;
                    self.event(uid, false, "Created", format!("Created container {c}"));
                    self.event(uid, false, "Started", format!("Started container {c}"));
                    new_restarts.insert(container.name.clone(), next);
                }
                Err(Err(e)) => {
                    // The monitor recorded the failed start; back-off applies as for a crash.
                    tracing::warn!(pod = %name, container = %container.name, "start failed: {e:#}");
                    self.event(uid, true, "Failed", format!("Error: {e:#}"));
                    new_restarts.insert(container.name.clone(), next);
                }
                Err(Ok(Blocked(reason, message))) => {
                    blocked.insert(container.name.clone(), (reason.to_string(), message));
                }
            }
        }
        if new_restarts != restarts {
            let record = self.records.get_mut(uid).expect("recorded above");
            record.restarts = new_restarts;
            self.state.put(uid, record)?;
        }

        if let Err(e) = self.runtime.collect_garbage(uid) {
            tracing::warn!(pod = %name, "deleting old writable layers: {e:#}");
        }
        let runs = self.runtime.container_runs(uid)?;
        self.probe_events(uid, pod, &runs);
        let restarts = &self.records[uid].restarts;
        let view = PodView {
            pod,
            runs: &runs,
            restarts,
            blocked: &blocked,
            backoff: self.config.backoff,
            now: Utc::now(),
        };
        let created = fs::metadata(&paths.dir)
            .and_then(|m| m.created().or_else(|_| m.modified()))
            .ok()
            .map(|t| Time(chrono::DateTime::<Utc>::from(t).with_nanosecond_zero()));
        let status = view.status(created);
        // One `BackOff` per crash-loop back-off of a container, as the kubelet reports them.
        let worker = self.workers.entry(uid.to_string()).or_default();
        for c in status.container_statuses.iter().flatten() {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            if waiting.and_then(|w| w.reason.as_deref()) != Some("CrashLoopBackOff") {
                continue;
            }
            if worker.backoff_noted.get(&c.name) != Some(&c.restart_count) {
                worker.backoff_noted.insert(c.name.clone(), c.restart_count);
                self.pending_events.borrow_mut().push((
                    uid.to_string(),
                    true,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {name}_{namespace}({uid})",
                        c.name
                    ),
                ));
            }
        }
        self.report_pod(uid, &namespace, &name, status, &network)
    }

    /// A sandbox that could not be created (namespaces, cgroups, the pod's monitor) for pod
    /// `uid`, which `sync_pod` has recorded: the pod stays Pending with its containers waiting
    /// in ContainerCreating, a `FailedCreatePodSandBox` event says why, as the kubelet's, and
    /// the next attempt waits out the restart back-off (10 s doubling to 300 s) instead of
    /// retrying every sync.
    fn sandbox_failed(&mut self, uid: &str, pod: &Pod, network: &PodNetwork, e: &anyhow::Error) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let worker = self.workers.entry(uid.to_string()).or_default();
        let attempts = worker.sandbox_failure.map_or(0, |(n, _)| n) + 1;
        let delay = self.config.backoff.delay(attempts - 1);
        worker.sandbox_failure = Some((attempts, Instant::now() + delay));
        tracing::warn!(
            pod = %name,
            attempts,
            retry_in_ms = delay.as_millis() as u64,
            "pod sandbox not created: {e:#}"
        );
        self.event(
            uid,
            true,
            "FailedCreatePodSandBox",
            format!("Failed to create pod sandbox: {e:#}"),
        );
        // No container has run: all wait in ContainerCreating (or PodInitializing).
        let status = PodView {
            pod,
            runs: &BTreeMap::new(),
            restarts: &self.records[uid].restarts,
            blocked: &BTreeMap::new(),
            backoff: self.config.backoff,
            now: Utc::now(),
        }
        .status(None);
        if let Err(e) = self.report_pod(uid, namespace, name, status, network) {
            tracing::warn!(pod = %name, "recording the pod's status: {e:#}");
        }
    }

    /// Ends a pod's sync: its pending events go to the controller's outbox and its own list,
    /// and its status (with the pod's addresses) becomes the report the agent publishes and
    /// keeps in the pod's directory.
    fn report_pod(
        &mut self,
        uid: &str,
        namespace: &str,
        name: &str,
        mut status: kelp_shared::api::core::PodStatus,
        network: &PodNetwork,
    ) -> Result<()> {
        let object = kelp_shared::wire::ObjectRef {
            kind: "Pod".into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
        };
        let worker = self.workers.entry(uid.to_string()).or_default();
        for (_, warning, reason, message) in self
            .pending_events
            .borrow_mut()
            .extract_if(.., |(u, ..)| u == uid)
        {
            if self.link.is_some() {
                let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
                self.outbox
                    .borrow_mut()
                    .record(object.clone(), warning, reason, &message, now_ms);
            }
            crate::events::record(&mut worker.events, warning, reason, message);
        }
        status.host_ip = network.host_ip.map(|ip| ip.to_string());
        status.pod_ip = network.pod_ip.map(|ip| ip.to_string());
        status.pod_ips = status
            .pod_ip
            .clone()
            .map(|ip| vec![kelp_shared::api::core::PodIp { ip }]);
        let report = PodReport {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            status,
            events: worker.events.clone(),
        };
        if worker.last_report.as_ref() != Some(&report) {
            // A pod without a sandbox has no directory to keep its status in.
            let paths = self.runtime.config.pod_paths(uid);
            if paths.dir.is_dir() {
                write_json(&paths.status(), &report)?;
            }
            worker.last_report = Some(report);
        }
        worker.last_problem = None;
        Ok(())
    }

    /// Starts one container; `Err(Ok(Blocked))` when it cannot be created as things are,
    /// `Err(Err(_))` when the runtime failed.
    fn start_container(
        &self,
        dp: &DesiredPod,
        desired: &Desired,
        (info, network): (&MonitorInfo, &PodNetwork),
        kind: Kind,
        index: usize,
        attempt: u32,
    ) -> std::result::Result<i32, std::result::Result<Blocked, anyhow::Error>> {
        let pod = &dp.pod;
        let uid = dp.uid.as_str();
        let (container, field_path) = match kind {
            Kind::Init => (
                &pod::init_containers(pod)[index],
                format!("spec.initContainers[{index}]"),
            ),
            Kind::App => (
                &pod::app_containers(pod)[index],
                format!("spec.containers[{index}]"),
            ),
        };
        let reference = container.image.clone().unwrap_or_default();
        let image = self.image_for(dp, desired, container, &reference)?;
        let volumes = self.prepare_volumes(pod, uid, desired)?;
        let paths = self.runtime.config.pod_paths(uid);
        let etc = paths.etc();
        let etc_files = EtcFiles {
            hosts: etc.join("hosts"),
            resolv_conf: etc.join("resolv.conf"),
            hostname: etc.join("hostname"),
        };
        let namespaces = info.namespaces();
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let lookup = Lookup { namespace, desired };
        let rootfs = self
            .runtime
            .prepare_rootfs(uid, &container.name, &image.lower_dirs())
            .map_err(Err)?;
        let spec = spec::build_spec(&SpecInput {
            pod,
            container,
            field_path,
            image: &image.config,
            rootfs: &rootfs,
            namespaces: &namespaces,
            cgroups_path: monitor::container_cgroup(
                &self.runtime.config.pod_cgroup(uid),
                &container.name,
            ),
            etc_files: &etc_files,
            volumes: &volumes,
            lookup: &lookup,
            node_name: &self.config.node_name,
            node_allocatable: None,
            pod_ip: network.pod_ip.map(|ip| ip.to_string()).as_deref(),
            host_ip: network.host_ip.map(|ip| ip.to_string()).as_deref(),
            pids_limit: self.config.pids_limit,
        })
        .map_err(|e| Ok(Blocked("CreateContainerConfigError", e.to_string())))?;
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let log = self
            .runtime
            .config
            .pod_log_dir(namespace, name, uid)
            .join(format!("{}.log", container.name));
        self.runtime
            .run_container(ContainerRequest {
                uid,
                name: &container.name,
                attempt,
                spec,
                log,
                // Probes are for app containers (init containers may not have them).
                probes: match kind {
                    Kind::App => crate::probe::container_probes(
                        container,
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds),
                        self.config.probe_time_scale,
                    ),
                    Kind::Init => Vec::new(),
                },
            })
            .map_err(Err)
    }

    /// Records the events of what the probes found since the last sync, as the kubelet
    /// does: `Unhealthy` for each failed probe, `Killing` when a failed liveness or startup
    /// probe had the container killed. The first sync after the agent started only takes
    /// note: what happened before was reported then.
    fn probe_events(
        &mut self,
        uid: &str,
        pod: &Pod,
        runs: &BTreeMap<String, crate::runtime::state::ContainerRun>,
    ) {
        let worker = self.workers.entry(uid.to_string()).or_default();
        let first = worker.probes_seen.is_none();
        let seen = worker.probes_seen.get_or_insert_with(BTreeMap::new);
        let mut events = Vec::new();
        for run in runs.values() {
            let Some(now) = &run.probes else {
                continue;
            };
            let previous = seen
                .get(&run.name)
                .filter(|(started, _)| *started == run.started_at)
                .map(|(_, p)| p.clone())
                .unwrap_or_default();
            if !first {
                let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
                events.extend(crate::probe::events(&run.name, policy, &previous, now));
            }
            seen.insert(run.name.clone(), (run.started_at.clone(), now.clone()));
        }
        seen.retain(|name, _| runs.contains_key(name));
        for (warning, reason, message) in events {
            self.event(uid, warning, reason, message);
        }
    }

    /// The image of a container, pulled when its pull policy says so. Pull failures back off
    /// as container restarts do (`ImagePullBackOff`). A node that cannot reach its registry
    /// keeps running what it has: with `Always`, a stored image is used when the registry is
    /// unreachable (the kubelet would fail the start; edge nodes go offline often).
    fn image_for(
        &self,
        dp: &DesiredPod,
        desired: &Desired,
        container: &kelp_shared::api::core::Container,
        reference: &str,
    ) -> std::result::Result<ImageRecord, std::result::Result<Blocked, anyhow::Error>> {
        let present = self
            .images
            .get(reference)
            .map_err(|e| Err(anyhow::anyhow!("image store: {e}")))?;
        let policy = PullPolicy::from_spec(container.image_pull_policy.as_deref(), reference);
        match pull_decision(policy, present.is_some()) {
            PullDecision::UsePresent => {
                let message = format!("Container image {reference:?} already present on machine");
                self.event(&dp.uid, false, "Pulled", message);
                return Ok(present.expect("present"));
            }
            PullDecision::NeverPull => {
                return Err(Ok(Blocked(
                    "ErrImageNeverPull",
                    format!(
                        "Container image {reference:?} is not present with pull policy of Never"
                    ),
                )))
            }
            PullDecision::Pull => {}
        }
        let key = (dp.uid.clone(), reference.to_string());
        let now = Utc::now();
        let level = match self.pull_backoff.borrow().get(&key) {
            Some((until, _)) if *until > now => {
                return match present {
                    Some(image) => Ok(image),
                    None => {
                        let message = format!("Back-off pulling image {reference:?}");
                        self.event(&dp.uid, true, "BackOff", message.clone());
                        Err(Ok(Blocked("ImagePullBackOff", message)))
                    }
                }
            }
            Some((_, level)) => *level,
            None => 0,
        };
        tracing::info!(pod = %dp.pod.metadata.name.as_deref().unwrap_or(""), "Pulling image {reference:?}");
        self.event(
            &dp.uid,
            false,
            "Pulling",
            format!("Pulling image {reference:?}"),
        );
        let options = PullOptions {
            registry: RegistryOptions {
                registries: self.registries.clone(),
                secrets: pull_secrets(&dp.pod, desired),
                ..Default::default()
            },
            ..Default::default()
        };
        match self.images.pull_report(reference, &options) {
            Ok(report) => {
                self.pull_backoff.borrow_mut().remove(&key);
                tracing::info!(pod = %dp.pod.metadata.name.as_deref().unwrap_or(""), "{}", report.message());
                self.event(&dp.uid, false, "Pulled", report.message());
                Ok(report.image)
            }
            Err(e) => {
                let delay = chrono::Duration::from_std(self.config.backoff.delay(level))
                    .unwrap_or_else(|_| chrono::Duration::seconds(300));
                self.pull_backoff
                    .borrow_mut()
                    .insert(key, (now + delay, level + 1));
                let transient =
                    matches!(&e, crate::image::ImageError::Registry(r) if r.is_transient());
                match present {
                    Some(image) if transient => {
                        tracing::warn!("registry unreachable, using the stored {reference:?}: {e}");
                        Ok(image)
                    }
                    _ => {
                        let message = format!("Failed to pull image {reference:?}: {e}");
                        self.event(&dp.uid, true, "Failed", message);
                        Err(Ok(Blocked("ErrImagePull", e.to_string())))
                    }
                }
            }
        }
    }

    /// The pod's volumes as host paths ([`crate::volume::prepare`]). A volume that cannot be
    /// set up keeps the container waiting in `ContainerCreating` and records a `FailedMount`
    /// warning, as the kubelet does.
    fn prepare_volumes(
        &self,
        pod: &Pod,
        uid: &str,
        desired: &Desired,
    ) -> std::result::Result<BTreeMap<String, PathBuf>, std::result::Result<Blocked, anyhow::Error>>
    {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let request = crate::volume::PodVolumes {
            pod,
            run_dir: self.runtime.config.pod_paths(uid).dir,
            data_dir: self.runtime.config.pod_data_dir(uid),
            lookup: &Lookup { namespace, desired },
            node_allocatable: None,
        };
        crate::volume::prepare(&request, &crate::volume::SystemMounter).map_err(|e| {
            self.event(uid, true, "FailedMount", e.to_string());
            Ok(Blocked("ContainerCreating", e.to_string()))
        })
    }

    /// Logs a pod network problem once, until it changes or goes away.
    fn report_network(&mut self, result: Result<()>) {
        match result {
            Ok(()) => self.network_problem = None,
            Err(e) => {
                let message = format!("pod network: {e:#}");
                if self.network_problem.as_ref() != Some(&message) {
                    tracing::error!("{message}");
                    self.network_problem = Some(message);
                }
            }
        }
    }

    /// The network of pod `uid`: the one its sandbox has, else a new address from the pod CIDR
    /// (the host's network for `hostNetwork` pods).
    fn pod_network(&mut self, uid: &str, host_network: bool) -> Result<PodNetwork> {
        if host_network {
            return Ok(PodNetwork {
                host_network: true,
                pod_ip: self.node_ip,
                host_ip: self.node_ip,
                ..Default::default()
            });
        }
        let Some(config) = &self.config.network else {
            if self.config.link_bridge.is_some() {
                anyhow::bail!(
                    "waiting for the node's pod CIDR from the controller (its Node's spec.podCIDR); \
                     --pod-cidr sets one without the controller"
                );
            }
            return Ok(PodNetwork {
                host_ip: self.node_ip,
                ..Default::default()
            });
        };
        let paths = self.runtime.config.pod_paths(uid);
        if let Some(sandbox) = read_json::<SandboxConfig>(&paths.sandbox())? {
            let n = sandbox.network;
            if !n.host_network && n.pod_ip.is_some() && n.bridge == config.bridge {
                return Ok(n);
            }
        }
        let used = self
            .sandbox_networks()?
            .into_iter()
            .filter(|(other, _)| other != uid)
            .filter_map(|(_, n)| n.pod_ip)
            .collect();
        let network = config.allocate(uid, &used, self.last_pod_ip, self.node_ip)?;
        self.last_pod_ip = network.pod_ip;
        Ok(network)
    }

    /// The recorded network of every sandbox on the node.
    fn sandbox_networks(&self) -> Result<Vec<(String, PodNetwork)>> {
        let mut out = Vec::new();
        for uid in self.runtime.sandboxes()? {
            let paths = self.runtime.config.pod_paths(&uid);
            if let Some(sandbox) = read_json::<SandboxConfig>(&paths.sandbox())? {
                out.push((uid, sandbox.network));
            }
        }
        Ok(out)
    }

    /// Brings the node's nftables table in line with the pods on the node (rewritten only
    /// when it changes), and once after start deletes veths no pod owns.
    fn sync_network(&mut self) -> Result<()> {
        let Some(config) = &self.config.network else {
            return Ok(());
        };
        let mut ports = Vec::new();
        let mut veths = BTreeSet::new();
        for (uid, network) in self.sandbox_networks()? {
            let Some(pod_ip) = network.pod_ip.filter(|_| !network.host_network) else {
                continue;
            };
            veths.insert(network.host_veth.clone());
            let Some(pod) = read_json::<Pod>(&self.runtime.config.pod_paths(&uid).pod())? else {
                continue;
            };
            ports.extend(host_ports(&pod, pod_ip));
        }
        ports.sort();
        // Two pods asking for one host port: the first (by protocol, address, port, pod
        // address) gets it; the scheduler keeps this from happening across the cluster.
        ports.dedup_by(|b, a| {
            (&a.protocol, a.host_ip, a.host_port) == (&b.protocol, b.host_ip, b.host_port)
        });
        let script = nft::render(&config.nft_table(), config.pod_cidr, &ports);
        if self.applied_rules.as_ref() != Some(&script) {
            nft::apply(&script)?;
            self.applied_rules = Some(script);
        }
        if !self.swept_veths {
            for name in config.remove_stray_veths(&veths)? {
                tracing::info!("deleted veth {name}, left by a pod that is gone");
            }
            self.swept_veths = true;
        }
        Ok(())
    }

    /// Terminates a pod that is no longer wanted: SIGTERM, the grace period, SIGKILL (by the
    /// monitor), then removal of everything the pod had.
    fn terminate_pod(&mut self, uid: &str) -> Result<()> {
        let paths = self.runtime.config.pod_paths(uid);
        let sandbox: Option<SandboxConfig> = read_json(&paths.sandbox())?;
        let grace = self
            .records
            .get(uid)
            .and_then(|r| r.pod.spec.as_ref())
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        let grace = Duration::from_secs(grace);
        if self.runtime.sandbox(uid)?.is_some() {
            let runs = self.runtime.container_runs(uid)?;
            let running: Vec<&String> = runs
                .values()
                .filter(|r| r.running())
                .map(|r| &r.name)
                .collect();
            if !running.is_empty() {
                let worker = self.workers.entry(uid.to_string()).or_default();
                if worker.terminating.is_none() {
                    for name in running {
                        self.runtime.stop_container(uid, name, grace)?;
                    }
                    self.workers.entry(uid.to_string()).or_default().terminating =
                        Some(Instant::now() + grace);
                }
                return Ok(());
            }
        }
        let log_dir = sandbox.map(|s| self.runtime.config.pod_log_dir(&s.namespace, &s.name, uid));
        self.runtime.remove_sandbox(uid, log_dir.as_deref())?;
        if self.records.remove(uid).is_some() {
            self.state.remove(uid)?;
        }
        self.workers.remove(uid);
        tracing::info!(pod = uid, "removed");
        Ok(())
    }
}

trait NanoZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl NanoZero for chrono::DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        chrono::DateTime::from_timestamp(self.timestamp(), 0).unwrap_or(self)
    }
}

/// Starts the link; the desired state persisted by an earlier run is used until a newer one
/// arrives (a node rebooted without network runs its pods from it).
fn start_link(
    config: &LinkConfig,
    state: &mut LocalState,
    state_dir: &std::path::Path,
    node_name: &str,
    node_ip: Option<Ipv4Addr>,
    requests: crate::requests::Requests,
) -> Result<LinkState> {
    let secrets = SecretDir::open(&state_dir.join("secrets"))?;
    let loaded = local_copy::load(state, &secrets, config)?;
    let boot_id = crate::link::node_info::new_boot_id();
    let start_unix_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let info = crate::link::node_info::NodeInfo {
        node: node_name.to_string(),
        boot_id,
        start_unix_ms,
        node_ip,
        max_pods: 110,
        cgroup_version: match crate::cgroup::Cgroups::detect().map(|c| c.version()) {
            Ok(crate::cgroup::CgroupVersion::V2) => 2,
            _ => 1,
        },
    };
    let offline = kelp_shared::wire::Offline {
        node: node_name.to_string(),
        boot_id,
    };
    let link = Link::start(
        config.clone(),
        offline,
        move |seq| info.birth(seq),
        Some(requests.handler()),
    )?;
    Ok(LinkState {
        link,
        config: config.clone(),
        desired: loaded.state,
        secrets,
        incomplete: loaded.incomplete,
        boot_id,
        start_unix_ms,
        seq: 0,
        published: None,
        ready: false,
        static_published: None,
    })
}

/// The pod CIDR of the node's own Node object in the desired state.
fn node_pod_cidr(state: &DesiredState) -> Option<String> {
    state.objects_json.iter().find_map(|bytes| {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        if value.get("kind")?.as_str()? != "Node"
            || value.pointer("/metadata/name")?.as_str()? != state.node
        {
            return None;
        }
        value.pointer("/spec/podCIDR")?.as_str().map(str::to_owned)
    })
}

/// Adds the pods, ConfigMaps and Secrets of the controller's desired state to `desired`.
fn add_linked(desired: &mut Desired, state: &DesiredState) {
    for (i, bytes) in state.objects_json.iter().enumerate() {
        let value: serde_json::Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                desired
                    .errors
                    .push(format!("desired state object {i}: not JSON: {e}"));
                continue;
            }
        };
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        let result = match kind.as_str() {
            // A pod being deleted is terminated (it is no longer wanted) and reported gone.
            "Pod" => serde_json::from_value::<Pod>(value).map(|pod| {
                if pod.metadata.deletion_timestamp.is_some() {
                    return;
                }
                match pod.metadata.uid.clone() {
                    Some(uid) => desired.pods.push(static_pods::DesiredPod {
                        uid,
                        pod,
                        source: PathBuf::from("controller"),
                    }),
                    None => desired.errors.push(format!(
                        "desired state object {i}: a Pod without metadata.uid"
                    )),
                }
            }),
            "ConfigMap" => serde_json::from_value::<ConfigMap>(value).map(|cm| {
                let key = (
                    cm.metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    cm.metadata.name.clone().unwrap_or_default(),
                );
                desired.config_maps.insert(key, cm);
            }),
            "Secret" => serde_json::from_value::<Secret>(value).map(|s| {
                let key = (
                    s.metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    s.metadata.name.clone().unwrap_or_default(),
                );
                desired.secrets.insert(key, s);
            }),
            _ => Ok(()),
        };
        if let Err(e) = result {
            desired
                .errors
                .push(format!("desired state object {i} ({kind}): {e}"));
        }
    }
}

/// The `hostPort`s of a pod on the bridge, as DNAT rules to `pod_ip`.
fn host_ports(pod: &Pod, pod_ip: Ipv4Addr) -> Vec<nft::HostPort> {
    pod::init_containers(pod)
        .iter()
        .chain(pod::app_containers(pod))
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
            Some(nft::HostPort {
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_ip: p
                    .host_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                    .filter(|ip| !ip.is_unspecified()),
                host_port,
                pod_ip,
                container_port: u16::try_from(p.container_port).ok()?,
            })
        })
        .collect()
}

/// The `.dockerconfigjson` of the pod's `imagePullSecrets` found among the desired Secrets.
fn pull_secrets(pod: &Pod, desired: &Desired) -> Vec<DockerConfigJson> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let names = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_deref())
        .unwrap_or(&[]);
    names
        .iter()
        .filter_map(|r| r.name.as_deref())
        .filter_map(|name| {
            desired
                .secrets
                .get(&(namespace.to_string(), name.to_string()))
        })
        .filter(|s| s.type_.as_deref() == Some("kubernetes.io/dockerconfigjson"))
        .filter_map(|s| {
            let bytes = s
                .data
                .as_ref()?
                .get(".dockerconfigjson")
                .map(|b| b.0.clone())
                .or_else(|| {
                    s.string_data
                        .as_ref()?
                        .get(".dockerconfigjson")
                        .map(|v| v.clone().into_bytes())
                })?;
            match DockerConfigJson::parse(&bytes) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!("imagePullSecret {:?}: {e}", s.metadata.name);
                    None
                }
            }
        })
        .collect()
}
