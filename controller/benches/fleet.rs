//! Fleet benchmark (issue 9): a real `kelp server` on a real Mosquitto with simulated nodes,
//! while pods are applied through the API; prints each figure beside its target.
//!
//! `cargo bench -p kelp-controller --bench fleet` runs a smoke size (30 nodes, 300 pods, a
//! 10 s idle window, 5 s keepalive); `KELP_BENCH_FULL=1` the size (1,000 nodes,
//! 10,000 pods, one idle minute, the default 60 s keepalive). The controller's data dir goes
//! in a temporary directory under `KELP_BENCH_DIR` (default: the system temp dir).
//! `KELP_BENCH_NODES` and `KELP_BENCH_PODS` override the counts (sizes in between, to profile).
//!
//! What runs: Mosquitto (`/usr/sbin/mosquitto`) on a free loopback port with
//! `allow_anonymous true` — acceptable for a benchmark on 127.0.0.1 only, never for a fleet
//! (kelp generates password files and ACLs for that); `kelp server --disable-agent` on it.
//! Each simulated node is an MQTT client in this process, doing what the real agent's link
//! does: a retained birth on `status` after every CONNACK with a last will saying offline, a
//! subscription to its `desired` topic, its pods reported Running (retained, on change), a
//! heartbeat once per keepalive, and a metrics batch (`Samples`, QoS 0) once per keepalive —
//! the agent's default publish interval is the default keepalive, 60 s — with six samples of
//! ten node series and five series per pod, as the agent's collector sends them.
//!
//! Figures and targets:
//! - apply → desired-state publish, per pod: from the API acknowledging the POST (pod without
//!   `nodeName`) to its node receiving a desired state that contains it (scheduling, the
//!   binding's durable write, the hub's debounce, projection, signing, the broker).
//!   p99 <= 1 s: Kubernetes' pod startup SLO is 5 s p99 from creation to Running (image
//!   pull excluded); the control plane's share before the node starts work is a fifth.
//! - controller disk writes (`/proc/PID/io` `write_bytes`) per minute when idle: <= 1 MiB.
//!   A kelp choice for SD-card wear (k3s writes 6–10 kB/s, 360–600 kB/min, and wears cards
//!   out): an idle cluster should write far less. During the apply it is printed (no target).
//! - controller CPU (utime + stime) and RSS (VmRSS, VmHWM): no hard target; the expectation is
//!   stated beside them (DESIGN.md: one controller on 2 cores holds 10,000 nodes).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{percentile, verdict};

use kelp_shared::wire::{
    AddressKind, Birth, BootId, ClusterId, ContainerReport, ContainerState, DesiredState, Envelope,
    Heartbeat, MessageKind, Metric, NodeAddress, Offline, PodPhase, PodReport, Reported, Resources,
    SampleSeries, Samples, Subject, Topics, MAX_PACKET, SUPPORTED_WIRE_VERSIONS,
};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

struct Sizes {
    nodes: usize,
    pods: usize,
    /// Concurrent API clients applying pods.
    clients: usize,
    idle: Duration,
    keepalive: Duration,
    /// How long the pods may take to reach their nodes before the bench fails.
    delivery_deadline: Duration,
    /// How often the API is asked how many nodes are Ready and pods Running.
    poll: Duration,
}

fn sizes(full: bool) -> Sizes {
    if full {
        Sizes {
            nodes: 1_000,
            pods: 10_000,
            clients: 24,
            idle: Duration::from_secs(60),
            keepalive: Duration::from_secs(60),
            delivery_deadline: Duration::from_secs(600),
            poll: Duration::from_secs(3),
        }
    } else {
        Sizes {
            nodes: 30,
            pods: 300,
            clients: 16,
            idle: Duration::from_secs(10),
            keepalive: Duration::from_secs(5),
            delivery_deadline: Duration::from_secs(120),
            poll: Duration::from_millis(500),
        }
    }
}

/// A child process killed on drop (also when the bench panics).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Mosquitto on a free loopback port, anonymous (loopback only, benchmark only).
fn start_mosquitto(dir: &Path) -> (Killed, SocketAddr) {
    assert!(
        Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} is missing: install Debian's mosquitto (the fleet bench needs a real broker)"
    );
    let dir = dir.join("mosquitto");
    std::fs::create_dir_all(&dir).expect("mosquitto dir");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // No queue limit per client: the controller's subscription must not lose QoS 1 births
    // and reports when it falls behind (the default drops past 1,000 queued messages).
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_type error\nlog_type warning\n",
            addr.port()
        ),
    )
    .expect("mosquitto.conf");
    // Mosquitto drops root for user `mosquitto`: its files must be readable.
    {
        use std::os::unix::fs::PermissionsExt;
        for path in [dir.parent().expect("parent"), &dir, &conf] {
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
    }
    let log = std::fs::File::create(dir.join("mosquitto.log")).expect("mosquitto.log");
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start mosquitto");
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {addr} within 10 s: {}",
            std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, addr)
}

/// The API as the admin client config describes it.
struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Api {
    fn from_config(path: &Path) -> Api {
        let cfg: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("client config"))
                .expect("client config YAML");
        let ca = cfg["certificateAuthority"].as_str().expect("CA").to_owned();
        let certs: Vec<_> = ureq::tls::parse_pem(ca.as_bytes())
            .filter_map(|item| match item.expect("PEM") {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_idle_connections_per_host(64)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Api {
            agent,
            base: cfg["server"].as_str().expect("server URL").to_owned(),
            token: cfg["token"].as_str().expect("token").to_owned(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let data = body
            .map(|b| serde_json::to_vec(b).expect("JSON"))
            .unwrap_or_default();
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .body(data)
            .expect("request");
        let resp = self
            .agent
            .run(req)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = resp.status().as_u16();
        // A list of 10,000 pods is larger than ureq's default 10 MB body limit.
        let text = resp
            .into_body()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// `kelp server --disable-agent` on the broker; returns it with its API.
fn start_server(dir: &Path, broker: SocketAddr) -> (Killed, Api) {
    let config = dir.join("kelp.yaml");
    let log = std::fs::File::create(dir.join("kelp-server.log")).expect("server log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kelp"))
        .arg("server")
        .arg("--disable-agent")
        .arg("--mqtt-url")
        .arg(format!("mqtt://kelp:anonymous@{broker}"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        // 65,536 node /24s: room for the 1,000 nodes (the default /16 holds 256).
        .arg("--cluster-cidr")
        .arg("10.0.0.0/8")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--write-config")
        .arg(&config)
        .env(
            "KELP_LOG",
            std::env::var("KELP_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start kelp server");
    let stdout = child.stdout.take().expect("stdout");
    let child = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("kelp server listening on ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "kelp server did not start within 30 s: {}",
                std::fs::read_to_string(dir.join("kelp-server.log")).unwrap_or_default()
            )
        });
    (child, Api::from_config(&config))
}

/// What the controller process has done so far, from /proc.
#[derive(Clone, Copy, Debug)]
struct ProcSample {
    at: Instant,
    cpu_ticks: u64,
    write_bytes: u64,
    rss_kib: u64,
    hwm_kib: u64,
}

fn sample(pid: u32) -> ProcSample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}"))
    };
    ProcSample {
        at: Instant::now(),
        cpu_ticks: utime + stime,
        write_bytes: field(&io, "write_bytes:"),
        rss_kib: field(&status, "VmRSS:"),
        hwm_kib: field(&status, "VmHWM:"),
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What the simulated nodes saw.
#[derive(Default)]
struct Seen {
    /// Pod name → when a node first received a desired state holding it.
    delivered: Mutex<HashMap<String, Instant>>,
    connected: AtomicUsize,
    desired_states: AtomicUsize,
    desired_bytes: AtomicUsize,
    metrics_batches: AtomicUsize,
    metrics_bytes: AtomicUsize,
}

/// One simulated node: the MQTT side of a kelp-agent, with pods that start instantly.
async fn sim_node(
    name: String,
    broker: SocketAddr,
    cluster: ClusterId,
    topics: Topics,
    keepalive: Duration,
    seen: Arc<Seen>,
    index: usize,
) {
    let boot_id = BootId(rand::random());
    let start_ms = unix_ms();
    let status = topics.status(&name).expect("status topic");
    let desired = topics.desired(&name).expect("desired topic");
    let reported_topic = topics.reported(&name).expect("reported topic");
    let will = Envelope::seal_message(
        cluster,
        &Offline {
            node: name.clone(),
            boot_id,
        },
        false,
    )
    .expect("will")
    .encode();
    let mut options = MqttOptions::new(
        format!("{name}.{}", &boot_id.to_string()[..8]),
        broker.ip().to_string(),
        broker.port(),
    );
    options
        .set_keep_alive(keepalive)
        .set_max_packet_size(MAX_PACKET + 1024, MAX_PACKET + 1024)
        .set_clean_session(true)
        .set_last_will(LastWill::new(status.clone(), will, QoS::AtLeastOnce, true));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let beat = Envelope::seal_message(
        cluster,
        &Heartbeat {
            node: name.clone(),
            boot_id,
        },
        false,
    )
    .expect("heartbeat")
    .encode();
    {
        let client = client.clone();
        let status = status.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(keepalive);
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = client.try_publish(&status, QoS::AtMostOnce, false, beat.clone());
            }
        });
    }
    // Metrics as the agent publishes them: a complete batch every publish interval (the
    // keepalive here: 60 s at full size, the default), six samples of each series.
    let pods_now: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    {
        let client = client.clone();
        let topic = topics.metrics(&name).expect("metrics topic");
        let pods_now = pods_now.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(keepalive);
            tick.tick().await;
            let mut seq = 0u64;
            loop {
                tick.tick().await;
                seq += 1;
                let pods = pods_now.lock().expect("lock").clone();
                let samples = samples(boot_id, start_ms, seq, keepalive, &pods);
                let payload = Envelope::seal_message(cluster, &samples, true)
                    .expect("samples")
                    .encode();
                seen.metrics_bytes
                    .fetch_add(payload.len(), Ordering::Relaxed);
                seen.metrics_batches.fetch_add(1, Ordering::Relaxed);
                let _ = client.try_publish(&topic, QoS::AtMostOnce, false, payload);
            }
        });
    }
    let mut seq = 0u64;
    let mut report_seq = 0u64;
    let mut running: Vec<PodReport> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                if seq == 0 {
                    seen.connected.fetch_add(1, Ordering::Relaxed);
                }
                seq += 1;
                let _ = client.try_subscribe(&desired, QoS::AtLeastOnce);
                let birth = birth(&name, boot_id, start_ms, seq, index);
                let payload = Envelope::seal_message(cluster, &birth, false)
                    .expect("birth")
                    .encode();
                let _ = client.try_publish(&status, QoS::AtLeastOnce, true, payload);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == desired => {
                if publish.payload.is_empty() {
                    continue;
                }
                seen.desired_states.fetch_add(1, Ordering::Relaxed);
                seen.desired_bytes
                    .fetch_add(publish.payload.len(), Ordering::Relaxed);
                let now = Instant::now();
                let envelope = Envelope::decode(&publish.payload).expect("desired envelope");
                assert_eq!(envelope.kind, MessageKind::Desired, "{name}: kind");
                let state: DesiredState = envelope.open().expect("desired state");
                assert_eq!(state.node, name, "desired state of another node");
                let pods: Vec<Value> = state
                    .objects_json
                    .iter()
                    .map(|bytes| serde_json::from_slice::<Value>(bytes).expect("object JSON"))
                    .filter(|o| o["kind"] == "Pod")
                    .collect();
                {
                    let mut delivered = seen.delivered.lock().expect("lock");
                    for pod in &pods {
                        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
                        delivered.entry(pod_name.to_owned()).or_insert(now);
                    }
                }
                let reports: Vec<PodReport> = pods.iter().map(running_report).collect();
                let old: HashSet<&str> = running.iter().map(|p| p.uid.as_str()).collect();
                let new: HashSet<&str> = reports.iter().map(|p| p.uid.as_str()).collect();
                if old != new {
                    *pods_now.lock().expect("lock") = reports
                        .iter()
                        .map(|p| (p.namespace.clone(), p.name.clone()))
                        .collect();
                    running = reports;
                    report_seq += 1;
                    let reported = Reported {
                        node: name.clone(),
                        boot_id,
                        agent_start_unix_ms: start_ms,
                        seq: report_seq,
                        applied_generation: Some(state.generation),
                        pods: running.clone(),
                        conditions: Vec::new(),
                    };
                    let payload = Envelope::seal_message(cluster, &reported, true)
                        .expect("report")
                        .encode();
                    let _ = client.try_publish(&reported_topic, QoS::AtLeastOnce, true, payload);
                }
            }
            Ok(_) => {}
            Err(err) => {
                eprintln!("{name}: MQTT: {err}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A metrics batch like the agent's: six samples of the node's series, and of each pod's
/// (network) and its container's (CPU, memory, filesystem).
fn samples(
    boot_id: BootId,
    start_ms: u64,
    seq: u64,
    period: Duration,
    pods: &[(String, String)],
) -> Samples {
    const SLOTS: u32 = 6;
    let series = |metric: Metric, subject: u32, base: i64, step: i64| SampleSeries {
        metric,
        subject,
        first_slot: 0,
        deltas: std::iter::once(base)
            .chain(std::iter::repeat_n(step, SLOTS as usize - 1))
            .collect(),
    };
    let mut subjects = vec![Subject::Node];
    let mut all = vec![
        series(
            Metric::CpuUsageNanoseconds,
            0,
            9_000_000_000_000,
            1_500_000_000,
        ),
        series(Metric::MemoryWorkingSetBytes, 0, 900 << 20, 4096),
        series(Metric::MemoryAvailableBytes, 0, 3 << 30, -4096),
        series(Metric::MemoryCapacityBytes, 0, 4 << 30, 0),
        series(Metric::FsAvailableBytes, 0, 20 << 30, -8192),
        series(Metric::FsCapacityBytes, 0, 30 << 30, 0),
        series(Metric::Load1Milli, 0, 350, 10),
        series(Metric::UptimeSeconds, 0, 86_400, 10),
        series(Metric::PidsInUse, 0, 180, 1),
        series(Metric::PidsMax, 0, 32_768, 0),
    ];
    for (namespace, name) in pods {
        let pod = subjects.len() as u32;
        subjects.push(Subject::Pod {
            namespace: namespace.clone(),
            name: name.clone(),
        });
        subjects.push(Subject::Container {
            pod,
            name: "c".to_owned(),
        });
        let container = pod + 1;
        all.extend([
            series(Metric::NetworkRxBytes, pod, 1 << 20, 2048),
            series(Metric::NetworkTxBytes, pod, 1 << 20, 2048),
            series(
                Metric::CpuUsageNanoseconds,
                container,
                50_000_000_000,
                100_000_000,
            ),
            series(Metric::MemoryWorkingSetBytes, container, 30 << 20, 0),
            series(Metric::FsUsedBytes, container, 4096, 0),
        ]);
    }
    let period_ms = period.as_millis() as u64;
    Samples {
        boot_id,
        agent_start_unix_ms: start_ms,
        seq,
        start_unix_ms: unix_ms().saturating_sub(period_ms),
        interval_ms: (period_ms / u64::from(SLOTS)) as u32,
        slots: SLOTS,
        complete: true,
        subjects,
        series: all,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A Raspberry Pi 4's birth (4 cores, 4 GiB, 110 pods).
fn birth(name: &str, boot_id: BootId, start_ms: u64, seq: u64, index: usize) -> Birth {
    Birth {
        node: name.to_owned(),
        boot_id,
        agent_start_unix_ms: start_ms,
        seq,
        agent_version: kelp_shared::VERSION.to_owned(),
        wire_versions: SUPPORTED_WIRE_VERSIONS.to_vec(),
        os: "linux".into(),
        arch: "arm64".into(),
        kernel: "6.6.51-v8+".into(),
        capacity: Resources {
            cpu_millis: 4_000,
            memory_bytes: 4 << 30,
            pods: 110,
        },
        cgroup_version: 2,
        addresses: vec![NodeAddress {
            kind: AddressKind::InternalIp,
            address: format!("192.168.{}.{}", index / 250, index % 250 + 1),
        }],
        labels: Vec::new(),
    }
}

/// The pod reported Running, its containers started.
fn running_report(pod: &Value) -> PodReport {
    let meta = &pod["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let containers = pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| ContainerReport {
            name: text(&c["name"]),
            state: ContainerState::Running {
                started_at_unix_ms: unix_ms(),
            },
            last_state: None,
            ready: true,
            restart_count: 0,
            image: text(&c["image"]),
            image_id: String::new(),
            container_id: String::new(),
        })
        .collect();
    PodReport {
        namespace: text(&meta["namespace"]),
        name: text(&meta["name"]),
        uid: text(&meta["uid"]),
        phase: PodPhase::Running,
        pod_ip: None,
        containers,
        init_containers: Vec::new(),
        reason: String::new(),
        message: String::new(),
        start_unix_ms: Some(unix_ms()),
    }
}

/// A small pod without `nodeName`: the scheduler places it.
fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "fleet-bench"}},
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.local/bench/app:1.0",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }],
        },
    })
}

/// How many Nodes are `Ready=True`, and how many pods are Running.
fn count_ready(api: &Api, kind: &str) -> usize {
    let path = match kind {
        "Node" => "/api/v1/nodes",
        _ => "/api/v1/namespaces/default/pods",
    };
    let (code, list) = api.call("GET", path, None);
    assert_eq!(code, 200, "GET {path}: {list}");
    list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|o| match kind {
            "Node" => o["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            }),
            _ => o["status"]["phase"] == "Running",
        })
        .count()
}

/// Polls `done` (have, want) every `poll` until have >= want; panics after `deadline`.
fn wait_for(
    what: &str,
    deadline: Duration,
    poll: Duration,
    mut done: impl FnMut() -> (usize, usize),
) -> Duration {
    let started = Instant::now();
    let mut progress = started;
    loop {
        let (have, want) = done();
        if have >= want {
            return started.elapsed();
        }
        if progress.elapsed() >= Duration::from_secs(5) {
            progress = Instant::now();
            eprintln!(
                "  ... {what}: {have} of {want} after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        assert!(
            started.elapsed() < deadline,
            "{what}: only {have} of {want} after {deadline:?}"
        );
        std::thread::sleep(poll);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// CPU, RSS and disk writes between two samples, printed.
fn print_window(label: &str, a: ProcSample, b: ProcSample, ticks: f64, disk_target: bool) {
    let wall = b.at.duration_since(a.at).as_secs_f64();
    let cpu = (b.cpu_ticks - a.cpu_ticks) as f64 / ticks;
    let written = b.write_bytes.saturating_sub(a.write_bytes) as f64;
    let per_min_kib = written / 1024.0 / wall * 60.0;
    println!(
        "  {label} ({wall:.1} s): controller CPU {cpu:.1} s = {:.0}% of one core (no target; expected well under the 2 cores DESIGN.md gives 10,000 nodes), RSS {:.1} MiB, peak {:.1} MiB (no target; expected tens of MiB, the store keeps every object in memory)",
        cpu / wall * 100.0,
        b.rss_kib as f64 / 1024.0,
        b.hwm_kib as f64 / 1024.0,
    );
    if disk_target {
        println!(
            "fleet controller disk writes when idle: {per_min_kib:.0} KiB/min (target: <= 1024 KiB/min, kelp's choice for SD-card wear) {}",
            verdict(per_min_kib <= 1024.0)
        );
    } else {
        println!(
            "  {label}: controller disk writes {per_min_kib:.0} KiB/min ({:.1} MiB in all; no target)",
            written / 1024.0 / 1024.0
        );
    }
}

fn main() {
    let full = std::env::var("KELP_BENCH_FULL").is_ok_and(|v| v == "1");
    let mut sizes = sizes(full);
    // KELP_BENCH_NODES / KELP_BENCH_PODS: sizes in between, for profiling.
    let number = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(nodes) = number("KELP_BENCH_NODES") {
        sizes.nodes = nodes;
    }
    if let Some(pods) = number("KELP_BENCH_PODS") {
        sizes.pods = pods;
    }
    let base = std::env::var_os("KELP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("kelp-fleet-bench-")
        .tempdir_in(&base)
        .expect("temporary directory");
    // KELP_BENCH_KEEP=1 keeps the directory (server and broker logs) for a look afterwards.
    let (_remove, dir) = if std::env::var("KELP_BENCH_KEEP").is_ok_and(|v| v == "1") {
        let kept = dir.keep();
        println!("  keeping {} (server and broker logs)", kept.display());
        (None, kept)
    } else {
        let path = dir.path().to_path_buf();
        (Some(dir), path)
    };
    println!(
        "fleet bench ({}): {} simulated nodes, {} pods, {} API clients, keepalive {:?}, idle window {:?}; {} CPUs",
        if full { "full" } else { "smoke; KELP_BENCH_FULL=1 for 1,000 nodes and 10,000 pods" },
        sizes.nodes,
        sizes.pods,
        sizes.clients,
        sizes.keepalive,
        sizes.idle,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "  nodes send births, heartbeats, reports and a metrics batch per keepalive (6 samples of the node's 10 series and 5 per pod)"
    );
    let (_mosquitto, broker) = start_mosquitto(&dir);
    let (server, api) = start_server(&dir, broker);
    let pid = server.0.id();
    let ticks = clock_ticks();

    let (code, info) = api.call(
        "GET",
        "/api/v1/namespaces/kube-public/configmaps/kelp-cluster-info",
        None,
    );
    assert_eq!(code, 200, "cluster info: {info}");
    let cluster: ClusterId = info["data"]["clusterId"]
        .as_str()
        .expect("clusterId")
        .parse()
        .expect("cluster id");
    let topics =
        Topics::new(info["data"]["topicPrefix"].as_str().expect("prefix")).expect("topics");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let seen = Arc::new(Seen::default());
    let joined = Instant::now();
    for i in 0..sizes.nodes {
        runtime.spawn(sim_node(
            format!("sim-{i:04}"),
            broker,
            cluster,
            topics.clone(),
            sizes.keepalive,
            seen.clone(),
            i,
        ));
    }
    let took = wait_for("nodes Ready", Duration::from_secs(300), sizes.poll, || {
        (count_ready(&api, "Node"), sizes.nodes)
    });
    println!(
        "  {} nodes connected and Ready in {:.1} s (births → Node objects)",
        seen.connected.load(Ordering::Relaxed),
        joined.elapsed().as_secs_f64().max(took.as_secs_f64())
    );
    // Let the births' writes settle before measuring.
    std::thread::sleep(Duration::from_secs(2));

    // Apply.
    let before_apply = sample(pid);
    let applied = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let acks: Vec<(String, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..sizes.clients)
            .map(|_| {
                let next = next.clone();
                let api = &api;
                let total = sizes.pods;
                scope.spawn(move || {
                    let mut acks = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return acks;
                        }
                        let name = format!("fleet-{i:05}");
                        let (code, body) =
                            api.call("POST", "/api/v1/namespaces/default/pods", Some(&pod(&name)));
                        assert_eq!(code, 201, "POST pod {name}: {body}");
                        acks.push((name, Instant::now()));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("API client"))
            .collect()
    });
    let posted = applied.elapsed();
    let delivered_in = wait_for(
        "pods delivered to their nodes",
        sizes.delivery_deadline,
        Duration::from_millis(100),
        || {
            let delivered = seen.delivered.lock().expect("lock");
            (
                acks.iter()
                    .filter(|(n, _)| delivered.contains_key(n))
                    .count(),
                acks.len(),
            )
        },
    );
    let after_apply = sample(pid);
    let delivered = seen.delivered.lock().expect("lock").clone();
    let mut latencies: Vec<Duration> = acks
        .iter()
        .map(|(name, acked)| delivered[name].saturating_duration_since(*acked))
        .collect();
    latencies.sort_unstable();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "fleet apply -> desired-state publish, p99: {} (target: <= 1000 ms, a fifth of Kubernetes' 5 s pod-startup SLO) {}",
        ms(p99),
        verdict(p99 <= Duration::from_secs(1))
    );
    println!(
        "  p50 {} max {}; {} POSTs in {:.1} s ({:.0} pods/s), all on their nodes {:.1} s after the last; {} desired states received ({:.1} MiB)",
        ms(percentile(&latencies, 0.5)),
        ms(latencies.last().copied().unwrap_or_default()),
        acks.len(),
        posted.as_secs_f64(),
        acks.len() as f64 / posted.as_secs_f64(),
        delivered_in.as_secs_f64(),
        seen.desired_states.load(Ordering::Relaxed),
        seen.desired_bytes.load(Ordering::Relaxed) as f64 / 1024.0 / 1024.0,
    );
    print_window("apply", before_apply, after_apply, ticks, false);

    // The reports make the pods Running; then the cluster is idle.
    // Listing every pod is work for the controller too: not too often.
    let settled = wait_for("pods Running", sizes.delivery_deadline, sizes.poll, || {
        (count_ready(&api, "Pod"), sizes.pods)
    });
    let after_settle = sample(pid);
    println!(
        "  all pods Running in the API {:.1} s later (no target; the nodes' reports written into pod status)",
        settled.as_secs_f64()
    );
    print_window("reports", after_apply, after_settle, ticks, false);
    // The store commits status writes (relaxed) to disk within 60 s: at full size that
    // flush is waited for, and counted here, not in the idle minute (it is the reports'
    // writing, done once). The smoke's idle window ends before it.
    if full {
        std::thread::sleep(Duration::from_secs(65));
        let after_flush = sample(pid);
        print_window("reports' flush", after_settle, after_flush, ticks, false);
    } else {
        std::thread::sleep(Duration::from_secs(2));
    }
    let before_idle = sample(pid);
    std::thread::sleep(sizes.idle);
    let after_idle = sample(pid);
    print_window("idle", before_idle, after_idle, ticks, true);
    let batches = seen.metrics_batches.load(Ordering::Relaxed);
    println!(
        "  metrics: {batches} batches published by the nodes in all ({:.1} MiB; mean {} bytes)",
        seen.metrics_bytes.load(Ordering::Relaxed) as f64 / 1024.0 / 1024.0,
        seen.metrics_bytes.load(Ordering::Relaxed) / batches.max(1)
    );
    if !full {
        println!(
            "  (smoke: idle figures scaled from a {:?} window)",
            sizes.idle
        );
    }
    runtime.shutdown_background();
}
