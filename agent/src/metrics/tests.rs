//! The collector's readers on captured files, and the batcher.
//!
//! `testdata/cgroup-v1` was captured on a cgroup v1 (hybrid) host from a cgroup limited to
//! half a CPU, 256 MiB and 64 pids while it spun and filled 20 MB of tmpfs;
//! `testdata/cgroup-v2` the same way in the cgroup v2 test VM (`vm/`). `testdata/node/proc`
//! is a host's `/proc` files; `testdata/node/sys` holds a Raspberry Pi's thermal zone and
//! firmware `get_throttled` attribute, written in the kernel's format.

use std::path::{Path, PathBuf};

use kelp_shared::wire::{BootId, Metric, Subject};

use super::batch::Batcher;
use super::node::{parse_throttled, NodePaths, NodeReader};
use super::pods::{self, NetFigures, NetFiles};
use super::{Readings, SubjectKey};
use crate::cgroup::{CgroupVersion, Cgroups};

fn testdata(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/metrics/testdata")
        .join(sub)
}

fn container() -> SubjectKey {
    SubjectKey::Container {
        namespace: "default".into(),
        pod: "web".into(),
        name: "c".into(),
    }
}

/// Every metric read about `subject`, in order.
fn metrics_of(readings: &Readings, subject: &SubjectKey) -> Vec<(Metric, i64)> {
    readings
        .items
        .iter()
        .filter(|(s, _, _)| s == subject)
        .map(|&(_, m, v)| (m, v))
        .collect()
}

#[test]
fn cgroup_v1_container_every_metric() {
    let cgroups = Cgroups::at(CgroupVersion::V1, &testdata("cgroup-v1"));
    let stats = pods::sample_cgroup(&cgroups, "/kelp/pod-1/c")
        .unwrap()
        .expect("the captured cgroup");
    let mut out = Readings::default();
    pods::cgroup_readings(&stats, &container(), &mut out);
    assert_eq!(
        metrics_of(&out, &container()),
        [
            (Metric::CpuUsageNanoseconds, 332_100_266),
            // cpuacct.usage_user/usage_sys, in nanoseconds (not cpuacct.stat's ticks).
            (Metric::CpuUserNanoseconds, 0),
            (Metric::CpuSystemNanoseconds, 332_000_000),
            (Metric::CpuPeriods, 9),
            (Metric::CpuThrottledPeriods, 6),
            (Metric::CpuThrottledNanoseconds, 139_469_065),
            (Metric::MemoryUsageBytes, 20_709_376),
            // usage − total_inactive_file
            (Metric::MemoryWorkingSetBytes, 20_709_376 - 86_016),
            (Metric::MemoryRssBytes, 110_592),
            (Metric::MemoryCacheBytes, 20_090_880),
            (Metric::MemoryLimitBytes, 268_435_456),
            (Metric::OomEvents, 0),
            (Metric::Processes, 2),
        ]
    );
}

#[test]
fn cgroup_v2_container_every_metric() {
    let root = testdata("cgroup-v2");
    let cgroups = Cgroups::at(CgroupVersion::V2, &root);
    let stats = pods::sample_cgroup(&cgroups, "/kelp/pod-1/c")
        .unwrap()
        .expect("the captured cgroup");
    let mut out = Readings::default();
    pods::cgroup_readings(&stats, &container(), &mut out);
    // The expected values, from the captured files by hand.
    let dir = root.join("kelp/pod-1/c");
    let keyed = |file: &str, key: &str| -> i64 {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in {file}"))
    };
    let single = |file: &str| -> i64 {
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let usage = single("memory.current");
    assert!(
        keyed("cpu.stat", "nr_throttled") > 0,
        "captured while throttled"
    );
    assert_eq!(
        metrics_of(&out, &container()),
        [
            // v2 counts microseconds.
            (
                Metric::CpuUsageNanoseconds,
                keyed("cpu.stat", "usage_usec") * 1000
            ),
            (
                Metric::CpuUserNanoseconds,
                keyed("cpu.stat", "user_usec") * 1000
            ),
            (
                Metric::CpuSystemNanoseconds,
                keyed("cpu.stat", "system_usec") * 1000
            ),
            (Metric::CpuPeriods, keyed("cpu.stat", "nr_periods")),
            (
                Metric::CpuThrottledPeriods,
                keyed("cpu.stat", "nr_throttled")
            ),
            (
                Metric::CpuThrottledNanoseconds,
                keyed("cpu.stat", "throttled_usec") * 1000
            ),
            (Metric::MemoryUsageBytes, usage),
            (
                Metric::MemoryWorkingSetBytes,
                usage - keyed("memory.stat", "inactive_file")
            ),
            (Metric::MemoryRssBytes, keyed("memory.stat", "anon")),
            (Metric::MemoryCacheBytes, keyed("memory.stat", "file")),
            (Metric::MemoryLimitBytes, 268_435_456),
            (Metric::OomEvents, keyed("memory.events", "oom_kill")),
            (Metric::Processes, single("pids.current")),
        ]
    );
    // The capture filled 20 MB of tmpfs inside the cgroup: page cache it is charged for.
    assert!(keyed("memory.stat", "file") >= 20_000_000);
}

#[test]
fn a_missing_cgroup_is_none_not_an_error() {
    for (version, root) in [
        (CgroupVersion::V1, testdata("cgroup-v1")),
        (CgroupVersion::V2, testdata("cgroup-v2")),
    ] {
        let cgroups = Cgroups::at(version, &root);
        assert!(pods::sample_cgroup(&cgroups, "/kelp/pod-1/gone")
            .unwrap()
            .is_none());
    }
}

fn node_paths(state_dir: &Path) -> NodePaths {
    NodePaths {
        proc_root: testdata("node/proc"),
        sys_root: testdata("node/sys"),
        state_dir: state_dir.to_path_buf(),
        image_dir: state_dir.join("images"),
    }
}

#[test]
fn node_every_metric_from_captured_procfs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    let mut reader = NodeReader::open(node_paths(dir.path()), 100).unwrap();
    let mut out = Readings::default();
    reader.read(&mut out).unwrap();
    let kib = 1024;
    let tick = 10_000_000; // ns per tick at 100 Hz
                           // /proc/stat's cpu line: user 7821740 nice 279005 system 721774 idle 2296039
                           // iowait 104992 irq 0 softirq 17279 steal 80574.
    let user = 7_821_740 + 279_005;
    let system = 721_774 + 17_279;
    let used = (24_683_656 - 13_290_688) * kib;
    assert_eq!(
        metrics_of(&out, &SubjectKey::Node),
        [
            (Metric::CpuUsageNanoseconds, (user + system + 80_574) * tick),
            (Metric::CpuUserNanoseconds, user * tick),
            (Metric::CpuSystemNanoseconds, system * tick),
            (Metric::MemoryUsageBytes, used),
            (Metric::MemoryWorkingSetBytes, used - 5_347_392 * kib),
            (Metric::MemoryRssBytes, 938_308 * kib),
            (Metric::MemoryCacheBytes, 9_570_120 * kib),
            (Metric::MemoryAvailableBytes, 23_081_380 * kib),
            (Metric::PidsInUse, 136),
        ]
    );

    let mut slow = Readings::default();
    reader.read_slow(&mut slow).unwrap();
    let fs = rustix::fs::statvfs(dir.path()).unwrap();
    let node = metrics_of(&slow, &SubjectKey::Node);
    let (fixed, statvfs): (Vec<_>, Vec<_>) = node.into_iter().partition(|(m, _)| {
        !matches!(
            m,
            Metric::FsCapacityBytes
                | Metric::FsAvailableBytes
                | Metric::FsInodes
                | Metric::FsInodesFree
                | Metric::ImageFsCapacityBytes
                | Metric::ImageFsAvailableBytes
        )
    });
    assert_eq!(
        fixed,
        [
            (Metric::Load1Milli, 3_880),
            (Metric::Load5Milli, 3_000),
            (Metric::Load15Milli, 2_870),
            (Metric::MemoryCapacityBytes, 24_683_656 * kib),
            (Metric::UptimeSeconds, 56_709),
            (Metric::PidsMax, 32_768),
            (Metric::TemperatureMillicelsius, 48_312),
            // 0x50005: under-voltage and throttled now, and both since boot.
            (Metric::ThrottledFlags, 0x50005),
        ]
    );
    let get = |metric| {
        statvfs
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|&(_, v)| v)
            .unwrap_or_else(|| panic!("{metric:?}"))
    };
    let capacity = (fs.f_blocks * fs.f_frsize) as i64;
    assert_eq!(get(Metric::FsCapacityBytes), capacity);
    assert_eq!(get(Metric::ImageFsCapacityBytes), capacity);
    assert_eq!(get(Metric::FsInodes), fs.f_files as i64);
    assert!(get(Metric::FsAvailableBytes) > 0 && get(Metric::FsAvailableBytes) <= capacity);
    assert!(get(Metric::FsInodesFree) <= get(Metric::FsInodes));
    assert_eq!(statvfs.len(), 6);
}

#[test]
fn node_without_a_board_has_no_board_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = node_paths(dir.path());
    paths.sys_root = dir.path().join("no-sys");
    let mut reader = NodeReader::open(paths, 100).unwrap();
    let mut out = Readings::default();
    reader.read_slow(&mut out).unwrap();
    assert_eq!(
        out.get(&SubjectKey::Node, Metric::TemperatureMillicelsius),
        None
    );
    assert_eq!(out.get(&SubjectKey::Node, Metric::ThrottledFlags), None);
    assert_eq!(out.get(&SubjectKey::Node, Metric::PidsMax), Some(32_768));
}

#[test]
fn node_files_are_read_again_not_reopened() {
    // The reader keeps its files open: a file replaced after opening is not seen, its
    // open copy is read again from the start.
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    std::fs::create_dir_all(proc.join("sys/kernel")).unwrap();
    for name in ["stat", "meminfo", "loadavg", "uptime", "sys/kernel/pid_max"] {
        std::fs::copy(testdata("node/proc").join(name), proc.join(name)).unwrap();
    }
    let mut paths = node_paths(dir.path());
    paths.proc_root = proc.clone();
    let mut reader = NodeReader::open(paths, 100).unwrap();
    let read = |reader: &mut NodeReader| {
        let mut out = Readings::default();
        reader.read(&mut out).unwrap();
        out.get(&SubjectKey::Node, Metric::PidsInUse)
    };
    assert_eq!(read(&mut reader), Some(136));
    // Rewritten in place (as the kernel regenerates it): the new contents are read.
    std::fs::write(proc.join("loadavg"), "0.00 0.01 0.05 1/99 7\n").unwrap();
    assert_eq!(read(&mut reader), Some(99));
}

#[test]
fn throttled_flags_parse() {
    assert_eq!(parse_throttled("50005\n"), Some(0x50005));
    assert_eq!(parse_throttled("0x50000"), Some(0x50000));
    assert_eq!(parse_throttled("0\n"), Some(0));
    assert_eq!(parse_throttled("throttled=0x0"), None);
}

#[test]
fn pod_network_leaves_lo_out() {
    let text = std::fs::read(testdata("node/proc/4242/net/dev")).unwrap();
    let net = NetFigures::parse(&text).unwrap();
    // eth0 + kelp0 + ifb0 + ifb1 of the captured file; lo's 1,371,911,442 bytes are not.
    assert_eq!(
        net,
        NetFigures {
            rx_bytes: 4_246_363_139 + 14_656,
            rx_packets: 136_206 + 211,
            rx_errors: 0,
            rx_dropped: 0,
            tx_bytes: 6_698_123 + 1_394,
            tx_packets: 82_190 + 15,
            tx_errors: 0,
            tx_dropped: 10,
        }
    );
    let mut files = NetFiles::default();
    assert_eq!(files.read(&testdata("node/proc"), "uid-1", 4242), Some(net));
    assert_eq!(files.read(&testdata("node/proc"), "uid-2", 4243), None);
    let mut out = Readings::default();
    net.readings(&SubjectKey::Node, &mut out);
    assert_eq!(out.items.len(), 8);
    assert_eq!(
        out.get(&SubjectKey::Node, Metric::NetworkTxDropped),
        Some(10)
    );
}

#[test]
fn disk_and_log_usage() {
    let dir = tempfile::tempdir().unwrap();
    let upper = dir.path().join("upper");
    std::fs::create_dir_all(upper.join("a/b")).unwrap();
    std::fs::write(upper.join("a/b/file"), vec![1u8; 100_000]).unwrap();
    std::fs::hard_link(upper.join("a/b/file"), upper.join("a/link")).unwrap();
    let used = pods::disk_usage(&upper);
    // 100,000 bytes take at least that many on disk, counted once despite the hard link.
    assert!((100_000..300_000).contains(&used), "{used}");
    assert_eq!(pods::disk_usage(&dir.path().join("missing")), 0);

    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("c.log"), vec![b'x'; 8192]).unwrap();
    std::fs::write(logs.join("c.log.1"), vec![b'x'; 8192]).unwrap();
    std::fs::write(logs.join("cc.log"), vec![b'x'; 65536]).unwrap();
    let c = pods::logs_usage(&logs, "c");
    assert!((16_384..65_536).contains(&c), "{c}");
}

#[test]
fn pods_are_found_in_the_run_dir() {
    use crate::runtime::state::{write_json, ContainerRun, MonitorInfo, ProcessId, SandboxConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut runtime = crate::runtime::RuntimeConfig::new("/bin/true".into());
    runtime.run_dir = dir.path().to_path_buf();
    let paths = runtime.pod_paths("uid-1");
    std::fs::create_dir_all(paths.container("c")).unwrap();
    std::fs::create_dir_all(paths.container("done")).unwrap();
    let sandbox = SandboxConfig {
        pod_uid: "uid-1".into(),
        namespace: "default".into(),
        name: "web".into(),
        hostname: "web".into(),
        share_pid: false,
        pod_cgroup: "/kelp/pod-uid-1".into(),
        log_max_size: 1,
        log_max_files: 1,
        network: Default::default(),
        oci_runtime: None,
    };
    write_json(&paths.sandbox(), &sandbox).unwrap();
    let me = ProcessId::of(std::process::id() as i32).unwrap();
    write_json(
        &paths.monitor(),
        &MonitorInfo {
            monitor: me,
            pause: None,
        },
    )
    .unwrap();
    let running = ContainerRun {
        name: "c".into(),
        process: Some(me),
        started_at: Some("2026-01-01T00:00:05Z".into()),
        ..Default::default()
    };
    write_json(&paths.container_state("c"), &running).unwrap();
    let done = ContainerRun {
        name: "done".into(),
        process: Some(me),
        started_at: Some("2026-01-01T00:00:00Z".into()),
        exit: Some(Default::default()),
        ..Default::default()
    };
    write_json(&paths.container_state("done"), &done).unwrap();
    // A pod directory without a sandbox is not a pod (yet).
    std::fs::create_dir_all(runtime.pod_paths("uid-0").dir).unwrap();

    let pods = pods::discover(&runtime);
    assert_eq!(
        pods,
        [pods::PodTarget {
            uid: "uid-1".into(),
            namespace: "default".into(),
            name: "web".into(),
            cgroup: "/kelp/pod-uid-1".into(),
            netns_pid: Some(me.pid),
            containers: vec![
                pods::ContainerTarget {
                    name: "c".into(),
                    running: true,
                    started_unix_s: Some(1_767_225_605),
                },
                pods::ContainerTarget {
                    name: "done".into(),
                    running: false,
                    started_unix_s: Some(1_767_225_600),
                },
            ],
        }]
    );

    // A hostNetwork pod's traffic is the node's: no namespace to read.
    let host = SandboxConfig {
        network: crate::runtime::state::PodNetwork {
            host_network: true,
            ..Default::default()
        },
        ..sandbox
    };
    write_json(&paths.sandbox(), &host).unwrap();
    assert_eq!(pods::discover(&runtime)[0].netns_pid, None);
}

// ---------------------------------------------------------------------------------------
// The batcher
// ---------------------------------------------------------------------------------------

const BOOT: BootId = BootId([7; 16]);

fn readings(values: &[(SubjectKey, Metric, i64)]) -> Readings {
    Readings {
        items: values.to_vec(),
    }
}

fn pod(name: &str) -> SubjectKey {
    SubjectKey::Pod {
        namespace: "default".into(),
        name: name.into(),
    }
}

/// Every (subject, metric) -> (first slot, values) of a batch, by name.
fn decoded(samples: &kelp_shared::wire::Samples) -> Vec<(String, Metric, u32, Vec<i64>)> {
    samples
        .series
        .iter()
        .map(|s| {
            let subject = match samples.subject_of(s).unwrap() {
                Subject::Node => "node".to_owned(),
                Subject::Pod { name, .. } => name.clone(),
                c @ Subject::Container { name, .. } => {
                    format!("{}/{name}", samples.pod_of(c).unwrap().1)
                }
            };
            (subject, s.metric, s.first_slot, s.values())
        })
        .collect()
}

#[test]
fn first_batch_is_complete_and_slots_are_timed() {
    let mut b = Batcher::new(10_000, 10);
    assert!(b.take(BOOT, 1).is_none(), "no slot, no batch");
    let node = SubjectKey::Node;
    for (i, cpu) in [100, 150, 150].into_iter().enumerate() {
        b.record(
            1_000 + i as u64 * 10_000,
            readings(&[
                (node.clone(), Metric::CpuUsageNanoseconds, cpu),
                (container(), Metric::MemoryWorkingSetBytes, 64 << 20),
            ]),
        );
    }
    let batch = b.take(BOOT, 1).unwrap();
    assert!(batch.complete);
    assert_eq!((batch.seq, batch.start_unix_ms, batch.slots), (1, 1_000, 3));
    assert_eq!(batch.slot_unix_ms(2), 21_000);
    assert_eq!(
        batch.subjects,
        [
            Subject::Node,
            Subject::Pod {
                namespace: "default".into(),
                name: "web".into()
            },
            Subject::Container {
                pod: 1,
                name: "c".into()
            }
        ]
    );
    assert_eq!(
        decoded(&batch),
        [
            (
                "node".into(),
                Metric::CpuUsageNanoseconds,
                0,
                vec![100, 150, 150]
            ),
            // Constant through the batch: only its last slot.
            (
                "web/c".into(),
                Metric::MemoryWorkingSetBytes,
                2,
                vec![64 << 20]
            ),
        ]
    );
}

#[test]
fn unchanged_series_are_left_out_until_the_next_complete_batch() {
    let mut b = Batcher::new(1_000, 3);
    let node = SubjectKey::Node;
    let sample = |b: &mut Batcher, t: u64, cpu: i64, mem: i64| {
        b.record(
            t,
            readings(&[
                (
                    node.clone(),
                    Metric::CpuUsageNanoseconds,
                    cpu * 1_000_000_000,
                ),
                (node.clone(), Metric::MemoryWorkingSetBytes, mem),
            ]),
        )
    };
    sample(&mut b, 0, 10, 500);
    sample(&mut b, 1_000, 20, 500);
    assert!(b.take(BOOT, 1).unwrap().complete);

    // Memory unchanged: left out. CPU changed from the second slot: sent from there.
    sample(&mut b, 2_000, 20, 500);
    sample(&mut b, 3_000, 30, 500);
    let batch = b.take(BOOT, 1).unwrap();
    assert!(!batch.complete);
    assert_eq!(batch.subjects, [Subject::Node]);
    assert_eq!(
        decoded(&batch),
        [(
            "node".into(),
            Metric::CpuUsageNanoseconds,
            1,
            vec![30_000_000_000]
        )]
    );

    // Nothing changed at all: an empty, incomplete batch (still sent: the node is alive).
    sample(&mut b, 4_000, 30, 500);
    let batch = b.take(BOOT, 1).unwrap();
    assert!(!batch.complete);
    assert!(batch.series.is_empty() && batch.subjects.is_empty());

    // Every third batch is complete again.
    sample(&mut b, 5_000, 30, 500);
    let batch = b.take(BOOT, 1).unwrap();
    assert!(batch.complete);
    assert_eq!(batch.series.len(), 2);
    assert_eq!(batch.seq, 4);
}

#[test]
fn a_new_session_or_a_changed_set_of_series_gets_a_complete_batch() {
    let mut b = Batcher::new(1_000, 100);
    let one = |b: &mut Batcher, subjects: &[SubjectKey]| {
        let items: Vec<_> = subjects
            .iter()
            .map(|s| (s.clone(), Metric::Processes, 1))
            .collect();
        b.record(0, readings(&items));
        b.take(BOOT, 1).unwrap()
    };
    assert!(one(&mut b, &[pod("a")]).complete);
    assert!(!one(&mut b, &[pod("a")]).complete);
    b.resend_all();
    assert!(one(&mut b, &[pod("a")]).complete, "after resend_all");
    assert!(!one(&mut b, &[pod("a")]).complete);
    let batch = one(&mut b, &[pod("a"), pod("b")]);
    assert!(batch.complete, "a pod came");
    assert_eq!(batch.series.len(), 2);
    assert!(!one(&mut b, &[pod("a"), pod("b")]).complete);
    assert!(one(&mut b, &[pod("b")]).complete, "a pod went");
}

#[test]
fn a_missing_slot_splits_a_series() {
    let mut b = Batcher::new(1_000, 1);
    let node = SubjectKey::Node;
    b.record(0, readings(&[(node.clone(), Metric::Processes, 5)]));
    b.record(1_000, readings(&[]));
    b.record(2_000, readings(&[(node.clone(), Metric::Processes, 7)]));
    b.record(3_000, readings(&[(node.clone(), Metric::Processes, 8)]));
    let batch = b.take(BOOT, 1).unwrap();
    assert_eq!(
        decoded(&batch),
        [
            ("node".into(), Metric::Processes, 0, vec![5]),
            ("node".into(), Metric::Processes, 2, vec![7, 8]),
        ]
    );
}

#[test]
fn dead_bands_hold_back_small_moves_and_never_others() {
    use super::batch::unchanged;
    assert!(unchanged(
        Metric::CpuUsageNanoseconds,
        1_000_000_000,
        1_009_999_999
    ));
    assert!(!unchanged(
        Metric::CpuUsageNanoseconds,
        1_000_000_000,
        1_010_000_000
    ));
    assert!(unchanged(
        Metric::MemoryWorkingSetBytes,
        100 << 20,
        (100 << 20) + (1 << 20) - 1
    ));
    assert!(!unchanged(
        Metric::MemoryWorkingSetBytes,
        100 << 20,
        102 << 20
    ));
    assert!(!unchanged(
        Metric::MemoryLimitBytes,
        100 << 20,
        (100 << 20) + 4096
    ));
    assert!(unchanged(Metric::Load1Milli, 40, 130), "at least 0.1 load");
    assert!(!unchanged(Metric::Load1Milli, 4_000, 4_400));
    assert!(unchanged(Metric::MemoryCacheBytes, 100 << 20, 104 << 20));
    assert!(!unchanged(Metric::MemoryCacheBytes, 100 << 20, 105 << 20));
    assert!(unchanged(Metric::UptimeSeconds, 56_709, 56_769));
    assert!(unchanged(Metric::NetworkRxBytes, 1_000, 5_095));
    assert!(!unchanged(Metric::NetworkRxBytes, 1_000, 5_096));
    assert!(!unchanged(Metric::NetworkRxErrors, 0, 1));
    assert!(
        unchanged(Metric::MemoryWorkingSetBytes, 3 << 20, (4 << 20) - 1),
        "1 MiB floor"
    );
    assert!(!unchanged(Metric::OomEvents, 0, 1));
    assert!(!unchanged(Metric::ThrottledFlags, 0, 0x50000));
    assert!(unchanged(Metric::TemperatureMillicelsius, 48_000, 48_999));

    // Held back while within the band; once out of it, the exact values from there on.
    let mut b = Batcher::new(1_000, 100);
    let node = SubjectKey::Node;
    let gib = 1i64 << 30;
    b.record(
        0,
        readings(&[(node.clone(), Metric::MemoryAvailableBytes, gib)]),
    );
    assert!(b.take(BOOT, 1).unwrap().complete);
    b.record(
        1,
        readings(&[(node.clone(), Metric::MemoryAvailableBytes, gib + 4096)]),
    );
    assert!(b.take(BOOT, 1).unwrap().series.is_empty());
    for v in [gib + 8192, gib + gib / 50, gib + gib / 50 + 1] {
        b.record(
            2,
            readings(&[(node.clone(), Metric::MemoryAvailableBytes, v)]),
        );
    }
    let batch = b.take(BOOT, 1).unwrap();
    assert_eq!(
        decoded(&batch),
        [(
            "node".into(),
            Metric::MemoryAvailableBytes,
            1,
            vec![gib + gib / 50, gib + gib / 50 + 1]
        )]
    );
}

#[test]
fn an_idle_batch_is_small() {
    // A node whose CPU counter moves by a few ticks and memory by a few pages per slot,
    // with two idle pods: what the idle budget pays for after the first batch.
    let mut b = Batcher::new(10_000, 10);
    let node = SubjectKey::Node;
    let mut cpu = 89_203_720_000_000i64;
    let mut mem = 6_190_669_824i64;
    let mut take = |b: &mut Batcher, t: u64| {
        for slot in 0..6 {
            cpu += 30_000_000;
            mem += 8192;
            let mut items = vec![
                (node.clone(), Metric::CpuUsageNanoseconds, cpu),
                (node.clone(), Metric::MemoryWorkingSetBytes, mem),
            ];
            for p in ["idle", "idle2"] {
                items.push((pod(p), Metric::CpuUsageNanoseconds, 12_345_678));
                items.push((pod(p), Metric::MemoryWorkingSetBytes, 1 << 20));
            }
            b.record(t + slot * 10_000, readings(&items));
        }
        b.take(BOOT, 1_767_225_600_000).unwrap()
    };
    let first = take(&mut b, 1_767_225_660_000);
    let idle = take(&mut b, 1_767_225_720_000);
    assert!(first.complete && !idle.complete);
    let bytes = kelp_shared::wire::encode_message(&idle).unwrap().len();
    // The node's CPU moved; its memory by 48 KiB, within the dead band.
    assert_eq!(
        idle.series.len(),
        1,
        "only the node's moving series: {idle:?}"
    );
    assert!(bytes < 100, "{bytes} bytes");
}
