//! The MQTT link across a fleet, end to end: a real `kelp server`, a real broker (Mosquitto
//! with passwords, or the server's embedded one) and three real agents, each on a "test host"
//! of its own (a network namespace on a veth pair to a LAN bridge that holds the broker's
//! address), running real containers on its own pod bridge. Covers placement and pod CIDRs,
//! a cut link (NotReady in the grace, containers untouched, Ready again), a reboot while the
//! broker is down, `kill -9` of the server, a server on an empty data dir, forged and
//! misaddressed desired states, and the idle-bandwidth budget. As root; needs the `kelp`
//! binary built beside `kelp-agent`, Mosquitto, iproute2, nftables and util-linux.

mod common;
#[path = "common/fleet.rs"]
mod fleet;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fleet::{
    api_pods, join_password, pod_yaml, text, wait_until, FleetNode, Host, Lan, Mosquitto,
    Processes, Server, MOSQUITTO_CONTROLLER,
};
use kelp_agent::network::Cidr;
use kelp_shared::wire::sign::{sign, SigningKey};
use kelp_shared::wire::{ClusterId, DesiredState, Envelope, Generation, Topics};

/// Removes a directory tree on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which broker the fleet uses.
enum Broker {
    /// Mosquitto on the LAN address; the server logs in with `--mqtt-url`.
    Mosquitto,
    /// Mosquitto whose password and ACL files the server keeps.
    MosquittoManaged,
    /// The server's embedded broker on the LAN address and a port picked now, so a
    /// restarted server listens on the same one.
    Embedded,
}

/// A server, a broker, and `count` joined nodes `n1..` each on its own test host. Fields drop
/// in order: the nodes (agents, pods, hosts) first, the LAN and the files last.
struct Fleet {
    nodes: Vec<FleetNode>,
    server: Server,
    mosquitto: Option<Mosquitto>,
    lan: Lan,
    base: Dir,
    /// The server's flags (for a second server on the same broker address).
    broker_args: Vec<String>,
}

/// The grace the tests give the server (`--node-grace`).
const GRACE: Duration = Duration::from_secs(8);
/// The keepalive the tests give the agents (`--mqtt-keepalive-secs`), where not the default.
const KEEPALIVE: u64 = 3;

impl Fleet {
    fn start(tag: char, subnet: u8, broker: Broker, count: u8, keepalive: Option<u64>) -> Self {
        Self::start_with(tag, subnet, broker, count, keepalive, &[])
    }

    /// [`Fleet::start`] with more flags for `kelp server`.
    fn start_with(
        tag: char,
        subnet: u8,
        broker: Broker,
        count: u8,
        keepalive: Option<u64>,
        server_args: &[&str],
    ) -> Self {
        Self::start_configured(tag, subnet, broker, count, keepalive, server_args, &[])
    }

    /// [`Fleet::start_with`] with more flags for every `kelp-agent run`.
    fn start_configured(
        tag: char,
        subnet: u8,
        broker: Broker,
        count: u8,
        keepalive: Option<u64>,
        server_args: &[&str],
        agent_args: &[&str],
    ) -> Self {
        let lan = Lan::new(tag, subnet);
        let base =
            Dir(PathBuf::from("/var/tmp").join(format!("kelp-fleet-{tag}-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&base.0);
        std::fs::create_dir_all(&base.0).unwrap();
        let managed = matches!(broker, Broker::MosquittoManaged);
        let (mosquitto, broker_args) = match broker {
            Broker::Mosquitto => {
                let m = Mosquitto::start(&lan, &tag.to_string());
                let args = vec!["--mqtt-url".to_string(), m.controller_url()];
                (Some(m), args)
            }
            Broker::MosquittoManaged => {
                let m = Mosquitto::start_managed(&lan, &tag.to_string());
                let args = m.managed_args();
                (Some(m), args)
            }
            Broker::Embedded => {
                let addr = format!("{}:{}", lan.gateway(), lan.free_port());
                // On the LAN address: the fleet's hosts reach it from their namespaces.
                (
                    None,
                    vec![
                        "--mqtt-listen".to_string(),
                        addr,
                        "--insecure-shared-broker".to_string(),
                    ],
                )
            }
        };
        let cluster_octet = 1 + std::process::id() % 40;
        let mut args = broker_args.clone();
        args.extend(
            [
                "--cluster-cidr",
                &format!("10.{cluster_octet}.0.0/16"),
                "--desired-debounce",
                "100ms",
            ]
            .map(String::from),
        );
        if !server_args.contains(&"--node-grace") {
            args.extend(["--node-grace".to_string(), format!("{}s", GRACE.as_secs())]);
        }
        args.extend(server_args.iter().map(|a| a.to_string()));
        let server = Server::start(&base.0.join("controller"), &args);
        let mut fleet = Self {
            nodes: Vec::new(),
            server,
            mosquitto,
            lan,
            base,
            broker_args: args,
        };
        for i in 1..=count {
            let name = format!("n{i}");
            let join = fleet.base.0.join(format!("{name}.join.yaml"));
            fleet
                .server
                .ok(&["node", "add", &name, "-o", join.to_str().unwrap()]);
            if let (Some(m), false) = (&fleet.mosquitto, managed) {
                m.add_user(&name, &join_password(&join));
            }
            let host = Host::new(&fleet.lan, tag, i);
            let mut node = FleetNode::new(&name, host, join, tag, i);
            node.keepalive_secs = keepalive;
            node.agent_args = agent_args.iter().map(|a| a.to_string()).collect();
            node.start_agent();
            fleet.nodes.push(node);
        }
        let names: Vec<String> = fleet.nodes.iter().map(|n| n.name.clone()).collect();
        fleet.wait("every node Ready", Duration::from_secs(60), |f| {
            let ready = f.server.node_ready();
            names
                .iter()
                .all(|n| ready.get(n).map(String::as_str) == Some("True"))
                .then_some(())
        });
        fleet
    }

    fn node(&self, name: &str) -> &FleetNode {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    fn node_mut(&mut self, name: &str) -> &mut FleetNode {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap()
    }

    /// Everything that helps to see why a wait failed.
    fn describe(&self) -> String {
        let mut s = self.server.describe();
        for n in &self.nodes {
            let log = n.log();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            s += &format!(
                "\n--- agent {} (last lines):\n{}",
                n.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if let Some(m) = &self.mosquitto {
            let log = m.log();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            s += &format!(
                "\n--- mosquitto (last lines):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        s
    }

    fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        wait_until(what, timeout, || check(self), || self.describe())
    }

    /// Waits until the API shows each of `pods` (name -> node) Running on its node.
    fn wait_running(&self, pods: &BTreeMap<&str, &str>, timeout: Duration) {
        self.wait("the pods Running in the API", timeout, |f| {
            let api = api_pods(&f.server);
            pods.iter()
                .all(|(pod, node)| {
                    api.get(*pod)
                        .is_some_and(|(n, phase, _, _)| n == node && phase == "Running")
                })
                .then_some(())
        });
    }

    /// Each node's running containers: monitor pid, container pid, restart count.
    fn processes(&self) -> BTreeMap<String, Processes> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.processes()))
            .collect()
    }

    /// The Node objects' pod CIDRs.
    fn pod_cidrs(&self) -> BTreeMap<String, Cidr> {
        self.server
            .items("nodes")
            .iter()
            .filter_map(|n| {
                Some((
                    n["metadata"]["name"].as_str()?.to_string(),
                    n["spec"]["podCIDR"].as_str()?.parse().ok()?,
                ))
            })
            .collect()
    }
}

/// The current Unix second, returned once the next one has begun: the API's times have
/// one-second precision, so what happens from now on is in a later second than the mark.
fn second_mark() -> i64 {
    let mark = chrono::Utc::now().timestamp();
    while chrono::Utc::now().timestamp() == mark {
        std::thread::sleep(Duration::from_millis(20));
    }
    mark
}

/// Whether every Node's Ready condition is True with a heartbeat (a birth) in a second
/// later than `after` (Unix seconds).
fn ready_since(server: &Server, after: i64) -> bool {
    let nodes = server.items("nodes");
    !nodes.is_empty()
        && nodes.iter().all(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .filter(|c| c["status"] == "True")
                .and_then(|c| c["lastHeartbeatTime"].as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.timestamp() > after)
        })
}

/// When the API says pod `name`'s first container started (Unix seconds).
fn api_started_at(server: &Server, name: &str) -> Option<i64> {
    let pod = server
        .items("pods")
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)?;
    let started =
        pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].as_str()?;
    Some(
        chrono::DateTime::parse_from_rfc3339(started)
            .ok()?
            .timestamp(),
    )
}

/// Every container in `before` still runs as the same processes, never restarted.
fn assert_untouched(what: &str, before: &Processes, after: &Processes) {
    assert_eq!(before, after, "{what}: the same monitors and containers");
    for ((pod, c), (monitor, pid, restarts)) in after {
        assert!(*pid > 0, "{what}: {pod}/{c} has a process");
        assert_eq!(*restarts, 0, "{what}: {pod}/{c} never restarted");
        for p in [monitor, pid] {
            assert!(
                PathBuf::from(format!("/proc/{p}")).exists(),
                "{what}: process {p} of {pod}/{c} is alive"
            );
        }
    }
}

/// How long after a link goes silent its node must show NotReady: the broker publishes the
/// will after 1.5 × keepalive; Mosquitto 2.0 looks at keepalives only every 5 s (and counts
/// whole seconds), and the controller needs a moment to record it.
fn will_deadline() -> Duration {
    Duration::from_secs_f64(KEEPALIVE as f64 * 1.5) + Duration::from_secs(5 + 1 + 3)
}

/// Cuts `name`'s link: its Node goes NotReady (Ready=Unknown) within [`will_deadline`] while
/// the other nodes stay Ready and its containers run on; once the link is back it is Ready
/// again with nothing restarted.
fn cut_link(fleet: &Fleet, name: &str, before: &Processes) {
    let node = fleet.node(name);
    let log_len = node.log().len();
    let cut_at = Instant::now();
    node.host.cut();
    let deadline = will_deadline();
    fleet.wait(
        &format!("{name} NotReady after its link was cut"),
        deadline,
        |f| {
            let ready = f.server.node_ready();
            ready.get(name).is_some_and(|r| r != "True").then_some(())
        },
    );
    let noticed = cut_at.elapsed();
    let ready = fleet.server.node_ready();
    for (n, r) in &ready {
        let want = if n == name { "Unknown" } else { "True" };
        assert_eq!(r, want, "{n}: {ready:?}");
    }
    let nodes_table = fleet.server.ok(&["get", "nodes"]);
    assert!(
        nodes_table
            .lines()
            .any(|l| l.starts_with(&format!("{name} ")) && l.contains("NotReady")),
        "{nodes_table}"
    );
    println!(
        "{name} NotReady {noticed:?} after its link was cut (keepalive {KEEPALIVE} s, deadline {deadline:?}):\n{nodes_table}"
    );
    // Long enough for the agent itself to give its session up and run offline a while.
    std::thread::sleep(Duration::from_secs(2 * KEEPALIVE + 2));
    assert_untouched(&format!("{name} while cut off"), before, &node.processes());
    node.host.restore();
    fleet.wait(
        &format!("{name} Ready again"),
        Duration::from_secs(90),
        |f| (f.server.node_ready().get(name).map(String::as_str) == Some("True")).then_some(()),
    );
    assert!(
        node.log_since(log_len).contains("MQTT connection to"),
        "{name}'s agent saw its link go:\n{}",
        node.log()
    );
    assert_untouched(&format!("{name} after its cut"), before, &node.processes());
}

/// Placement and addresses: each pod on its node, pod IPs distinct and inside the pod CIDR
/// the controller gave that node; each agent runs exactly its pods.
fn check_placement(fleet: &Fleet, pods: &BTreeMap<&str, &str>) {
    let cidrs = fleet.pod_cidrs();
    let distinct_cidrs: BTreeSet<String> = cidrs.values().map(ToString::to_string).collect();
    assert_eq!(
        distinct_cidrs.len(),
        fleet.nodes.len(),
        "one pod CIDR per node: {cidrs:?}"
    );
    let api = api_pods(&fleet.server);
    let mut ips = BTreeSet::new();
    for (pod, node) in pods {
        let (on, _, ip, _) = &api[*pod];
        assert_eq!(on, node, "{pod} is bound to {node}");
        let ip: std::net::Ipv4Addr = ip
            .parse()
            .unwrap_or_else(|_| panic!("{pod} has a pod IP: {api:?}"));
        assert!(
            cidrs[*node].contains(ip),
            "{pod}'s IP {ip} is inside {node}'s podCIDR {}",
            cidrs[*node]
        );
        assert!(ips.insert(ip), "{pod}'s IP {ip} is its own: {api:?}");
    }
    for n in &fleet.nodes {
        let mut on_node: Vec<String> = n.node.pods().into_iter().map(|p| p.name).collect();
        on_node.sort();
        let mut expected: Vec<String> = pods
            .iter()
            .filter(|(_, node)| **node == n.name)
            .map(|(p, _)| p.to_string())
            .collect();
        expected.sort();
        assert_eq!(on_node, expected, "node {} runs exactly its pods", n.name);
    }
}

/// Publishes `payload` retained (QoS 1) on `topic` as the controller's Mosquitto user, and
/// returns once the broker acknowledged it.
fn publish_as_controller(broker: &Mosquitto, topic: &str, payload: Vec<u8>) {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(
        format!("fleet-test-{}", std::process::id()),
        broker.addr.ip().to_string(),
        broker.addr.port(),
    );
    options
        .set_credentials(MOSQUITTO_CONTROLLER.0, MOSQUITTO_CONTROLLER.1)
        .set_max_packet_size(2 << 20, 2 << 20);
    let (client, mut connection) = Client::new(options, 8);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the broker did not acknowledge {topic}");
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) if !sent => {
                client
                    .try_publish(topic, QoS::AtLeastOnce, true, payload.clone())
                    .unwrap();
                sent = true;
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("publishing to {topic}: {e}"),
            Err(_) => {}
        }
    }
    let _ = client.try_disconnect();
    let _ = connection.recv_timeout(Duration::from_millis(500));
}

/// A retained desired state for `node`'s topic: `state` sealed for `cluster`, signed by `key`.
fn forged(state: &DesiredState, cluster: ClusterId, key: &SigningKey) -> Vec<u8> {
    let mut envelope = Envelope::seal_message(cluster, state, true).unwrap();
    sign(&mut envelope, key);
    envelope.encode()
}

fn evil_pod(node: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "evil", "namespace": "default",
                     "uid": "00000000-0000-4000-8000-0000000e0e0e"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": common::BUSYBOX, "command": ["sleep", "3600"]}]
        }
    }))
    .unwrap()
}

/// What a power cycle of `node`'s machine leaves: agent, monitors and containers killed
/// (`kill -9`), the tmpfs run dir and every mount gone, cgroups gone, the pod bridge and its
/// nftables table gone. The state dir (its desired-state copy, images) stays.
fn reboot(node: &mut FleetNode) {
    node.node.kill_agent();
    let cg = kelp_agent::cgroup::Cgroups::detect().unwrap();
    cg.kill_all(&node.node.cgroup_parent).unwrap();
    wait_until(
        "the node's processes gone",
        Duration::from_secs(20),
        || node.node.cgroup_processes().is_empty().then_some(()),
        || format!("left: {:?}", node.node.cgroup_processes()),
    );
    kelp_agent::runtime::fsutil::unmount_all_under(&node.node.run_dir).unwrap();
    kelp_agent::runtime::fsutil::unmount_all_under(&node.node.base).unwrap();
    std::fs::remove_dir_all(&node.node.run_dir).unwrap();
    cg.remove(&node.node.cgroup_parent).unwrap();
    node.host.ip_cmd(&["link", "del", &node.bridge]);
    node.host
        .nft(&["delete", "table", "ip", &format!("kelp_{}", node.bridge)]);
    assert!(node.node.mounts().is_empty(), "no mount left");
}

/// 1, 2, 5 and 3 of the acceptance list, on Mosquitto: placement and pod CIDRs; a cut link
/// makes its node NotReady within the grace while its containers run on, and Ready again
/// with nothing restarted; forged and misaddressed desired states run nothing; a node
/// rebooted while the broker is down brings its pods back from its own copy.
#[test]
fn mosquitto_fleet_survives_a_cut_link_forgeries_and_a_reboot_without_broker() {
    let mut fleet = Fleet::start('m', 1, Broker::Mosquitto, 3, Some(KEEPALIVE));
    let pods = BTreeMap::from([("a1", "n1"), ("a2", "n1"), ("b1", "n2"), ("c1", "n3")]);
    for (pod, node) in &pods {
        fleet
            .server
            .apply(pod, &pod_yaml(pod, node, "sleep 3600", "Always"));
    }
    fleet.wait_running(&pods, Duration::from_secs(120));
    check_placement(&fleet, &pods);
    println!(
        "fleet on Mosquitto:\n{}",
        fleet.server.ok(&["get", "pods", "-o", "wide"])
    );
    let before = fleet.processes();

    // 2. n2's link is cut: NotReady within the grace, the others Ready, containers untouched.
    cut_link(&fleet, "n2", &before["n2"]);
    fleet.wait_running(&pods, Duration::from_secs(30));
    let after = fleet.processes();
    for n in ["n1", "n2", "n3"] {
        assert_untouched(&format!("{n} after n2's cut"), &before[n], &after[n]);
    }
    let api = api_pods(&fleet.server);
    for pod in pods.keys() {
        assert_eq!(api[*pod].3, 0, "{pod} never restarted: {api:?}");
    }

    // 5. Retained desired states on n3's topic, with a newer generation than any real one:
    // one signed with another key, one signed by the controller but for node n2. Both dropped.
    let mosquitto = fleet.mosquitto.as_ref().unwrap();
    let data = &fleet.server.data_dir;
    let cluster: ClusterId = std::fs::read_to_string(data.join("cluster.id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let controller_key =
        SigningKey::from_pkcs8(&std::fs::read(data.join("controller.key")).unwrap())
            .expect("the controller's key");
    let other_key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
    let topics = Topics::new("kelp/v1").unwrap();
    let state = |node: &str| DesiredState {
        generation: Generation {
            cluster_id: cluster,
            revision: 1 << 40,
        },
        node: node.to_string(),
        objects_json: vec![evil_pod(node)],
    };
    let n3_log_len = fleet.node("n3").log().len();
    publish_as_controller(
        mosquitto,
        &topics.desired("n3").unwrap(),
        forged(&state("n3"), cluster, &other_key),
    );
    fleet.wait(
        "n3 drops the foreign-key state",
        Duration::from_secs(20),
        |f| {
            f.node("n3")
                .log_since(n3_log_len)
                .contains("desired state dropped")
                .then_some(())
        },
    );
    publish_as_controller(
        mosquitto,
        &topics.desired("n3").unwrap(),
        forged(&state("n2"), cluster, &controller_key),
    );
    fleet.wait("n3 drops the state for n2", Duration::from_secs(20), |f| {
        f.node("n3")
            .log_since(n3_log_len)
            .contains("addressed to node \"n2\"")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let n3_log = fleet.node("n3").log_since(n3_log_len);
    assert!(
        n3_log.contains("bad signature"),
        "n3 says the signature is wrong:\n{n3_log}"
    );
    for n in &fleet.nodes {
        assert!(
            n.node.pods().iter().all(|p| p.name != "evil"),
            "nothing forged runs on {}",
            n.name
        );
    }
    assert_untouched(
        "n3 after the forgeries",
        &before["n3"],
        &fleet.node("n3").processes(),
    );
    println!("n3 dropped the forged desired states:\n{}", n3_log.trim());

    // 3. The broker goes down; n1 reboots (agent, containers, run dir, mounts, cgroups, pod
    // bridge all gone) and its agent starts with no broker: its pods come back from its own
    // copy of the desired state, once each.
    fleet.mosquitto.as_mut().unwrap().stop();
    let broker_stopped = second_mark();
    let n1_log_len = fleet.node("n1").log().len();
    let n1_uids: BTreeMap<String, String> = fleet
        .node("n1")
        .node
        .pods()
        .into_iter()
        .map(|p| (p.name, p.uid))
        .collect();
    reboot(fleet.node_mut("n1"));
    fleet.node_mut("n1").start_agent();
    fleet.wait(
        "n1's pods back without a broker",
        Duration::from_secs(120),
        |f| {
            let pods = f.node("n1").node.pods();
            let running: BTreeMap<String, String> = pods
                .iter()
                .filter(|p| p.status.phase.as_deref() == Some("Running"))
                .map(|p| (p.name.clone(), p.uid.clone()))
                .collect();
            (running == n1_uids).then_some(())
        },
    );
    let n1 = fleet.node("n1");
    let runtime = kelp_agent::runtime::MonitorRuntime::new(n1.node.runtime_config()).unwrap();
    use kelp_agent::runtime::ContainerRuntime;
    assert_eq!(
        runtime.sandboxes().unwrap().len(),
        n1_uids.len(),
        "one sandbox per pod, no duplicate"
    );
    assert_eq!(n1.node.pods().len(), n1_uids.len(), "no duplicate pod");
    assert!(
        n1.log_since(n1_log_len).contains("MQTT connection to"),
        "n1's agent ran its pods with the broker away:\n{}",
        n1.log()
    );
    assert!(
        n1.log().contains("pod network from the controller"),
        "the pod bridge came back from the copy's podCIDR:\n{}",
        n1.log()
    );
    // The other nodes never noticed.
    let during = fleet.processes();
    for n in ["n2", "n3"] {
        assert_untouched(
            &format!("{n} while the broker was down"),
            &before[n],
            &during[n],
        );
    }

    // The broker returns (it kept nothing): every node is Ready and every pod Running.
    // (The agents reconnect with their own back-off, up to a minute: no grace applies.)
    fleet.mosquitto.as_mut().unwrap().resume();
    fleet.wait(
        "every node Ready again, born after the broker's return",
        Duration::from_secs(90),
        |f| ready_since(&f.server, broker_stopped).then_some(()),
    );
    fleet.wait_running(&pods, Duration::from_secs(60));
    fleet.wait(
        "the API showing n1's containers started after its reboot",
        Duration::from_secs(30),
        |f| {
            n1_uids
                .keys()
                .all(|p| api_started_at(&f.server, p).is_some_and(|t| t > broker_stopped))
                .then_some(())
        },
    );
    check_placement(&fleet, &pods);
    println!(
        "after n1's reboot and the broker's return:\n{}",
        fleet.server.ok(&["get", "pods", "-o", "wide"])
    );
}

/// 4 of the acceptance list, on the embedded broker: `kill -9` of `kelp server` stops no
/// container; the restarted server has every node Ready and every status current within one
/// grace period, and no generation goes backwards; a server on an empty data dir at the same
/// broker address stops nothing (the agents drop its foreign cluster's messages).
#[test]
fn killed_server_restarts_without_disturbing_the_fleet_and_a_foreign_one_is_ignored() {
    let mut fleet = Fleet::start('e', 2, Broker::Embedded, 3, Some(KEEPALIVE));
    let pods = BTreeMap::from([("x1", "n1"), ("x2", "n2"), ("x3", "n3"), ("job", "n1")]);
    for (pod, node) in &pods {
        let (command, policy) = if *pod == "job" {
            (
                "until [ -f /tmp/stop ]; do sleep 0.2; done; echo done",
                "Never",
            )
        } else {
            ("sleep 3600", "Always")
        };
        fleet
            .server
            .apply(pod, &pod_yaml(pod, node, command, policy));
    }
    fleet.wait_running(&pods, Duration::from_secs(120));
    check_placement(&fleet, &pods);
    let before = fleet.processes();
    let generations_before: BTreeMap<String, u64> = fleet
        .nodes
        .iter()
        .map(|n| (n.name.clone(), *n.received_generations().last().unwrap()))
        .collect();

    // kill -9; while the server is away the job finishes on n1.
    fleet.server.kill9();
    let killed_at = second_mark();
    let job_pid = before["n1"][&("job".to_string(), "c".to_string())].1;
    std::fs::write(format!("/proc/{job_pid}/root/tmp/stop"), "").unwrap();
    fleet.wait("job Succeeded on n1", Duration::from_secs(30), |f| {
        f.node("n1")
            .node
            .pods()
            .iter()
            .any(|p| p.name == "job" && p.status.phase.as_deref() == Some("Succeeded"))
            .then_some(())
    });
    fleet.server.restart();
    let restarted = Instant::now();

    // Within one grace period: every node heard from again (Ready, with a heartbeat after
    // the kill) and every pod's status current. Until well past the grace no node is ever
    // shown anything but Ready.
    let mut not_ready_seen = Vec::new();
    let mut current_at = None;
    while restarted.elapsed() < GRACE + Duration::from_secs(4) {
        let ready = fleet.server.node_ready();
        if ready.len() == 3 {
            for (n, r) in &ready {
                if r != "True" {
                    not_ready_seen.push(format!("{n}={r} at {:?}", restarted.elapsed()));
                }
            }
        }
        if current_at.is_none() {
            let api = api_pods(&fleet.server);
            let heartbeats_fresh = ready_since(&fleet.server, killed_at);
            let statuses = pods.iter().all(|(pod, node)| {
                let want = if *pod == "job" {
                    "Succeeded"
                } else {
                    "Running"
                };
                api.get(*pod)
                    .is_some_and(|(n, phase, _, r)| n == node && phase == want && *r == 0)
            });
            if heartbeats_fresh && statuses && fleet.server.items("nodes").len() == 3 {
                current_at = Some(restarted.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        not_ready_seen.is_empty(),
        "a node was not Ready after the restart: {not_ready_seen:?}\n{}",
        fleet.describe()
    );
    let current_at = current_at.unwrap_or_else(|| {
        panic!(
            "nodes and pod statuses not current within the grace ({GRACE:?}) of the restart:\n{}",
            fleet.describe()
        )
    });
    assert!(
        current_at <= GRACE,
        "current after {current_at:?}, grace {GRACE:?}"
    );
    println!(
        "restarted server current after {current_at:?} (grace {GRACE:?}):\n{}",
        fleet.server.ok(&["get", "pods", "-o", "wide"])
    );
    let mut after = fleet.processes();
    after
        .get_mut("n1")
        .unwrap()
        .remove(&("job".to_string(), "c".to_string()));
    let mut expected = before.clone();
    expected
        .get_mut("n1")
        .unwrap()
        .remove(&("job".to_string(), "c".to_string()));
    for n in ["n1", "n2", "n3"] {
        assert_untouched(
            &format!("{n} after kill -9 of the server"),
            &expected[n],
            &after[n],
        );
    }

    // A change after the restart reaches its node with a newer generation; no agent ever
    // took (or was offered and ignored) an older one.
    fleet
        .server
        .apply("x4", &pod_yaml("x4", "n2", "sleep 3600", "Always"));
    fleet.wait_running(&BTreeMap::from([("x4", "n2")]), Duration::from_secs(60));
    for n in &fleet.nodes {
        let generations = n.received_generations();
        assert!(
            generations.windows(2).all(|w| w[0] < w[1]),
            "{}'s generations only grow: {generations:?}",
            n.name
        );
        assert!(
            !n.log().contains("ignored: generation"),
            "{} was never offered an older generation:\n{}",
            n.name,
            n.log()
        );
        println!(
            "{}: generations taken {generations:?} (last before the kill {})",
            n.name, generations_before[&n.name]
        );
    }
    assert!(
        *fleet.node("n2").received_generations().last().unwrap() > generations_before["n2"],
        "x4 came with a newer generation than any before the kill"
    );

    // A server on an empty data dir on the same broker address: a new cluster id and key.
    // Its operator re-creates the nodes with their old credentials, so the agents do log in
    // and do receive its desired states (their nodes with no pods): they drop them and stop
    // nothing.
    let passwords: Vec<(String, String)> = fleet
        .nodes
        .iter()
        .map(|n| (n.name.clone(), join_password(&n.join)))
        .collect();
    let running_before = fleet.processes();
    fleet.server.kill9();
    let log_len: BTreeMap<String, usize> = fleet
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.log().len()))
        .collect();
    let stranger = Server::start(&fleet.base.0.join("stranger"), &fleet.broker_args);
    let mut manifest = String::new();
    for (name, password) in &passwords {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        manifest += &format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: kelp-node-{name}\n  namespace: kube-system\ntype: kelp.dev/node-credentials\ndata:\n  username: {}\n  password: {}\n---\n",
            b64(name),
            b64(password)
        );
    }
    stranger.apply("stranger-nodes", &manifest);
    let dropped = |f: &Fleet| {
        f.nodes.iter().all(|n| {
            n.log_since(log_len[&n.name])
                .contains("desired state dropped: it is for cluster")
        })
    };
    wait_until(
        "every agent dropping the stranger's desired state",
        Duration::from_secs(60),
        || dropped(&fleet).then_some(()),
        || format!("{}\n{}", stranger.describe(), fleet.describe()),
    );
    std::thread::sleep(Duration::from_secs(2));
    let still = fleet.processes();
    for n in ["n1", "n2", "n3"] {
        assert_eq!(
            running_before[n], still[n],
            "{n}: the stranger stopped nothing"
        );
    }
    for n in &fleet.nodes {
        let line = n
            .log_since(log_len[&n.name])
            .lines()
            .find(|l| l.contains("desired state dropped"))
            .unwrap_or_default()
            .to_string();
        println!("{}: {line}", n.name);
    }

    // The fleet's own server returns on its data dir: the nodes are its again, nothing was
    // restarted, and its changes still apply, with newer generations.
    drop(stranger);
    let stranger_gone = second_mark();
    fleet.server.restart();
    fleet.wait(
        "every node Ready again under its own server",
        Duration::from_secs(60),
        |f| ready_since(&f.server, stranger_gone).then_some(()),
    );
    fleet.server.ok(&["delete", "pod", "x4"]);
    fleet.wait("x4 gone from n2", Duration::from_secs(60), |f| {
        f.node("n2")
            .node
            .pods()
            .iter()
            .all(|p| p.name != "x4")
            .then_some(())
    });
    let mut end = fleet.processes();
    end.get_mut("n1")
        .unwrap()
        .remove(&("job".to_string(), "c".to_string()));
    for n in ["n1", "n2", "n3"] {
        assert_untouched(&format!("{n} at the end"), &expected[n], &end[n]);
    }
    for n in &fleet.nodes {
        let generations = n.received_generations();
        assert!(
            generations.windows(2).all(|w| w[0] < w[1]) && !n.log().contains("ignored: generation"),
            "{}'s generations only grow: {generations:?}",
            n.name
        );
    }
}

/// 2 of the acceptance list again, on the embedded broker (the default of `kelp server`): a
/// node whose link goes silent must become NotReady within the grace there too.
#[test]
fn embedded_broker_marks_a_silent_node_not_ready() {
    let fleet = Fleet::start('k', 4, Broker::Embedded, 2, Some(KEEPALIVE));
    let pods = BTreeMap::from([("k1", "n1")]);
    fleet
        .server
        .apply("k1", &pod_yaml("k1", "n1", "sleep 3600", "Always"));
    fleet.wait_running(&pods, Duration::from_secs(120));
    let before = fleet.processes();
    cut_link(&fleet, "n1", &before["n1"]);
}

/// 6 of the acceptance list: an idle node (a pod running, nothing changing, the default 60 s
/// keepalive, metrics sampled every 10 s and published every 60 s) sends at most 600 bytes a
/// minute, counted as all TCP bytes both ways on its link (nftables counters on the host's
/// interface), over 60 s of real time. (Issue 11: with metrics on.)
#[test]
fn idle_node_stays_within_600_bytes_a_minute() {
    // The default keepalive (60 s) with the default grace (90 s): an idling node is never
    // marked silent.
    let fleet = Fleet::start_with('i', 3, Broker::Embedded, 1, None, &["--node-grace", "90s"]);
    // The agents run from here: their first metrics batch (all series, as the first of every
    // session is) goes 50 s on, at their sixth sample (metrics at the default intervals).
    let agents_started = Instant::now();
    let pods = BTreeMap::from([("idle", "n1")]);
    fleet
        .server
        .apply("idle", &pod_yaml("idle", "n1", "sleep 3600", "Always"));
    fleet.wait_running(&pods, Duration::from_secs(120));
    // Counters on the host's interface: all TCP both ways, as IP packets.
    let host = &fleet.node("n1").host;
    let rules = "table inet kelpcount {\n  counter tcp_in { }\n  counter tcp_out { }\n  chain input { type filter hook input priority -300; iifname \"eth0\" meta l4proto tcp counter name \"tcp_in\"; }\n  chain output { type filter hook output priority -300; oifname \"eth0\" meta l4proto tcp counter name \"tcp_out\"; }\n}\n";
    let file = fleet.base.0.join("count.nft");
    std::fs::write(&file, rules).unwrap();
    host.nft(&["-f", file.to_str().unwrap()]);
    // They count: a reported state the node publishes when a pod appears.
    fleet
        .server
        .apply("idle2", &pod_yaml("idle2", "n1", "sleep 3600", "Always"));
    fleet.wait_running(
        &BTreeMap::from([("idle", "n1"), ("idle2", "n1")]),
        Duration::from_secs(60),
    );
    let warmup = host.nft(&["list", "counters", "table", "inet", "kelpcount"]);
    // Settled: every status reported, nothing pending, the session's first metrics batch
    // sent. Then a minute of idling, counted: it holds one batch of what changed.
    std::thread::sleep(Duration::from_secs(5));
    let first_batch = agents_started + Duration::from_secs(55);
    std::thread::sleep(first_batch.saturating_duration_since(Instant::now()));
    host.nft(&["reset", "counters", "table", "inet", "kelpcount"]);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    let counters = host.nft(&["list", "counters", "table", "inet", "kelpcount"]);
    let elapsed = started.elapsed();
    let read = |name: &str| read_in(&counters, name);
    let (in_packets, in_bytes) = read("tcp_in");
    let (out_packets, out_bytes) = read("tcp_out");
    let ip_bytes = in_bytes + out_bytes;
    let packets = in_packets + out_packets;
    // On an Ethernet link each frame adds a 14-byte header.
    let link_bytes = ip_bytes + 14 * packets;
    println!(
        "idle node, {elapsed:?}: {link_bytes} bytes of TCP on its link ({ip_bytes} bytes of IP, {packets} packets: {in_packets} in, {out_packets} out); budget 600 bytes a minute"
    );
    assert_eq!(
        fleet.server.node_ready().get("n1").map(String::as_str),
        Some("True"),
        "the node stayed connected"
    );
    assert!(
        read_in(&warmup, "tcp_in").0 > 0 && read_in(&warmup, "tcp_out").0 > 0,
        "the counters count the node's link: {warmup}"
    );
    assert!(
        link_bytes <= 600,
        "an idle node sent {link_bytes} bytes of TCP in {elapsed:?}, over the 600-byte budget\n{}",
        fleet.describe()
    );
}

/// (packets, bytes) of nftables counter `name` in `nft list counters` output.
fn read_in(counters: &str, name: &str) -> (u64, u64) {
    let block = counters
        .split("counter ")
        .find(|b| b.starts_with(name))
        .unwrap_or_else(|| panic!("counter {name} in:\n{counters}"));
    let field = |key: &str| -> u64 {
        let at = block
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {block}"))
            + key.len();
        block[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("packets"), field("bytes"))
}

/// A ReplicaSet of sleeping busybox pods (one-second grace), `extra` indented under `spec:`
/// of the template.
fn replicaset_yaml(name: &str, replicas: u32, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      terminationGracePeriodSeconds: 1\n{extra}      containers:\n      - name: c\n        image: {}\n        command: [sleep, '3600']\n",
        common::BUSYBOX
    )
}

/// The API's pods owned by ReplicaSet `owner`: name -> (node, phase, deleting).
fn owned_pods(server: &Server, owner: &str) -> BTreeMap<String, (String, String, bool)> {
    server
        .items("pods")
        .iter()
        .filter(|p| p["metadata"]["ownerReferences"][0]["name"] == owner)
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                (
                    p["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    p["status"]["phase"].as_str().unwrap_or_default().to_owned(),
                    !p["metadata"]["deletionTimestamp"].is_null(),
                ),
            )
        })
        .collect()
}

/// Waits until `owner` has exactly `n` pods, all Running and none deleting; returns them
/// (name -> node).
fn wait_replicas(fleet: &Fleet, owner: &str, n: usize) -> BTreeMap<String, String> {
    fleet.wait(
        &format!("{n} Running pods of {owner}"),
        Duration::from_secs(120),
        |f| {
            let pods = owned_pods(&f.server, owner);
            (pods.len() == n
                && pods
                    .values()
                    .all(|(_, phase, del)| phase == "Running" && !del))
            .then(|| {
                pods.into_iter()
                    .map(|(k, (node, _, _))| (k, node))
                    .collect()
            })
        },
    )
}

/// Which pods a node runs (by the agent's own account).
fn pods_on(fleet: &Fleet, node: &str) -> BTreeSet<String> {
    fleet
        .node(node)
        .processes()
        .keys()
        .map(|(pod, _)| pod.clone())
        .collect()
}

#[test]
fn scheduler_and_replicasets_across_three_hosts() {
    let fleet = Fleet::start('s', 5, Broker::Embedded, 3, Some(KEEPALIVE));

    // A pod that needs more memory than any node has stays Pending and says why.
    fleet.server.apply(
        "hog",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hog\nspec:\n  containers:\n  - name: c\n    image: {}\n    resources:\n      requests:\n        memory: 100Ti\n",
            common::BUSYBOX
        ),
    );
    let message = "0/3 nodes are available: 3 Insufficient memory.";
    fleet.wait("hog unschedulable", Duration::from_secs(30), |f| {
        let described = text(&f.server.kelp(&["describe", "pod", "hog"]).stdout);
        described.contains(message).then_some(described)
    });
    let hog = &api_pods(&fleet.server)["hog"];
    assert_eq!((hog.0.as_str(), hog.1.as_str()), ("", "Pending"));

    // A label on n2 and a taint on n3, applied as Node manifests.
    fleet.server.apply(
        "n2-label",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n2\n  labels:\n    disk: ssd\n",
    );
    fleet.server.apply(
        "n3-taint",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n3\nspec:\n  taints:\n  - key: dedicated\n    value: edge\n    effect: NoSchedule\n",
    );
    fleet.server.apply(
        "picky",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: picky\nspec:\n  nodeSelector:\n    disk: ssd\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {}\n    command: [sleep, '3600']\n",
            common::BUSYBOX
        ),
    );
    fleet.wait_running(&BTreeMap::from([("picky", "n2")]), Duration::from_secs(60));

    // Without the toleration, pods keep off n3; with it, three replicas spread over three
    // nodes.
    fleet
        .server
        .apply("plain", &replicaset_yaml("plain", 2, ""));
    let plain = wait_replicas(&fleet, "plain", 2);
    assert!(plain.values().all(|n| n != "n3"), "{plain:?}");
    let tolerate = "      tolerations:\n      - key: dedicated\n        operator: Equal\n        value: edge\n        effect: NoSchedule\n";
    fleet
        .server
        .apply("web", &replicaset_yaml("web", 3, tolerate));
    let web = wait_replicas(&fleet, "web", 3);
    let nodes: BTreeSet<&String> = web.values().collect();
    assert_eq!(nodes.len(), 3, "one replica per node: {web:?}");
    println!(
        "three hosts:\n{}",
        fleet.server.ok(&["get", "pods", "-o", "wide"])
    );

    // A deleted pod is stopped on its node and replaced.
    let (victim, victim_node) = web
        .iter()
        .next()
        .map(|(p, n)| (p.clone(), n.clone()))
        .unwrap();
    fleet.server.ok(&["delete", "pod", &victim]);
    let healed = fleet.wait("web healed", Duration::from_secs(120), |f| {
        let pods = owned_pods(&f.server, "web");
        let running = pods
            .values()
            .filter(|(_, phase, del)| phase == "Running" && !del)
            .count();
        (!pods.contains_key(&victim) && running == 3).then_some(pods)
    });
    assert_eq!(healed.len(), 3, "{healed:?}");
    assert!(
        !pods_on(&fleet, &victim_node).contains(&victim),
        "{victim} no longer runs on {victim_node}"
    );

    // Deleting the ReplicaSet removes its pods, on the nodes too.
    fleet.server.ok(&["delete", "rs", "web"]);
    fleet.wait("web's pods gone", Duration::from_secs(120), |f| {
        owned_pods(&f.server, "web").is_empty().then_some(())
    });
    for n in ["n1", "n2", "n3"] {
        let left: Vec<String> = pods_on(&fleet, n)
            .into_iter()
            .filter(|p| p.starts_with("web-"))
            .collect();
        assert!(left.is_empty(), "{n} still runs {left:?}");
    }
}

#[test]
fn a_lost_node_keeps_its_pods_without_eviction() {
    let fleet = Fleet::start('v', 6, Broker::Embedded, 2, Some(KEEPALIVE));
    fleet.server.apply("web", &replicaset_yaml("web", 2, ""));
    let web = wait_replicas(&fleet, "web", 2);
    assert_eq!(web.values().collect::<BTreeSet<_>>().len(), 2, "{web:?}");
    let before = fleet.node("n1").processes();
    fleet.node("n1").host.cut();
    fleet.wait("n1 NotReady", will_deadline(), |f| {
        (f.server.node_ready().get("n1").map(String::as_str) != Some("True")).then_some(())
    });
    // Kubernetes evicts after five minutes; a tenth of it here, and longer than the grace.
    std::thread::sleep(Duration::from_secs(30));
    let pods = owned_pods(&fleet.server, "web");
    assert_eq!(
        pods.keys().collect::<Vec<_>>(),
        web.keys().collect::<Vec<_>>(),
        "no pod deleted or added: {pods:?}"
    );
    assert!(pods.values().all(|(_, _, deleting)| !deleting), "{pods:?}");
    let taints = fleet.server.ok(&["get", "node", "n1", "-o", "json"]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    assert_untouched("n1 while lost", &before, &fleet.node("n1").processes());
    fleet.node("n1").host.restore();
    fleet.wait("n1 Ready again", Duration::from_secs(90), |f| {
        (f.server.node_ready().get("n1").map(String::as_str) == Some("True")).then_some(())
    });
    assert_untouched("n1 back", &before, &fleet.node("n1").processes());
    assert_eq!(wait_replicas(&fleet, "web", 2), web);
}

#[test]
fn with_eviction_a_lost_nodes_replicas_move_and_stop_when_it_returns() {
    let fleet = Fleet::start_with(
        'w',
        7,
        Broker::Embedded,
        2,
        Some(KEEPALIVE),
        &["--pod-eviction-timeout", "3s", "--controller-resync", "1s"],
    );
    fleet.server.apply("web", &replicaset_yaml("web", 2, ""));
    let web = wait_replicas(&fleet, "web", 2);
    let (lost_pod, _) = web
        .iter()
        .find(|(_, n)| *n == "n1")
        .expect("a replica on n1");
    let lost_pod = lost_pod.clone();
    fleet.node("n1").host.cut();
    let moved = fleet.wait("web replaced on n2", Duration::from_secs(90), |f| {
        let pods = owned_pods(&f.server, "web");
        let old_deleting = pods.get(&lost_pod).is_some_and(|(_, _, del)| *del);
        let on_n2 = pods
            .values()
            .filter(|(node, phase, del)| node == "n2" && phase == "Running" && !del)
            .count();
        (old_deleting && on_n2 == 2).then_some(pods)
    });
    println!("after eviction: {moved:?}");
    // Offline, n1 still runs it: only the controller knows it is deleted.
    assert!(pods_on(&fleet, "n1").contains(&lost_pod));
    fleet.node("n1").host.restore();
    fleet.wait(
        "the evicted pod stopped on n1 and gone",
        Duration::from_secs(90),
        |f| {
            let gone = !owned_pods(&f.server, "web").contains_key(&lost_pod);
            (gone && pods_on(f, "n1").is_empty()).then_some(())
        },
    );
    let after = wait_replicas(&fleet, "web", 2);
    assert!(after.values().all(|n| n == "n2"), "{after:?}");
}

/// A test's own MQTT session with someone's credentials.
struct Probe {
    client: rumqttc::Client,
    connection: rumqttc::Connection,
}

impl Probe {
    /// Connects; `Err` with the broker's answer when the login is refused.
    fn connect(addr: std::net::SocketAddr, user: &str, password: &str) -> Result<Probe, String> {
        use rumqttc::{Client, Event, MqttOptions, Packet};
        let id = format!("probe-{}-{}", user.replace('@', "-"), rand_suffix());
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options
            .set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(4 << 20, 4 << 20)
            .set_clean_session(true);
        let (client, mut connection) = Client::new(options, 64);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match connection.recv_timeout(Duration::from_secs(1)) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                    return if ack.code == rumqttc::ConnectReturnCode::Success {
                        Ok(Probe { client, connection })
                    } else {
                        Err(format!("{:?}", ack.code))
                    };
                }
                Ok(Err(e)) => return Err(e.to_string()),
                _ => {}
            }
        }
        Err("no CONNACK within 10 s".into())
    }

    /// Subscribes to `filter` and returns what arrives within `wait` (topic, payload).
    fn receive(&mut self, filter: &str, wait: Duration) -> Vec<(String, Vec<u8>)> {
        self.receive_flagged(filter, wait)
            .into_iter()
            .map(|(t, p, _)| (t, p))
            .collect()
    }

    /// [`Probe::receive`], with each message's retain flag.
    fn receive_flagged(&mut self, filter: &str, wait: Duration) -> Vec<(String, Vec<u8>, bool)> {
        use rumqttc::{Event, Packet, QoS};
        self.client.subscribe(filter, QoS::AtLeastOnce).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
                self.connection.recv_timeout(Duration::from_millis(200))
            {
                out.push((p.topic.clone(), p.payload.to_vec(), p.retain));
            }
        }
        out
    }

    /// Publishes (QoS 1) and lets the session carry it out.
    fn publish(&mut self, topic: &str, retain: bool, payload: Vec<u8>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let _ = self.connection.recv_timeout(Duration::from_millis(100));
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() % 1_000_000
}

/// The retained messages of `topic` as the controller's login sees them (non-empty only).
fn retained(broker: &Mosquitto, topic: &str) -> Vec<Vec<u8>> {
    let mut probe = Probe::connect(broker.addr, MOSQUITTO_CONTROLLER.0, MOSQUITTO_CONTROLLER.1)
        .expect("the controller's login works");
    probe
        .receive_flagged(topic, Duration::from_secs(2))
        .into_iter()
        .filter(|(_, p, retain)| *retain && !p.is_empty())
        .map(|(_, p, _)| p)
        .collect()
}

#[test]
fn mosquitto_acl_from_kelp_isolates_nodes_and_revokes_them() {
    let fleet = Fleet::start('a', 8, Broker::MosquittoManaged, 2, Some(KEEPALIVE));
    let broker = fleet.mosquitto.as_ref().unwrap();
    let topics = Topics::new("kelp/v1").unwrap();
    let acl = std::fs::read_to_string(broker.dir.join("acl")).unwrap();
    assert!(
        acl.contains("user n1\n") && acl.contains("user n2\n"),
        "{acl}"
    );
    let pods = BTreeMap::from([("b1", "n2")]);
    fleet
        .server
        .apply("b1", &pod_yaml("b1", "n2", "sleep 3600", "Always"));
    fleet.wait_running(&pods, Duration::from_secs(120));
    let before = fleet.node("n2").processes();
    let n1_password = join_password(&fleet.node("n1").join);
    let n2_password = join_password(&fleet.node("n2").join);

    // Node n1's login can neither read n2's desired state nor write n2's topics.
    let mut n1 = Probe::connect(broker.addr, "n1", &n1_password).expect("n1 logs in");
    let own = n1.receive(&topics.desired("n1").unwrap(), Duration::from_secs(3));
    assert!(!own.is_empty(), "n1 reads its own desired state");
    let n2_desired = topics.desired("n2").unwrap();
    let stolen: Vec<_> = n1
        .receive(&n2_desired, Duration::from_secs(3))
        .into_iter()
        .filter(|(t, _)| *t == n2_desired)
        .collect();
    assert!(
        stolen.is_empty(),
        "n1 read n2's desired state: {} messages",
        stolen.len()
    );
    let log_mark = fleet.server.log_text().len();
    for topic in [
        topics.desired("n2").unwrap(),
        topics.status("n2").unwrap(),
        topics.reported("n2").unwrap(),
    ] {
        // An empty retained message would delete what is there; garbage would be logged.
        n1.publish(&topic, true, Vec::new());
        n1.publish(&topic, false, b"forged by n1".to_vec());
    }
    for topic in [topics.desired("n2").unwrap(), topics.status("n2").unwrap()] {
        assert_eq!(
            retained(broker, &topic).len(),
            1,
            "{topic} kept its retained message"
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let since = fleet.server.log_text()[log_mark..].to_owned();
    assert!(
        !since.contains("nodes/n2/"),
        "the controller got n1's messages:\n{since}"
    );
    assert_eq!(
        fleet.server.node_ready().get("n2").map(String::as_str),
        Some("True")
    );
    assert_untouched(
        "n2 after n1's attempts",
        &before,
        &fleet.node("n2").processes(),
    );

    // An observer reads every node's status and nothing else, and writes nothing.
    let observer_file = fleet.base.0.join("laptop.observer.yaml");
    fleet.server.ok(&[
        "observer",
        "add",
        "laptop",
        "-o",
        observer_file.to_str().unwrap(),
    ]);
    let credentials: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&observer_file).unwrap()).unwrap();
    let user = credentials["username"].as_str().unwrap().to_owned();
    let password = credentials["password"].as_str().unwrap().to_owned();
    let mut observer = fleet.wait("the observer's login", Duration::from_secs(20), |_| {
        Probe::connect(broker.addr, &user, &password).ok()
    });
    let births: BTreeSet<String> = observer
        .receive("kelp/v1/nodes/+/status", Duration::from_secs(3))
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        births,
        BTreeSet::from([topics.status("n1").unwrap(), topics.status("n2").unwrap()])
    );
    // (Heartbeats on the status subscription above keep arriving: only `desired` counts.)
    let n1_desired = topics.desired("n1").unwrap();
    assert!(observer
        .receive(&n1_desired, Duration::from_secs(2))
        .iter()
        .all(|(t, _)| *t != n1_desired));
    observer.publish(&topics.status("n1").unwrap(), true, Vec::new());
    assert_eq!(retained(broker, &topics.status("n1").unwrap()).len(), 1);

    // Revoked: n2's next login is refused, its retained topics are cleared, its pod runs on.
    fleet.server.ok(&["node", "remove", "n2"]);
    let refused = fleet.wait("n2's login refused", Duration::from_secs(20), |_| {
        Probe::connect(broker.addr, "n2", &n2_password).err()
    });
    println!("n2 after revocation: {refused}");
    let acl = std::fs::read_to_string(broker.dir.join("acl")).unwrap();
    assert!(!acl.contains("user n2\n"), "{acl}");
    fleet.wait(
        "n2's retained topics cleared",
        Duration::from_secs(20),
        |_| {
            (retained(broker, &topics.desired("n2").unwrap()).is_empty()
                && retained(broker, &topics.status("n2").unwrap()).is_empty())
            .then_some(())
        },
    );
    // The node's own session is cut and it tries again: refused; it keeps its pod running.
    fleet.node("n2").host.cut();
    std::thread::sleep(Duration::from_secs(2 * KEEPALIVE + 1));
    fleet.node("n2").host.restore();
    std::thread::sleep(Duration::from_secs(2 * KEEPALIVE + 2));
    assert_untouched("n2 revoked", &before, &fleet.node("n2").processes());
    assert!(
        broker.log().contains("not authorised") || broker.log().contains("not authorized"),
        "Mosquitto refused n2:\n{}",
        broker.log()
    );
}

/// Metrics across a real fleet (issue 11): real agents on Mosquitto (kelp's ACL) sample every
/// 500 ms and publish every 2 s; the controller serves them (`kelp top nodes`, `/metrics`),
/// and a field engineer's laptop on the broker with an observer's credentials and no
/// controller in the loop (`kelp mqtt nodes`) sees every node online with its figures, marks
/// the one whose link is cut offline (its will), and online again when it is back;
/// `kelp mqtt node NAME` shows one in detail.
#[test]
fn metrics_reach_kelp_top_and_kelp_mqtt_nodes_marks_a_cut_off_node_offline() {
    let fleet = Fleet::start_configured(
        'o',
        9,
        Broker::MosquittoManaged,
        3,
        Some(KEEPALIVE),
        &[],
        &[
            "--metrics-interval-ms",
            "500",
            "--metrics-publish-interval-ms",
            "2000",
            // A complete batch every 3rd (6 s): series that never change (pid_max,
            // capacities) reach a newly connected observer only in those.
            "--metrics-complete-every",
            "3",
        ],
    );
    let names = ["n1", "n2", "n3"];

    // The controller: every node in `kelp top nodes`, with a CPU and memory figure.
    let top = fleet.wait(
        "every node in kelp top nodes",
        Duration::from_secs(60),
        |f| {
            let out = f.server.kelp(&["top", "nodes"]);
            let table = text(&out.stdout);
            let rows: BTreeMap<String, Vec<String>> = table
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let cols: Vec<String> = l.split_whitespace().map(str::to_owned).collect();
                    Some((cols.first()?.clone(), cols))
                })
                .collect();
            let complete = names.iter().all(|n| {
                rows.get(*n).is_some_and(|cols| {
                    cols.len() == 5 && cols[1].ends_with('m') && cols[3].ends_with("Mi")
                })
            });
            if !complete {
                eprintln!(
                    "kelp top nodes, not yet complete:\n{table}{}",
                    text(&out.stderr)
                );
            }
            complete.then_some(table)
        },
    );
    println!("kelp top nodes:\n{top}");
    let metrics = fleet.server.ok(&["get", "--raw", "/metrics"]);
    for n in names {
        let line = format!("node_memory_working_set_bytes{{node=\"{n}\"}}");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }

    // The pressure conditions from real samples (the test servers' --eviction-hard asks for
    // disk pressure only below 1% free).
    fleet.wait(
        "pressure conditions on every node",
        Duration::from_secs(30),
        |f| {
            let nodes = f.server.items("nodes");
            let all = nodes.iter().all(|n| {
                ["MemoryPressure", "DiskPressure", "PIDPressure"]
                    .iter()
                    .all(|kind| {
                        n["status"]["conditions"].as_array().is_some_and(|c| {
                            c.iter()
                                .any(|c| c["type"] == *kind && c["status"] == "False")
                        })
                    })
            });
            (nodes.len() == 3 && all).then_some(())
        },
    );

    // A real container: its pod in `kelp top pods`, its series in /metrics and the Summary.
    let pods = BTreeMap::from([("t1", "n1")]);
    fleet
        .server
        .apply("t1", &pod_yaml("t1", "n1", "sleep 3600", "Always"));
    fleet.wait_running(&pods, Duration::from_secs(120));
    let top = fleet.wait("pod t1 in kelp top pods", Duration::from_secs(30), |f| {
        let out = text(&f.server.kelp(&["top", "pods", "--containers"]).stdout);
        out.lines()
            .any(|l| l.split_whitespace().take(2).eq(["t1", "c"]))
            .then_some(out)
    });
    println!("kelp top pods --containers:\n{top}");
    let metrics = fleet.server.ok(&["get", "--raw", "/metrics"]);
    for family in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_start_time_seconds",
    ] {
        let labels =
            format!("{family}{{container=\"c\",namespace=\"default\",node=\"n1\",pod=\"t1\"}}");
        assert!(metrics.contains(&labels), "{labels} missing:\n{metrics}");
    }
    let summary: serde_json::Value = serde_json::from_str(&fleet.server.ok(&[
        "get",
        "--raw",
        "/api/v1/nodes/n1/proxy/stats/summary",
    ]))
    .unwrap();
    let t1 = summary["pods"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["podRef"]["name"] == "t1"))
        .unwrap_or_else(|| panic!("t1 in the Summary: {summary:#}"));
    assert_eq!(t1["containers"][0]["name"], "c", "{t1:#}");
    assert!(
        t1["containers"][0]["memory"]["workingSetBytes"]
            .as_u64()
            .is_some(),
        "{t1:#}"
    );

    let observer = fleet.base.0.join("laptop.observer.yaml");
    fleet.server.ok(&[
        "observer",
        "add",
        "laptop",
        "-o",
        observer.to_str().unwrap(),
    ]);
    let observer = observer.to_str().unwrap().to_owned();
    // `kelp mqtt nodes --once`: each node's row, by column name.
    // `wait`: how long it listens (status and reports are retained and come at once).
    let table = |f: &Fleet, wait: &str| -> Option<BTreeMap<String, BTreeMap<String, String>>> {
        let out = f.server.kelp(&[
            "mqtt",
            "nodes",
            "--credentials",
            &observer,
            "--once",
            "--wait",
            wait,
        ]);
        if !out.status.success() {
            // The server writes the observer into Mosquitto's files; the broker reloads them.
            return None;
        }
        let table = text(&out.stdout);
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next()?.split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NODE",
                "ONLINE",
                "LAST",
                "SEEN",
                "CPU",
                "MEMORY",
                "DISK",
                "TEMP",
                "THROTTLED",
                "PODS"
            ],
            "{table}"
        );
        let columns = [
            "ONLINE",
            "LAST SEEN",
            "CPU",
            "MEMORY",
            "DISK",
            "TEMP",
            "THROTTLED",
            "PODS",
        ];
        Some(
            lines
                .filter_map(|l| {
                    let mut cols: Vec<String> = l.split_whitespace().map(str::to_owned).collect();
                    // LAST SEEN is one cell of two words ("5s ago") or one ("<unknown>").
                    if cols.get(3).map(String::as_str) == Some("ago") {
                        let ago = cols.remove(3);
                        cols[2] = format!("{} {ago}", cols[2]);
                    }
                    let name = cols.first()?.clone();
                    Some((
                        name,
                        columns
                            .iter()
                            .map(|c| c.to_string())
                            .zip(cols.into_iter().skip(1))
                            .collect(),
                    ))
                })
                .collect(),
        )
    };
    let online = |t: &BTreeMap<String, BTreeMap<String, String>>| -> BTreeMap<String, String> {
        t.iter()
            .map(|(n, cols)| (n.clone(), cols["ONLINE"].clone()))
            .collect()
    };
    let all = |state: &str| -> BTreeMap<String, String> {
        names.map(|n| (n.to_owned(), state.to_owned())).into()
    };
    // Disk capacity does not change, so only complete batches (every 10th, here every 20 s)
    // carry it: listen that long.
    let seen = fleet.wait(
        "every node online with figures in kelp mqtt nodes",
        Duration::from_secs(60),
        |f| {
            let t = table(f, "21s")?;
            let figures = t.iter().all(|(name, cols)| {
                let pods = if name == "n1" { "1/0" } else { "0/0" };
                cols["CPU"].ends_with('%')
                    && cols["MEMORY"].ends_with('%')
                    && cols["DISK"].ends_with('%')
                    && cols["LAST SEEN"].ends_with(" ago")
                    && cols["PODS"] == pods
            });
            (online(&t) == all("yes") && figures).then_some(t)
        },
    );
    println!("kelp mqtt nodes: {seen:?}");

    let n2 = fleet.node("n2");
    let cut_at = Instant::now();
    n2.host.cut();
    let mut want = all("yes");
    want.insert("n2".into(), "no".into());
    fleet.wait(
        "n2 offline in kelp mqtt nodes after its link was cut",
        will_deadline() + Duration::from_secs(15),
        |f| {
            let t = table(f, "3s")?;
            if online(&t) != want {
                eprintln!("kelp mqtt nodes, n2 not offline yet: {t:?}");
            }
            (online(&t) == want).then_some(())
        },
    );
    println!(
        "kelp mqtt nodes showed n2 offline {:?} after its link was cut",
        cut_at.elapsed()
    );
    // Series that do not change (pid_max, capacities) come only in complete batches (here
    // every 3rd, 6 s): a laptop that just connected waits for one.
    let detail = fleet.wait("n1 in detail with its PIDs", Duration::from_secs(40), |f| {
        let out = f.server.kelp(&[
            "mqtt",
            "node",
            "n1",
            "--credentials",
            &observer,
            "--once",
            "--wait",
            "5s",
        ]);
        let detail = text(&out.stdout);
        (out.status.success() && detail.contains("PIDs:")).then_some(detail)
    });
    for want in ["Online:", "kernel", "Memory:", "Disk:", "Load:"] {
        assert!(detail.contains(want), "{want} missing:\n{detail}");
    }
    n2.host.restore();
    fleet.wait("n2 online again", Duration::from_secs(90), |f| {
        table(f, "3s").filter(|t| online(t) == all("yes"))
    });
}
