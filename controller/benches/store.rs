//! Store benchmark: prints each figure beside its budget.
//!
//! `cargo bench -p kelp-controller --bench store` runs a smoke size; `KELP_BENCH_FULL=1` a
//! bigger one. The redb file goes in a temporary directory under `KELP_BENCH_DIR` (default:
//! the system temp dir); the file system it is on is printed, since fsync on tmpfs is free.
//!
//! Budgets and where they come from:
//! - creates/s >= 1,000: DESIGN.md's scale is 100,000 pods on one 2-core controller; creating
//!   them all (a fleet-wide rollout) should take under 100 s.
//! - watch fan-out to 1,000 watchers, p50 <= 10 ms, p99 <= 100 ms: a write must reach every
//!   watcher (controllers, node hub, API watch streams) well inside the 1 s that Kubernetes'
//!   API latency SLO allows a mutating call; fan-out gets a tenth of it.
//! - bytes written per 1,000 small updates, from concurrent clients (group commit):
//!   <= 4 MiB, 4 KiB an update, one page: the edge budget says batch commits so that redb does
//!   not amplify writes (k3s wears SD cards at 6-10 kB/s). Sequential durable updates (one
//!   commit each) and relaxed updates are printed beside it for comparison.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{percentile, verdict};

use kelp_controller::store::{Durability, Key, Store, StoreOptions};
use serde_json::{json, Value};
use tokio::sync::Notify;

struct Sizes {
    create_clients: usize,
    creates: usize,
    sequential_creates: usize,
    watchers: usize,
    fanout_writes: usize,
    update_rounds: usize,
}

fn sizes(full: bool) -> Sizes {
    if full {
        Sizes {
            create_clients: 64,
            creates: 20_000,
            sequential_creates: 500,
            watchers: 1_000,
            fanout_writes: 1_000,
            update_rounds: 3,
        }
    } else {
        Sizes {
            create_clients: 64,
            creates: 2_000,
            sequential_creates: 100,
            watchers: 1_000,
            fanout_writes: 100,
            update_rounds: 1,
        }
    }
}

/// A small Pod, about 600 bytes of JSON.
fn pod(name: &str, generation: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app": "bench", "tier": "edge"},
            "uid": format!("00000000-0000-4000-8000-{generation:012}"),
        },
        "spec": {
            "nodeName": "pi-0042",
            "restartPolicy": "Always",
            "containers": [{
                "name": "app",
                "image": "registry.local/bench/app:1.0",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }],
        },
        "status": {"phase": "Running", "observedGeneration": generation},
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `(write_bytes, wchar)` from /proc/self/io: bytes this process sent to the block layer
/// (counted when it dirties page-cache pages), and bytes it passed to write calls.
fn proc_io() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    Some((field("write_bytes:")?, field("wchar:")?))
}

/// The type of the file system holding `path`, from /proc/self/mounts.
fn fs_type(path: &std::path::Path) -> String {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return "unknown".to_string();
    };
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = fields.next()?;
            let fs = fields.next()?;
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), fs.to_string()))
        })
        .max()
        .map_or_else(|| "unknown".to_string(), |(_, fs)| fs)
}

async fn bench_creates(dir: &std::path::Path, sizes: &Sizes) {
    let store = Store::open(dir.join("creates.redb"), StoreOptions::default()).expect("open");
    let per_client = sizes.creates / sizes.create_clients;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..sizes.create_clients {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let name = format!("c{client}-{i}");
                let t = Instant::now();
                store
                    .create(
                        Key::new("Pod", "default", &name),
                        pod(&name, 1),
                        Durability::Durable,
                    )
                    .await
                    .expect("create");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let stats = store.stats();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "store creates/s: {rate:.0} (target: >= 1000) {}",
        verdict(rate >= 1000.0)
    );
    println!(
        "  {} durable creates from {} clients in {:.2} s; {} commits ({:.1} creates/fsync); ack p50 {} p99 {}",
        latencies.len(),
        sizes.create_clients,
        elapsed.as_secs_f64(),
        stats.durable_commits,
        stats.ops as f64 / stats.durable_commits.max(1) as f64,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
    );

    // One client, one create at a time: every create waits for its own fsync and window.
    let started = Instant::now();
    for i in 0..sizes.sequential_creates {
        let name = format!("seq-{i}");
        store
            .create(
                Key::new("Pod", "default", &name),
                pod(&name, 1),
                Durability::Durable,
            )
            .await
            .expect("create");
    }
    let elapsed = started.elapsed();
    println!(
        "  one client, sequential: {:.0} creates/s ({} per create; no target)",
        sizes.sequential_creates as f64 / elapsed.as_secs_f64(),
        ms(elapsed / sizes.sequential_creates as u32),
    );
    store.close().await.expect("close");
}

async fn bench_fanout(dir: &std::path::Path, sizes: &Sizes) {
    let store = Store::open(dir.join("fanout.redb"), StoreOptions::default()).expect("open");
    let key = Key::new("Pod", "default", "watched");
    store
        .create(key.clone(), pod("watched", 0), Durability::Durable)
        .await
        .expect("create");
    let received = Arc::new(AtomicUsize::new(0));
    let all_received = Arc::new(Notify::new());
    let mut watchers = Vec::new();
    for _ in 0..sizes.watchers {
        let mut watch = store.watch(Some("Pod"), store.revision()).expect("watch");
        let received = Arc::clone(&received);
        let all_received = Arc::clone(&all_received);
        let total = sizes.watchers;
        watchers.push(tokio::spawn(async move {
            while watch.next().await.is_some() {
                if received.fetch_add(1, Ordering::AcqRel) + 1 == total {
                    all_received.notify_one();
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(sizes.fanout_writes);
    for generation in 1..=sizes.fanout_writes as u64 {
        received.store(0, Ordering::Release);
        let done = all_received.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        store
            .update(
                key.clone(),
                pod("watched", generation),
                None,
                Durability::Durable,
            )
            .await
            .expect("update");
        let acked = Instant::now();
        tokio::time::timeout(Duration::from_secs(30), done)
            .await
            .expect("every watcher receives the write");
        latencies.push(acked.elapsed());
    }
    latencies.sort_unstable();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "store watch fan-out to {} watchers, ack -> all received: p50 {} (target: <= 10 ms) {}, p99 {} (target: <= 100 ms) {}",
        sizes.watchers,
        ms(p50),
        verdict(p50 <= Duration::from_millis(10)),
        ms(p99),
        verdict(p99 <= Duration::from_millis(100)),
    );
    println!("  over {} writes", latencies.len());
    store.close().await.expect("close");
    for watcher in watchers {
        watcher.await.expect("watcher");
    }
}

/// How 1,000 updates are issued.
#[derive(Clone, Copy)]
enum UpdateMode {
    Concurrent,
    Sequential,
    Relaxed,
}

/// Updates 100 small objects 1,000 times in all; gives the bytes written (write_bytes, wchar,
/// file growth) from before the first update to after the last commit is durable.
async fn updates_written(dir: &std::path::Path, mode: UpdateMode, round: usize) -> (u64, u64, i64) {
    let path = dir.join(format!("updates-{round}-{}.redb", mode as u8));
    let store = Store::open(&path, StoreOptions::default()).expect("open");
    let keys: Vec<Key> = (0..100)
        .map(|i| Key::new("Pod", "default", &format!("u{i}")))
        .collect();
    for key in &keys {
        store
            .create(key.clone(), pod(&key.name, 0), Durability::Durable)
            .await
            .expect("create");
    }
    let size_before = std::fs::metadata(&path).map_or(0, |m| m.len()) as i64;
    let io_before = proc_io();
    match mode {
        UpdateMode::Concurrent => {
            let mut tasks = Vec::new();
            for (client, key) in keys.iter().enumerate().take(50) {
                let store = store.clone();
                let key = key.clone();
                tasks.push(tokio::spawn(async move {
                    for generation in 1..=20u64 {
                        store
                            .update(
                                key.clone(),
                                pod(&key.name, generation),
                                None,
                                Durability::Durable,
                            )
                            .await
                            .expect("update");
                    }
                    client
                }));
            }
            for task in tasks {
                task.await.expect("client");
            }
        }
        UpdateMode::Sequential | UpdateMode::Relaxed => {
            let durability = if matches!(mode, UpdateMode::Relaxed) {
                Durability::Relaxed
            } else {
                Durability::Durable
            };
            for generation in 1..=10u64 {
                for key in &keys {
                    store
                        .update(key.clone(), pod(&key.name, generation), None, durability)
                        .await
                        .expect("update");
                }
            }
        }
    }
    // Make everything durable (for relaxed updates: the flush that follows them).
    store.close().await.expect("close");
    let io_after = proc_io();
    let size_after = std::fs::metadata(&path).map_or(0, |m| m.len()) as i64;
    let (write_bytes, wchar) = match (io_before, io_after) {
        (Some((wb0, wc0)), Some((wb1, wc1))) => (wb1 - wb0, wc1 - wc0),
        _ => (0, 0),
    };
    (write_bytes, wchar, size_after - size_before)
}

async fn bench_bytes(dir: &std::path::Path, sizes: &Sizes) {
    let kib = |b: u64| b as f64 / 1024.0;
    for (mode, label) in [
        (
            UpdateMode::Concurrent,
            "durable, 50 concurrent clients (group commit)",
        ),
        (
            UpdateMode::Sequential,
            "durable, one at a time (one commit each)",
        ),
        (
            UpdateMode::Relaxed,
            "relaxed, one at a time, then one durable flush",
        ),
    ] {
        let mut best = None::<(u64, u64, i64)>;
        for round in 0..sizes.update_rounds {
            let figures = updates_written(dir, mode, round).await;
            // Other processes' writeback is not counted; take the smallest round.
            best = Some(best.map_or(figures, |b| if figures.0 < b.0 { figures } else { b }));
        }
        let (write_bytes, wchar, growth) = best.unwrap_or_default();
        if matches!(mode, UpdateMode::Concurrent) {
            println!(
                "store bytes written per 1000 small updates ({label}): {:.0} KiB (target: <= 4096 KiB) {}",
                kib(write_bytes),
                verdict(write_bytes <= 4 * 1024 * 1024),
            );
        } else {
            println!(
                "store bytes written per 1000 small updates ({label}): {:.0} KiB (no target)",
                kib(write_bytes)
            );
        }
        println!(
            "  /proc/self/io write_bytes {:.0} KiB, wchar {:.0} KiB, file growth {:.0} KiB",
            kib(write_bytes),
            kib(wchar),
            growth as f64 / 1024.0
        );
    }
}

fn main() {
    let full = std::env::var("KELP_BENCH_FULL").is_ok_and(|v| v == "1");
    let sizes = sizes(full);
    let base = std::env::var_os("KELP_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("temporary directory");
    println!(
        "store bench ({}): redb files in {} ({}); {} CPUs",
        if full {
            "full"
        } else {
            "smoke; KELP_BENCH_FULL=1 for more"
        },
        dir.path().display(),
        fs_type(dir.path()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        bench_creates(dir.path(), &sizes).await;
        bench_fanout(dir.path(), &sizes).await;
        bench_bytes(dir.path(), &sizes).await;
    });
}
