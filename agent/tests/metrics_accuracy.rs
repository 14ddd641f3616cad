//! Accuracy of the metrics collector on real containers (issue 11's acceptance): what the
//! collector reports, after a trip through the wire format (`Samples` encoded and decoded),
//! against the cgroup's own files and against what the test itself did to the container.
//!
//! These tests measure CPU and memory, so they run **alone**: one at a time (a lock in this
//! binary) and not beside other test binaries:
//!
//! ```text
//! cargo test -p kelp-agent --test metrics_accuracy -- --test-threads=1 --nocapture
//! ```
//!
//! Each has its own node (directories, cgroup parent, agent), removed on drop. Sampling is
//! scaled to one second. On the cgroup v2 test host: `vm/ci.sh` runs this binary too.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Node, BUSYBOX};
use kelp_agent::cgroup::{CgroupVersion, Cgroups};
use kelp_agent::metrics::batch::Batcher;
use kelp_agent::metrics::Collector;
use kelp_shared::wire::{decode_message, encode_message, BootId, Metric, Samples, Subject};

/// One test at a time in this binary.
static ALONE: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn pod_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// (subject as "pod" or "pod/container", metric) -> (unix ms, value) of every slot.
type Timeline = BTreeMap<(String, Metric), Vec<(u64, i64)>>;

/// Drives a collector by hand, every `interval`, batching as the agent does; every batch
/// goes through the wire encoding before its values are read back.
struct Sampler {
    collector: Collector,
    batcher: Batcher,
    timeline: Timeline,
}

impl Sampler {
    fn new(node: &Node) -> Self {
        Self {
            collector: Collector::open(node.runtime_config()).expect("collector"),
            // Every batch complete: the test reads every series of every batch.
            batcher: Batcher::new(1_000, 1),
            timeline: Timeline::new(),
        }
    }

    /// One sample now; returns its time.
    fn sample(&mut self) -> u64 {
        let now = unix_ms();
        let readings = self.collector.sample(true);
        self.batcher.record(now, readings);
        now
    }

    /// Publishes the open batch (to bytes and back) into the timeline.
    fn flush(&mut self) {
        let Some(batch) = self.batcher.take(BootId([1; 16]), 1) else {
            return;
        };
        let bytes = encode_message(&batch).unwrap();
        let batch: Samples = decode_message(&bytes).unwrap();
        for series in &batch.series {
            let subject = match batch.subject_of(series).expect("subject index") {
                Subject::Node => "node".to_owned(),
                Subject::Pod { name, .. } => name.clone(),
                c @ Subject::Container { name, .. } => {
                    format!("{}/{name}", batch.pod_of(c).expect("pod index").1)
                }
            };
            let entry = self.timeline.entry((subject, series.metric)).or_default();
            for (i, value) in series.values().into_iter().enumerate() {
                entry.push((batch.slot_unix_ms(series.first_slot + i as u32), value));
            }
        }
    }

    fn series(&self, subject: &str, metric: Metric) -> &[(u64, i64)] {
        self.timeline
            .get(&(subject.to_owned(), metric))
            .map(Vec::as_slice)
            .unwrap_or_else(|| {
                panic!(
                    "no {metric:?} of {subject}; series: {:?}",
                    self.timeline.keys().collect::<Vec<_>>()
                )
            })
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The directory of `path` (root-relative cgroup) holding `file`.
fn cgroup_file(path: &str, file: &str) -> PathBuf {
    let cgroups = Cgroups::detect().expect("cgroups");
    cgroups
        .dirs(path)
        .unwrap()
        .into_iter()
        .map(|d| d.join(file))
        .find(|f| f.exists())
        .unwrap_or_else(|| panic!("no {file} for cgroup {path}"))
}

fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// The cgroup's own CPU usage counter, in nanoseconds (read here, not by the collector).
fn raw_cpu_ns(path: &str) -> u64 {
    match Cgroups::detect().unwrap().version() {
        CgroupVersion::V1 => std::fs::read_to_string(cgroup_file(path, "cpuacct.usage"))
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
        CgroupVersion::V2 => {
            let text = std::fs::read_to_string(cgroup_file(path, "cpu.stat")).unwrap();
            keyed(&text, "usage_usec") * 1000
        }
    }
}

/// The cgroup's own working set: usage − inactive file cache.
fn raw_working_set(path: &str) -> u64 {
    let (usage, stat, key) = match Cgroups::detect().unwrap().version() {
        CgroupVersion::V1 => (
            "memory.usage_in_bytes",
            "memory.stat",
            "total_inactive_file",
        ),
        CgroupVersion::V2 => ("memory.current", "memory.stat", "inactive_file"),
    };
    let usage: u64 = std::fs::read_to_string(cgroup_file(path, usage))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = std::fs::read_to_string(cgroup_file(path, stat)).unwrap();
    usage.saturating_sub(keyed(&stat, key))
}

fn relative_error(reported: f64, truth: f64) -> f64 {
    (reported - truth).abs() / truth
}

/// A container limited to half a CPU that spins: over at least 20 s, the usage the collector
/// reports grows as the cgroup's own counter does (within 10%), and it was throttled.
#[test]
fn cpu_of_a_limited_spinning_container_matches_its_cgroup() {
    let _alone = alone();
    let mut node = Node::new("macpu");
    node.start_agent();
    node.apply(
        "spin.yaml",
        &pod_yaml(
            "spin",
            &format!(
                "  containers:\n  - name: spin\n    image: {BUSYBOX}\n    command: [sh, -c, 'while :; do :; done']\n    resources:\n      limits: {{cpu: 500m}}\n"
            ),
        ),
    );
    let pod = node.wait_running("spin");
    let cgroup = format!(
        "{}/spin",
        node.runtime_config().pod_cgroup(pod.uid.as_str())
    );
    let mut sampler = Sampler::new(&node);
    let mut raw = Vec::new();
    let started = Instant::now();
    for i in 0..22 {
        let at = sampler.sample();
        raw.push((at, raw_cpu_ns(&cgroup)));
        if i % 5 == 4 {
            sampler.flush();
        }
        std::thread::sleep(Duration::from_millis(1_000));
    }
    sampler.flush();
    let elapsed = started.elapsed();
    let subject = format!("{}/spin", pod.name);
    let usage = sampler.series(&subject, Metric::CpuUsageNanoseconds);
    assert_eq!(usage.len(), 22, "one value per sample: {usage:?}");
    let reported = (usage[21].1 - usage[0].1) as f64;
    let truth = (raw[21].1 - raw[0].1) as f64;
    let seconds = (usage[21].0 - usage[0].0) as f64 / 1000.0;
    let error = relative_error(reported, truth);
    let throttled = sampler.series(&subject, Metric::CpuThrottledPeriods);
    let periods = sampler.series(&subject, Metric::CpuPeriods);
    println!(
        "cpu: over {seconds:.1} s the collector reported {:.3} CPU-s ({:.3} cores), the cgroup counted {:.3} CPU-s: error {:.2}% (limit 10%); throttled periods {} of {}",
        reported / 1e9,
        reported / 1e9 / seconds,
        truth / 1e9,
        error * 100.0,
        throttled.last().unwrap().1,
        periods.last().unwrap().1,
    );
    assert!(elapsed >= Duration::from_secs(20) && seconds >= 20.0);
    assert!(truth > 0.0, "the container spun");
    assert!(
        error <= 0.10,
        "reported {reported} ns, the cgroup {truth} ns"
    );
    assert!(
        reported / 1e9 / seconds <= 0.5 * 1.1,
        "the 500m limit held: {} cores",
        reported / 1e9 / seconds
    );
    assert!(
        throttled.last().unwrap().1 > 0,
        "throttled periods: {throttled:?}"
    );
    assert!(
        throttled.last().unwrap().1 > throttled[0].1,
        "still throttled while measured"
    );
    // The pod's cgroup holds the container: its usage is at least the container's.
    let pod_usage = sampler.series(&pod.name, Metric::CpuUsageNanoseconds);
    assert!(pod_usage[21].1 >= usage[21].1);
    // The start time is the run's.
    let start = sampler.series(&subject, Metric::StartTimeSeconds);
    let now_s = (unix_ms() / 1000) as i64;
    assert!(start[0].1 > now_s - 600 && start[0].1 <= now_s, "{start:?}");
}

/// A container that allocates and touches 64 MiB: its working set is within 10%, of both
/// the 64 MiB and the cgroup's own figure.
#[test]
fn working_set_of_a_container_holding_64_mib() {
    let _alone = alone();
    let mut node = Node::new("mamem");
    node.start_agent();
    // 64 MiB of tmpfs (the container's /dev/shm, exactly that size): pages the container
    // touched and is charged for, that the kernel cannot drop (shmem is swap-backed).
    node.apply(
        "mem.yaml",
        &pod_yaml(
            "mem",
            &format!(
                "  containers:\n  - name: mem\n    image: {BUSYBOX}\n    command: [sh, -c, 'head -c 67108864 /dev/zero > /dev/shm/hold && touch /tmp/held && sleep 3600']\n    readinessProbe:\n      exec: {{command: [test, -e, /tmp/held]}}\n      periodSeconds: 1\n"
            ),
        ),
    );
    let pod = node.wait_running("mem");
    let cgroup = format!("{}/mem", node.runtime_config().pod_cgroup(pod.uid.as_str()));
    let mut sampler = Sampler::new(&node);
    sampler.sample();
    let truth = raw_working_set(&cgroup) as f64;
    sampler.flush();
    let subject = format!("{}/mem", pod.name);
    let reported = sampler.series(&subject, Metric::MemoryWorkingSetBytes)[0].1 as f64;
    let mib = 64.0 * 1024.0 * 1024.0;
    println!(
        "memory: working set reported {:.2} MiB, the cgroup's {:.2} MiB, held 64 MiB: errors {:.2}% and {:.2}% (limit 10%)",
        reported / 1024.0 / 1024.0,
        truth / 1024.0 / 1024.0,
        relative_error(reported, truth) * 100.0,
        relative_error(reported, mib) * 100.0,
    );
    assert!(relative_error(reported, mib) <= 0.10);
    assert!(relative_error(reported, truth) <= 0.10);
    let usage = sampler.series(&subject, Metric::MemoryUsageBytes)[0].1 as f64;
    assert!(usage >= reported, "usage {usage} ≥ working set {reported}");
    let processes = sampler.series(&subject, Metric::Processes)[0].1;
    assert!((1..=3).contains(&processes), "processes {processes}");
}

/// The node's bridge and nftables table (made by the agent), removed on drop.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("kelp_{}", self.0)])
            .output();
    }
}

/// A pod's network counters grow by at least the bytes the test sends it.
#[test]
fn pod_network_counters_grow_by_what_it_is_sent() {
    let _alone = alone();
    assert!(
        Command::new("nft").arg("--version").output().is_ok(),
        "nft is missing: apt-get install nftables"
    );
    let tag = std::process::id() % 100_000;
    let bridge = Bridge(format!("kbma{tag}"));
    let cidr = format!("10.{}.77.0/24", 100 + std::process::id() % 50);
    let mut node = Node::new("manet");
    node.extra_args = vec![
        "--pod-cidr".into(),
        cidr,
        "--bridge".into(),
        bridge.0.clone(),
    ];
    node.start_agent();
    node.apply(
        "sink.yaml",
        &pod_yaml(
            "sink",
            &format!(
                "  containers:\n  - name: sink\n    image: {BUSYBOX}\n    command: [sh, -c, 'while :; do nc -l -p 9000 > /dev/null; done']\n"
            ),
        ),
    );
    let pod = node.wait_running("sink");
    let pod_ip: Ipv4Addr = pod
        .status
        .pod_ip
        .as_deref()
        .expect("the pod has an address")
        .parse()
        .unwrap();
    let mut sampler = Sampler::new(&node);
    sampler.sample();
    const SENT: usize = 4 * 1024 * 1024;
    let mut stream = node.wait_for("the pod's listener", Duration::from_secs(30), |_| {
        TcpStream::connect_timeout(&(pod_ip, 9000).into(), Duration::from_secs(1)).ok()
    });
    stream.write_all(&vec![0x6b; SENT]).unwrap();
    stream.flush().unwrap();
    drop(stream);
    std::thread::sleep(Duration::from_millis(500));
    sampler.sample();
    sampler.flush();
    let rx = sampler.series(&pod.name, Metric::NetworkRxBytes);
    let rx_packets = sampler.series(&pod.name, Metric::NetworkRxPackets);
    let tx = sampler.series(&pod.name, Metric::NetworkTxBytes);
    let grew = rx[1].1 - rx[0].1;
    println!(
        "network: sent {SENT} bytes to the pod, its receive counter grew by {grew} bytes ({} packets), transmit by {}",
        rx_packets[1].1 - rx_packets[0].1,
        tx[1].1 - tx[0].1
    );
    assert!(grew >= SENT as i64, "rx grew by {grew}, sent {SENT}");
    assert!(tx[1].1 > tx[0].1, "the pod acknowledged what it got");
    drop(node);
    drop(bridge);
}
