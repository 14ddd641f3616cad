//! What the runtime keeps under `/run/kelp` (tmpfs): per pod, the monitor's identity and each
//! container's last run, written by the monitor and read by the agent.
//!
//! ```text
//! <run-dir>/pods/<uid>/
//!   sandbox.json                 what the agent asked of the sandbox (hostname, shared PID ns)
//!   monitor.json                 the monitor's PID and start time, written once it is ready
//!   monitor.sock                 the monitor's request socket
//!   monitor.log                  the monitor's own diagnostics
//!   etc/{hosts,resolv.conf,hostname}
//!   lc/<container>/              libcontainer's state of the container
//!   containers/<name>/state.json the container's last run: PID + start time, exit, OOM
//!   containers/<name>/bundle/    config.json and the rootfs mount point
//! ```
//!
//! PIDs are reused, so a PID is only ever trusted together with the process start time read
//! from `/proc/<pid>/stat` when it was recorded ([`ProcessId`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A process, named by PID and start time (clock ticks after boot) so a reused PID is never
/// mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessId {
    /// The process `pid` as it is now, if it exists.
    pub fn of(pid: i32) -> Option<Self> {
        start_time(pid).map(|start_time| Self { pid, start_time })
    }

    /// Whether this very process still exists (zombies count as existing until reaped).
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

/// Field 22 of `/proc/<pid>/stat`: the start time in clock ticks after boot.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with field 3 (state); starttime is field 22, i.e. index 19 of rest.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `sandbox.json`: written by the agent before it starts the monitor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxConfig {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    /// `shareProcessNamespace: true`: one PID namespace for all containers of the pod.
    pub share_pid: bool,
    /// The pod's cgroup, relative to the cgroup root (`/kelp/pod-<uid>`): the monitor joins
    /// its `_monitor` child, each container its own child named after it.
    pub pod_cgroup: String,
    /// Container log rotation.
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// The pod's network: its own namespace on the node's bridge, or the host's.
    #[serde(default)]
    pub network: PodNetwork,
    /// The OCI runtime binary (`runc`, `crun`) that runs the pod's containers; `None`:
    /// libcontainer, in the monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_runtime: Option<PathBuf>,
}

/// How a pod is networked, decided by the agent before the monitor starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodNetwork {
    /// `hostNetwork: true`: the pod stays in the host's network namespace.
    #[serde(default)]
    pub host_network: bool,
    /// The pod's address (`status.podIP`); the host's address for `hostNetwork` pods. None
    /// when the node has no pod network configured (the pod has only `lo`).
    pub pod_ip: Option<std::net::Ipv4Addr>,
    /// The node's address (`status.hostIP`).
    pub host_ip: Option<std::net::Ipv4Addr>,
    /// The bridge link of the pod: its gateway address and prefix length, and the bridge's name.
    pub gateway: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    pub prefix_len: u8,
    #[serde(default)]
    pub bridge: String,
    /// The host side of the pod's veth pair (the pod side is `eth0`).
    #[serde(default)]
    pub host_veth: String,
}

/// `monitor.json`: written by the monitor once its sandbox is ready and its socket listens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MonitorInfo {
    pub monitor: ProcessId,
    /// The process holding the pod's PID namespace when it is shared.
    pub pause: Option<ProcessId>,
}

impl MonitorInfo {
    /// Paths of the sandbox's namespaces, for containers to join.
    pub fn namespaces(&self) -> super::spec::SandboxNamespaces {
        let ns = |pid: i32, kind: &str| PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
        super::spec::SandboxNamespaces {
            network: ns(self.monitor.pid, "net"),
            ipc: ns(self.monitor.pid, "ipc"),
            uts: ns(self.monitor.pid, "uts"),
            pid: self.pause.map(|p| ns(p.pid, "pid")),
        }
    }
}

/// `containers/<name>/state.json`: one run of a container, as the monitor saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerRun {
    pub name: String,
    /// Which run of the container this is (the agent's restart count when it asked).
    pub attempt: u32,
    /// The container's init process, while it runs (kept after exit for the record).
    pub process: Option<ProcessId>,
    /// RFC 3339 times.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Set once the process has been reaped.
    pub exit: Option<Exit>,
    /// Why the run could not start (libcontainer's error), when it failed before running.
    pub start_error: Option<String>,
    /// The run before this one, once ended (Kubernetes' `lastState`); its own `last` is None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Box<ContainerRun>>,
    /// What the run's probes found (started, ready, failures, a probe kill); None for a run
    /// without probes, which is started and ready while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<crate::probe::RunProbes>,
}

impl ContainerRun {
    pub fn running(&self) -> bool {
        self.exit.is_none() && self.start_error.is_none() && self.process.is_some()
    }
}

/// How a container's process ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exit {
    /// Exit code; 128 + signal number when killed by a signal, as Kubernetes reports it.
    pub code: i32,
    pub signal: Option<i32>,
    /// The container's cgroup counted an OOM kill during this run.
    pub oom_killed: bool,
}

/// The layout of one pod's directory under the run dir.
#[derive(Debug, Clone)]
pub struct PodPaths {
    pub dir: PathBuf,
}

impl PodPaths {
    pub fn new(run_dir: &Path, uid: &str) -> Self {
        Self {
            dir: run_dir.join("pods").join(uid),
        }
    }
    pub fn sandbox(&self) -> PathBuf {
        self.dir.join("sandbox.json")
    }
    pub fn monitor(&self) -> PathBuf {
        self.dir.join("monitor.json")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("monitor.sock")
    }
    pub fn monitor_log(&self) -> PathBuf {
        self.dir.join("monitor.log")
    }
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn libcontainer_root(&self) -> PathBuf {
        self.dir.join("lc")
    }
    /// The OCI runtime binary's state directory (`--root`) for the pod.
    pub fn oci_root(&self) -> PathBuf {
        self.dir.join("oci")
    }
    pub fn container(&self, name: &str) -> PathBuf {
        self.dir.join("containers").join(name)
    }
    pub fn container_state(&self, name: &str) -> PathBuf {
        self.container(name).join("state.json")
    }
    pub fn bundle(&self, name: &str) -> PathBuf {
        self.container(name).join("bundle")
    }
    /// Where the agent records the pod it runs (`pod.json`).
    pub fn pod(&self) -> PathBuf {
        self.dir.join("pod.json")
    }
    /// The pod's last computed status (`status.json`), for `kelp-agent pods`.
    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }
}

/// Writes `value` as JSON to `path` atomically (temporary file + rename; no fsync: these files
/// live on tmpfs).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(value).map_err(io::Error::other)?,
    )?;
    fs::rename(&tmp, path)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_stable_and_other_pids_differ() {
        let me = ProcessId::of(std::process::id() as i32).expect("own /proc/self/stat");
        assert!(me.alive());
        let stale = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(
            !stale.alive(),
            "a reused PID must not pass for the recorded process"
        );
    }

    #[test]
    fn json_round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert_eq!(read_json::<ContainerRun>(&p).unwrap(), None);
        let run = ContainerRun {
            name: "web".into(),
            attempt: 2,
            exit: Some(Exit {
                code: 137,
                signal: Some(9),
                oom_killed: true,
            }),
            ..Default::default()
        };
        write_json(&p, &run).unwrap();
        assert_eq!(read_json::<ContainerRun>(&p).unwrap(), Some(run));
    }
}
