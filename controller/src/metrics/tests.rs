use super::*;

pub(crate) const T0: u64 = 1_700_000_000_000;

/// Builds batches by hand: subjects by name, series as absolute values per slot.
pub(crate) struct Batch {
    pub samples: Samples,
}

impl Batch {
    pub(crate) fn new(seq: u64, start: u64, complete: bool) -> Batch {
        Batch {
            samples: Samples {
                boot_id: BootId([1; 16]),
                agent_start_unix_ms: T0 - 3_600_000,
                seq,
                start_unix_ms: start,
                interval_ms: 10_000,
                slots: 6,
                complete,
                subjects: vec![Subject::Node],
                series: Vec::new(),
            },
        }
    }

    /// The index of a pod subject (added when new).
    pub(crate) fn pod(&mut self, namespace: &str, name: &str) -> u32 {
        let subject = Subject::Pod {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.index(subject)
    }

    pub(crate) fn container(&mut self, namespace: &str, pod: &str, name: &str) -> u32 {
        let pod = self.pod(namespace, pod);
        self.index(Subject::Container {
            pod,
            name: name.into(),
        })
    }

    fn index(&mut self, subject: Subject) -> u32 {
        let s = &mut self.samples.subjects;
        match s.iter().position(|x| *x == subject) {
            Some(i) => i as u32,
            None => {
                s.push(subject);
                (s.len() - 1) as u32
            }
        }
    }

    /// A series of absolute `values` from `first_slot`, delta-encoded as on the wire.
    pub(crate) fn series(
        &mut self,
        metric: Metric,
        subject: u32,
        first_slot: u32,
        values: &[i64],
    ) -> &mut Self {
        let mut prev = 0;
        let deltas = values
            .iter()
            .map(|v| {
                let d = v - prev;
                prev = *v;
                d
            })
            .collect();
        self.samples.series.push(SampleSeries {
            metric,
            subject,
            first_slot,
            deltas,
        });
        self
    }

    /// One value in every slot.
    pub(crate) fn flat(&mut self, metric: Metric, subject: u32, value: i64) -> &mut Self {
        self.series(metric, subject, 0, &[value; 6])
    }
}

fn recorded(outcome: Outcome) -> (usize, usize) {
    match outcome {
        Outcome::Recorded { samples, dropped } => (samples, dropped),
        other => panic!("not recorded: {other:?}"),
    }
}

#[test]
fn deltas_become_values_at_slot_times() {
    let store = MetricsStore::default();
    let mut b = Batch::new(1, T0, true);
    b.series(Metric::MemoryWorkingSetBytes, 0, 2, &[100, 150, 120, 130]);
    assert_eq!(recorded(store.record("n1", &b.samples, T0)), (4, 0));
    store.read(|nodes| {
        let p: Vec<_> = nodes["n1"]
            .points(&SubjectKey::Node, Metric::MemoryWorkingSetBytes)
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(
            p,
            [
                (T0 + 20_000, 100),
                (T0 + 30_000, 150),
                (T0 + 40_000, 120),
                (T0 + 50_000, 130)
            ]
        );
    });
}

#[test]
fn a_batch_seen_before_is_dropped() {
    let store = MetricsStore::default();
    let mut b = Batch::new(7, T0, true);
    b.flat(Metric::MemoryWorkingSetBytes, 0, 5);
    recorded(store.record("n1", &b.samples, T0));
    assert_eq!(store.record("n1", &b.samples, T0 + 1), Outcome::Duplicate);
    // An older batch of the same run is stale.
    b.samples.seq = 6;
    assert_eq!(store.record("n1", &b.samples, T0 + 1), Outcome::Duplicate);
    b.samples.seq = 7;
    // The same sequence from another agent run is a new batch.
    b.samples.boot_id = BootId([2; 16]);
    b.samples.start_unix_ms += 60_000;
    recorded(store.record("n1", &b.samples, T0 + 2));
    // ...and the same batch for another node is that node's.
    recorded(store.record("n2", &b.samples, T0 + 3));
}

#[test]
fn incomplete_batches_keep_the_last_values_and_complete_ones_drop_the_rest() {
    let store = MetricsStore::default();
    let mut b = Batch::new(1, T0, true);
    let web = b.container("default", "web", "nginx");
    let db = b.container("default", "db", "mysql");
    b.series(Metric::CpuUsageNanoseconds, web, 0, &[0, 1, 2, 3, 4, 5]);
    b.flat(Metric::MemoryWorkingSetBytes, db, 4096);
    recorded(store.record("n1", &b.samples, T0));

    // Only web's CPU changed: db's memory is carried forward at its last value.
    let mut b = Batch::new(2, T0 + 60_000, false);
    let web = b.container("default", "web", "nginx");
    b.series(Metric::CpuUsageNanoseconds, web, 0, &[6, 7, 8, 9, 10, 11]);
    recorded(store.record("n1", &b.samples, T0 + 60_000));
    let db_key = SubjectKey::Container {
        namespace: "default".into(),
        pod: "db".into(),
        name: "mysql".into(),
    };
    store.read(|nodes| {
        assert_eq!(
            nodes["n1"].latest(&db_key, Metric::MemoryWorkingSetBytes),
            Some((T0 + 60_000 + 50_000, 4096))
        );
    });

    // A complete batch without db: db is gone.
    let mut b = Batch::new(3, T0 + 120_000, true);
    let web = b.container("default", "web", "nginx");
    b.series(Metric::CpuUsageNanoseconds, web, 0, &[12; 6]);
    recorded(store.record("n1", &b.samples, T0 + 120_000));
    store.read(|nodes| {
        let subjects = nodes["n1"].subjects();
        assert!(!subjects.contains(&db_key), "{subjects:?}");
        assert_eq!(subjects.len(), 1);
    });
}

#[test]
fn rates_of_counters_over_the_window_and_across_resets() {
    let store = MetricsStore::default();
    let mut b = Batch::new(1, T0, true);
    // Half a core: 5e9 ns every 10 s.
    let v: Vec<i64> = (0..6).map(|i| i * 5_000_000_000).collect();
    b.series(Metric::CpuUsageNanoseconds, 0, 0, &v);
    recorded(store.record("n1", &b.samples, T0));
    let rate = store.read(|n| n["n1"].rate(&SubjectKey::Node, Metric::CpuUsageNanoseconds));
    let rate = rate.unwrap();
    assert_eq!(rate.window_ms, 50_000);
    assert_eq!(rate.time_ms, T0 + 50_000);
    assert!((rate.per_second - 5e8).abs() < 1.0, "{rate:?}");

    // The container restarted: its counter went down; the rate counts from the reset.
    let mut b = Batch::new(2, T0 + 60_000, true);
    b.series(
        Metric::CpuUsageNanoseconds,
        0,
        0,
        &[100, 1_000_000_100, 2_000_000_100],
    );
    recorded(store.record("n1", &b.samples, T0 + 60_000));
    let rate = store
        .read(|n| n["n1"].rate(&SubjectKey::Node, Metric::CpuUsageNanoseconds))
        .unwrap();
    assert_eq!(rate.window_ms, 20_000);
    assert!((rate.per_second - 1e8).abs() < 1.0, "{rate:?}");

    // Samples further apart than the window (a node's figures, once a batch): the rate
    // since the one before.
    let mut b = Batch::new(1, T0, true);
    b.series(Metric::CpuUsageNanoseconds, 0, 5, &[1_000_000_000]);
    recorded(store.record("n3", &b.samples, T0));
    let mut b = Batch::new(2, T0 + 61_000, true);
    b.series(Metric::CpuUsageNanoseconds, 0, 5, &[62_000_000_000]);
    recorded(store.record("n3", &b.samples, T0));
    let rate = store
        .read(|n| n["n3"].rate(&SubjectKey::Node, Metric::CpuUsageNanoseconds))
        .unwrap();
    assert_eq!(rate.window_ms, 61_000);
    assert!((rate.per_second - 1e9).abs() < 1.0, "{rate:?}");

    // One sample is no rate.
    let mut b = Batch::new(3, T0 + 200_000, true);
    b.series(Metric::CpuUsageNanoseconds, 0, 5, &[3]);
    recorded(store.record("n2", &b.samples, T0));
    assert_eq!(
        store.read(|n| n["n2"].rate(&SubjectKey::Node, Metric::CpuUsageNanoseconds)),
        None
    );
}

#[test]
fn bounded_in_time_count_and_nodes() {
    let store = MetricsStore::new(Duration::from_secs(120), Duration::from_secs(300));
    for i in 0..10u64 {
        let mut b = Batch::new(i, T0 + i * 60_000, true);
        b.flat(Metric::MemoryWorkingSetBytes, 0, i as i64);
        recorded(store.record("n1", &b.samples, T0 + i * 60_000));
    }
    store.read(|n| {
        let p = n["n1"]
            .points(&SubjectKey::Node, Metric::MemoryWorkingSetBytes)
            .unwrap();
        let first = p.iter().next().unwrap().0;
        let last = p.latest().unwrap().0;
        assert!(last - first <= 120_000, "{first} .. {last}");
    });
    // A node not heard from for the stale time is forgotten, not before.
    store.prune(T0 + 9 * 60_000 + 300_000);
    assert!(store.read(|n| !n.is_empty()));
    store.prune(T0 + 9 * 60_000 + 300_001);
    assert!(store.read(|n| n.is_empty()));

    // The per-series cap holds even with a huge window.
    let store = MetricsStore::new(Duration::from_secs(1 << 30), Duration::from_secs(1 << 30));
    for i in 0..40u64 {
        let mut b = Batch::new(i, T0 + i * 60_000, true);
        b.flat(Metric::MemoryWorkingSetBytes, 0, 1);
        recorded(store.record("n1", &b.samples, T0));
    }
    let count = store.read(|n| {
        n["n1"]
            .points(&SubjectKey::Node, Metric::MemoryWorkingSetBytes)
            .unwrap()
            .iter()
            .count()
    });
    assert_eq!(count, MAX_POINTS);
    store.retain_nodes(|n| n != "n1");
    assert!(store.read(|n| n.is_empty()));
}

#[test]
fn malformed_series_and_batches_are_dropped() {
    let store = MetricsStore::default();
    let mut b = Batch::new(1, T0, true);
    b.flat(Metric::MemoryWorkingSetBytes, 0, 1);
    b.flat(Metric::MemoryWorkingSetBytes, 9, 1); // no subject 9
    b.series(Metric::MemoryUsageBytes, 0, 5, &[1, 2]); // past the last slot
    b.series(Metric::OomEvents, 0, 0, &[i64::MAX, -1]); // fine: MAX then -1
    b.samples.series.push(SampleSeries {
        metric: Metric::CpuPeriods,
        subject: 0,
        first_slot: 0,
        deltas: vec![i64::MAX, 1], // overflows
    });
    // A container whose pod index is not a pod.
    b.samples.subjects.push(Subject::Container {
        pod: 0,
        name: "x".into(),
    });
    b.flat(Metric::Processes, 1, 3);
    assert_eq!(recorded(store.record("n1", &b.samples, T0)), (8, 4));

    let mut bad = Batch::new(2, T0, true);
    bad.samples.interval_ms = 0;
    assert!(matches!(
        store.record("n1", &bad.samples, T0),
        Outcome::Invalid(_)
    ));
    let mut bad = Batch::new(3, u64::MAX - 5, true);
    bad.flat(Metric::Processes, 0, 3);
    assert!(matches!(
        store.record("n1", &bad.samples, T0),
        Outcome::Invalid(_)
    ));
}

/// A rough figure of the store at fleet size (`cargo test -p kelp-controller --lib --release
/// metrics::tests::fleet_size -- --ignored --nocapture`): 1,000 nodes of 10 pods (a container
/// each, the collector's series), batches recorded, then each view built once.
#[test]
#[ignore = "a figure, not a check: run by hand"]
fn fleet_size() {
    use std::time::Instant;
    let store = MetricsStore::default();
    let pod_metrics = [
        Metric::NetworkRxBytes,
        Metric::NetworkTxBytes,
        Metric::NetworkRxPackets,
        Metric::NetworkTxPackets,
        Metric::CpuUsageNanoseconds,
        Metric::MemoryWorkingSetBytes,
    ];
    let container_metrics = [
        Metric::CpuUsageNanoseconds,
        Metric::CpuUserNanoseconds,
        Metric::CpuSystemNanoseconds,
        Metric::MemoryUsageBytes,
        Metric::MemoryWorkingSetBytes,
        Metric::MemoryRssBytes,
        Metric::MemoryCacheBytes,
        Metric::OomEvents,
        Metric::FsUsedBytes,
        Metric::LogsUsedBytes,
        Metric::Processes,
        Metric::StartTimeSeconds,
    ];
    let batches: Vec<(String, Samples)> = (0..1000)
        .map(|n| {
            let mut b = Batch::new(1, T0, true);
            for m in [Metric::CpuUsageNanoseconds, Metric::MemoryWorkingSetBytes] {
                b.series(m, 0, 0, &[1, 2, 3, 4, 5, 6]);
            }
            for p in 0..10 {
                let pod = b.pod("default", &format!("pod-{n}-{p}"));
                for m in pod_metrics {
                    b.series(m, pod, 0, &[1, 2, 3, 4, 5, 6]);
                }
                let c = b.container("default", &format!("pod-{n}-{p}"), "app");
                for m in container_metrics {
                    b.series(m, c, 0, &[1, 2, 3, 4, 5, 6]);
                }
            }
            (format!("node-{n}"), b.samples)
        })
        .collect();
    let started = Instant::now();
    for round in 0..3u64 {
        for (node, batch) in &batches {
            let mut batch = batch.clone();
            batch.seq += round;
            batch.start_unix_ms += round * 60_000;
            store.record(node, &batch, T0 + round * 60_000);
        }
    }
    let record = started.elapsed() / 3000;
    let started = Instant::now();
    let text = store.read(super::prometheus::render);
    let render = started.elapsed();
    let started = Instant::now();
    let pods = store.read(|n| super::resource::pod_list(n, None, None));
    let list = started.elapsed();
    println!(
        "1,000 nodes, 10,000 pods: record {record:?} per batch; /metrics {render:?} ({} bytes); all PodMetrics {list:?} ({} pods)",
        text.len(),
        pods["items"].as_array().unwrap().len()
    );
}
