//! End to end over MQTT: the real `kelp server` with its embedded broker, the real `kelp`
//! CLI, and a rumqttc client playing the node with the join file's credentials.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{eventually, text, Server};
use kelp_shared::join::JoinFile;
use kelp_shared::wire::{
    verify, AddressKind, Birth, BootId, ContainerReport, ContainerState, DesiredState, Envelope,
    Message, NodeAddress, Offline, PodPhase, PodReport, Reported, Resources, Topics,
};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use serde_json::Value;

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn options(join: &JoinFile, password: &str, will: Option<LastWill>) -> MqttOptions {
    let (host, port, _) = join.broker_address().unwrap();
    let mut o = MqttOptions::new(join.node_name.clone(), host, port);
    o.set_credentials(join.username.clone(), password.to_owned())
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(2 << 20, 2 << 20);
    if let Some(will) = will {
        o.set_last_will(will);
    }
    o
}

/// Polls until CONNACK; the error when the broker refuses or drops the connection.
async fn connack(eventloop: &mut EventLoop) -> Result<(), ConnectionError> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
            .await
            .expect("no answer from the broker within 10 s")?
        {
            Event::Incoming(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                return Ok(());
            }
            _ => continue,
        }
    }
}

/// Keeps polling in the background (so QoS 1 publishes go out); incoming publishes come
/// out of the channel.
fn drive(
    mut eventloop: EventLoop,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = tx.send(p);
            }
        }
    });
    (task, rx)
}

/// The next publish on `topic` that satisfies `want`.
async fn next_publish(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
    topic: &str,
    mut want: impl FnMut(&rumqttc::Publish) -> bool,
) -> rumqttc::Publish {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let p = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching publish on {topic} within 20 s"))
            .expect("MQTT connection ended");
        if p.topic == topic && want(&p) {
            return p;
        }
    }
}

fn seal<M: Message>(join: &JoinFile, m: &M) -> Vec<u8> {
    Envelope::seal_message(join.cluster_id, m, false)
        .unwrap()
        .encode()
}

fn birth(join: &JoinFile) -> Birth {
    Birth {
        node: join.node_name.clone(),
        boot_id: BootId([5; 16]),
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
        labels: vec![("site".into(), "lab".into())],
    }
}

fn get_json(server: &Server, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(&server.kelp(&all))).unwrap()
}

fn ready(node: &Value) -> Option<String> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str().map(str::to_owned))
}

const POD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-conf
data:
  index.html: hello from kelp
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  nodeName: pi-1
  containers:
  - name: web
    image: busybox:1.36
    envFrom:
    - configMapRef:
        name: web-conf
"#;

#[test]
fn a_node_joins_gets_signed_desired_state_and_reports_back() {
    let server = Server::start(&["--desired-debounce", "20ms"]);
    let mqtt = server.mqtt.clone().expect("the embedded broker's address");

    // kelp node add: a 0600 join file; the name is then taken.
    let join_path = server.dir.path().join("pi-1.join.yaml");
    let out = server.kelp(&["node", "add", "pi-1", "-o", join_path.to_str().unwrap()]);
    assert!(ok(&out).contains("node/pi-1 created"));
    let mode = std::fs::metadata(&join_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let join = JoinFile::parse(&std::fs::read_to_string(&join_path).unwrap()).unwrap();
    assert_eq!(join.broker_url, format!("mqtt://{mqtt}"));
    assert_eq!(join.node_name, "pi-1");
    assert_eq!(join.topic_prefix, "kelp/v1");
    let other = server.dir.path().join("again.yaml");
    let out = server.kelp(&["node", "add", "pi-1", "-o", other.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        text(&out)
    );
    assert!(!other.exists());

    let topics = Topics::new(&join.topic_prefix).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Wrong credentials are refused.
        for (user, password) in [("pi-1", "wrong"), ("pi-2", join.password.as_str())] {
            let mut o = options(&join, password, None);
            o.set_credentials(user, password);
            let (_client, mut eventloop) = AsyncClient::new(o, 10);
            assert!(
                connack(&mut eventloop).await.is_err(),
                "{user}/{password} must be refused"
            );
        }

        // The node: birth (retained), with the will saying offline.
        let will = LastWill::new(
            topics.status("pi-1").unwrap(),
            seal(
                &join,
                &Offline {
                    node: "pi-1".into(),
                    boot_id: BootId([5; 16]),
                },
            ),
            QoS::AtLeastOnce,
            true,
        );
        let (node, mut eventloop) =
            AsyncClient::new(options(&join, &join.password, Some(will)), 10);
        connack(&mut eventloop)
            .await
            .expect("the join file's credentials work");
        let (driver, mut incoming) = drive(eventloop);
        node.publish(
            topics.status("pi-1").unwrap(),
            QoS::AtLeastOnce,
            true,
            seal(&join, &birth(&join)),
        )
        .await
        .unwrap();
        let node_obj = eventually(Duration::from_secs(20), "the Node to be Ready", || {
            let n = get_json(&server, &["node", "pi-1"]);
            (ready(&n).as_deref() == Some("True")).then_some(n)
        });
        assert_eq!(
            node_obj["metadata"]["labels"]["kubernetes.io/arch"],
            "arm64"
        );
        assert_eq!(
            node_obj["metadata"]["labels"]["kubernetes.io/hostname"],
            "pi-1"
        );
        assert_eq!(node_obj["metadata"]["labels"]["site"], "lab");
        assert_eq!(node_obj["status"]["capacity"]["cpu"], "4");
        let pod_cidr = node_obj["spec"]["podCIDR"].as_str().unwrap().to_owned();
        assert!(
            pod_cidr.starts_with("10.42.") && pod_cidr.ends_with("/24"),
            "{pod_cidr}"
        );

        // A pod bound to the node reaches it, signed, with the ConfigMap it uses.
        let file = server.file("web.yaml", POD);
        ok(&server.kelp(&["apply", "-f", &file]));
        // Subscribing after the apply: the desired state is there, retained.
        node.subscribe(topics.desired("pi-1").unwrap(), QoS::AtLeastOnce)
            .await
            .unwrap();
        let mut desired: Option<DesiredState> = None;
        next_publish(&mut incoming, &topics.desired("pi-1").unwrap(), |p| {
            let envelope = Envelope::decode(&p.payload).unwrap();
            verify(&envelope, &join.controller_public_key)
                .expect("desired state signed by the key in the join file");
            let state: DesiredState = envelope.open().unwrap();
            let has_pod = state
                .objects_json
                .iter()
                .any(|o| String::from_utf8_lossy(o).contains(r#""name":"web""#));
            if has_pod {
                desired = Some(state);
            }
            has_pod
        })
        .await;
        let desired = desired.unwrap();
        assert_eq!(desired.node, "pi-1");
        assert_eq!(desired.generation.cluster_id, join.cluster_id);
        let objects: Vec<Value> = desired
            .objects_json
            .iter()
            .map(|o| serde_json::from_slice(o).unwrap())
            .collect();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Node", "Pod", "ConfigMap"]);
        assert_eq!(objects[0]["spec"]["podCIDR"], pod_cidr.as_str());
        assert_eq!(objects[2]["data"]["index.html"], "hello from kelp");

        // The report comes back as the pod's status.
        let uid = get_json(&server, &["pod", "web"])["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_owned();
        let reported = Reported {
            node: "pi-1".into(),
            boot_id: BootId([5; 16]),
            agent_start_unix_ms: 1_700_000_000_000,
            seq: 1,
            applied_generation: Some(desired.generation),
            pods: vec![PodReport {
                namespace: "default".into(),
                name: "web".into(),
                uid,
                phase: PodPhase::Running,
                pod_ip: Some("10.42.0.9".parse().unwrap()),
                containers: vec![ContainerReport {
                    name: "web".into(),
                    state: ContainerState::Running {
                        started_at_unix_ms: 1_700_000_001_000,
                    },
                    last_state: None,
                    ready: true,
                    restart_count: 0,
                    image: "busybox:1.36".into(),
                    image_id: "sha256:0123".into(),
                    container_id: "kelp://web".into(),
                }],
                init_containers: vec![],
                reason: String::new(),
                message: String::new(),
                start_unix_ms: Some(1_700_000_000_500),
            }],
            conditions: vec![],
        };
        node.publish(
            topics.reported("pi-1").unwrap(),
            QoS::AtLeastOnce,
            true,
            seal(&join, &reported),
        )
        .await
        .unwrap();
        let wide = eventually(Duration::from_secs(20), "the pod's reported status", || {
            let out = ok(&server.kelp(&["get", "pods", "-o", "wide"]));
            out.contains("10.42.0.9").then_some(out)
        });
        let row = wide.lines().find(|l| l.starts_with("web ")).unwrap();
        for want in ["1/1", "Running", "10.42.0.9", "pi-1"] {
            assert!(row.contains(want), "{want} not in {row:?}\n{wide}");
        }
        let pod = get_json(&server, &["pod", "web"]);
        assert_eq!(pod["status"]["hostIP"], "192.168.7.21");

        // The node vanishes: its will makes it Unknown.
        driver.abort();
        drop(node);
        let _ = driver.await;
        eventually(
            Duration::from_secs(30),
            "the Node to be Unknown after its will",
            || {
                let n = get_json(&server, &["node", "pi-1"]);
                (ready(&n).as_deref() == Some("Unknown")).then_some(())
            },
        );
    });
}
