//! The hub against a real (in-memory) store and a recording publisher.

use std::cell::RefCell;

use kelp_shared::wire::{
    verify, AddressKind, Birth, BootId, ContainerReport, ContainerState, NodeAddress, PodPhase,
    PodReport, Reported, Resources,
};
use serde_json::json;

use super::*;
use crate::store::StoreOptions;

#[derive(Default)]
struct Recorder {
    sent: RefCell<Vec<(String, Vec<u8>)>>,
    full: RefCell<bool>,
}

impl Publisher for Recorder {
    fn publish_retained(&self, topic: &str, payload: Vec<u8>) -> bool {
        if *self.full.borrow() {
            return false;
        }
        self.sent.borrow_mut().push((topic.to_owned(), payload));
        true
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut *self.sent.borrow_mut())
    }
}

struct Fixture {
    store: Store,
    hub: Hub,
    identity: Arc<Identity>,
    /// The store's changes, handed to the hub before each sync ([`Hub::follow`]), as its
    /// run loop does; `None`: every sync lists the store.
    watch: Option<crate::store::Watch>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Follows the store's changes from now on, as the hub's run loop does.
    fn follow(&mut self) {
        self.watch = Some(self.store.watch(None, self.store.revision()).unwrap());
        self.hub.follow();
    }

    /// Hands the changes waiting on the watch to the hub, then syncs. Every desired state
    /// published must equal a projection of the whole store.
    async fn sync(&mut self, out: &Recorder) -> bool {
        if let Some(watch) = &mut self.watch {
            while let Ok(Some(change)) =
                tokio::time::timeout(Duration::from_millis(20), watch.next()).await
            {
                self.hub.observe(&change);
            }
        }
        let before = out.sent.borrow().len();
        let retry = self.hub.sync(out).await.unwrap();
        let (nodes, _) = self.store.list("Node", None);
        let (pods, _) = self.store.list("Pod", None);
        let (configmaps, _) = self.store.list("ConfigMap", None);
        let (secrets, _) = self.store.list("Secret", None);
        let whole = project::project_all(&nodes, &pods, &configmaps, &secrets);
        for (topic, payload) in out.sent.borrow()[before..].iter() {
            if payload.is_empty() {
                continue;
            }
            let desired = open(&self.identity, payload);
            assert_eq!(topic, &format!("kelp/v1/nodes/{}/desired", desired.node));
            let objects: Vec<Value> = desired
                .objects_json
                .iter()
                .map(|o| serde_json::from_slice(o).unwrap())
                .collect();
            assert_eq!(Some(&objects), whole.get(&desired.node), "{}", desired.node);
        }
        retry
    }
}

fn fixture() -> Fixture {
    let store = Store::open_in_memory(StoreOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let identity = Arc::new(Identity::load_or_create(dir.path()).unwrap());
    let hub = Hub::new(
        store.clone(),
        identity.clone(),
        Topics::default(),
        "10.42.0.0/16".parse().unwrap(),
    );
    Fixture {
        store,
        hub,
        identity,
        watch: None,
        _dir: dir,
    }
}

async fn put(store: &Store, kind: &str, ns: &str, name: &str, object: Value) {
    let key = Key::new(kind, ns, name);
    match store.get(&key) {
        Some(cur) => {
            store
                .update(key, object, Some(cur.revision), Durability::Durable)
                .await
                .unwrap();
        }
        None => {
            store
                .create(key, object, Durability::Durable)
                .await
                .unwrap();
        }
    }
}

fn pod(name: &str, node: &str, volumes: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], "volumes": volumes},
           "status": {"phase": "Pending"}})
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": format!("uid-{name}")}, "spec": {}})
}

fn open(identity: &Identity, payload: &[u8]) -> DesiredState {
    let envelope = Envelope::decode(payload).unwrap();
    verify(&envelope, &identity.key.public_key()).unwrap();
    envelope.open().unwrap()
}

#[tokio::test]
async fn publishes_signed_desired_state_on_change_only() {
    publishes_on_change_only(false).await;
}

/// The same, the hub following the store's watch (as its run loop does): only the nodes a
/// change touched are projected, and what they get is what a projection of everything gives.
#[tokio::test]
async fn publishes_on_change_only_following_the_watch() {
    publishes_on_change_only(true).await;
}

async fn publishes_on_change_only(follow: bool) {
    let mut f = fixture();
    if follow {
        f.follow();
    }
    let out = Recorder::default();
    put(&f.store, "Node", "", "pi-1", node("pi-1")).await;
    put(&f.store, "Node", "", "pi-2", node("pi-2")).await;
    put(&f.store, "ConfigMap", "default", "conf", json!({"kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "default"}, "data": {"a": "b"}})).await;
    put(
        &f.store,
        "Pod",
        "default",
        "web",
        pod(
            "web",
            "pi-1",
            json!([{"name": "v", "configMap": {"name": "conf"}}]),
        ),
    )
    .await;

    assert!(!f.sync(&out).await);
    let sent = out.take();
    assert_eq!(sent.len(), 2);
    let (topic, payload) = &sent[0];
    assert_eq!(topic, "kelp/v1/nodes/pi-1/desired");
    let desired = open(&f.identity, payload);
    assert_eq!(desired.node, "pi-1");
    assert_eq!(desired.generation.cluster_id, f.identity.cluster_id);
    assert_eq!(desired.generation.revision, f.store.revision());
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
    // The Node carries the pod CIDR the hub allocated; the two nodes got different ones.
    let cidr1 = objects[0]["spec"]["podCIDR"].as_str().unwrap().to_owned();
    let other = open(&f.identity, &sent[1].1);
    let node2: Value = serde_json::from_slice(&other.objects_json[0]).unwrap();
    assert_ne!(cidr1, node2["spec"]["podCIDR"].as_str().unwrap());
    assert!(cidr1.starts_with("10.42.") && cidr1.ends_with(".0/24"));

    // Nothing changed: nothing sent. A status-only write: nothing sent.
    assert!(!f.sync(&out).await);
    assert!(out.take().is_empty());
    let mut web = (*f
        .store
        .get(&Key::new("Pod", "default", "web"))
        .unwrap()
        .object)
        .clone();
    web["status"]["phase"] = json!("Running");
    put(&f.store, "Pod", "default", "web", web).await;
    f.sync(&out).await;
    assert!(out.take().is_empty());

    // The ConfigMap changes: pi-1 gets a new generation, pi-2 nothing.
    put(&f.store, "ConfigMap", "default", "conf", json!({"kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "default"}, "data": {"a": "c"}})).await;
    f.sync(&out).await;
    let sent = out.take();
    assert_eq!(sent.len(), 1);
    let again = open(&f.identity, &sent[0].1);
    assert!(again.generation > desired.generation);

    // A full client queue: retried later, nothing lost.
    put(
        &f.store,
        "Pod",
        "default",
        "db",
        pod("db", "pi-2", json!([])),
    )
    .await;
    *out.full.borrow_mut() = true;
    assert!(f.sync(&out).await);
    *out.full.borrow_mut() = false;
    assert!(!f.sync(&out).await);
    assert_eq!(out.take()[0].0, "kelp/v1/nodes/pi-2/desired");

    // A deleted pod leaves its node's desired state; the other node gets nothing.
    f.store
        .delete(Key::new("Pod", "default", "web"), None, Durability::Durable)
        .await
        .unwrap();
    f.sync(&out).await;
    let sent = out.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "kelp/v1/nodes/pi-1/desired");
    assert_eq!(open(&f.identity, &sent[0].1).objects_json.len(), 1);

    // A deleted (removed) node's retained topics are cleared.
    f.store
        .delete(Key::new("Node", "", "pi-2"), None, Durability::Durable)
        .await
        .unwrap();
    f.sync(&out).await;
    let cleared: Vec<(String, Vec<u8>)> = ["desired", "status", "reported", "static"]
        .iter()
        .map(|t| (format!("kelp/v1/nodes/pi-2/{t}"), Vec::new()))
        .collect();
    assert_eq!(out.take(), cleared);
}

#[tokio::test]
async fn an_oversized_desired_state_is_refused_with_a_condition_and_an_event() {
    let mut f = fixture();
    let out = Recorder::default();
    put(&f.store, "Node", "", "pi-1", node("pi-1")).await;
    // 1.5 MiB of incompressible data (an xorshift stream) in a Secret the pod mounts.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: String = (0..1_500_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect();
    put(&f.store, "Secret", "default", "big", json!({"kind": "Secret", "metadata": {"name": "big", "namespace": "default"}, "stringData": {"blob": noise}})).await;
    put(
        &f.store,
        "Pod",
        "default",
        "web",
        pod(
            "web",
            "pi-1",
            json!([{"name": "v", "secret": {"secretName": "big"}}]),
        ),
    )
    .await;

    f.hub.sync(&out).await.unwrap();
    assert!(
        out.take().is_empty(),
        "an oversized desired state must never be published"
    );
    let stored = f.store.get(&Key::new("Node", "", "pi-1")).unwrap();
    let cond = status::condition(&stored.object, TOO_LARGE).unwrap();
    assert_eq!(cond["status"], "True");
    assert!(
        cond["message"].as_str().unwrap().contains("1048576"),
        "{cond}"
    );
    // The event is kept in memory, never in the store.
    assert!(f.store.list("Event", None).0.is_empty());
    let (events, _) = f.hub.events().list(Some("default"), chrono::Utc::now());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], TOO_LARGE);
    assert_eq!(events[0]["involvedObject"]["name"], "pi-1");
    assert_eq!(events[0]["involvedObject"]["uid"], "uid-pi-1");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["source"]["component"], "kelp-hub");

    // Again: no second event.
    f.hub.sync(&out).await.unwrap();
    let (events, _) = f.hub.events().list(None, chrono::Utc::now());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["count"], 1);

    // The pod stops using the big Secret: published, condition cleared.
    put(
        &f.store,
        "Pod",
        "default",
        "web",
        pod("web", "pi-1", json!([])),
    )
    .await;
    f.hub.sync(&out).await.unwrap();
    assert_eq!(out.take().len(), 1);
    let stored = f.store.get(&Key::new("Node", "", "pi-1")).unwrap();
    assert_eq!(
        status::condition(&stored.object, TOO_LARGE).unwrap()["status"],
        "False"
    );
}

fn birth(node: &str, seq: u64) -> Birth {
    Birth {
        node: node.into(),
        boot_id: BootId([seq as u8; 16]),
        agent_start_unix_ms: 1_700_000_000_000 + seq,
        seq,
        agent_version: "0.1.0".into(),
        wire_versions: vec![1],
        os: "linux".into(),
        arch: "arm64".into(),
        kernel: "6.6".into(),
        capacity: Resources {
            cpu_millis: 4000,
            memory_bytes: 1 << 30,
            pods: 110,
        },
        cgroup_version: 2,
        addresses: vec![NodeAddress {
            kind: AddressKind::InternalIp,
            address: "192.168.1.20".into(),
        }],
        labels: vec![],
    }
}

fn sealed<M: kelp_shared::wire::Message>(cluster: kelp_shared::wire::ClusterId, m: &M) -> Vec<u8> {
    Envelope::seal_message(cluster, m, false).unwrap().encode()
}

#[tokio::test]
async fn event_batches_reach_the_event_store_once_and_never_the_store() {
    use kelp_shared::wire::{EventBatch, EventType, NodeEvent, ObjectRef};
    let mut f = fixture();
    let cluster = f.identity.cluster_id;
    let revision = f.store.revision();
    let batch = |seq: u64, count: u32| EventBatch {
        boot_id: BootId([7; 16]),
        agent_start_unix_ms: 1,
        seq,
        events: vec![NodeEvent {
            object: ObjectRef {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "web".into(),
                uid: "uid-web".into(),
            },
            reason: "BackOff".into(),
            message: "Back-off restarting failed container c".into(),
            event_type: EventType::Warning,
            count,
            first_unix_ms: 1_800_000_000_000,
            last_unix_ms: 1_800_000_001_000,
        }],
    };
    let topic = "kelp/v1/nodes/pi-1/events";
    f.hub
        .handle(topic, &sealed(cluster, &batch(1, 2)))
        .await
        .unwrap();
    // QoS 1 redelivery: counted once.
    f.hub
        .handle(topic, &sealed(cluster, &batch(1, 2)))
        .await
        .unwrap();
    f.hub
        .handle(topic, &sealed(cluster, &batch(2, 3)))
        .await
        .unwrap();
    // Another cluster's, or a batch on the wrong topic: dropped.
    let foreign = kelp_shared::wire::ClusterId([9; 16]);
    f.hub
        .handle(topic, &sealed(foreign, &batch(3, 10)))
        .await
        .unwrap();
    f.hub
        .handle(
            "kelp/v1/nodes/pi-1/reported",
            &sealed(cluster, &batch(4, 10)),
        )
        .await
        .unwrap();
    let (events, _) = f.hub.events().list(None, chrono::Utc::now());
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["count"], 3);
    assert_eq!(
        e["source"],
        json!({"component": "kelp-agent", "host": "pi-1"})
    );
    assert_eq!(e["involvedObject"]["uid"], "uid-web");
    assert_eq!(e["firstTimestamp"], "2027-01-15T08:00:00Z");
    assert_eq!(f.store.revision(), revision, "nothing written to the store");
}

#[tokio::test]
async fn births_wills_and_reports_reach_the_store() {
    let mut f = fixture();
    let cluster = f.identity.cluster_id;
    put(&f.store, "Node", "", "pi-1", node("pi-1")).await;
    put(
        &f.store,
        "Pod",
        "default",
        "web",
        pod("web", "pi-1", json!([])),
    )
    .await;

    f.hub
        .handle(
            "kelp/v1/nodes/pi-1/status",
            &sealed(cluster, &birth("pi-1", 2)),
        )
        .await
        .unwrap();
    let n = f.store.get(&Key::new("Node", "", "pi-1")).unwrap();
    assert_eq!(
        status::condition(&n.object, "Ready").unwrap()["status"],
        "True"
    );
    assert_eq!(
        n.object["metadata"]["labels"]["kubernetes.io/arch"],
        "arm64"
    );
    assert!(n.object["spec"]["podCIDR"].is_string());
    assert_eq!(n.object["metadata"]["uid"], "uid-pi-1");

    // A birth for an unknown node creates it; one naming another node, or of another
    // cluster, is dropped.
    f.hub
        .handle(
            "kelp/v1/nodes/pi-9/status",
            &sealed(cluster, &birth("pi-9", 1)),
        )
        .await
        .unwrap();
    assert!(f.store.get(&Key::new("Node", "", "pi-9")).is_some());
    f.hub
        .handle(
            "kelp/v1/nodes/pi-7/status",
            &sealed(cluster, &birth("pi-8", 1)),
        )
        .await
        .unwrap();
    f.hub
        .handle(
            "kelp/v1/nodes/pi-7/status",
            &sealed(kelp_shared::wire::ClusterId([9; 16]), &birth("pi-7", 1)),
        )
        .await
        .unwrap();
    f.hub
        .handle("kelp/v1/nodes/pi-7/status", b"garbage")
        .await
        .unwrap();
    assert!(f.store.get(&Key::new("Node", "", "pi-7")).is_none());
    assert!(f.store.get(&Key::new("Node", "", "pi-8")).is_none());

    // A stale will (older run) is ignored; the current run's will makes it Unknown.
    let stale = Offline {
        node: "pi-1".into(),
        boot_id: BootId([1; 16]),
    };
    f.hub
        .handle("kelp/v1/nodes/pi-1/status", &sealed(cluster, &stale))
        .await
        .unwrap();
    let n = f.store.get(&Key::new("Node", "", "pi-1")).unwrap();
    assert_eq!(
        status::condition(&n.object, "Ready").unwrap()["status"],
        "True"
    );
    let will = Offline {
        node: "pi-1".into(),
        boot_id: BootId([2; 16]),
    };
    f.hub
        .handle("kelp/v1/nodes/pi-1/status", &sealed(cluster, &will))
        .await
        .unwrap();
    let n = f.store.get(&Key::new("Node", "", "pi-1")).unwrap();
    assert_eq!(
        status::condition(&n.object, "Ready").unwrap()["status"],
        "Unknown"
    );

    let report = |uid: &str, seq: u64| Reported {
        node: "pi-1".into(),
        boot_id: BootId([2; 16]),
        agent_start_unix_ms: 1_700_000_000_002,
        seq,
        applied_generation: None,
        pods: vec![PodReport {
            namespace: "default".into(),
            name: "web".into(),
            uid: uid.into(),
            phase: PodPhase::Running,
            pod_ip: Some("10.42.0.5".parse().unwrap()),
            containers: vec![ContainerReport {
                name: "c".into(),
                state: ContainerState::Running {
                    started_at_unix_ms: 1_700_000_000_500,
                },
                last_state: None,
                ready: true,
                restart_count: 0,
                image: "busybox".into(),
                image_id: String::new(),
                container_id: String::new(),
            }],
            init_containers: vec![],
            reason: String::new(),
            message: String::new(),
            start_unix_ms: Some(1_700_000_000_100),
        }],
        conditions: vec![],
    };
    // A report about another incarnation of the pod (other uid) changes nothing.
    f.hub
        .handle(
            "kelp/v1/nodes/pi-1/reported",
            &sealed(cluster, &report("old-uid", 1)),
        )
        .await
        .unwrap();
    let p = f.store.get(&Key::new("Pod", "default", "web")).unwrap();
    assert_eq!(p.object["status"]["phase"], "Pending");
    f.hub
        .handle(
            "kelp/v1/nodes/pi-1/reported",
            &sealed(cluster, &report("uid-web", 2)),
        )
        .await
        .unwrap();
    let p = f.store.get(&Key::new("Pod", "default", "web")).unwrap();
    assert_eq!(p.object["status"]["phase"], "Running");
    assert_eq!(p.object["status"]["podIP"], "10.42.0.5");
    assert_eq!(p.object["status"]["hostIP"], "192.168.1.20");
    assert_eq!(p.object["status"]["containerStatuses"][0]["ready"], true);
    // An older report (lower seq) is dropped.
    let mut old = report("uid-web", 1);
    old.pods[0].phase = PodPhase::Failed;
    f.hub
        .handle("kelp/v1/nodes/pi-1/reported", &sealed(cluster, &old))
        .await
        .unwrap();
    let p = f.store.get(&Key::new("Pod", "default", "web")).unwrap();
    assert_eq!(p.object["status"]["phase"], "Running");

    // In one batch a node's newest report wins, whatever the order it came in; the rest of
    // the batch (a birth of another node) is applied too.
    let mut newest = report("uid-web", 5);
    newest.pods[0].phase = PodPhase::Succeeded;
    let mut between = report("uid-web", 4);
    between.pods[0].phase = PodPhase::Failed;
    let topic = "kelp/v1/nodes/pi-1/reported".to_owned();
    f.hub
        .handle_batch(vec![
            (topic.clone(), sealed(cluster, &newest)),
            (
                "kelp/v1/nodes/pi-5/status".into(),
                sealed(cluster, &birth("pi-5", 1)),
            ),
            (topic.clone(), sealed(cluster, &between)),
            (topic, b"garbage".to_vec()),
        ])
        .await
        .unwrap();
    let p = f.store.get(&Key::new("Pod", "default", "web")).unwrap();
    assert_eq!(p.object["status"]["phase"], "Succeeded");
    assert!(f.store.get(&Key::new("Node", "", "pi-5")).is_some());
}

#[tokio::test]
async fn nodes_not_heard_from_within_the_grace_become_unknown() {
    use kelp_shared::wire::Heartbeat;
    let mut f = fixture();
    let cluster = f.identity.cluster_id;
    f.hub.set_node_grace(std::time::Duration::from_millis(200));
    put(&f.store, "Node", "", "alive", node("alive")).await;
    put(&f.store, "Node", "", "gone", node("gone")).await;
    for name in ["alive", "gone"] {
        f.hub
            .handle(
                &format!("kelp/v1/nodes/{name}/status"),
                &sealed(cluster, &birth(name, 1)),
            )
            .await
            .unwrap();
    }
    let ready = |f: &Fixture, name: &str| {
        let n = f.store.get(&Key::new("Node", "", name)).unwrap();
        status::condition(&n.object, "Ready").unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let beat = |name: &str| Heartbeat {
        node: name.into(),
        boot_id: BootId([1; 16]),
    };
    // Within the grace: nothing changes.
    f.hub.check_silence().await.unwrap();
    assert_eq!(ready(&f, "gone"), "True");
    // "alive" sends heartbeats, "gone" falls silent (its broker never sends its will).
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    f.hub
        .handle(
            "kelp/v1/nodes/alive/status",
            &sealed(cluster, &beat("alive")),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    f.hub.check_silence().await.unwrap();
    assert_eq!(ready(&f, "alive"), "True");
    assert_eq!(ready(&f, "gone"), "Unknown");
    let n = f.store.get(&Key::new("Node", "", "gone")).unwrap();
    let message = status::condition(&n.object, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("not been heard from for 0.2s"),
        "{message}"
    );
    // Its link comes back without a new session: its heartbeat makes it Ready again; a
    // heartbeat of another run does not.
    let mut stranger = beat("gone");
    stranger.boot_id = BootId([9; 16]);
    f.hub
        .handle("kelp/v1/nodes/gone/status", &sealed(cluster, &stranger))
        .await
        .unwrap();
    assert_eq!(ready(&f, "gone"), "Unknown");
    f.hub
        .handle("kelp/v1/nodes/gone/status", &sealed(cluster, &beat("gone")))
        .await
        .unwrap();
    assert_eq!(ready(&f, "gone"), "True");

    // After the hub reconnects, a node never heard from again counts from the reconnect.
    f.hub.forget_published();
    f.hub.check_silence().await.unwrap();
    assert_eq!(
        ready(&f, "alive"),
        "True",
        "within the grace of the reconnect"
    );
}

#[tokio::test]
async fn static_pods_become_mirror_pods_that_follow_the_node() {
    use kelp_shared::wire::StaticPods;
    let mut f = fixture();
    let cluster = f.identity.cluster_id;
    put(&f.store, "Node", "", "pi-1", node("pi-1")).await;
    let static_pod = |name: &str, image: &str| {
        serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}-{image}"),
                         "labels": {"app": name}},
            "spec": {"nodeName": "pi-1", "containers": [{"name": "c", "image": image}]},
        }))
        .unwrap()
    };
    let message = |seq: u64, pods: Vec<Vec<u8>>| StaticPods {
        node: "pi-1".into(),
        boot_id: BootId([1; 16]),
        agent_start_unix_ms: 1,
        seq,
        pods_json: pods,
    };
    let topic = "kelp/v1/nodes/pi-1/static";
    f.hub
        .handle(
            topic,
            &sealed(cluster, &message(1, vec![static_pod("web-pi-1", "a")])),
        )
        .await
        .unwrap();
    let mirror = f
        .store
        .get(&Key::new("Pod", "default", "web-pi-1"))
        .unwrap();
    assert_eq!(
        mirror.object["metadata"]["annotations"][MIRROR_ANNOTATION],
        "uid-web-pi-1-a"
    );
    assert_eq!(mirror.object["metadata"]["uid"], "uid-web-pi-1-a");
    assert_eq!(
        mirror.object["metadata"]["ownerReferences"][0]["uid"],
        "uid-pi-1"
    );
    // Never sent back to the node as a pod to run.
    let published = Recorder::default();
    f.hub.sync(&published).await.unwrap();
    let (_, payload) = published
        .take()
        .into_iter()
        .find(|(t, _)| t.ends_with("/pi-1/desired"))
        .unwrap();
    let desired = open(&f.identity, &payload);
    assert!(desired
        .objects_json
        .iter()
        .all(|o| !String::from_utf8_lossy(o).contains("web-pi-1")));

    // A changed manifest replaces it (new UID); an API pod of the same name is left alone;
    // an older message is ignored.
    put(
        &f.store,
        "Pod",
        "default",
        "db-pi-1",
        pod("db-pi-1", "pi-1", json!([])),
    )
    .await;
    f.hub
        .handle(
            topic,
            &sealed(
                cluster,
                &message(
                    3,
                    vec![static_pod("web-pi-1", "b"), static_pod("db-pi-1", "x")],
                ),
            ),
        )
        .await
        .unwrap();
    let mirror = f
        .store
        .get(&Key::new("Pod", "default", "web-pi-1"))
        .unwrap();
    assert_eq!(mirror.object["metadata"]["uid"], "uid-web-pi-1-b");
    let db = f.store.get(&Key::new("Pod", "default", "db-pi-1")).unwrap();
    assert!(db.object["metadata"]["annotations"][MIRROR_ANNOTATION].is_null());
    f.hub
        .handle(topic, &sealed(cluster, &message(2, vec![])))
        .await
        .unwrap();
    assert!(f
        .store
        .get(&Key::new("Pod", "default", "web-pi-1"))
        .is_some());

    // Gone from the node: the mirror goes.
    f.hub
        .handle(topic, &sealed(cluster, &message(4, vec![])))
        .await
        .unwrap();
    assert!(f
        .store
        .get(&Key::new("Pod", "default", "web-pi-1"))
        .is_none());
    assert!(f
        .store
        .get(&Key::new("Pod", "default", "db-pi-1"))
        .is_some());
}

#[tokio::test]
async fn samples_reach_the_metrics_store_and_pressure_is_written_on_change_only() {
    use kelp_shared::wire::{Metric, SampleSeries, Samples, Subject};
    let mut f = fixture();
    let cluster = f.identity.cluster_id;
    put(&f.store, "Node", "", "pi-1", node("pi-1")).await;
    let batch = |seq: u64, available: i64, pids: i64| Samples {
        boot_id: BootId([7; 16]),
        agent_start_unix_ms: 1,
        seq,
        start_unix_ms: 1_800_000_000_000 + seq * 60_000,
        interval_ms: 10_000,
        slots: 6,
        complete: true,
        subjects: vec![Subject::Node],
        series: vec![
            SampleSeries::from_values(Metric::MemoryAvailableBytes, 0, 0, &[available; 6]),
            SampleSeries::from_values(Metric::MemoryWorkingSetBytes, 0, 0, &[1 << 30; 6]),
            SampleSeries::from_values(Metric::PidsInUse, 0, 5, &[pids]),
            SampleSeries::from_values(Metric::PidsMax, 0, 5, &[1000]),
        ],
    };
    let topic = "kelp/v1/nodes/pi-1/metrics";
    let condition = |store: &Store, kind: &str| {
        let n = store.get(&Key::new("Node", "", "pi-1")).unwrap();
        status::condition(&n.object, kind).cloned()
    };
    f.hub
        .handle(topic, &sealed(cluster, &batch(1, 50 << 20, 10)))
        .await
        .unwrap();
    let mem = condition(&f.store, "MemoryPressure").expect("MemoryPressure written");
    assert_eq!(mem["status"], "True");
    assert_eq!(mem["reason"], "KubeletHasInsufficientMemory");
    assert_eq!(
        condition(&f.store, "PIDPressure").unwrap()["status"],
        "False"
    );
    assert!(
        condition(&f.store, "DiskPressure").is_none(),
        "no disk signal"
    );
    let latest = f.hub.metrics().read(|n| {
        n["pi-1"].latest(
            &crate::metrics::SubjectKey::Node,
            Metric::MemoryWorkingSetBytes,
        )
    });
    assert_eq!(latest.map(|(_, v)| v), Some(1 << 30));

    // Unchanged conditions: no write.
    let revision = f.store.revision();
    f.hub
        .handle(topic, &sealed(cluster, &batch(2, 60 << 20, 20)))
        .await
        .unwrap();
    assert_eq!(
        f.store.revision(),
        revision,
        "nothing changed, nothing written"
    );
    // A duplicate or a node the store does not know: nothing either.
    f.hub
        .handle(topic, &sealed(cluster, &batch(2, 60 << 20, 999)))
        .await
        .unwrap();
    f.hub
        .handle(
            "kelp/v1/nodes/ghost/metrics",
            &sealed(cluster, &batch(1, 1, 999)),
        )
        .await
        .unwrap();
    assert_eq!(f.store.revision(), revision);
    assert!(f.hub.metrics().read(|n| !n.contains_key("ghost")));
    // PIDs run out: PIDPressure turns True.
    f.hub
        .handle(topic, &sealed(cluster, &batch(3, 60 << 20, 990)))
        .await
        .unwrap();
    assert_eq!(
        condition(&f.store, "PIDPressure").unwrap()["status"],
        "True"
    );
}
