//! cAdvisor-style metrics: the node, its pods and their containers, sampled every
//! `interval` (10 s) and published in batches every `publish_interval` (60 s) on the node's
//! `metrics` topic (QoS 0, not retained) as [`Samples`].
//!
//! | subject | from |
//! |---|---|
//! | container | its cgroup (`<pod cgroup>/<name>`; v1 or v2, read directly: [`Cgroups::sample`]), its run's start time, its writable layer and log files (disk usage) |
//! | pod | its cgroup (`/kelp/pod-<uid>`), `/proc/<monitor pid>/net/dev` (the pod's network namespace, without entering it; `lo` left out) |
//! | node | procfs (`/proc/stat`, `meminfo`, `loadavg`, `uptime`, `sys/kernel/pid_max`), statvfs of the state dir (nodefs) and the image store (imagefs), the image store's disk usage, and on a Raspberry Pi the SoC temperature and the firmware's throttling flags |
//!
//! The CPU usage and memory working set of pods and containers (what `kelp top pods` and
//! the kubelet's Summary API show) are kept at every sample; every other figure, and the
//! node's own, once per batch, from the batch's last sample (counters lose nothing by that;
//! the idle budget of 600 bytes a minute, keepalive included, has no room for six values of
//! every series: a value costs 3 to 7 bytes even delta-encoded). What costs a
//! directory walk or a statvfs (filesystems, disk usage of layers, logs and images, load,
//! uptime, pid_max, capacity, the board) is only read for that last sample.
//!
//! The collector is a thread of its own ([`spawn`]); it finds the pods in the runtime's run
//! dir ([`pods::discover`]) and needs nothing from the agent's loop. It keeps its files
//! open between samples where that saves work (procfs, each pod's `net/dev`) and writes
//! nothing to disk. [`batch::Batcher`] decides what a batch may leave out (series that did
//! not change since the last batch), so an idle node sends little.

pub mod batch;
pub mod node;
pub mod pods;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kelp_shared::wire::{BootId, Metric, Samples};

use crate::cgroup::Cgroups;
use crate::runtime::RuntimeConfig;
use node::{NodePaths, NodeReader};
use pods::NetFiles;

/// The metrics of pods and containers kept at every sample; the others, and all of the
/// node's, are kept once per batch.
pub const EVERY_SAMPLE: [Metric; 2] = [Metric::CpuUsageNanoseconds, Metric::MemoryWorkingSetBytes];

pub use kelp_shared::wire::SubjectKey;

/// The values of one sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readings {
    pub items: Vec<(SubjectKey, Metric, i64)>,
}

impl Readings {
    /// Adds a value (values above `i64::MAX` are clamped; no metric gets there).
    pub fn push(&mut self, subject: SubjectKey, metric: Metric, value: u64) {
        self.items
            .push((subject, metric, i64::try_from(value).unwrap_or(i64::MAX)));
    }

    /// The value of `metric` about `subject`, if read.
    pub fn get(&self, subject: &SubjectKey, metric: Metric) -> Option<i64> {
        self.items
            .iter()
            .find(|(s, m, _)| s == subject && *m == metric)
            .map(|&(_, _, v)| v)
    }
}

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Sampling interval (10 s).
    pub interval: Duration,
    /// Batches are published this often (60 s); rounded to a whole number of intervals.
    pub publish_interval: Duration,
    /// Every how many batches one is complete (30: every half hour by default). The first
    /// batch of every session is complete anyway, and so is one after any pod came or
    /// went; the periodic ones only repair a receiver that lost its state while the agent
    /// stayed connected (a controller restarted behind an external broker). A complete
    /// batch of a node with two pods costs about 600 bytes more than an idle one: every
    /// 10 minutes, that is ~60 bytes a minute on average, over the idle budget; every 30,
    /// ~20.
    pub complete_every: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            publish_interval: Duration::from_secs(60),
            complete_every: 30,
        }
    }
}

impl MetricsConfig {
    /// Samples per batch.
    pub fn slots_per_batch(&self) -> u32 {
        let interval = self.interval.as_millis().max(1);
        u32::try_from((self.publish_interval.as_millis() / interval).max(1)).unwrap_or(u32::MAX)
    }
}

/// Where batches go: the MQTT link, or a test's collection.
pub trait Publisher: Send {
    /// The session the receiver is in: when it changes, the receiver may have lost what it
    /// knew, so the next batch is complete. None while disconnected (batches are dropped).
    fn session(&self) -> Option<u64>;
    /// Sends a batch without blocking; false when it could not be queued.
    fn publish(&self, samples: &Samples) -> bool;
}

/// Reads every subject's figures.
#[derive(Debug)]
pub struct Collector {
    runtime: RuntimeConfig,
    cgroups: Cgroups,
    node: NodeReader,
    proc_root: PathBuf,
    net: NetFiles,
}

impl Collector {
    /// A collector of the real node: `/proc`, `/sys`, `/sys/fs/cgroup`.
    pub fn open(runtime: RuntimeConfig) -> anyhow::Result<Self> {
        let cgroups = Cgroups::detect()?;
        let paths = NodePaths::system(&runtime.state_dir, &runtime.state_dir.join("images"));
        Self::with(runtime, cgroups, paths, procfs::ticks_per_second())
    }

    /// A collector reading the given roots (tests use captured trees).
    pub fn with(
        runtime: RuntimeConfig,
        cgroups: Cgroups,
        paths: NodePaths,
        ticks_per_second: u64,
    ) -> anyhow::Result<Self> {
        let proc_root = paths.proc_root.clone();
        Ok(Self {
            node: NodeReader::open(paths, ticks_per_second)?,
            runtime,
            cgroups,
            proc_root,
            net: NetFiles::default(),
        })
    }

    /// One sample: with `last` (a batch's last sample) every figure, otherwise those of
    /// [`EVERY_SAMPLE`] (see the module docs). A subject that cannot be read is left out
    /// of this sample and logged.
    pub fn sample(&mut self, last: bool) -> Readings {
        let slow = last;
        let mut out = Readings::default();
        let mut slow_now = Readings::default();
        if slow {
            if let Err(e) = self.node.read(&mut out) {
                tracing::warn!("metrics: node: {e}");
            }
        }
        let targets = pods::discover(&self.runtime);
        if slow {
            if let Err(e) = self.node.read_slow(&mut slow_now) {
                tracing::warn!("metrics: node: {e}");
            }
            let images = self.runtime.state_dir.join("images");
            slow_now.push(
                SubjectKey::Node,
                Metric::ImageFsUsedBytes,
                pods::disk_usage(&images),
            );
        }
        for pod in &targets {
            let pod_key = SubjectKey::Pod {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
            };
            match pods::sample_cgroup(&self.cgroups, &pod.cgroup) {
                Ok(Some(stats)) => pods::cgroup_readings(&stats, &pod_key, &mut out),
                Ok(None) => {}
                Err(e) => tracing::warn!("metrics: pod {}/{}: {e}", pod.namespace, pod.name),
            }
            if let Some(pid) = pod.netns_pid {
                if let Some(net) = self.net.read(&self.proc_root, &pod.uid, pid) {
                    net.readings(&pod_key, &mut out);
                }
            }
            let log_dir = self
                .runtime
                .pod_log_dir(&pod.namespace, &pod.name, &pod.uid);
            for container in &pod.containers {
                let key = SubjectKey::Container {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    name: container.name.clone(),
                };
                if !container.running {
                    continue;
                }
                let cgroup =
                    crate::runtime::monitor::container_cgroup(&pod.cgroup, &container.name);
                match pods::sample_cgroup(&self.cgroups, &cgroup) {
                    Ok(Some(stats)) => pods::cgroup_readings(&stats, &key, &mut out),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        "metrics: container {}/{}/{}: {e}",
                        pod.namespace,
                        pod.name,
                        container.name
                    ),
                }
                if let Some(start) = container.started_unix_s {
                    out.push(key.clone(), Metric::StartTimeSeconds, start);
                }
                if slow {
                    let layer = self
                        .runtime
                        .pod_data_dir(&pod.uid)
                        .join("containers")
                        .join(&container.name)
                        .join("upper");
                    slow_now.push(key.clone(), Metric::FsUsedBytes, pods::disk_usage(&layer));
                    slow_now.push(
                        key.clone(),
                        Metric::LogsUsedBytes,
                        pods::logs_usage(&log_dir, &container.name),
                    );
                }
            }
        }
        let uids: HashSet<&str> = targets.iter().map(|p| p.uid.as_str()).collect();
        self.net.retain(&uids);
        if slow {
            out.items.extend(slow_now.items);
        } else {
            out.items.retain(|(subject, metric, _)| {
                *subject != SubjectKey::Node && EVERY_SAMPLE.contains(metric)
            });
        }
        out
    }
}

/// The collector's thread: samples every `interval`, publishes a batch every
/// `slots_per_batch` samples. Ends when `stop` is set.
pub fn spawn(
    config: MetricsConfig,
    mut collector: Collector,
    publisher: Box<dyn Publisher>,
    boot_id: BootId,
    agent_start_unix_ms: u64,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let slots = config.slots_per_batch();
            let interval_ms = u32::try_from(config.interval.as_millis()).unwrap_or(u32::MAX);
            let mut batcher = batch::Batcher::new(interval_ms, config.complete_every);
            let mut session = None;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(500)));
                    continue;
                }
                // A missed deadline (a suspended machine) starts the schedule again.
                next = if now > next + config.interval {
                    now + config.interval
                } else {
                    next + config.interval
                };
                let last_slot = batcher.slots() + 1 >= slots;
                let readings = collector.sample(last_slot);
                batcher.record(unix_ms(), readings);
                if !last_slot {
                    continue;
                }
                let current = publisher.session();
                if current != session {
                    batcher.resend_all();
                    session = current;
                }
                if let Some(samples) = batcher.take(boot_id, agent_start_unix_ms) {
                    tracing::debug!(
                        seq = samples.seq,
                        complete = samples.complete,
                        series = samples.series.len(),
                        bytes = kelp_shared::wire::encode_message(&samples).map_or(0, |b| b.len()),
                        "metrics batch"
                    );
                    tracing::trace!(
                        subjects = ?samples.subjects,
                        series = ?samples
                            .series
                            .iter()
                            .map(|s| (s.subject, s.metric, s.first_slot, s.deltas.len()))
                            .collect::<Vec<_>>(),
                        "metrics batch series"
                    );
                    if current.is_some() && !publisher.publish(&samples) {
                        // Not queued: the receiver misses it, the next batch is complete.
                        batcher.resend_all();
                    } else if current.is_none() {
                        batcher.resend_all();
                    }
                }
            }
        })
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
