//! Scheduler benchmark: the pure placement function's throughput, printed beside its target.
//!
//! `cargo bench -p kelp-controller --bench scheduler` runs a smoke size (1,000 pods);
//! `KELP_BENCH_FULL=1` schedules 10,000 pods, three rounds each, the median printed.
//!
//! Target (issue 9): >= 10,000 pods/s on 1,000 and on 10,000 nodes; at that rate the
//! 100,000 pods of DESIGN.md's scale are placed in 10 s.
//!
//! The cluster is synthetic but varied: nodes of 2 to 8 cores in ten zones and two
//! architectures, some tainted, not ready or cordoned; pods from 200 owners (spread), some
//! with a nodeSelector, required or preferred node affinity, tolerations or host ports.
//! Views are built with `from_object` from JSON objects, off the clock.

use std::time::{Duration, Instant};

use kelp_controller::scheduler::{schedule, NodeView, Placement, PodView};
use serde_json::{json, Value};

const TARGET: f64 = 10_000.0;

fn node(i: usize) -> Value {
    let cores = [2, 4, 8][i % 3];
    let arch = if i.is_multiple_of(4) {
        "amd64"
    } else {
        "arm64"
    };
    let taints = if i.is_multiple_of(20) {
        json!([{"key": "dedicated", "value": "gateway", "effect": "NoSchedule"}])
    } else {
        json!([])
    };
    let ready = if i.is_multiple_of(97) {
        "False"
    } else {
        "True"
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": format!("edge-{i:05}"),
            "labels": {
                "kubernetes.io/hostname": format!("edge-{i:05}"),
                "kubernetes.io/arch": arch,
                "topology.kubernetes.io/zone": format!("zone-{}", i % 10),
                "kelp.dev/cores": cores.to_string(),
            },
        },
        "spec": {"unschedulable": i.is_multiple_of(101), "taints": taints},
        "status": {
            "allocatable": {"cpu": cores.to_string(), "memory": format!("{cores}Gi"), "pods": "110"},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    })
}

fn pod(i: usize) -> Value {
    let mut spec = json!({
        "containers": [{
            "name": "app",
            "image": "registry.local/bench/app:1.0",
            "resources": {"requests": {
                "cpu": format!("{}m", 50 + (i % 5) * 50),
                "memory": format!("{}Mi", 32 << (i % 4)),
            }},
        }],
    });
    match i % 10 {
        0 | 1 => spec["nodeSelector"] = json!({"kubernetes.io/arch": "arm64"}),
        2 => {
            spec["affinity"] = json!({"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-1", "zone-2"]},
                        {"key": "kelp.dev/cores", "operator": "Gt", "values": ["2"]},
                    ]},
                ]},
            }})
        }
        3 => {
            spec["affinity"] = json!({"nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 20, "preference": {"matchExpressions": [
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-3"]}]}},
                    {"weight": 80, "preference": {"matchExpressions": [
                        {"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["amd64"]}]}},
                ],
            }})
        }
        4 => {
            spec["tolerations"] =
                json!([{"key": "dedicated", "operator": "Equal", "value": "gateway"}])
        }
        5 => {
            spec["containers"][0]["ports"] =
                json!([{"containerPort": 80, "hostPort": 8000 + i % 50}])
        }
        _ => {}
    }
    let mut metadata = json!({"name": format!("p-{i:06}"), "namespace": "default"});
    if i % 5 < 2 {
        metadata["ownerReferences"] = json!([
            {"kind": "ReplicaSet", "name": "rs", "uid": format!("rs-{}", i % 200), "controller": true},
        ]);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "UNDER TARGET"
    }
}

fn bench(node_count: usize, pod_count: usize, rounds: usize) {
    let built = Instant::now();
    let nodes: Vec<NodeView> = (0..node_count)
        .map(|i| NodeView::from_object(&node(i)))
        .collect();
    let pods: Vec<PodView> = (0..pod_count)
        .map(|i| PodView::from_object(&pod(i)))
        .collect();
    let built = built.elapsed();
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    let mut unschedulable = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let placements = std::hint::black_box(schedule(&pods, &nodes));
        times.push(started.elapsed());
        unschedulable = placements
            .iter()
            .filter(|(_, p)| matches!(p, Placement::Unschedulable(_)))
            .count();
    }
    times.sort_unstable();
    let median = times[times.len() / 2];
    let rate = pod_count as f64 / median.as_secs_f64();
    println!(
        "schedule {} pods on {} nodes: {} pods/s (target >= {}) {}",
        thousands(pod_count as f64),
        thousands(node_count as f64),
        thousands(rate),
        thousands(TARGET),
        verdict(rate >= TARGET),
    );
    println!(
        "  median of {rounds} in {:.1} ms ({:.1} µs a pod); {unschedulable} unschedulable; views built in {:.0} ms (off the clock)",
        median.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e6 / pod_count as f64,
        built.as_secs_f64() * 1e3,
    );
}

fn main() {
    let full = std::env::var("KELP_BENCH_FULL").is_ok_and(|v| v == "1");
    println!(
        "scheduler bench ({}); {} CPUs",
        if full {
            "full"
        } else {
            "smoke; KELP_BENCH_FULL=1 for more"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let (pods, rounds) = if full { (10_000, 3) } else { (1_000, 1) };
    for nodes in [1_000, 10_000] {
        bench(nodes, pods, rounds);
    }
}
