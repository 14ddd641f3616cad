//! The aarch64 `kelp-agent` under `qemu-aarch64` (user-mode emulation) against a real x86
//! `kelp server` with its embedded broker: it joins (Node Ready, arch arm64), receives the
//! desired state of its node and reports the pod's status back. Containers cannot be created
//! under qemu-user (the agent re-executes itself for each pod's monitor, and the kernel has no
//! binfmt entry for an aarch64 binary), so the agent reports what the kubelet would: a
//! `FailedCreatePodSandBox` warning and a Pending pod whose container waits in
//! ContainerCreating, retried with back-off. The test asserts that the agent wrote them.
//!
//! Run by `ci/cross.sh` with `--ignored` after it built the aarch64 release agent:
//! `KELP_QEMU_AGENT=/path/to/aarch64/kelp-agent cargo test -p kelp-controller --test
//! qemu_agent_e2e -- --ignored`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, text, Server};
use serde_json::Value;

/// The emulated agent, stopped on drop; then its bridge, nftables table and cgroups are
/// removed (whatever of them it got to create under emulation).
struct EmulatedAgent {
    child: Child,
    log: PathBuf,
    bridge: String,
    cgroup_parent: String,
}

impl EmulatedAgent {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `f`'s value once it has one, or a panic naming `what` with the agent's log.
    fn eventually<T>(&self, timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; agent log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for EmulatedAgent {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("kelp_{}", self.bridge)])
            .stderr(Stdio::null())
            .status();
        let name = self.cgroup_parent.trim_start_matches('/');
        let mut roots = vec![PathBuf::from("/sys/fs/cgroup").join(name)];
        if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
            roots.extend(entries.flatten().map(|e| e.path().join(name)));
        }
        for root in roots.into_iter().filter(|r| r.is_dir()) {
            remove_cgroup_tree(&root);
        }
    }
}

/// Removes a cgroup directory and its children, children first.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    if let Err(e) = fs::remove_dir(dir) {
        eprintln!("cleanup of cgroup {}: {e}", dir.display());
    }
}

/// The aarch64 agent binary and a working `qemu-aarch64`, or a panic that names what is
/// missing.
fn prerequisites() -> PathBuf {
    let agent = std::env::var_os("KELP_QEMU_AGENT")
        .map(PathBuf::from)
        .expect(
            "KELP_QEMU_AGENT must name the aarch64 kelp-agent binary (ci/cross.sh builds it with \
         `cargo build --release -p kelp-agent --target aarch64-unknown-linux-gnu`)",
        );
    assert!(
        agent.is_file(),
        "KELP_QEMU_AGENT={} is not a file",
        agent.display()
    );
    let qemu = Command::new("qemu-aarch64").arg("--version").output();
    assert!(
        matches!(&qemu, Ok(o) if o.status.success()),
        "qemu-aarch64 is needed (Debian package qemu-user): {qemu:?}"
    );
    let elf = fs::read(&agent).unwrap();
    // e_machine at offset 18: 0xb7 = EM_AARCH64. A host binary would prove nothing.
    assert_eq!(
        elf.get(18..20),
        Some(&[0xb7, 0x00][..]),
        "{} is not an aarch64 ELF binary",
        agent.display()
    );
    agent
}

fn get_json(server: &Server, path: &str) -> Option<Value> {
    let r = server.http(true).get(path);
    (r.code == 200).then_some(r.body)
}

fn condition(obj: &Value, kind: &str) -> Option<String> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

#[test]
#[ignore = "needs the aarch64 release agent and qemu-user: ci/cross.sh runs it"]
fn emulated_aarch64_agent_joins_receives_desired_state_and_reports() {
    let agent_bin = prerequisites();
    let server = Server::start(&[]);
    let pid = std::process::id();
    let node = format!("qpi-{pid}");
    let join = server.dir.path().join("join.yaml");
    let out = server.kelp(&["node", "add", &node, "-o", join.to_str().unwrap()]);
    assert!(out.status.success(), "kelp node add: {}", text(&out));

    let base = server.dir.path().join("node");
    for d in ["state", "run", "log", "manifests"] {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    let log = base.join("agent.log");
    let log_file = fs::File::create(&log).unwrap();
    let bridge = format!("kq{}", pid % 100_000_000);
    let cgroup_parent = format!("/kelp-qemu-{pid}");
    // The gnu build is dynamically linked: qemu finds its loader and libc in Debian's
    // aarch64 cross libc (libc6-arm64-cross).
    let child = Command::new("qemu-aarch64")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&agent_bin)
        .arg("run")
        .arg("--state-dir")
        .arg(base.join("state"))
        .arg("--run-dir")
        .arg(base.join("run"))
        .arg("--log-dir")
        .arg(base.join("log"))
        .arg("--manifests")
        .arg(base.join("manifests"))
        .args(["--node-name", &node])
        .args(["--cgroup-parent", &cgroup_parent])
        .args(["--bridge", &bridge])
        .args(["--sync-period-ms", "200"])
        .args(["--backoff-scale", "0.1"])
        .arg("--join-file")
        .arg(&join)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("start qemu-aarch64");
    let agent = EmulatedAgent {
        child,
        log,
        bridge,
        cgroup_parent,
    };

    // Joins: the controller marks the Node Ready from the emulated agent's birth, and the
    // birth says the node is an arm64 machine.
    let node_path = format!("/api/v1/nodes/{node}");
    let node_obj = eventually(Duration::from_secs(90), "the emulated node Ready", || {
        get_json(&server, &node_path).filter(|n| condition(n, "Ready").as_deref() == Some("True"))
    });
    assert_eq!(
        node_obj["status"]["nodeInfo"]["architecture"],
        "arm64",
        "node info: {}\nagent log:\n{}",
        node_obj["status"]["nodeInfo"],
        agent.log()
    );

    // Receives desired state: a pod bound to the node. Its image comes from a registry that
    // cannot answer, so whatever the emulated agent gets to, it reports a waiting reason.
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: emulated\nspec:\n  nodeName: {node}\n  \
         containers:\n  - name: c\n    image: 127.0.0.1:1/none/busybox:1\n"
    );
    let file = server.file("pod.yaml", &pod);
    let out = server.kelp(&["apply", "-f", &file]);
    assert!(out.status.success(), "kelp apply: {}", text(&out));

    // Reports: the sandbox cannot be created under qemu-user, and the agent says so as the
    // kubelet would: a `FailedCreatePodSandBox` warning from kelp-agent on this node, and a
    // Pending pod whose container waits in ContainerCreating. Only the agent writes either.
    let event = agent.eventually(
        Duration::from_secs(120),
        "the emulated agent's FailedCreatePodSandBox event",
        || {
            let events = get_json(&server, "/api/v1/namespaces/default/events")?;
            events["items"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["involvedObject"]["name"] == "emulated"
                        && e["reason"] == "FailedCreatePodSandBox"
                })
                .cloned()
        },
    );
    assert_eq!(event["type"], "Warning", "event: {event}");
    assert_eq!(event["source"]["component"], "kelp-agent", "event: {event}");
    assert_eq!(event["source"]["host"], node.as_str(), "event: {event}");
    let pod_obj = agent.eventually(
        Duration::from_secs(30),
        "the emulated agent's pod status",
        || {
            get_json(&server, "/api/v1/namespaces/default/pods/emulated").filter(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "ContainerCreating"
            })
        },
    );
    assert_eq!(
        pod_obj["status"]["phase"], "Pending",
        "{}",
        pod_obj["status"]
    );
    let log_text = agent.log();
    assert!(
        log_text.contains("desired state received"),
        "the agent log does not show the desired state arriving:\n{log_text}"
    );
    // Back-off between attempts (--backoff-scale 0.1: 1 s, 2 s, 4 s, ...), not one attempt
    // per 200 ms sync: within 6 s after the first failure at most 4 attempts are made.
    let first = log_text.matches("pod sandbox not created").count();
    assert!(first >= 1, "no failed sandbox attempt logged:\n{log_text}");
    std::thread::sleep(Duration::from_secs(6));
    let log_text = agent.log();
    let attempts = log_text.matches("pod sandbox not created").count();
    assert!(
        attempts - first <= 3,
        "{} sandbox attempts in 6 s: the agent does not back off\n{log_text}",
        attempts - first
    );
    eprintln!(
        "emulated agent reported: {}\nevent: {}",
        pod_obj["status"], event["message"]
    );
    drop(agent);
}
