//! The aarch64 `kelp-agent` under `qemu-aarch64` (user-mode emulation) against a real x86
//! `kelp server` with its embedded broker: it joins (Node Ready, arch arm64), receives the
//! desired state of its node and reports the pod's status back. Containers cannot be created
//! under qemu-user (the agent re-executes itself for each pod's monitor, and the kernel has no
//! binfmt entry for an aarch64 binary), so the status is whatever failure the emulated agent
//! reports — the test asserts that the agent, not the controller, wrote it.
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

    // Reports: the pod's status in the API carries what only the agent writes (container
    // statuses, the node's address), and the agent logged the desired state's arrival.
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let pod_obj = loop {
        if let Some(p) = get_json(&server, "/api/v1/namespaces/default/pods/emulated") {
            if p["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
            {
                break p;
            }
            // A sandbox the agent cannot create is reported as the pod's events.
            if let Some(ev) = get_json(&server, "/api/v1/namespaces/default/events") {
                let from_agent: Vec<&Value> = ev["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["involvedObject"]["name"] == "emulated")
                    .collect();
                if !from_agent.is_empty() {
                    eprintln!("events reported by the emulated agent: {from_agent:?}");
                    break p;
                }
            }
            last = p["status"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pod status reported by the emulated agent within 120 s; last status: \
             {last}\nagent log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let status = &pod_obj["status"];
    let log_text = agent.log();
    assert!(
        log_text.contains("desired state received"),
        "the agent log does not show the desired state arriving:\n{log_text}"
    );
    eprintln!("pod status after the emulated agent's report: {status}");
    drop(agent);
}
