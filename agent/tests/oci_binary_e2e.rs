//! End-to-end tests of the OCI-runtime-binary engine (issue 12): the seed's two-container pod
//! through the real `kelp-agent run --oci-runtime runc` (and `crun`), as root, with Debian's
//! binaries. The 32-bit ARM agent, built without libcontainer, runs every pod this way; here
//! the flag selects it on a 64-bit host. Each test has its own node (directories, cgroup
//! parent, agent) and cleans up after itself; a missing binary fails the test, naming it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Node, BUSYBOX};
use kelp_agent::runtime::oci_binary::{resolve, State};

/// The seed's two-container pod (§2.4) with busybox, as in `runtime_e2e.rs`: a web server on
/// :8002 whose CGI page is what the "database" container on 127.0.0.1:3306 answers. The
/// database's exec readiness probe goes through the binary's `exec` (the pod is Running with
/// every container ready only once it succeeds).
const SEED_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: kubia
spec:
  # httpd as PID 1 ignores SIGTERM: no need to wait the default 30 s for SIGKILL.
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: IMAGE
    command: ["sh", "-c"]
    args:
    - |
      mkdir -p /www/cgi-bin
      printf '#!/bin/sh\necho Content-Type: text/plain\necho\nwget -qO- http://127.0.0.1:3306/\n' > /www/cgi-bin/db
      chmod +x /www/cgi-bin/db
      echo web up
      exec httpd -f -p 8002 -h /www
    ports: [{containerPort: 8002}]
  - name: db
    image: IMAGE
    command: ["sh", "-c", "mkdir -p /db; echo hello-from-db > /db/index.html; echo db up; exec httpd -f -p 3306 -h /db"]
    ports: [{containerPort: 3306}]
    readinessProbe:
      exec:
        command: ["grep", "-q", "hello-from-db", "/db/index.html"]
      periodSeconds: 1
"#;

fn binary(name: &str) -> PathBuf {
    resolve(Path::new(name)).unwrap_or_else(|e| {
        panic!("this test needs the OCI runtime `{name}` (Debian: apt-get install -y {name}): {e}")
    })
}

/// `BINARY --root ROOT state ID`, parsed; None when the binary does not know the container.
fn oci_state(binary: &Path, root: &Path, id: &str) -> Option<State> {
    let out = Command::new(binary)
        .arg("--root")
        .arg(root)
        .args(["state", id])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The ids `BINARY --root ROOT list` knows.
fn oci_list(binary: &Path, root: &Path) -> Vec<String> {
    let out = Command::new(binary)
        .arg("--root")
        .arg(root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} list: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Directories of cgroup `path` in every hierarchy of this machine (v1 or v2).
fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(rel)];
    }
    fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path().join(rel))
        .collect()
}

struct UnifiedParent(String);

impl Drop for UnifiedParent {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        if let Err(e) = kelp_agent::runtime::oci_binary::remove_cgroup_everywhere(&self.0) {
            eprintln!("cleanup of the v2 cgroup {}: {e}", self.0);
        }
    }
}

fn seed_pod_runs_through(runtime: &str) {
    let binary = binary(runtime);
    // Dropped after the node: its cgroup parent in the hierarchies runc uses beside the ones
    // kelp manages (name=systemd, a hybrid host's v2 tree). kelp's pod removal clears the
    // pod's cgroup there; the parent is the test's.
    let mut unified = UnifiedParent(String::new());
    let mut node = Node::new(&format!("oci-{runtime}"));
    unified.0 = node.cgroup_parent.clone();
    node.extra_args = vec!["--oci-runtime".into(), runtime.into()];
    node.start_agent();
    let t0 = std::time::Instant::now();
    node.apply("seed.yaml", &SEED_POD.replace("IMAGE", BUSYBOX));
    let pod = node.wait_running("kubia");
    eprintln!(
        "{runtime}: manifest to Running and ready in {:?}",
        t0.elapsed()
    );
    let paths = node.runtime_config().pod_paths(&pod.uid);
    let root = paths.oci_root();

    // The binary runs both containers: its state names the PIDs the monitor watches.
    let runs = node.runs(&pod.uid);
    for name in ["web", "db"] {
        let state = oci_state(&binary, &root, name)
            .unwrap_or_else(|| panic!("{runtime} does not know container {name}"));
        assert_eq!(state.status, "running", "{name}: {state:?}");
        assert_eq!(
            Some(state.pid),
            runs[name].process.map(|p| p.pid),
            "{name}: the binary's PID is the one the monitor reaps"
        );
    }
    assert_eq!(oci_list(&binary, &root).len(), 2);

    // Same pod semantics: one network namespace (127.0.0.1 between the containers), the
    // sandbox's UTS namespace, logs.
    let body = node.wait_for_seed_page(&pod.uid);
    assert!(body.contains("hello-from-db"), "{body}");
    let monitor = node.monitor(&pod.uid).monitor.pid;
    for ns in ["net", "uts", "ipc"] {
        let web = fs::read_link(format!(
            "/proc/{}/ns/{ns}",
            runs["web"].process.unwrap().pid
        ));
        let sandbox = fs::read_link(format!("/proc/{monitor}/ns/{ns}"));
        assert_eq!(web.unwrap(), sandbox.unwrap(), "the pod's {ns} namespace");
    }
    assert!(node.log_of(&pod, "db").contains("db up"));
    assert!(node.log_of(&pod, "web").contains("web up"));

    // `kelp exec`'s helper, as the agent starts it for a pod of the binary: its stdin is the
    // control socket, on which it answers how the command ended.
    let (control, helper_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let helper = Command::new(common::AGENT)
        .arg(kelp_agent::runtime::exec::HELPER_COMMAND)
        .arg("--oci-runtime")
        .arg(&binary)
        .arg("--root")
        .arg(&root)
        .args(["--container", "web", "--bundle"])
        .arg(paths.bundle("web"))
        .args(["--", "sh", "-c", "cat /etc/hostname; id -u; exit 3"])
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            helper_end,
        )))
        .output()
        .unwrap();
    let mut answer = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&control), &mut answer).unwrap();
    let stdout = String::from_utf8_lossy(&helper.stdout);
    assert!(
        stdout.contains("kubia") && stdout.contains('0'),
        "exec output: {stdout} {}",
        String::from_utf8_lossy(&helper.stderr)
    );
    assert_eq!(
        serde_json::from_str::<kelp_agent::runtime::exec::HelperResult>(&answer).unwrap(),
        kelp_agent::runtime::exec::HelperResult::Exited { code: 3 }
    );

    // A container that dies is restarted (restartPolicy Always), through the binary again.
    let old = runs["db"].process.unwrap().pid;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(old).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let t1 = std::time::Instant::now();
    let restarted = node.wait_for("db restarted", Duration::from_secs(60), |n| {
        let p = n.pod("kubia")?;
        let db = p
            .status
            .container_statuses
            .as_ref()?
            .iter()
            .find(|c| c.name == "db")?
            .clone();
        (db.restart_count >= 1 && db.state.as_ref()?.running.is_some()).then_some(db)
    });
    eprintln!("{runtime}: SIGKILL to running again in {:?}", t1.elapsed());
    let last = restarted.last_state.and_then(|s| s.terminated).unwrap();
    assert_eq!(last.exit_code, 137, "SIGKILL is 128 + 9");
    let state = oci_state(&binary, &root, "db").expect("db known to the binary again");
    assert_eq!(state.status, "running");
    assert_ne!(state.pid, old, "a new process");
    assert_eq!(
        Some(state.pid),
        node.runs(&pod.uid)["db"].process.map(|p| p.pid)
    );
    // Both runs' output is in the container's log (the new run prints soon after it starts).
    node.wait_for("the new run's output", Duration::from_secs(10), |n| {
        (n.log_of(&pod, "db").matches("db up").count() == 2).then_some(())
    });

    // Deleting the pod removes every container, process, cgroup and the binary's state.
    let t2 = std::time::Instant::now();
    node.delete("seed.yaml");
    node.wait_for("pod kubia gone", Duration::from_secs(60), |n| {
        n.pod("kubia").is_none().then_some(())
    });
    node.wait_for("pod directory removed", Duration::from_secs(30), |_| {
        (!paths.dir.exists()).then_some(())
    });
    eprintln!("{runtime}: deletion to nothing left in {:?}", t2.elapsed());
    // (Not `list`: runc creates its root directory when asked to list it.)
    assert!(
        !root.exists(),
        "{} state {} left behind",
        runtime,
        root.display()
    );
    assert!(
        node.cgroup_processes().is_empty(),
        "processes left: {:?}",
        node.cgroup_processes()
    );
    let pod_cgroup = format!("{}/pod-{}", node.cgroup_parent, pod.uid);
    for dir in cgroup_dirs(&pod_cgroup) {
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
    assert!(
        rustix::process::test_kill_process(rustix::process::Pid::from_raw(monitor).unwrap())
            .is_err(),
        "monitor {monitor} still alive"
    );
    assert!(node.mounts().is_empty(), "mounts left: {:?}", node.mounts());
}

#[test]
fn seed_two_container_pod_with_runc() {
    seed_pod_runs_through("runc");
}

/// crun 1.8 (Debian 12) refuses hybrid cgroup hierarchies ("cgroups in hybrid mode not
/// supported, drop all controllers from cgroupv2"), which is what this host has: run it with
/// `--ignored` on a pure v1 or v2 host (the test VM is v2).
#[test]
#[ignore = "crun 1.8 refuses this host's hybrid cgroup layout; run with --ignored on a cgroup v2 host"]
fn seed_two_container_pod_with_crun() {
    seed_pod_runs_through("crun");
}

/// `shareProcessNamespace`: the monitor's pause process is PID 1 of the pod's PID namespace,
/// which the containers join, while runc runs in the host's (it reads the host's `/proc` by
/// the PIDs it sees). The readiness probe (`runc exec`) sees the other container's process.
#[test]
fn shared_pid_namespace_with_runc() {
    let binary = binary("runc");
    let mut unified = UnifiedParent(String::new());
    let mut node = Node::new("oci-sharepid");
    unified.0 = node.cgroup_parent.clone();
    node.extra_args = vec!["--oci-runtime".into(), "runc".into()];
    node.start_agent();
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: shared
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: {BUSYBOX}
    command: ["sh", "-c", "echo a up; exec sleep 3600"]
    readinessProbe:
      exec:
        command: ["sh", "-c", "ps | grep -q 'sleep 360[1]'"]
      periodSeconds: 1
  - name: b
    image: {BUSYBOX}
    command: ["sleep", "3601"]
"#
    );
    node.apply("shared.yaml", &yaml);
    let pod = node.wait_running("shared");
    let root = node.runtime_config().pod_paths(&pod.uid).oci_root();
    let runs = node.runs(&pod.uid);
    for name in ["a", "b"] {
        let pid = runs[name].process.unwrap().pid;
        let state = oci_state(&binary, &root, name).unwrap();
        assert_eq!(state.status, "running");
        assert_eq!(
            state.pid, pid,
            "{name}: the binary's PID is the one the monitor reaps"
        );
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            String::from_utf8_lossy(&cmdline).starts_with("sleep"),
            "{name}: the monitor watches the container's process"
        );
    }
    // One PID namespace: a sees b's process (the readiness probe above relies on it too).
    let a = fs::read_link(format!("/proc/{}/ns/pid", runs["a"].process.unwrap().pid));
    let b = fs::read_link(format!("/proc/{}/ns/pid", runs["b"].process.unwrap().pid));
    assert_eq!(a.unwrap(), b.unwrap());
    node.delete("shared.yaml");
    node.wait_for("pod shared gone", Duration::from_secs(60), |n| {
        n.pod("shared").is_none().then_some(())
    });
    assert!(node.cgroup_processes().is_empty());
}
