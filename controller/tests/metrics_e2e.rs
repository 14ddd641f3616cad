//! Metrics end to end: a real `kelp server --disable-agent` with its embedded broker, a
//! rumqttc client playing node `pi-1` (join file credentials) that publishes hand-built
//! `Samples` batches, and the real `kelp` CLI: `kelp top nodes|pods`, `/metrics` parsed with
//! a Prometheus text-format parser, the Summary API, the pressure condition and taint, and
//! `kelp mqtt nodes|node` with an observer's credentials.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{eventually, text, Server};
use kelp_shared::join::JoinFile;
use kelp_shared::wire::{
    AddressKind, Birth, BootId, ContainerReport, ContainerState, Envelope, Message, Metric,
    NodeAddress, Offline, PodPhase, PodReport, Reported, Resources, SampleSeries, Samples, Subject,
    Topics,
};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::Value;

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn seal<M: Message>(join: &JoinFile, m: &M) -> Vec<u8> {
    Envelope::seal_message(join.cluster_id, m, false)
        .unwrap()
        .encode()
}

const BOOT: BootId = BootId([5; 16]);

fn birth(join: &JoinFile) -> Birth {
    Birth {
        node: join.node_name.clone(),
        boot_id: BOOT,
        agent_start_unix_ms: 1_700_000_000_000,
        seq: 1,
        agent_version: "0.1.0".into(),
        wire_versions: vec![1],
        os: "linux".into(),
        arch: "arm64".into(),
        kernel: "6.6.31-v8+".into(),
        capacity: Resources {
            cpu_millis: 4000,
            memory_bytes: 4 << 30,
            pods: 110,
        },
        cgroup_version: 2,
        addresses: vec![NodeAddress {
            kind: AddressKind::InternalIp,
            address: "192.168.7.21".into(),
        }],
        labels: vec![],
    }
}

fn report(join: &JoinFile) -> Reported {
    let running = |name: &str| ContainerReport {
        name: name.into(),
        state: ContainerState::Running {
            started_at_unix_ms: 1_700_000_000_000,
        },
        last_state: None,
        ready: true,
        restart_count: 0,
        image: "busybox".into(),
        image_id: String::new(),
        container_id: String::new(),
    };
    Reported {
        node: join.node_name.clone(),
        boot_id: BOOT,
        agent_start_unix_ms: 1_700_000_000_000,
        seq: 1,
        applied_generation: None,
        pods: vec![PodReport {
            namespace: "default".into(),
            name: "web".into(),
            uid: "uid-web".into(),
            phase: PodPhase::Running,
            pod_ip: None,
            containers: vec![running("nginx"), running("log")],
            init_containers: vec![],
            reason: String::new(),
            message: String::new(),
            start_unix_ms: Some(1_700_000_000_000),
        }],
        conditions: vec![],
    }
}

/// A complete batch ending about now: node at a quarter core (1 of 4), 512Mi working set,
/// only 50Mi available (memory pressure); pod default/web with containers nginx (1m, 3Mi)
/// and log, its network counters; pod other/batch with container job.
fn samples(seq: u64, start: u64) -> Samples {
    let slots = 6;
    let ramp = |per_slot: i64| (0..slots).map(|i| i * per_slot).collect::<Vec<i64>>();
    let flat = |v: i64| vec![v; slots as usize];
    let node = |m, values: Vec<i64>| SampleSeries::from_values(m, 0, 0, &values);
    let mut series = vec![
        node(Metric::CpuUsageNanoseconds, ramp(2_500_000_000)),
        node(Metric::MemoryWorkingSetBytes, flat(512 << 20)),
        node(Metric::MemoryCapacityBytes, flat(4 << 30)),
        node(Metric::MemoryAvailableBytes, flat(50 << 20)),
        node(Metric::FsCapacityBytes, flat(100 << 30)),
        node(Metric::FsAvailableBytes, flat(60 << 30)),
        node(Metric::FsInodes, flat(1_000_000)),
        node(Metric::FsInodesFree, flat(900_000)),
        node(Metric::ImageFsCapacityBytes, flat(100 << 30)),
        node(Metric::ImageFsAvailableBytes, flat(60 << 30)),
        node(Metric::ImageFsUsedBytes, flat(2 << 30)),
        node(Metric::PidsInUse, flat(300)),
        node(Metric::PidsMax, flat(32768)),
        node(Metric::UptimeSeconds, flat(3600)),
        node(Metric::TemperatureMillicelsius, flat(51_200)),
        node(Metric::ThrottledFlags, flat(0)),
    ];
    let container =
        |m, subject, values: Vec<i64>| SampleSeries::from_values(m, subject, 0, &values);
    // Subjects: 0 node, 1 pod web, 2 nginx, 3 log, 4 pod batch, 5 job.
    series.extend([
        container(Metric::NetworkRxBytes, 1, ramp(1000)),
        container(Metric::NetworkTxBytes, 1, ramp(500)),
        container(Metric::CpuUsageNanoseconds, 2, ramp(10_000_000)),
        container(Metric::MemoryWorkingSetBytes, 2, flat(3 << 20)),
        container(Metric::StartTimeSeconds, 2, flat(1_700_000_000)),
        container(Metric::FsUsedBytes, 2, flat(4096)),
        container(Metric::OomEvents, 2, flat(1)),
        container(Metric::CpuUsageNanoseconds, 3, ramp(0)),
        container(Metric::MemoryWorkingSetBytes, 3, flat(1 << 20)),
        container(Metric::StartTimeSeconds, 3, flat(1_700_000_001)),
        container(Metric::FsUsedBytes, 3, flat(0)),
        container(Metric::OomEvents, 3, flat(0)),
        container(Metric::CpuUsageNanoseconds, 5, ramp(100_000_000)),
        container(Metric::MemoryWorkingSetBytes, 5, flat(8 << 20)),
    ]);
    Samples {
        boot_id: BOOT,
        agent_start_unix_ms: 1_700_000_000_000,
        seq,
        start_unix_ms: start,
        interval_ms: 10_000,
        slots: slots as u32,
        complete: true,
        subjects: vec![
            Subject::Node,
            Subject::Pod {
                namespace: "default".into(),
                name: "web".into(),
            },
            Subject::Container {
                pod: 1,
                name: "nginx".into(),
            },
            Subject::Container {
                pod: 1,
                name: "log".into(),
            },
            Subject::Pod {
                namespace: "other".into(),
                name: "batch".into(),
            },
            Subject::Container {
                pod: 4,
                name: "job".into(),
            },
        ],
        series,
    }
}

async fn connack(eventloop: &mut EventLoop) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
            .await
            .expect("no answer from the broker within 10 s")
            .expect("the node's connection")
        {
            Event::Incoming(Packet::ConnAck(_)) => return,
            _ => continue,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn json_of(server: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&ok(&server.kelp(args))).unwrap()
}

fn condition<'a>(node: &'a Value, kind: &str) -> Option<&'a Value> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

#[test]
fn top_prometheus_summary_pressure_and_mqtt_from_hand_built_samples() {
    let server = Server::start(&["--desired-debounce", "20ms"]);
    let join_path = server.dir.path().join("pi-1.join.yaml");
    ok(&server.kelp(&["node", "add", "pi-1", "-o", join_path.to_str().unwrap()]));
    let join = JoinFile::parse(&std::fs::read_to_string(&join_path).unwrap()).unwrap();
    let observer = server.dir.path().join("laptop.observer.yaml");
    ok(&server.kelp(&[
        "observer",
        "add",
        "laptop",
        "-o",
        observer.to_str().unwrap(),
    ]));
    let observer = observer.to_str().unwrap().to_owned();
    let topics = Topics::new(&join.topic_prefix).unwrap();

    // Before any metrics: kubectl's error.
    let out = server.kelp(&["top", "nodes"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: metrics not available yet",
        "{}",
        text(&out)
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (client, task) = runtime.block_on(async {
        let (host, port, _) = join.broker_address().unwrap();
        let mut o = MqttOptions::new(join.node_name.clone(), host, port);
        o.set_credentials(join.username.clone(), join.password.clone())
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(2 << 20, 2 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 10);
        connack(&mut eventloop).await;
        let task = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        client
            .publish(
                topics.status("pi-1").unwrap(),
                QoS::AtLeastOnce,
                true,
                seal(&join, &birth(&join)),
            )
            .await
            .unwrap();
        client
            .publish(
                topics.reported("pi-1").unwrap(),
                QoS::AtLeastOnce,
                true,
                seal(&join, &report(&join)),
            )
            .await
            .unwrap();
        (client, task)
    });
    eventually(Duration::from_secs(20), "pi-1 Ready from its birth", || {
        let node = json_of(&server, &["get", "node", "pi-1", "-o", "json"]);
        (condition(&node, "Ready")?["status"] == "True").then_some(())
    });
    // Pods of the API exist in default but have no metrics yet: still "not available yet".
    ok(&server.kelp_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: pi-1\n  containers:\n  - name: nginx\n    image: busybox\n  - name: log\n    image: busybox\n"),
    ));
    let out = server.kelp(&["top", "pods"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("metrics not available yet"),
        "{}",
        text(&out)
    );

    // The node publishes a batch (QoS 0, as the agent does); retried until the hub has it.
    let start = now_ms() - 55_000;
    let mut seq = 1;
    eventually(
        Duration::from_secs(20),
        "kelp top nodes to show pi-1",
        || {
            runtime
                .block_on(client.publish(
                    topics.metrics("pi-1").unwrap(),
                    QoS::AtMostOnce,
                    false,
                    seal(&join, &samples(seq, start)),
                ))
                .unwrap();
            seq += 1;
            std::thread::sleep(Duration::from_millis(200));
            let out = server.kelp(&["top", "nodes"]);
            out.status.success().then(|| ok(&out))
        },
    );

    // kubectl's tables: a quarter core of 4 is 6%; 512Mi of 4Gi is 12%.
    let out = ok(&server.kelp(&["top", "nodes"]));
    assert_eq!(
        out,
        "NAME   CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%\n\
         pi-1   250m         6%     512Mi           12%\n"
    );
    let out = ok(&server.kelp(&["top", "pods"]));
    assert_eq!(
        out,
        "NAME   CPU(cores)   MEMORY(bytes)\nweb    1m           4Mi\n"
    );
    let out = ok(&server.kelp(&["top", "pods", "--containers"]));
    assert_eq!(
        out,
        "POD   NAME    CPU(cores)   MEMORY(bytes)\n\
         web   log     0m           1Mi\n\
         web   nginx   1m           3Mi\n"
    );
    let out = ok(&server.kelp(&["top", "pods", "-A"]));
    assert_eq!(
        out,
        "NAMESPACE   NAME    CPU(cores)   MEMORY(bytes)\n\
         default     web     1m           4Mi\n\
         other       batch   10m          8Mi\n"
    );
    let out = ok(&server.kelp(&["top", "pods", "-n", "other"]));
    assert!(out.contains("batch   10m"), "{out}");
    let out = server.kelp(&["top", "pods", "-n", "empty"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "No resources found in empty namespace."
    );

    // The metrics.k8s.io shape kubectl reads.
    let http = server.http(true);
    let reply = http.get("/apis/metrics.k8s.io/v1beta1/nodes/pi-1");
    assert_eq!(reply.code, 200, "{}", reply.text);
    assert_eq!(reply.body["kind"], "NodeMetrics");
    assert_eq!(reply.body["usage"]["cpu"], "250m");
    assert_eq!(reply.body["usage"]["memory"], "512Mi");
    assert_eq!(reply.body["window"], "50s");
    let reply = http.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web");
    assert_eq!(reply.body["kind"], "PodMetrics", "{}", reply.text);
    assert_eq!(reply.body["containers"].as_array().unwrap().len(), 2);
    let raw = ok(&server.kelp(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]));
    assert!(raw.contains("NodeMetricsList"), "{raw}");
    let raw = ok(&server.kelp(&["get", "--raw", "/metrics"]));
    assert!(
        raw.contains("# TYPE node_cpu_usage_seconds_total counter"),
        "{raw}"
    );
    let groups = http.get("/apis");
    assert!(groups.text.contains("metrics.k8s.io"), "{}", groups.text);

    // /metrics: the token is required, and the text parses.
    let anon = server.http(false).get("/metrics");
    assert_eq!(anon.code, 401, "{}", anon.text);
    let reply = http.get("/metrics");
    assert_eq!(reply.code, 200);
    let lines = reply.text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let names: HashSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    let want = [
        ("node_cpu_usage_seconds_total", &["node"][..]),
        ("node_memory_working_set_bytes", &["node"]),
        ("pod_cpu_usage_seconds_total", &["namespace", "node", "pod"]),
        (
            "pod_memory_working_set_bytes",
            &["namespace", "node", "pod"],
        ),
        (
            "container_cpu_usage_seconds_total",
            &["container", "namespace", "node", "pod"],
        ),
        (
            "container_memory_working_set_bytes",
            &["container", "namespace", "node", "pod"],
        ),
        (
            "container_start_time_seconds",
            &["container", "namespace", "node", "pod"],
        ),
        (
            "container_network_receive_bytes_total",
            &["container", "namespace", "node", "pod"],
        ),
        (
            "container_network_transmit_bytes_total",
            &["container", "namespace", "node", "pod"],
        ),
        (
            "container_fs_usage_bytes",
            &["container", "namespace", "node", "pod"],
        ),
        (
            "container_oom_events_total",
            &["container", "namespace", "node", "pod"],
        ),
    ];
    for (name, labels) in want {
        assert!(names.contains(name), "{name} missing:\n{}", reply.text);
        assert!(scrape.docs.contains_key(name), "no HELP for {name}");
        for sample in scrape.samples.iter().filter(|s| s.metric == name) {
            let mut got: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
            got.sort();
            assert_eq!(got, labels, "{name}: {sample:?}");
            assert_eq!(sample.labels.get("node"), Some("pi-1"));
            let age = now_ms() as i64 - sample.timestamp.timestamp_millis();
            assert!(
                (0..120_000).contains(&age),
                "{name}: timestamp {age} ms old"
            );
        }
    }
    let value = |name: &str, container: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("container").unwrap_or("") == container)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{name}: {:?}", s.value),
            })
            .unwrap_or_else(|| panic!("{name} {container}"))
    };
    assert!(matches!(
        scrape
            .samples
            .iter()
            .find(|s| s.metric == "node_cpu_usage_seconds_total")
            .unwrap()
            .value,
        prometheus_parse::Value::Counter(_)
    ));
    assert_eq!(value("node_cpu_usage_seconds_total", ""), 12.5);
    assert_eq!(value("container_cpu_usage_seconds_total", "nginx"), 0.05);
    assert_eq!(
        value("container_network_receive_bytes_total", "POD"),
        5000.0
    );
    assert_eq!(
        value("container_start_time_seconds", "nginx"),
        1_700_000_000.0
    );
    assert_eq!(value("container_oom_events_total", "nginx"), 1.0);

    // The Summary API, in the kubelet's shape.
    let reply = http.get("/api/v1/nodes/pi-1/proxy/stats/summary");
    assert_eq!(reply.code, 200, "{}", reply.text);
    let s = &reply.body;
    assert_eq!(s["node"]["nodeName"], "pi-1");
    assert_eq!(s["node"]["cpu"]["usageNanoCores"], 250_000_000);
    assert_eq!(s["node"]["memory"]["workingSetBytes"], 512u64 << 20);
    assert_eq!(s["node"]["fs"]["availableBytes"], 60u64 << 30);
    assert_eq!(s["node"]["runtime"]["imageFs"]["usedBytes"], 2u64 << 30);
    assert_eq!(s["node"]["rlimit"]["maxpid"], 32768);
    let web = s["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "web")
        .expect("pod web in the summary");
    assert_eq!(web["podRef"]["namespace"], "default");
    assert!(!web["podRef"]["uid"].as_str().unwrap().is_empty(), "{web}");
    assert_eq!(web["network"]["rxBytes"], 5000);
    assert_eq!(web["containers"].as_array().unwrap().len(), 2);
    assert_eq!(web["ephemeral-storage"]["usedBytes"], 4096);
    let missing = http.get("/api/v1/nodes/pi-9/proxy/stats/summary");
    assert_eq!(missing.code, 404);

    // 50Mi available: MemoryPressure, then the taint.
    eventually(
        Duration::from_secs(20),
        "MemoryPressure and its taint",
        || {
            let node = json_of(&server, &["get", "node", "pi-1", "-o", "json"]);
            let pressure = condition(&node, "MemoryPressure")?;
            assert_eq!(pressure["status"], "True", "{node}");
            assert_eq!(condition(&node, "DiskPressure")?["status"], "False");
            assert_eq!(condition(&node, "PIDPressure")?["status"], "False");
            node["spec"]["taints"]
                .as_array()?
                .iter()
                .any(|t| {
                    t["key"] == "node.kubernetes.io/memory-pressure" && t["effect"] == "NoSchedule"
                })
                .then_some(())
        },
    );

    // The field engineer's view, straight from the broker: retained birth and report (the
    // metrics batch is not retained, so no figures yet; it comes within a minute).
    let mqtt = |args: &[&str]| {
        let mut all = vec!["mqtt"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--credentials", &observer, "--once", "--wait", "1s"]);
        server.kelp(&all)
    };
    let out = ok(&mqtt(&["nodes"]));
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("pi-1 "))
        .unwrap_or_else(|| panic!("no pi-1 row:\n{out}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "yes", "{out}");
    assert_eq!(*row.last().unwrap(), "1/0", "{out}");
    // Without --once: the table redrawn every --interval until interrupted.
    let mut watch = std::process::Command::new(common::kelp_bin())
        .args([
            "mqtt",
            "nodes",
            "--credentials",
            &observer,
            "--interval",
            "500ms",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    watch.kill().unwrap();
    let out = watch.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    let redraws: Vec<&str> = screen.split("\x1b[H\x1b[2J").skip(1).collect();
    assert!(redraws.len() >= 3, "{screen:?}");
    assert!(
        redraws
            .last()
            .unwrap()
            .lines()
            .any(|l| l.starts_with("pi-1 ")),
        "{screen:?}"
    );
    let detail = ok(&mqtt(&["node", "pi-1"]));
    assert!(
        detail.contains("cpu 4000m, memory 4096Mi, pods 110"),
        "{detail}"
    );
    assert!(detail.contains("web"), "{detail}");
    let out = mqtt(&["node", "pi-7"]);
    assert!(!out.status.success(), "{}", text(&out));

    // The node goes away: its will (published here, as rumqttd 0.19 does not) says offline.
    runtime.block_on(async {
        let offline = Offline {
            node: "pi-1".into(),
            boot_id: BOOT,
        };
        client
            .publish(
                topics.status("pi-1").unwrap(),
                QoS::AtLeastOnce,
                true,
                seal(&join, &offline),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        task.abort();
    });
    eventually(
        Duration::from_secs(10),
        "pi-1 offline in kelp mqtt nodes",
        || {
            let out = ok(&mqtt(&["nodes"]));
            let online = out
                .lines()
                .find(|l| l.starts_with("pi-1 "))?
                .split_whitespace()
                .nth(1)?
                .to_owned();
            (online == "no").then_some(())
        },
    );

    // Wrong credentials: a clear error.
    let bad = server.dir.path().join("bad.yaml");
    let text_of = std::fs::read_to_string(&observer).unwrap();
    let mut creds: Value = serde_yaml_ng::from_str(&text_of).unwrap();
    creds["password"] = "wrong".into();
    std::fs::write(&bad, serde_yaml_ng::to_string(&creds).unwrap()).unwrap();
    let out = server.kelp(&[
        "mqtt",
        "nodes",
        "--credentials",
        bad.to_str().unwrap(),
        "--once",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect to the broker"),
        "{}",
        text(&out)
    );
}
