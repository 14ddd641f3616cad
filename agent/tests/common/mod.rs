//! A node for end-to-end tests: a real `kelp-agent run` with its own state, run and log
//! directories, cgroup parent and manifest directory, all named after the test, and a busybox
//! image built from Debian's `busybox-static`. Dropping the node kills the agent and removes
//! every pod, process, cgroup, mount and file it made, even when the test failed.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kelp_agent::agent::PodReport;
use kelp_agent::runtime::state::{read_json, ContainerRun, MonitorInfo};
use kelp_agent::runtime::{ContainerRuntime, MonitorRuntime, RuntimeConfig};

pub const AGENT: &str = env!("CARGO_BIN_EXE_kelp-agent");
pub const BUSYBOX: &str = "kelp.test/busybox:1";
/// `kelp server --eviction-hard` for tests: the kubelet's defaults, but disk pressure only
/// below 1% free (the machines the tests run on may have little disk left).
pub const TEST_EVICTION_HARD: &str = "nodefs.available<1%,imagefs.available<1%";

/// Fails loudly unless the test runs as root with the tools it needs.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the runtime end-to-end tests create containers and must run as root"
    );
    assert!(
        Path::new("/usr/bin/busybox").exists() || Path::new("/bin/busybox").exists(),
        "busybox-static is missing: apt-get install busybox-static"
    );
}

/// The `kelp` binary built beside `kelp-agent`.
pub fn kelp_bin() -> PathBuf {
    let path = Path::new(AGENT).with_file_name("kelp");
    assert!(
        path.exists(),
        "{} is missing: build the controller too (cargo build -p kelp-controller)",
        path.display()
    );
    path
}

fn unique(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// The busybox image tarball, built once per test binary.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        // A test binary cannot remove its tarball when it exits (statics are not dropped):
        // the next run removes those of test binaries no longer running.
        if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix("kelp-busybox-") else {
                    continue;
                };
                if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("kelp-busybox-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        kelp_agent::image::build::busybox_rootfs(&rootfs).expect("busybox rootfs");
        let tar = dir.join("busybox.tar");
        let out = Command::new(AGENT)
            .args(["image", "build"])
            .arg(&rootfs)
            .arg("-o")
            .arg(&tar)
            .args(["--reference", BUSYBOX, "--cmd", "sh"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "image build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tar
    })
}

pub struct Node {
    pub name: String,
    pub base: PathBuf,
    pub manifests: PathBuf,
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub log_dir: PathBuf,
    pub cgroup_parent: String,
    pub agent: Option<Child>,
    pub agent_log: PathBuf,
    /// The agent's registries file (absent unless a test writes it).
    pub registries: PathBuf,
    /// More `kelp-agent run` arguments.
    pub extra_args: Vec<String>,
}

impl Node {
    /// A node named after `test`, with the busybox image imported; the agent is not started.
    pub fn new(test: &str) -> Self {
        require_root();
        let name = unique(test);
        let base = PathBuf::from("/var/tmp").join(format!("kelp-e2e-{name}"));
        let _ = fs::remove_dir_all(&base);
        let node = Self {
            manifests: base.join("manifests"),
            state_dir: base.join("state"),
            run_dir: PathBuf::from("/run").join(format!("kelp-e2e-{name}")),
            log_dir: base.join("logs"),
            cgroup_parent: format!("/kelp-e2e-{name}"),
            agent: None,
            agent_log: base.join("agent.log"),
            registries: base.join("registries.yaml"),
            extra_args: Vec::new(),
            name,
            base,
        };
        fs::create_dir_all(&node.manifests).unwrap();
        let out = node.cli(&["image", "import", busybox_tar().to_str().unwrap()]);
        assert!(
            out.status.success(),
            "image import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        node
    }

    fn dir_args(&self) -> Vec<String> {
        vec![
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--run-dir".into(),
            self.run_dir.display().to_string(),
            "--log-dir".into(),
            self.log_dir.display().to_string(),
        ]
    }

    /// Runs `kelp-agent ARGS` with this node's directories.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(AGENT)
            .args(args)
            .args(self.dir_args())
            .output()
            .unwrap()
    }

    /// Starts the agent: 100 ms relist, back-off at a tenth of real time.
    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.agent_log)
            .unwrap();
        let child = Command::new(AGENT)
            .arg("run")
            .args(self.dir_args())
            .arg("--manifests")
            .arg(&self.manifests)
            .args(["--node-name", "e2e", "--cgroup-parent", &self.cgroup_parent])
            .args(["--sync-period-ms", "100", "--backoff-scale", "0.1"])
            .arg("--registries")
            .arg(&self.registries)
            // Only tests of the pod network give their node one (a bridge and CIDR of their
            // own, or a bridge and the CIDR the controller gives the node).
            .args(
                if self
                    .extra_args
                    .iter()
                    .any(|a| a == "--pod-cidr" || a == "--bridge")
                {
                    &[][..]
                } else {
                    &["--pod-cidr", "none"][..]
                },
            )
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    /// `kill -9` the agent.
    pub fn kill_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
    }

    pub fn agent_pid(&self) -> u32 {
        self.agent.as_ref().expect("agent running").id()
    }

    pub fn apply(&self, file: &str, yaml: &str) {
        let tmp = self.manifests.join(format!(".{file}.tmp"));
        fs::write(&tmp, yaml).unwrap();
        fs::rename(&tmp, self.manifests.join(file)).unwrap();
    }

    pub fn delete(&self, file: &str) {
        fs::remove_file(self.manifests.join(file)).unwrap();
    }

    pub fn pods(&self) -> Vec<PodReport> {
        let out = self.cli(&["pods", "-o", "json"]);
        assert!(
            out.status.success(),
            "kelp-agent pods: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn pod(&self, name: &str) -> Option<PodReport> {
        let full = format!("{name}-e2e");
        self.pods().into_iter().find(|p| p.name == full)
    }

    /// Waits until `check` returns Some, or fails with what the agent logged.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\npods: {}\nagent log:\n{}",
                    serde_json::to_string_pretty(&self.pods()).unwrap_or_default(),
                    fs::read_to_string(&self.agent_log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for pod `name` to be Running with every container ready.
    pub fn wait_running(&self, name: &str) -> PodReport {
        self.wait_for(
            &format!("pod {name} running"),
            Duration::from_secs(120),
            |n| {
                n.pod(name).filter(|p| {
                    p.status.phase.as_deref() == Some("Running")
                        && p.status
                            .container_statuses
                            .as_ref()
                            .is_some_and(|cs| cs.iter().all(|c| c.ready))
                })
            },
        )
    }

    pub fn runtime_config(&self) -> RuntimeConfig {
        let mut c = RuntimeConfig::new(PathBuf::from(AGENT));
        c.state_dir = self.state_dir.clone();
        c.run_dir = self.run_dir.clone();
        c.log_dir = self.log_dir.clone();
        c.cgroup_parent = self.cgroup_parent.clone();
        c
    }

    pub fn monitor(&self, uid: &str) -> MonitorInfo {
        read_json(&self.runtime_config().pod_paths(uid).monitor())
            .unwrap()
            .expect("monitor.json")
    }

    pub fn runs(&self, uid: &str) -> BTreeMap<String, ContainerRun> {
        let rt = MonitorRuntime::new(self.runtime_config()).unwrap();
        rt.container_runs(uid).unwrap()
    }

    /// Runs COMMAND in the network namespace of pod `uid` (with the host's tools).
    pub fn in_pod_net(&self, uid: &str, command: &[&str]) -> Output {
        let net = format!("--net=/proc/{}/ns/net", self.monitor(uid).monitor.pid);
        Command::new("nsenter")
            .arg(net)
            .arg("--")
            .args(command)
            .output()
            .unwrap()
    }

    /// Waits until the seed's two-container pod `uid` serves its page: the web container's
    /// CGI fetches the db container's over the pod's shared loopback. Returns the page.
    pub fn wait_for_seed_page(&self, uid: &str) -> String {
        self.wait_for("the web page", Duration::from_secs(30), |n| {
            let out = n.in_pod_net(
                uid,
                &[
                    "/usr/bin/busybox",
                    "wget",
                    "-qO-",
                    "http://127.0.0.1:8002/cgi-bin/db",
                ],
            );
            let body = String::from_utf8_lossy(&out.stdout).into_owned();
            body.contains("hello-from-db").then_some(body)
        })
    }

    pub fn log_of(&self, pod: &PodReport, container: &str) -> String {
        let out = self.cli(&["logs", &pod.name, "-c", container]);
        assert!(
            out.status.success(),
            "kelp-agent logs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Processes left in this node's cgroup parent, in every hierarchy.
    pub fn cgroup_processes(&self) -> Vec<u32> {
        let cg = kelp_agent::cgroup::Cgroups::detect().unwrap();
        cg.processes(&self.cgroup_parent, true).unwrap_or_default()
    }

    /// Mount points under this node's directories.
    pub fn mounts(&self) -> Vec<PathBuf> {
        let mut m = kelp_agent::runtime::fsutil::mounts_under(&self.base).unwrap();
        m.extend(
            kelp_agent::runtime::fsutil::mounts_under(&self.run_dir)
                .unwrap()
                .into_iter()
                .filter(|p| p != &self.run_dir),
        );
        m
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_agent();
        let rt = match MonitorRuntime::new(self.runtime_config()) {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cleanup of {}: {e:#}", self.name);
                return;
            }
        };
        for uid in rt.sandboxes().unwrap_or_default() {
            if let Err(e) = rt.remove_sandbox(&uid, None) {
                eprintln!("cleanup of pod {uid}: {e:#}");
            }
        }
        if let Ok(cg) = kelp_agent::cgroup::Cgroups::detect() {
            let _ = cg.kill_all(&self.cgroup_parent);
            if let Err(e) = cg.remove(&self.cgroup_parent) {
                eprintln!("cleanup of cgroup {}: {e}", self.cgroup_parent);
            }
        }
        for dir in [&self.base, &self.run_dir] {
            let _ = kelp_agent::runtime::fsutil::unmount_all_under(dir);
            let _ = fs::remove_dir_all(dir);
        }
    }
}
