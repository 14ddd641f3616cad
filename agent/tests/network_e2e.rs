//! End-to-end tests of the pod network: real pods on a per-test bridge and pod CIDR, an
//! "outside" host made of a network namespace that has no route to the pod CIDR, nftables NAT
//! and hostPorts. As root; every bridge, veth, namespace and table is removed on drop.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Node, BUSYBOX};

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("{}: {e} (iproute2 and nftables are needed)", args[0]);
        });
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Second octets of this run's pod CIDRs (10.P.S.0/24) and outside links (10.L.S.0/30), from
/// the process ID: two test runs side by side (CI stages, developers) rarely share them.
fn pod_octet() -> u8 {
    (100 + std::process::id() % 50) as u8
}

fn link_octet() -> u8 {
    (150 + std::process::id() % 50) as u8
}

fn short_pid() -> u32 {
    std::process::id() % 100_000
}

/// A test's network: its bridge and nftables table (made by the agent), and an outside host:
/// a namespace linked to this host by a veth pair `10.B.S.1/30` (host) — `10.B.S.2/30`
/// (outside), with no route to the pod CIDR.
struct Net {
    bridge: String,
    cidr: String,
    netns: String,
    outside_veth: String,
    host_ip: Ipv4Addr,
    outside_ip: Ipv4Addr,
}

impl Net {
    fn new(tag: &str, subnet: u8) -> Self {
        assert!(
            Command::new("nft").arg("--version").output().is_ok(),
            "nft is missing: apt-get install nftables"
        );
        let net = Self {
            bridge: format!("kb{tag}{}", short_pid()),
            cidr: format!("10.{}.{subnet}.0/24", pod_octet()),
            netns: format!("kelp-e2e-{tag}-{}", short_pid()),
            outside_veth: format!("ko{tag}{}", short_pid()),
            host_ip: Ipv4Addr::new(10, link_octet(), subnet, 1),
            outside_ip: Ipv4Addr::new(10, link_octet(), subnet, 2),
        };
        net.remove();
        run(&["ip", "netns", "add", &net.netns]);
        run(&[
            "ip",
            "link",
            "add",
            &net.outside_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &net.netns,
        ]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", net.host_ip),
            "dev",
            &net.outside_veth,
        ]);
        run(&["ip", "link", "set", &net.outside_veth, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "-n", &net.netns];
            all.extend_from_slice(args);
            run(&all);
        };
        inside(&[
            "addr",
            "add",
            &format!("{}/30", net.outside_ip),
            "dev",
            "eth0",
        ]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["link", "set", "lo", "up"]);
        net
    }

    /// `kelp-agent run` arguments giving the node this network.
    fn agent_args(&self) -> Vec<String> {
        vec![
            "--pod-cidr".into(),
            self.cidr.clone(),
            "--bridge".into(),
            self.bridge.clone(),
            "--node-ip".into(),
            self.host_ip.to_string(),
        ]
    }

    fn table(&self) -> String {
        format!("kelp_{}", self.bridge)
    }

    /// Runs `f` on a thread inside the outside namespace.
    fn outside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.netns)).unwrap();
        std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the outside namespace");
            f()
        })
    }

    /// The veths attached to the bridge.
    fn veths(&self) -> Vec<String> {
        run(&["ip", "-o", "link", "show", "master", &self.bridge])
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap().to_string())
            .collect()
    }

    /// The DNAT rules of the node's table.
    fn dnat_rules(&self) -> Vec<String> {
        run(&["nft", "list", "table", "ip", &self.table()])
            .lines()
            .filter(|l| l.contains("dnat to"))
            .map(|l| l.trim().to_string())
            .collect()
    }

    fn remove(&self) {
        for args in [
            vec!["ip", "netns", "del", &self.netns],
            vec!["ip", "link", "del", &self.outside_veth],
            vec!["ip", "link", "del", &self.bridge],
        ] {
            let _ = Command::new(args[0]).args(&args[1..]).output();
        }
        let table = self.table();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &table])
            .output();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

fn web_container(port: u16, host_port: Option<u16>) -> String {
    let host_port = host_port
        .map(|p| format!(", hostPort: {p}"))
        .unwrap_or_default();
    format!(
        r#"  - name: web
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p {port} -h /www"]
    ports: [{{containerPort: {port}{host_port}}}]
"#
    )
}

#[test]
fn pod_has_its_own_address_egress_is_masqueraded_and_host_ports_map() {
    let net = Net::new("a", 1);
    let mut node = Node::new("net-own-ip");
    node.extra_args = net.agent_args();
    // The outside host's server: records who connected.
    let outside_ip = net.outside_ip;
    let server = net.outside(move || {
        let listener = TcpListener::bind((outside_ip, 9000)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            match listener.accept() {
                Ok((mut conn, peer)) => {
                    let _ = conn.write_all(b"hello from outside\n");
                    return Some(peer.ip());
                }
                Err(_) if std::time::Instant::now() > deadline => return None,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    node.start_agent();
    let spec = format!(
        "{}  - name: client\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", \"until echo hi | nc {} 9000; do sleep 0.2; done; sleep 3600\"]\n",
        web_container(80, Some(18081)),
        net.outside_ip
    );
    node.apply(
        "web.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n{spec}"),
    );
    let pod = node.wait_running("web");

    // Its own address in the pod CIDR, reported with the node's.
    let pod_ip: Ipv4Addr = pod
        .status
        .pod_ip
        .as_deref()
        .expect("podIP")
        .parse()
        .unwrap();
    assert_eq!(
        &pod_ip.octets()[..3],
        &[10, pod_octet(), 1],
        "{pod_ip} not in {}",
        net.cidr
    );
    assert_ne!(
        pod_ip,
        Ipv4Addr::new(10, pod_octet(), 1, 1),
        "the gateway is the bridge's"
    );
    assert_eq!(pod.status.host_ip, Some(net.host_ip.to_string()));
    assert_eq!(
        pod.status.pod_ips.as_ref().map(|ips| ips[0].ip.clone()),
        Some(pod_ip.to_string())
    );
    assert_eq!(net.veths().len(), 1, "one veth on the bridge");

    // Reachable from the host at its address.
    let body = node.wait_for(
        "the pod's page from the host",
        Duration::from_secs(20),
        |_| http_get(SocketAddr::from((pod_ip, 80))).ok(),
    );
    assert!(body.contains("web-e2e"), "{body}");

    // Egress: the outside host, with no route back to the pod CIDR, sees the node's address.
    let peer = server.join().unwrap().unwrap_or_else(|| {
        panic!(
            "the outside server saw no connection from the pod within 90 s; client log:\n{}",
            node.log_of(&pod, "client")
        )
    });
    assert_eq!(
        peer,
        std::net::IpAddr::V4(net.host_ip),
        "masqueraded to the node's address"
    );

    // hostPort from the outside host, through the node's address.
    let host_ip = net.host_ip;
    let from_outside = node.wait_for(
        "hostPort 18081 from the outside host",
        Duration::from_secs(20),
        |_| {
            net.outside(move || http_get(SocketAddr::from((host_ip, 18081))))
                .join()
                .unwrap()
                .ok()
        },
    );
    assert!(from_outside.contains("web-e2e"), "{from_outside}");
    // And from the node itself.
    let from_node = node.wait_for(
        "hostPort 18081 from the node",
        Duration::from_secs(20),
        |_| http_get(SocketAddr::from((host_ip, 18081))).ok(),
    );
    assert!(from_node.contains("web-e2e"), "{from_node}");

    node.delete("web.yaml");
    node.wait_for("pod gone", Duration::from_secs(30), |n| {
        n.pod("web").is_none().then_some(())
    });
    node.wait_for("veth and rules gone", Duration::from_secs(10), |_| {
        (net.veths().is_empty() && net.dnat_rules().is_empty()).then_some(())
    });
}

#[test]
fn agent_restart_leaves_one_veth_and_one_rule_set_per_pod() {
    let net = Net::new("r", 2);
    let mut node = Node::new("net-restart");
    node.extra_args = net.agent_args();
    node.start_agent();
    for (name, port) in [("one", 18082u16), ("two", 18083)] {
        let spec = web_container(8080, Some(port));
        node.apply(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n{spec}"),
        );
    }
    let one = node.wait_running("one");
    let two = node.wait_running("two");
    assert_ne!(one.status.pod_ip, two.status.pod_ip);
    node.wait_for("two veths and two rules", Duration::from_secs(10), |_| {
        (net.veths().len() == 2 && net.dnat_rules().len() == 2).then_some(())
    });
    let before = net.veths();

    node.kill_agent();
    // A veth left on the bridge by a pod that vanished while the agent was down.
    run(&[
        "ip",
        "link",
        "add",
        "vethdeadbeef",
        "type",
        "veth",
        "peer",
        "name",
        "vethdeadbee2",
    ]);
    run(&["ip", "link", "set", "vethdeadbeef", "master", &net.bridge]);
    node.start_agent();
    node.wait_for("the stray veth swept", Duration::from_secs(20), |_| {
        (!net.veths().contains(&"vethdeadbeef".to_string())).then_some(())
    });
    let after_one = node.wait_running("one");
    assert_eq!(
        after_one.status.pod_ip, one.status.pod_ip,
        "the pod keeps its address"
    );
    let mut veths = net.veths();
    veths.sort();
    let mut before = before;
    before.sort();
    assert_eq!(veths, before, "exactly the pods' veths, once each");
    let rules = net.dnat_rules();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(
        run(&["nft", "list", "tables"])
            .lines()
            .filter(|l| l.trim() == format!("table ip {}", net.table()))
            .count(),
        1
    );
    for (pod, port) in [(&one, 18082u16), (&two, 18083)] {
        let ip = pod.status.pod_ip.as_deref().unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r.contains(&format!("dport {port} dnat to {ip}:8080"))),
            "{rules:?}"
        );
    }

    node.delete("one.yaml");
    node.wait_for("one veth, one rule", Duration::from_secs(30), |_| {
        (net.veths().len() == 1 && net.dnat_rules().len() == 1).then_some(())
    });
}

#[test]
fn host_network_pod_shares_the_hosts_namespace_and_address() {
    let net = Net::new("h", 3);
    let mut node = Node::new("net-host");
    node.extra_args = net.agent_args();
    node.start_agent();
    let host_name_before = run(&["hostname"]);
    let spec = web_container(18084, None);
    node.apply(
        "hostnet.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hostnet\nspec:\n  hostNetwork: true\n  containers:\n{spec}"
        ),
    );
    let pod = node.wait_running("hostnet");
    assert_eq!(pod.status.pod_ip, Some(net.host_ip.to_string()));
    assert_eq!(pod.status.host_ip, Some(net.host_ip.to_string()));
    let pid = node.runs(&pod.uid)["web"].process.unwrap().pid;
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap(),
        "the container is in the host's network namespace"
    );
    let body = node.wait_for(
        "the page on the host's loopback",
        Duration::from_secs(20),
        |_| http_get(SocketAddr::from(([127, 0, 0, 1], 18084))).ok(),
    );
    assert_eq!(
        body.lines().last().map(str::trim),
        Some(host_name_before.trim()),
        "{body}"
    );
    assert_eq!(
        run(&["hostname"]),
        host_name_before,
        "the host keeps its hostname"
    );
    assert!(net.veths().is_empty(), "no veth for a hostNetwork pod");
}
