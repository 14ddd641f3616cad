//! Budget: an idle agent writes nothing to disk (SD cards wear out). With two running pods on
//! the pod network, probed every 1 s (exec, httpGet, tcpSocket at a tenth of real time), the
//! agent and its monitors must write 0 bytes to block devices over 60 idle seconds
//! (`write_bytes` of `/proc/PID/io`). `KELP_IDLE_SECONDS` shortens the window for local runs.

mod common;

use std::fs;
use std::time::Duration;

use common::{Node, BUSYBOX};

fn write_bytes(pid: i32) -> u64 {
    let io = fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/io: {e} (the kernel needs task I/O accounting)"));
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .expect("write_bytes in /proc/PID/io")
        .trim()
        .parse()
        .unwrap()
}

/// The test's bridge and nftables table, removed on drop.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &format!("kelp_{}", self.0)])
            .output();
    }
}

#[test]
fn idle_agent_and_monitors_write_nothing_to_disk() {
    let seconds: u64 = std::env::var("KELP_IDLE_SECONDS")
        .ok()
        .map(|s| s.parse().expect("KELP_IDLE_SECONDS is a number"))
        .unwrap_or(60);
    let bridge = Bridge(format!("kbidle{}", std::process::id() % 100_000));
    let mut node = Node::new("idle");
    node.extra_args = [
        "--pod-cidr",
        &format!("10.{}.9.0/24", 100 + std::process::id() % 50),
        "--bridge",
        &bridge.0,
        "--probe-time-scale",
        "0.1",
    ]
    .map(String::from)
    .to_vec();
    node.start_agent();
    for name in ["idle-a", "idle-b"] {
        node.apply(
            &format!("{name}.yaml"),
            &format!(
                r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{{containerPort: 8080}}]
    readinessProbe: {{exec: {{command: [cat, /www/index.html]}}, periodSeconds: 10}}
    livenessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 10}}
    startupProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 10}}
"#
            ),
        );
    }
    let pods: Vec<_> = ["idle-a", "idle-b"]
        .iter()
        .map(|n| node.wait_running(n))
        .collect();
    // Let the first status writes and redb commits of the start-up settle.
    std::thread::sleep(Duration::from_secs(3));
    let mut pids = vec![node.agent_pid() as i32];
    pids.extend(pods.iter().map(|p| node.monitor(&p.uid).monitor.pid));
    let before: Vec<u64> = pids.iter().map(|&p| write_bytes(p)).collect();
    std::thread::sleep(Duration::from_secs(seconds));
    let after: Vec<u64> = pids.iter().map(|&p| write_bytes(p)).collect();
    let written: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    println!(
        "idle writes over {seconds} s by the agent and 2 monitors: {written} bytes (budget 0)"
    );
    assert_eq!(
        written, 0,
        "per process before {before:?} after {after:?} (pids {pids:?})"
    );
}
