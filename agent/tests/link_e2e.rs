//! End-to-end tests of the agent's side of the MQTT link: a real agent joined (by a join file)
//! to a real Mosquitto broker with password authentication; the test plays the controller
//! with its own signing key. As root; the broker and everything the node made are removed on
//! drop.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Node, BUSYBOX};
use kelp_agent::runtime::{ContainerRuntime, MonitorRuntime};
use kelp_shared::join::JoinFile;
use kelp_shared::wire::sign::{sign, SigningKey};
use kelp_shared::wire::{
    Birth, ClusterId, DesiredState, Envelope, Generation, MessageKind, Reported, Topics,
};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

const NODE: &str = "e2e";

/// A Mosquitto broker on a free loopback port, with users `controller` and `e2e`.
struct Broker {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start(test: &str) -> Self {
        assert!(
            Command::new("mosquitto").arg("-h").output().is_ok(),
            "mosquitto is missing: apt-get install mosquitto"
        );
        let dir = std::env::temp_dir().join(format!("kelp-mqtt-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let passwd = dir.join("passwd");
        for (i, (user, pass)) in [("controller", "c-secret"), (NODE, "n-secret")]
            .iter()
            .enumerate()
        {
            let mut cmd = Command::new("mosquitto_passwd");
            if i == 0 {
                cmd.arg("-c");
            }
            let out = cmd
                .arg("-b")
                .arg(&passwd)
                .args([user, pass])
                .output()
                .unwrap();
            assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        fs::write(
            dir.join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
                passwd.display()
            ),
        )
        .unwrap();
        let mut broker = Self {
            dir,
            port,
            child: None,
        };
        broker.resume();
        broker
    }

    fn resume(&mut self) {
        let log = fs::File::create(self.dir.join("mosquitto.log")).unwrap();
        self.child = Some(
            Command::new("mosquitto")
                .arg("-c")
                .arg(self.dir.join("mosquitto.conf"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The test's controller: a key, a cluster id, an MQTT client that sees what the node
/// publishes.
struct Controller {
    key: SigningKey,
    cluster: ClusterId,
    topics: Topics,
    client: Client,
    rx: mpsc::Receiver<(String, Vec<u8>)>,
}

impl Controller {
    fn connect(broker: &Broker, cluster: ClusterId) -> Self {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let mut options = MqttOptions::new("controller", "127.0.0.1", broker.port);
        options
            .set_credentials("controller", "c-secret")
            .set_max_packet_size(2 << 20, 2 << 20);
        let (client, mut connection) = Client::new(options, 64);
        let topics = Topics::new("kelp/v1").unwrap();
        let subscriptions = [topics.status(NODE).unwrap(), topics.reported(NODE).unwrap()];
        let (tx, rx) = mpsc::channel();
        let thread_client = client.clone();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    // Subscribe on every session: the broker may have restarted.
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for t in &subscriptions {
                            let _ = thread_client.try_subscribe(t.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Self {
            key,
            cluster,
            topics,
            client,
            rx,
        }
    }

    fn join_file(&self, broker: &Broker, dir: &std::path::Path) -> PathBuf {
        let join = JoinFile {
            broker_url: format!("mqtt://127.0.0.1:{}", broker.port),
            username: NODE.into(),
            password: "n-secret".into(),
            ca_pem: None,
            cluster_id: self.cluster,
            controller_public_key: self.key.public_key(),
            node_name: NODE.into(),
            topic_prefix: "kelp/v1".into(),
            client_identity: None,
        };
        let path = dir.join("join.yaml");
        fs::write(&path, join.to_yaml()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// Publishes a desired state (retained), sealed for `cluster` and signed by `key`.
    fn publish(&self, state: &DesiredState, cluster: ClusterId, key: Option<&SigningKey>) {
        let mut envelope = Envelope::seal_message(cluster, state, true).unwrap();
        if let Some(k) = key {
            sign(&mut envelope, k);
        }
        self.client
            .publish(
                self.topics.desired(NODE).unwrap(),
                QoS::AtLeastOnce,
                true,
                envelope.encode(),
            )
            .unwrap();
    }

    /// Waits for a message from the node that `check` accepts.
    fn wait<T>(&self, what: &str, mut check: impl FnMut(&Envelope) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            if let Ok((_, payload)) = self.rx.recv_timeout(left) {
                if payload.is_empty() {
                    continue;
                }
                let envelope = Envelope::decode(&payload).expect("the node's envelopes decode");
                assert_eq!(
                    envelope.cluster, self.cluster,
                    "the node speaks for its cluster"
                );
                if let Some(v) = check(&envelope) {
                    return v;
                }
            }
        }
    }

    fn wait_reported(&self, what: &str, mut check: impl FnMut(&Reported) -> bool) -> Reported {
        self.wait(what, |e| {
            (e.kind == MessageKind::Reported)
                .then(|| e.open::<Reported>().unwrap())
                .filter(|r| check(r))
        })
    }
}

fn pod_json(name: &str, uid: &str, command: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": BUSYBOX, "command": ["sh", "-c", command]}]
        }
    }))
    .unwrap()
}

fn desired(cluster: ClusterId, revision: u64, objects: Vec<Vec<u8>>) -> DesiredState {
    DesiredState {
        generation: Generation {
            cluster_id: cluster,
            revision,
        },
        node: NODE.into(),
        objects_json: objects,
    }
}

/// Waits for the controller-assigned pod `name` (no static-pod suffix) to run.
fn wait_pod_running(node: &Node, name: &str) -> kelp_agent::agent::PodReport {
    node.wait_for(
        &format!("pod {name} running"),
        Duration::from_secs(60),
        |n| {
            n.pods()
                .into_iter()
                .find(|p| p.name == name && p.status.phase.as_deref() == Some("Running"))
        },
    )
}

fn running(r: &Reported, name: &str) -> bool {
    r.pods
        .iter()
        .any(|p| p.name == name && p.phase == kelp_shared::wire::PodPhase::Running)
}

#[test]
fn joined_agent_runs_only_verified_desired_state_and_keeps_it_offline() {
    let mut broker = Broker::start("join");
    let cluster = ClusterId([0x5a; 16]);
    let controller = Controller::connect(&broker, cluster);
    let mut node = Node::new("link");
    let join = controller.join_file(&broker, &node.base);
    node.extra_args = vec![
        "--join-file".into(),
        join.display().to_string(),
        "--mqtt-keepalive-secs".into(),
        "5".into(),
    ];
    node.start_agent();

    // Birth, retained on the status topic.
    let birth = controller.wait("the birth", |e| {
        (e.kind == MessageKind::Birth).then(|| e.open::<Birth>().unwrap())
    });
    assert_eq!(birth.node, NODE);
    assert!(birth.capacity.cpu_millis >= 1000 && birth.capacity.memory_bytes > 0);
    assert!(birth
        .labels
        .iter()
        .any(|(k, v)| k == "kubernetes.io/os" && v == "linux"));

    // A signed desired state for this node runs; its status comes back.
    let web = pod_json("web", "00000000-0000-4000-8000-00000000000a", "sleep 3600");
    controller.publish(
        &desired(cluster, 10, vec![web.clone()]),
        cluster,
        Some(&controller.key),
    );
    let reported = controller.wait_reported("web Running", |r| running(r, "web"));
    assert_eq!(reported.applied_generation.map(|g| g.revision), Some(10));
    wait_pod_running(&node, "web");

    // Forged, foreign, stale and empty desired states change nothing.
    let other_key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
    let evil = pod_json("evil", "00000000-0000-4000-8000-00000000000e", "sleep 3600");
    controller.publish(
        &desired(cluster, 20, vec![evil.clone()]),
        cluster,
        Some(&other_key),
    );
    controller.publish(&desired(cluster, 21, vec![evil.clone()]), cluster, None);
    let foreign = ClusterId([0x77; 16]);
    controller.publish(
        &desired(foreign, 22, vec![evil.clone()]),
        foreign,
        Some(&controller.key),
    );
    controller.publish(
        &desired(cluster, 5, vec![evil.clone()]),
        cluster,
        Some(&controller.key),
    );
    controller
        .client
        .publish(
            controller.topics.desired(NODE).unwrap(),
            QoS::AtLeastOnce,
            true,
            Vec::<u8>::new(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let names: Vec<String> = node.pods().into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["web".to_string()], "nothing else ran");
    let log = fs::read_to_string(&node.agent_log).unwrap();
    for says in [
        "bad signature",
        "not signed",
        "for cluster",
        "generation 5 ignored",
    ] {
        assert!(log.contains(says), "the agent log says {says:?}:\n{log}");
    }

    // Broker gone: the pod keeps running. Then a "reboot" with no network: agent killed, every
    // sandbox removed and the run dir emptied; the agent brings the pod back from its copy.
    broker.stop();
    let before = node.pods();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node.pods()[0].status.phase.as_deref(), Some("Running"));
    node.kill_agent();
    let runtime = MonitorRuntime::new(node.runtime_config()).unwrap();
    for uid in runtime.sandboxes().unwrap() {
        runtime.remove_sandbox(&uid, None).unwrap();
    }
    assert!(runtime.sandboxes().unwrap().is_empty());
    node.start_agent();
    let back = wait_pod_running(&node, "web");
    assert_eq!(back.uid, before[0].uid, "the same pod, from the local copy");
    assert_eq!(runtime.sandboxes().unwrap().len(), 1, "no duplicate");

    // The broker returns: the node is born again and reports its pod.
    broker.resume();
    controller.wait_reported("web reported after reconnecting", |r| running(r, "web"));
}

/// A Secret's value, and its base64 (`data`) form.
const SECRET_VALUE: &str = "s3cr3t-kelp-e2e-value";
const SECRET_BASE64: &str = "czNjcjN0LWtlbHAtZTJlLXZhbHVl";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The files of the node's secrets directory.
fn secret_files(node: &Node) -> Vec<PathBuf> {
    fs::read_dir(node.state_dir.join("secrets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn secret_data_stays_out_of_agent_redb_and_its_file_goes_with_the_last_pod_using_it() {
    let mut broker = Broker::start("secrets");
    let cluster = ClusterId([0x5b; 16]);
    let controller = Controller::connect(&broker, cluster);
    let mut node = Node::new("linksec");
    let join = controller.join_file(&broker, &node.base);
    node.extra_args = vec![
        "--join-file".into(),
        join.display().to_string(),
        "--mqtt-keepalive-secs".into(),
        "5".into(),
    ];
    node.start_agent();

    let secret = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default", "uid": "00000000-0000-4000-8000-0000000000c1"},
        "data": {"key": SECRET_BASE64}
    }))
    .unwrap();
    let pod = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sec", "namespace": "default", "uid": "00000000-0000-4000-8000-0000000000c2"},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c", "image": BUSYBOX,
                "command": ["sh", "-c", "echo file=$(cat /s/key) env=$X; sleep 3600"],
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}}],
                "volumeMounts": [{"name": "s", "mountPath": "/s"}]
            }],
            "volumes": [{"name": "s", "secret": {"secretName": "creds"}}]
        }
    }))
    .unwrap();
    controller.publish(
        &desired(cluster, 10, vec![secret.clone(), pod]),
        cluster,
        Some(&controller.key),
    );
    let says = format!("file={SECRET_VALUE} env={SECRET_VALUE}");
    let first = wait_pod_running(&node, "sec");
    node.wait_for("the Secret in the pod", Duration::from_secs(30), |n| {
        n.log_of(&first, "c").contains(&says).then_some(())
    });

    // The Secret is in a 0600 file of a 0700 directory, not in agent.redb.
    let redb = fs::read(node.state_dir.join("agent.redb")).unwrap();
    assert!(!contains(&redb, SECRET_VALUE) && !contains(&redb, SECRET_BASE64));
    let dir = node.state_dir.join("secrets");
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    let files = secret_files(&node);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        fs::metadata(&files[0]).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert!(contains(&fs::read(&files[0]).unwrap(), SECRET_BASE64));

    // A reboot with no network: the pod comes back with its Secret from the local copy.
    broker.stop();
    node.kill_agent();
    let runtime = MonitorRuntime::new(node.runtime_config()).unwrap();
    for uid in runtime.sandboxes().unwrap() {
        runtime.remove_sandbox(&uid, None).unwrap();
    }
    node.start_agent();
    let back = wait_pod_running(&node, "sec");
    node.wait_for(
        "the Secret in the pod after the restart",
        Duration::from_secs(30),
        |n| n.log_of(&back, "c").contains(&says).then_some(()),
    );

    // The pod goes (its Secret still in the state): so does the Secret's file.
    broker.resume();
    controller.wait_reported("sec reported after reconnecting", |r| running(r, "sec"));
    controller.publish(
        &desired(cluster, 11, vec![secret]),
        cluster,
        Some(&controller.key),
    );
    node.wait_for("the pod gone", Duration::from_secs(30), |n| {
        n.pods().is_empty().then_some(())
    });
    assert!(
        secret_files(&node).is_empty(),
        "the Secret's file is deleted"
    );
    let redb = fs::read(node.state_dir.join("agent.redb")).unwrap();
    assert!(!contains(&redb, SECRET_VALUE) && !contains(&redb, SECRET_BASE64));
}
