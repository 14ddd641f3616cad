//! Metrics collector benchmark: CPU time of one sample with 20 containers, printed beside
//! the target (docs/benchmarks.md).
//!
//! ```sh
//! cargo bench -p kelp-agent --bench metrics                 # smoke size (CI): 12 batches
//! KELP_BENCH_FULL=1 cargo bench -p kelp-agent --bench metrics   # 60 batches
//! ```
//!
//! The node has 20 pods of one container each, as the runtime leaves them: a run dir with
//! each pod's `sandbox.json`, `monitor.json` and the container's `state.json`, a real pod
//! cgroup and container cgroup (v1 or v2, whichever the machine has) holding a sleeping
//! process, whose `/proc/<pid>/net/dev` stands for the pod's network namespace. Every
//! sample reads what the agent's collector reads (procfs, every cgroup, every `net/dev`);
//! every sixth is the batch's last, which also reads the slow figures (statvfs, disk usage
//! of the writable layers, logs and image store) and is encoded as a `Samples` batch.
//!
//! Target: < 0.3% of a core at the default 10 s interval, i.e. < 30 ms of CPU per sample
//! (averaged over a batch). Measured as this thread's CPU time (user + system). Runs as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use kelp_agent::cgroup::Cgroups;
use kelp_agent::metrics::batch::Batcher;
use kelp_agent::metrics::Collector;
use kelp_agent::runtime::state::{
    write_json, ContainerRun, MonitorInfo, PodNetwork, ProcessId, SandboxConfig,
};
use kelp_agent::runtime::RuntimeConfig;
use kelp_shared::wire::{encode_message, BootId, ClusterId, Envelope};

const CONTAINERS: usize = 20;
const SLOTS: usize = 6;
const TARGET: Duration = Duration::from_millis(30);

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The bench's pods: cgroups, processes and files, removed on drop.
struct Fixture {
    dir: PathBuf,
    cgroups: Cgroups,
    parent: String,
    children: Vec<Child>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.cgroups.kill_all(&self.parent);
        if let Err(e) = self.cgroups.remove(&self.parent) {
            eprintln!("cleanup of cgroup {}: {e}", self.parent);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(runtime: &RuntimeConfig, dir: &Path) -> Fixture {
    let cgroups = Cgroups::detect().expect("cgroups at /sys/fs/cgroup");
    let mut fixture = Fixture {
        dir: dir.to_path_buf(),
        cgroups: cgroups.clone(),
        parent: runtime.cgroup_parent.clone(),
        children: Vec::new(),
    };
    for i in 0..CONTAINERS {
        let uid = format!("bench-{i:02}");
        let pod_cgroup = runtime.pod_cgroup(&uid);
        let container_cgroup = format!("{pod_cgroup}/c");
        cgroups.create(&container_cgroup).expect("create a cgroup");
        let child = Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("cannot run sleep");
        let pid = child.id();
        fixture.children.push(child);
        cgroups.add_process(&container_cgroup, pid).unwrap();
        let me = ProcessId::of(pid as i32).expect("the sleep process");

        let paths = runtime.pod_paths(&uid);
        std::fs::create_dir_all(paths.container("c")).unwrap();
        write_json(
            &paths.sandbox(),
            &SandboxConfig {
                pod_uid: uid.clone(),
                namespace: "default".into(),
                name: format!("pod-{i:02}"),
                hostname: "pod".into(),
                share_pid: false,
                pod_cgroup,
                log_max_size: 1 << 20,
                log_max_files: 2,
                network: PodNetwork::default(),
                oci_runtime: None,
            },
        )
        .unwrap();
        write_json(
            &paths.monitor(),
            &MonitorInfo {
                monitor: me,
                pause: None,
            },
        )
        .unwrap();
        write_json(
            &paths.container_state("c"),
            &ContainerRun {
                name: "c".into(),
                process: Some(me),
                started_at: Some("2026-01-01T00:00:00Z".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let layer = runtime.pod_data_dir(&uid).join("containers/c/upper/etc");
        std::fs::create_dir_all(&layer).unwrap();
        std::fs::write(layer.join("hostname"), "pod\n").unwrap();
        let logs = runtime.pod_log_dir("default", &format!("pod-{i:02}"), &uid);
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("c.log"), vec![b'x'; 4096]).unwrap();
    }
    fixture
}

fn main() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the metrics bench makes cgroups: run it as root"
    );
    let full = std::env::var_os("KELP_BENCH_FULL").is_some();
    let batches = if full { 60 } else { 12 };
    let base = std::env::temp_dir().join(format!("kelp-bench-metrics-{}", std::process::id()));
    let mut runtime = RuntimeConfig::new("/bin/true".into());
    runtime.run_dir = base.join("run");
    runtime.state_dir = base.join("state");
    runtime.log_dir = base.join("logs");
    runtime.cgroup_parent = format!("/kelp-bench-metrics-{}", std::process::id());
    std::fs::create_dir_all(runtime.state_dir.join("images")).unwrap();
    let _fixture = fixture(&runtime, &base);

    let mut collector = Collector::open(runtime.clone()).expect("collector");
    let mut batcher = Batcher::new(10_000, 10);
    // Warm-up: files opened, caches filled.
    for _ in 0..SLOTS {
        let readings = collector.sample(false);
        batcher.record(0, readings);
    }
    batcher.take(BootId([1; 16]), 1);

    let mut fast = Vec::new();
    let mut slow = Vec::new();
    let mut bytes = Vec::new();
    let mut sealed = Vec::new();
    let mut series = 0;
    for batch in 0..batches {
        for slot in 0..SLOTS {
            let last = slot + 1 == SLOTS;
            let before = thread_cpu();
            let readings = collector.sample(last);
            if batch == 0 && last {
                series = readings.items.len();
            }
            batcher.record(slot as u64 * 10_000, readings);
            if last {
                let samples = batcher.take(BootId([1; 16]), 1).unwrap();
                bytes.push(encode_message(&samples).unwrap().len());
                let envelope = Envelope::seal_message(ClusterId([1; 16]), &samples, true).unwrap();
                sealed.push((samples.complete, envelope.encode().len()));
                slow.push(thread_cpu() - before);
            } else {
                fast.push(thread_cpu() - before);
            }
        }
    }
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    let per_sample = (mean(&fast) * (SLOTS as u32 - 1) + mean(&slow)) / SLOTS as u32;
    let share = per_sample.as_secs_f64() / 10.0 * 100.0;
    println!(
        "metrics collector, {CONTAINERS} containers in {CONTAINERS} pods, {} batches of {SLOTS} samples ({} values at a batch's last sample; cgroup {}):",
        batches,
        series,
        match Cgroups::detect().unwrap().version() {
            kelp_agent::cgroup::CgroupVersion::V1 => "v1",
            kelp_agent::cgroup::CgroupVersion::V2 => "v2",
        }
    );
    println!(
        "  CPU per sample: {:.2} ms (quick figures), {:.2} ms (batch's last: slow figures + encoding)",
        mean(&fast).as_secs_f64() * 1000.0,
        mean(&slow).as_secs_f64() * 1000.0
    );
    println!(
        "  per sample over a batch: {:.2} ms = {share:.3}% of a core at 10 s   target < {} ms (< 0.3%): {}",
        per_sample.as_secs_f64() * 1000.0,
        TARGET.as_millis(),
        if per_sample < TARGET { "met" } else { "MISSED" }
    );
    bytes.sort();
    println!(
        "  batch body: median {} bytes, largest {}",
        bytes[bytes.len() / 2],
        bytes[bytes.len() - 1]
    );
    let complete: Vec<usize> = sealed.iter().filter(|(c, _)| *c).map(|&(_, n)| n).collect();
    let partial: Vec<usize> = sealed
        .iter()
        .filter(|(c, _)| !*c)
        .map(|&(_, n)| n)
        .collect();
    println!(
        "  sealed envelope (zstd when smaller): complete batches {complete:?} bytes, others up to {} bytes",
        partial.iter().max().copied().unwrap_or(0)
    );
}
