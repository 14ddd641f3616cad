//! `kelp mqtt nodes` and `kelp mqtt node NAME`: the fleet's health straight from the MQTT
//! broker, for field engineers on site, with no controller.
//!
//! It logs in with an observer's credentials file (`kelp observer add NAME -o FILE`: broker
//! URL, user, password, CA, cluster id, topic prefix), subscribes to every node's `status`
//! (retained birth, or the last will saying it went offline), `reported` (retained pod
//! states) and `metrics` (a batch a minute, not retained), and shows a table: NODE, ONLINE,
//! LAST SEEN, CPU, MEMORY, DISK, TEMP, THROTTLED, PODS (running/failing). By default it
//! refreshes the table every `--interval` until interrupted; `--once` listens for `--wait`
//! and prints it once (retained messages arrive at once; metrics only within a minute).
//! Messages of another cluster are ignored.
//!
//! LAST SEEN is the newest of: a message heard live (not a retained one) and the newest
//! metric sample; `<unknown>` when only retained state was read. CPU is the node's usage
//! rate over the last minute as a share of its capacity (needs two samples); MEMORY its
//! working set's share of its memory (as `kelp top nodes`), else capacity minus MemAvailable; DISK the used share of the node's filesystem; TEMP the SoC
//! temperature; THROTTLED the Raspberry Pi firmware's current flags (`no`, `past` when only
//! "has occurred" bits are set).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kelp_shared::join::broker_address;
use kelp_shared::wire::{
    Birth, ClusterId, ContainerState, Envelope, MessageKind, Metric, Offline, PodPhase, Reported,
    Samples, TopicKind, Topics,
};

use super::client::{report_errors, ApiError};
use super::emit;
use super::printer::human_duration;
use super::tabwriter::TabWriter;
use crate::metrics::{now_ms, MetricsStore, NodeMetrics, SubjectKey};

/// `kelp mqtt ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum MqttCommand {
    /// Every node's health, from the broker.
    Nodes(MqttArgs),
    /// One node in detail, from the broker.
    Node(MqttNodeArgs),
}

/// What `kelp mqtt` commands share.
#[derive(Debug, Clone, Args)]
pub struct MqttArgs {
    /// The observer credentials file (`kelp observer add NAME -o FILE`); default
    /// `$KELP_OBSERVER`.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Listen for `--wait`, print once and exit (instead of refreshing).
    #[arg(long)]
    pub once: bool,
    /// With `--once`: how long to listen before printing (`5s`, `1m`).
    #[arg(long, default_value = "3s", value_parser = super::drain::parse_go_duration)]
    pub wait: Duration,
    /// How often the refreshing view redraws.
    #[arg(long, default_value = "2s", value_parser = super::drain::parse_go_duration)]
    pub interval: Duration,
}

/// `kelp mqtt node NAME`.
#[derive(Debug, Clone, Args)]
pub struct MqttNodeArgs {
    /// The node.
    pub name: String,
    #[command(flatten)]
    pub common: MqttArgs,
}

/// An observer's credentials file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObserverFile {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub broker_url: String,
    /// MQTT user (`observer@NAME`).
    pub username: String,
    /// MQTT password.
    pub password: String,
    /// The broker's CA (PEM), for `mqtts://`.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The cluster whose messages to read.
    pub cluster_id: String,
    /// The topic prefix.
    pub topic_prefix: String,
}

/// What is known about one node.
#[derive(Debug, Default)]
struct NodeState {
    birth: Option<Birth>,
    /// Birth: online; last will: offline.
    online: Option<bool>,
    /// When a live message was last heard (ms since the epoch, local clock).
    heard_ms: Option<u64>,
    reported: Option<Reported>,
}

/// The fleet as the broker shows it.
#[derive(Debug)]
pub struct Fleet {
    cluster: ClusterId,
    topics: Topics,
    nodes: BTreeMap<String, NodeState>,
    metrics: MetricsStore,
}

impl Fleet {
    /// An empty view of `cluster`'s nodes under `topics`.
    pub fn new(cluster: ClusterId, topics: Topics) -> Fleet {
        Fleet {
            cluster,
            topics,
            nodes: BTreeMap::new(),
            metrics: MetricsStore::default(),
        }
    }

    /// Takes one message (`retained` as the broker flagged it) received at `now_ms`.
    pub fn handle(&mut self, topic: &str, payload: &[u8], retained: bool, now_ms: u64) {
        let Some((node, kind)) = self.topics.parse(topic) else {
            return;
        };
        if payload.is_empty() {
            // A cleared retained status: the node was removed.
            if kind == TopicKind::Status {
                self.nodes.remove(&node);
                self.metrics.remove_node(&node);
            }
            return;
        }
        let Ok(envelope) = Envelope::decode(payload) else {
            return;
        };
        if envelope.cluster != self.cluster || !kind.carries(envelope.kind) {
            return;
        }
        let state = self.nodes.entry(node.clone()).or_default();
        let mut heard = !retained;
        match envelope.kind {
            MessageKind::Birth => match envelope.open::<Birth>() {
                Ok(birth) if birth.node == node => {
                    state.birth = Some(birth);
                    state.online = Some(true);
                }
                _ => heard = false,
            },
            MessageKind::Offline => match envelope.open::<Offline>() {
                Ok(offline) if offline.node == node => state.online = Some(false),
                _ => heard = false,
            },
            MessageKind::Heartbeat => state.online = Some(true),
            MessageKind::Reported => match envelope.open::<Reported>() {
                Ok(reported) if reported.node == node => state.reported = Some(reported),
                _ => heard = false,
            },
            MessageKind::Samples => match envelope.open::<Samples>() {
                Ok(samples) => {
                    self.metrics.record(&node, &samples, now_ms);
                }
                Err(_) => heard = false,
            },
            _ => heard = false,
        }
        if heard {
            let state = self.nodes.entry(node).or_default();
            state.heard_ms = Some(now_ms);
        }
    }

    /// The table of every node.
    pub fn render_table(&self, now_ms: u64) -> String {
        let mut w = TabWriter::for_tables();
        w.write_row(&[
            "NODE",
            "ONLINE",
            "LAST SEEN",
            "CPU",
            "MEMORY",
            "DISK",
            "TEMP",
            "THROTTLED",
            "PODS",
        ]);
        self.metrics.read(|metrics| {
            for (name, state) in &self.nodes {
                let f = Figures::of(state, metrics.get(name), now_ms);
                w.write_row(&[
                    name.clone(),
                    f.online,
                    f.last_seen,
                    f.cpu,
                    f.memory,
                    f.disk,
                    f.temp,
                    f.throttled,
                    f.pods,
                ]);
            }
        });
        w.flush()
    }

    /// One node in detail; `None` when nothing was heard of it.
    pub fn render_node(&self, name: &str, now_ms: u64) -> Option<String> {
        let state = self.nodes.get(name)?;
        self.metrics.read(|metrics| {
            let m = metrics.get(name);
            let f = Figures::of(state, m, now_ms);
            let mut w = TabWriter::for_describe();
            let mut line = |k: &str, v: String| {
                w.write_row(&[format!("{k}:"), v]);
            };
            line("Name", name.to_owned());
            line("Online", f.online);
            line("Last seen", f.last_seen);
            if let Some(b) = &state.birth {
                line("Agent", format!("{} (boot {})", b.agent_version, b.boot_id));
                line(
                    "System",
                    format!(
                        "{}/{}, kernel {}, cgroup v{}",
                        b.os, b.arch, b.kernel, b.cgroup_version
                    ),
                );
                let addresses: Vec<String> = b
                    .addresses
                    .iter()
                    .map(|a| format!("{}={}", a.kind.as_str(), a.address))
                    .collect();
                if !addresses.is_empty() {
                    line("Addresses", addresses.join(", "));
                }
                line(
                    "Capacity",
                    format!(
                        "cpu {}m, memory {}Mi, pods {}",
                        b.capacity.cpu_millis,
                        b.capacity.memory_bytes / (1024 * 1024),
                        b.capacity.pods
                    ),
                );
            }
            line("CPU", f.cpu);
            line("Memory", f.memory);
            line("Disk", f.disk);
            line("Temperature", f.temp);
            line(
                "Throttled",
                throttled_detail(node_value(m, Metric::ThrottledFlags)),
            );
            if let (Some(l1), Some(l5), Some(l15)) = (
                node_value(m, Metric::Load1Milli),
                node_value(m, Metric::Load5Milli),
                node_value(m, Metric::Load15Milli),
            ) {
                let load = |v: i64| format!("{:.2}", v as f64 / 1000.0);
                line("Load", format!("{} {} {}", load(l1), load(l5), load(l15)));
            }
            if let Some(up) = node_value(m, Metric::UptimeSeconds) {
                line("Uptime", human_duration(chrono::Duration::seconds(up)));
            }
            if let (Some(used), Some(max)) = (
                node_value(m, Metric::PidsInUse),
                node_value(m, Metric::PidsMax),
            ) {
                line("PIDs", format!("{used} of {max}"));
            }
            line("Pods (running/failing)", f.pods);
            if let Some(r) = &state.reported {
                for c in &r.conditions {
                    line(
                        &format!("Condition {}", c.kind),
                        format!("{:?} {}", c.status, c.reason),
                    );
                }
            }
            let mut out = w.flush();
            if let Some(r) = &state.reported {
                let mut pods = TabWriter::for_tables();
                pods.write_row(&["NAMESPACE", "POD", "PHASE", "READY", "RESTARTS", "STATUS"]);
                for p in &r.pods {
                    let ready = p.containers.iter().filter(|c| c.ready).count();
                    let restarts: u32 = p.containers.iter().map(|c| c.restart_count).sum();
                    let reason = p
                        .containers
                        .iter()
                        .find_map(|c| match &c.state {
                            ContainerState::Waiting { reason, .. } if !reason.is_empty() => {
                                Some(reason.clone())
                            }
                            ContainerState::Terminated { reason, .. } if !reason.is_empty() => {
                                Some(reason.clone())
                            }
                            _ => None,
                        })
                        .unwrap_or_else(|| p.phase.as_str().to_owned());
                    pods.write_row(&[
                        p.namespace.clone(),
                        p.name.clone(),
                        p.phase.as_str().to_owned(),
                        format!("{ready}/{}", p.containers.len()),
                        restarts.to_string(),
                        reason,
                    ]);
                }
                out.push('\n');
                out.push_str(&pods.flush());
            }
            Some(out)
        })
    }
}

fn node_value(m: Option<&NodeMetrics>, metric: Metric) -> Option<i64> {
    m?.latest(&SubjectKey::Node, metric).map(|(_, v)| v)
}

/// The figures of a node's row.
struct Figures {
    online: String,
    last_seen: String,
    cpu: String,
    memory: String,
    disk: String,
    temp: String,
    throttled: String,
    pods: String,
}

const UNKNOWN: &str = "-";

fn share(used: i64, total: i64) -> String {
    if total <= 0 {
        return UNKNOWN.into();
    }
    format!(
        "{}%",
        (used.max(0) as f64 / total as f64 * 100.0).round() as i64
    )
}

impl Figures {
    fn of(state: &NodeState, m: Option<&NodeMetrics>, now_ms: u64) -> Figures {
        let online = match state.online {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        }
        .to_owned();
        let sampled = m.and_then(|m| {
            m.series()
                .filter(|(s, _, _)| **s == SubjectKey::Node)
                .filter_map(|(_, _, p)| p.latest().map(|(t, _)| t))
                .max()
        });
        let last_seen = match state.heard_ms.max(sampled) {
            Some(t) => format!(
                "{} ago",
                human_duration(chrono::Duration::milliseconds(
                    i64::try_from(now_ms.saturating_sub(t)).unwrap_or(i64::MAX)
                ))
            ),
            None => "<unknown>".into(),
        };
        let capacity = state.birth.as_ref().map(|b| b.capacity);
        let cpu = match (
            m.and_then(|m| m.rate(&SubjectKey::Node, Metric::CpuUsageNanoseconds)),
            capacity,
        ) {
            (Some(rate), Some(c)) if c.cpu_millis > 0 => {
                share((rate.per_second / 1e6) as i64, c.cpu_millis as i64)
            }
            (Some(rate), _) => format!("{}m", (rate.per_second / 1e6) as i64),
            _ => UNKNOWN.into(),
        };
        let memory_total = node_value(m, Metric::MemoryCapacityBytes)
            .or_else(|| capacity.map(|c| c.memory_bytes as i64));
        // The working set, as `kelp top nodes` shows it (what the kubelet evicts on), else
        // what MemAvailable leaves.
        let memory = match (
            memory_total,
            node_value(m, Metric::MemoryWorkingSetBytes),
            node_value(m, Metric::MemoryAvailableBytes),
        ) {
            (Some(total), Some(ws), _) => share(ws, total),
            (Some(total), None, Some(available)) => share(total - available, total),
            _ => UNKNOWN.into(),
        };
        let disk = match (
            node_value(m, Metric::FsCapacityBytes),
            node_value(m, Metric::FsAvailableBytes),
        ) {
            (Some(c), Some(a)) => share(c - a, c),
            _ => UNKNOWN.into(),
        };
        let temp = node_value(m, Metric::TemperatureMillicelsius)
            .map(|t| format!("{:.1}C", t as f64 / 1000.0))
            .unwrap_or_else(|| UNKNOWN.into());
        let throttled = throttled_short(node_value(m, Metric::ThrottledFlags));
        let pods = match &state.reported {
            Some(r) => {
                let running = r
                    .pods
                    .iter()
                    .filter(|p| p.phase == PodPhase::Running)
                    .count();
                let failing = r.pods.iter().filter(|p| failing(p)).count();
                format!("{running}/{failing}")
            }
            None => UNKNOWN.into(),
        };
        Figures {
            online,
            last_seen,
            cpu,
            memory,
            disk,
            temp,
            throttled,
            pods,
        }
    }
}

/// A pod that failed, or a container of it stuck in an error state (a crash loop, an image
/// that cannot be pulled, a bad config).
fn failing(p: &kelp_shared::wire::PodReport) -> bool {
    p.phase == PodPhase::Failed
        || p.containers.iter().chain(&p.init_containers).any(|c| {
            matches!(&c.state, ContainerState::Waiting { reason, .. }
                if !matches!(reason.as_str(), "" | "ContainerCreating" | "PodInitializing"))
        })
}

/// The Raspberry Pi firmware's `get_throttled` bits: (bit, name) now; the same + 16 since
/// boot.
const THROTTLE_BITS: [(u32, &str); 4] = [
    (0, "under-voltage"),
    (1, "freq-capped"),
    (2, "throttled"),
    (3, "soft-temp-limit"),
];

fn throttled_short(flags: Option<i64>) -> String {
    let Some(flags) = flags else {
        return UNKNOWN.into();
    };
    let now: Vec<&str> = THROTTLE_BITS
        .iter()
        .filter(|(bit, _)| flags & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    if !now.is_empty() {
        now.join(",")
    } else if flags & 0xf_0000 != 0 {
        "past".into()
    } else {
        "no".into()
    }
}

fn throttled_detail(flags: Option<i64>) -> String {
    let Some(flags) = flags else {
        return UNKNOWN.into();
    };
    let names = |shift: u32| -> Vec<&str> {
        THROTTLE_BITS
            .iter()
            .filter(|(bit, _)| flags & (1 << (bit + shift)) != 0)
            .map(|(_, name)| *name)
            .collect()
    };
    let (now, past) = (names(0), names(16));
    let list = |v: Vec<&str>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    format!(
        "now: {}; since boot: {} (0x{flags:x})",
        list(now),
        list(past)
    )
}

/// Reads an observer credentials file.
pub fn read_credentials(path: &std::path::Path) -> Result<ObserverFile, ApiError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ApiError::Other(format!("{}: {e}", path.display())))?;
    serde_yaml_ng::from_str(&text).map_err(|e| {
        ApiError::Other(format!(
            "{}: not an observer credentials file (`kelp observer add NAME -o FILE` writes one): {e}",
            path.display()
        ))
    })
}

/// Runs `kelp mqtt`.
pub fn run(command: &MqttCommand) -> ExitCode {
    let (args, node) = match command {
        MqttCommand::Nodes(args) => (args, None),
        MqttCommand::Node(a) => (&a.common, Some(a.name.as_str())),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report_errors(&[ApiError::Other(format!("cannot start: {e}"))]);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(watch(args, node)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_errors(&[e]);
            ExitCode::FAILURE
        }
    }
}

async fn watch(args: &MqttArgs, node: Option<&str>) -> Result<(), ApiError> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
    let path = args
        .credentials
        .clone()
        .or_else(|| std::env::var_os("KELP_OBSERVER").map(PathBuf::from))
        .ok_or_else(|| {
            ApiError::Other(
                "no credentials: give --credentials FILE (or $KELP_OBSERVER), as `kelp observer add NAME -o FILE` writes it".into(),
            )
        })?;
    let creds = read_credentials(&path)?;
    let other = |e: &dyn std::fmt::Display| ApiError::Other(e.to_string());
    let cluster: ClusterId = creds
        .cluster_id
        .parse()
        .map_err(|e| other(&format!("clusterId: {e}")))?;
    let topics = Topics::new(creds.topic_prefix.clone()).map_err(|e| other(&e))?;
    let (host, port, tls) = broker_address(&creds.broker_url).map_err(|e| other(&e))?;
    let client_id = format!(
        "kelp-mqtt-{}-{:08x}",
        creds.username.replace('@', "-"),
        rand::random::<u32>()
    );
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_credentials(creds.username.clone(), creds.password.clone())
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(
            crate::hub::broker::MAX_MQTT_PACKET,
            crate::hub::broker::MAX_MQTT_PACKET,
        );
    if tls {
        let pem = creds.ca_pem.as_deref().ok_or_else(|| {
            other(&"the broker URL is mqtts:// but the credentials file has no caPem")
        })?;
        let config = kelp_shared::tls::client_config(pem).map_err(|e| other(&e))?;
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let mut fleet = Fleet::new(cluster, topics.clone());
    let mut connected = false;
    let start = tokio::time::Instant::now();
    let deadline = start + args.wait;
    let mut redraw = tokio::time::interval(args.interval);
    redraw.tick().await;
    let show = |fleet: &Fleet| -> Result<String, ApiError> {
        let now = now_ms();
        match node {
            None => Ok(fleet.render_table(now)),
            Some(name) => fleet.render_node(name, now).ok_or_else(|| {
                ApiError::Other(format!(
                    "node {name:?}: nothing on the broker about it (no status, report or metrics)"
                ))
            }),
        }
    };
    loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    let filters = [topics.all_status(), topics.all_reported(), topics.all_metrics()]
                        .into_iter()
                        .map(|t| SubscribeFilter::new(t, QoS::AtMostOnce));
                    client.subscribe_many(filters).await.map_err(|e| other(&e))?;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    fleet.handle(&p.topic, &p.payload, p.retain, now_ms());
                }
                Ok(_) => {}
                Err(e) if !connected => {
                    return Err(ApiError::Other(format!(
                        "cannot connect to the broker at {} as {:?}: {e}",
                        creds.broker_url, creds.username
                    )));
                }
                Err(e) => {
                    // Reconnects on the next poll; say so once per failure.
                    eprintln!("broker connection lost: {e}; reconnecting");
                    connected = false;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            () = tokio::time::sleep_until(deadline), if args.once => {
                let text = show(&fleet)?;
                emit(&text);
                let _ = client.disconnect().await;
                return Ok(());
            }
            _ = redraw.tick(), if !args.once => {
                let text = match show(&fleet) {
                    Ok(t) => t,
                    Err(e) => format!("{}\n", e.sole_message()),
                };
                // Clear the screen and draw from the top.
                if !emit(&format!("\x1b[H\x1b[2J{text}")) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_shared::wire::{
        BootId, Condition, ConditionStatus, ContainerReport, Message, PodReport, Resources,
        SampleSeries, Subject,
    };

    const CLUSTER: ClusterId = ClusterId([3; 16]);
    const NOW: u64 = 1_800_000_100_000;

    fn seal<M: Message>(cluster: ClusterId, m: &M) -> Vec<u8> {
        Envelope::seal_message(cluster, m, false).unwrap().encode()
    }

    fn birth(node: &str) -> Birth {
        Birth {
            node: node.into(),
            boot_id: BootId([1; 16]),
            agent_start_unix_ms: 1,
            seq: 1,
            agent_version: "0.1.0".into(),
            wire_versions: vec![1],
            os: "linux".into(),
            arch: "arm64".into(),
            kernel: "6.6".into(),
            capacity: Resources {
                cpu_millis: 4000,
                memory_bytes: 4 << 30,
                pods: 110,
            },
            cgroup_version: 2,
            addresses: vec![],
            labels: vec![],
        }
    }

    fn pod(name: &str, phase: PodPhase, waiting: &str) -> PodReport {
        PodReport {
            namespace: "default".into(),
            name: name.into(),
            uid: "u".into(),
            phase,
            pod_ip: None,
            containers: vec![ContainerReport {
                name: "c".into(),
                state: if waiting.is_empty() {
                    ContainerState::Running {
                        started_at_unix_ms: 1,
                    }
                } else {
                    ContainerState::Waiting {
                        reason: waiting.into(),
                        message: String::new(),
                    }
                },
                last_state: None,
                ready: waiting.is_empty(),
                restart_count: 2,
                image: "i".into(),
                image_id: String::new(),
                container_id: String::new(),
            }],
            init_containers: vec![],
            reason: String::new(),
            message: String::new(),
            start_unix_ms: None,
        }
    }

    fn fleet() -> Fleet {
        let topics = Topics::default();
        let mut f = Fleet::new(CLUSTER, topics.clone());
        let status = |n: &str| topics.status(n).unwrap();
        f.handle(&status("pi-1"), &seal(CLUSTER, &birth("pi-1")), true, NOW);
        f.handle(&status("pi-2"), &seal(CLUSTER, &birth("pi-2")), true, NOW);
        let offline = Offline {
            node: "pi-2".into(),
            boot_id: BootId([1; 16]),
        };
        // pi-2 is cut off: its will comes live.
        f.handle(
            &status("pi-2"),
            &seal(CLUSTER, &offline),
            false,
            NOW - 30_000,
        );
        // Another cluster's birth is ignored.
        f.handle(
            &status("pi-9"),
            &seal(ClusterId([4; 16]), &birth("pi-9")),
            true,
            NOW,
        );
        let reported = Reported {
            node: "pi-1".into(),
            boot_id: BootId([1; 16]),
            agent_start_unix_ms: 1,
            seq: 3,
            applied_generation: None,
            pods: vec![
                pod("web", PodPhase::Running, ""),
                pod("db", PodPhase::Running, ""),
                pod("bad", PodPhase::Pending, "CrashLoopBackOff"),
                pod("new", PodPhase::Pending, "ContainerCreating"),
            ],
            conditions: vec![Condition {
                kind: "Ready".into(),
                status: ConditionStatus::True,
                reason: "KubeletReady".into(),
                message: String::new(),
                last_transition_unix_ms: 1,
            }],
        };
        f.handle(
            &topics.reported("pi-1").unwrap(),
            &seal(CLUSTER, &reported),
            true,
            NOW,
        );
        let cpu: Vec<i64> = (0..6).map(|i| i * 10_000_000_000).collect(); // 1 core of 4
        let samples = Samples {
            boot_id: BootId([1; 16]),
            agent_start_unix_ms: 1,
            seq: 1,
            start_unix_ms: NOW - 70_000,
            interval_ms: 10_000,
            slots: 6,
            complete: true,
            subjects: vec![Subject::Node],
            series: vec![
                SampleSeries::from_values(Metric::CpuUsageNanoseconds, 0, 0, &cpu),
                SampleSeries::from_values(Metric::MemoryCapacityBytes, 0, 5, &[1000]),
                SampleSeries::from_values(Metric::MemoryAvailableBytes, 0, 5, &[250]),
                SampleSeries::from_values(Metric::FsCapacityBytes, 0, 5, &[200]),
                SampleSeries::from_values(Metric::FsAvailableBytes, 0, 5, &[150]),
                SampleSeries::from_values(Metric::TemperatureMillicelsius, 0, 5, &[48_312]),
                SampleSeries::from_values(Metric::ThrottledFlags, 0, 5, &[0x50005]),
                SampleSeries::from_values(Metric::Load1Milli, 0, 5, &[1500]),
                SampleSeries::from_values(Metric::Load5Milli, 0, 5, &[700]),
                SampleSeries::from_values(Metric::Load15Milli, 0, 5, &[50]),
            ],
        };
        f.handle(
            &topics.metrics("pi-1").unwrap(),
            &seal(CLUSTER, &samples),
            false,
            NOW - 5_000,
        );
        f
    }

    #[test]
    fn the_table_shows_every_node_and_the_offline_one() {
        let f = fleet();
        assert_eq!(
            f.render_table(NOW),
            "NODE   ONLINE   LAST SEEN   CPU   MEMORY   DISK   TEMP    THROTTLED                 PODS\n\
             pi-1   yes      5s ago      25%   75%      25%    48.3C   under-voltage,throttled   2/1\n\
             pi-2   no       30s ago     -     -        -      -       -                         -\n"
        );
    }

    #[test]
    fn one_node_in_detail() {
        let f = fleet();
        let text = f.render_node("pi-1", NOW).unwrap();
        for want in [
            "Online:",
            "yes",
            "arm64",
            "cpu 4000m, memory 4096Mi, pods 110",
            "now: under-voltage, throttled; since boot: under-voltage, throttled (0x50005)",
            "Load:",
            "1.50 0.70 0.05",
            "Condition Ready:",
            "bad   Pending   0/1     2          CrashLoopBackOff",
        ] {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
        assert!(f.render_node("pi-7", NOW).is_none());
    }

    #[test]
    fn a_cleared_status_removes_the_node() {
        let mut f = fleet();
        f.handle("kelp/v1/nodes/pi-2/status", &[], true, NOW);
        assert!(!f.render_table(NOW).contains("pi-2"));
        assert_eq!(throttled_short(Some(0x10000)), "past");
        assert_eq!(throttled_short(Some(0)), "no");
    }
}
