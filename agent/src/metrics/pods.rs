//! Pods and containers: which there are (from the runtime's run dir), and their figures
//! (cgroups, the pod's network namespace, the containers' writable layers and logs).
//!
//! The collector finds the pods itself, as the runtime left them under `<run-dir>/pods/`
//! (`sandbox.json`, `monitor.json`, `containers/<name>/state.json`), so it needs nothing
//! from the agent's loop and sees pods adopted after a restart like any other.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kelp_shared::wire::Metric;
use procfs::FromBufRead;

use super::node::ProcFile;
use super::{Readings, SubjectKey};
use crate::cgroup::{CgroupError, CgroupStats, Cgroups};
use crate::runtime::state::{read_json, ContainerRun, MonitorInfo, SandboxConfig};
use crate::runtime::RuntimeConfig;

/// A pod as the run dir shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Root-relative cgroup (`/kelp/pod-<uid>`).
    pub cgroup: String,
    /// The process holding the pod's network namespace (its monitor), while alive; None
    /// for `hostNetwork` pods, whose traffic is the node's.
    pub netns_pid: Option<i32>,
    pub containers: Vec<ContainerTarget>,
}

/// A container of a pod, as its last run shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerTarget {
    pub name: String,
    pub running: bool,
    /// When the run started, unix seconds.
    pub started_unix_s: Option<u64>,
}

/// The pods under the run dir that have a sandbox (sorted by UID).
pub fn discover(runtime: &RuntimeConfig) -> Vec<PodTarget> {
    let Ok(entries) = fs::read_dir(runtime.run_dir.join("pods")) else {
        return Vec::new();
    };
    let mut uids: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    uids.sort();
    uids.into_iter()
        .filter_map(|uid| pod_target(runtime, uid))
        .collect()
}

fn pod_target(runtime: &RuntimeConfig, uid: String) -> Option<PodTarget> {
    let paths = runtime.pod_paths(&uid);
    let sandbox: SandboxConfig = read_json(&paths.sandbox()).ok()??;
    let monitor = read_json::<MonitorInfo>(&paths.monitor())
        .ok()
        .flatten()
        .filter(|info| info.monitor.alive());
    let netns_pid = monitor
        .filter(|_| !sandbox.network.host_network)
        .map(|info| info.monitor.pid);
    let mut containers = Vec::new();
    if let Ok(entries) = fs::read_dir(paths.dir.join("containers")) {
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let Ok(Some(run)) = read_json::<ContainerRun>(&paths.container_state(&name)) else {
                continue;
            };
            containers.push(ContainerTarget {
                running: run.running(),
                started_unix_s: run
                    .started_at
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .and_then(|t| u64::try_from(t.timestamp()).ok()),
                name,
            });
        }
    }
    Some(PodTarget {
        cgroup: sandbox.pod_cgroup,
        namespace: sandbox.namespace,
        name: sandbox.name,
        uid,
        netns_pid,
        containers,
    })
}

/// The cgroup figures of one pod or container.
pub fn cgroup_readings(stats: &CgroupStats, subject: &SubjectKey, out: &mut Readings) {
    let mut put = |metric, value| out.push(subject.clone(), metric, value);
    put(Metric::CpuUsageNanoseconds, stats.cpu.usage_ns);
    put(Metric::CpuUserNanoseconds, stats.cpu.user_ns);
    put(Metric::CpuSystemNanoseconds, stats.cpu.system_ns);
    put(Metric::CpuPeriods, stats.cpu.periods);
    put(Metric::CpuThrottledPeriods, stats.cpu.throttled_periods);
    put(Metric::CpuThrottledNanoseconds, stats.cpu.throttled_ns);
    put(Metric::MemoryUsageBytes, stats.memory.usage_bytes);
    put(
        Metric::MemoryWorkingSetBytes,
        stats.memory.working_set_bytes,
    );
    put(Metric::MemoryRssBytes, stats.memory.rss_bytes);
    put(Metric::MemoryCacheBytes, stats.memory.cache_bytes);
    if let Some(limit) = stats.memory.limit_bytes {
        put(Metric::MemoryLimitBytes, limit);
    }
    if let Some(kills) = stats.oom_kills {
        put(Metric::OomEvents, kills);
    }
    put(Metric::Processes, stats.pids.current);
}

/// A cgroup's stats, or None when it is gone (a container between runs, a pod going away).
pub fn sample_cgroup(cgroups: &Cgroups, path: &str) -> Result<Option<CgroupStats>, CgroupError> {
    match cgroups.sample(path) {
        Ok(stats) => Ok(Some(stats)),
        Err(CgroupError::Io { source, .. })
            if source.kind() == io::ErrorKind::NotFound
                || source.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Network counters of a namespace: the sum over its interfaces but `lo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetFigures {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

impl NetFigures {
    /// Parses `/proc/<pid>/net/dev`.
    pub fn parse(net_dev: &[u8]) -> io::Result<Self> {
        let devices = procfs::net::InterfaceDeviceStatus::from_buf_read(net_dev)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let mut sum = NetFigures::default();
        for (name, dev) in &devices.0 {
            if name == "lo" {
                continue;
            }
            sum.rx_bytes = sum.rx_bytes.saturating_add(dev.recv_bytes);
            sum.rx_packets = sum.rx_packets.saturating_add(dev.recv_packets);
            sum.rx_errors = sum.rx_errors.saturating_add(dev.recv_errs);
            sum.rx_dropped = sum.rx_dropped.saturating_add(dev.recv_drop);
            sum.tx_bytes = sum.tx_bytes.saturating_add(dev.sent_bytes);
            sum.tx_packets = sum.tx_packets.saturating_add(dev.sent_packets);
            sum.tx_errors = sum.tx_errors.saturating_add(dev.sent_errs);
            sum.tx_dropped = sum.tx_dropped.saturating_add(dev.sent_drop);
        }
        Ok(sum)
    }

    pub fn readings(&self, subject: &SubjectKey, out: &mut Readings) {
        let mut put = |metric, value| out.push(subject.clone(), metric, value);
        put(Metric::NetworkRxBytes, self.rx_bytes);
        put(Metric::NetworkRxPackets, self.rx_packets);
        put(Metric::NetworkRxErrors, self.rx_errors);
        put(Metric::NetworkRxDropped, self.rx_dropped);
        put(Metric::NetworkTxBytes, self.tx_bytes);
        put(Metric::NetworkTxPackets, self.tx_packets);
        put(Metric::NetworkTxErrors, self.tx_errors);
        put(Metric::NetworkTxDropped, self.tx_dropped);
    }
}

/// `/proc/<pid>/net/dev` of each pod's namespace holder, kept open while that process
/// lives: reading it needs neither entering the namespace nor spawning anything.
#[derive(Debug, Default)]
pub struct NetFiles {
    open: BTreeMap<String, (i32, ProcFile)>,
}

impl NetFiles {
    /// The pod's network counters (None when its namespace holder is gone).
    pub fn read(&mut self, proc_root: &Path, uid: &str, pid: i32) -> Option<NetFigures> {
        if self
            .open
            .get(uid)
            .is_none_or(|(open_pid, _)| *open_pid != pid)
        {
            let file = ProcFile::open(proc_root.join(pid.to_string()).join("net/dev")).ok()?;
            self.open.insert(uid.to_owned(), (pid, file));
        }
        let (_, file) = self.open.get_mut(uid)?;
        match file.read().ok().map(NetFigures::parse) {
            Some(Ok(figures)) => Some(figures),
            _ => {
                self.open.remove(uid);
                None
            }
        }
    }

    /// Closes the files of pods not in `uids`.
    pub fn retain(&mut self, uids: &HashSet<&str>) {
        self.open.retain(|uid, _| uids.contains(uid.as_str()));
    }
}

/// Bytes a directory tree takes on disk (allocated blocks, each inode once, not crossing
/// into other filesystems), like `du -s`; 0 when it does not exist.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(root) = fs::symlink_metadata(dir) else {
        return 0;
    };
    let device = root.dev();
    let mut seen = HashSet::new();
    let mut total = root.blocks().saturating_mul(512);
    let mut queue: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(dir) = queue.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.dev() != device {
                continue;
            }
            if meta.nlink() > 1 && !meta.is_dir() && !seen.insert(meta.ino()) {
                continue;
            }
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                queue.push(entry.path());
            }
        }
    }
    total
}

/// Bytes the container's log files take (`<name>.log` and its rotations).
pub fn logs_usage(log_dir: &Path, container: &str) -> u64 {
    let Ok(entries) = fs::read_dir(log_dir) else {
        return 0;
    };
    let current = format!("{container}.log");
    let rotated = format!("{container}.log.");
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n == current || n.starts_with(&rotated))
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks().saturating_mul(512))
        .fold(0, u64::saturating_add)
}
