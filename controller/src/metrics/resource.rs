//! The resource metrics API, `metrics.k8s.io/v1beta1`, as metrics-server serves it:
//! `NodeMetrics` (a node's CPU rate and working set) and `PodMetrics` (each container's).
//! `kelp top` reads it; so could kubectl.
//!
//! CPU is the rate of the cumulative usage counter over the last minute, in nanocores
//! (`123456n`); memory is the latest working set (`1234Ki`); `timestamp` is the newest
//! sample's time and `window` the span the rate covers. A node or container without both
//! is left out, as metrics-server leaves it out.

use std::collections::BTreeSet;

use kelp_shared::api::quantity::{Format, Quantity};
use serde_json::{json, Value};

use super::{rfc3339_ms, Metric, NodeMetrics, Nodes, SubjectKey};

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its version.
pub const VERSION: &str = "v1beta1";

/// A Go duration string (`50s`, `1m0s`, `1.5s`) of milliseconds.
pub fn go_duration(ms: u64) -> String {
    let (minutes, rest) = (ms / 60_000, ms % 60_000);
    let seconds = if rest % 1000 == 0 {
        format!("{}s", rest / 1000)
    } else {
        let text = format!("{}.{:03}", rest / 1000, rest % 1000);
        format!("{}s", text.trim_end_matches('0'))
    };
    if minutes == 0 {
        seconds
    } else {
        format!("{minutes}m{seconds}")
    }
}

/// CPU in nanocores as a quantity string.
pub fn cpu_quantity(nanocores: f64) -> String {
    Quantity::new_scaled(nanocores.round().max(0.0) as i64, -9).to_canonical_string()
}

/// Bytes as a binary quantity string.
pub fn memory_quantity(bytes: i64) -> String {
    Quantity::new(bytes.max(0), Format::BinarySI).to_canonical_string()
}

/// (time, window, nanocores, working set) of a subject, when it has both.
fn usage(node: &NodeMetrics, subject: &SubjectKey) -> Option<(u64, u64, f64, i64)> {
    let cpu = node.rate(subject, Metric::CpuUsageNanoseconds)?;
    let (t, memory) = node.latest(subject, Metric::MemoryWorkingSetBytes)?;
    Some((cpu.time_ms.max(t), cpu.window_ms, cpu.per_second, memory))
}

/// One node's `NodeMetrics`.
pub fn node_metrics(name: &str, node: &NodeMetrics) -> Option<Value> {
    let (time, window, cpu, memory) = usage(node, &SubjectKey::Node)?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {"name": name, "creationTimestamp": rfc3339_ms(super::now_ms())},
        "timestamp": rfc3339_ms(time),
        "window": go_duration(window),
        "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)},
    }))
}

/// `NodeMetricsList` of every node with metrics (by name), or of one.
pub fn node_list(nodes: &Nodes, only: Option<&str>) -> Value {
    let mut names: Vec<&String> = nodes
        .keys()
        .filter(|n| only.is_none_or(|o| o == n.as_str()))
        .collect();
    names.sort();
    let items: Vec<Value> = names
        .into_iter()
        .filter_map(|n| node_metrics(n, &nodes[n]))
        .collect();
    list("NodeMetricsList", items)
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    })
}

/// Every pod's `PodMetrics` in `namespace` (all when `None`), optionally one pod by name;
/// sorted by namespace and name.
pub fn pod_list(nodes: &Nodes, namespace: Option<&str>, name: Option<&str>) -> Value {
    let mut items: Vec<(String, String, Value)> = Vec::new();
    for node in nodes.values() {
        let subjects = node.subjects();
        // A pod's own subject sorts apart from its containers': a set, not a dedup.
        let pods: BTreeSet<(&str, &str)> = subjects.iter().filter_map(SubjectKey::pod).collect();
        for (ns, pod) in pods {
            if namespace.is_some_and(|n| n != ns) || name.is_some_and(|n| n != pod) {
                continue;
            }
            let mut time = 0;
            let mut window = 0;
            let mut containers = Vec::new();
            for subject in &subjects {
                let SubjectKey::Container {
                    namespace: cns,
                    pod: cpod,
                    name: container,
                } = subject
                else {
                    continue;
                };
                if cns != ns || cpod != pod {
                    continue;
                }
                let Some((t, w, cpu, memory)) = usage(node, subject) else {
                    continue;
                };
                time = time.max(t);
                window = window.max(w);
                containers.push(json!({
                    "name": container,
                    "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)},
                }));
            }
            if containers.is_empty() {
                continue;
            }
            items.push((
                ns.to_owned(),
                pod.to_owned(),
                json!({
                    "kind": "PodMetrics",
                    "apiVersion": format!("{GROUP}/{VERSION}"),
                    "metadata": {
                        "name": pod,
                        "namespace": ns,
                        "creationTimestamp": rfc3339_ms(super::now_ms()),
                    },
                    "timestamp": rfc3339_ms(time),
                    "window": go_duration(window),
                    "containers": containers,
                }),
            ));
        }
    }
    items.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    list(
        "PodMetricsList",
        items.into_iter().map(|(_, _, v)| v).collect(),
    )
}

/// The API group's discovery document (`/apis/metrics.k8s.io/v1beta1`).
pub fn discovery() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Batch, T0};
    use super::super::MetricsStore;
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(50_000), "50s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(61_500), "1m1.5s");
        assert_eq!(go_duration(10_051), "10.051s");
    }

    #[test]
    fn node_and_pod_metrics_shape() {
        let store = MetricsStore::default();
        let mut b = Batch::new(1, T0, true);
        let cpu: Vec<i64> = (0..6).map(|i| i * 2_500_000_000).collect(); // 250m
        b.series(Metric::CpuUsageNanoseconds, 0, 0, &cpu);
        b.flat(Metric::MemoryWorkingSetBytes, 0, 512 << 20);
        let web = b.container("default", "web", "nginx");
        let side = b.container("default", "web", "log");
        let lone = b.container("other", "batch", "job");
        b.series(Metric::CpuUsageNanoseconds, web, 0, &[0, 10_000_000]); // 1m
        b.flat(Metric::MemoryWorkingSetBytes, web, 3 << 20);
        b.series(Metric::CpuUsageNanoseconds, side, 0, &[0, 0]);
        b.flat(Metric::MemoryWorkingSetBytes, side, 1000);
        b.flat(Metric::MemoryWorkingSetBytes, lone, 1); // no CPU: left out
        store.record("pi-1", &b.samples, T0);

        let nodes = store.read(|n| node_list(n, None));
        assert_eq!(nodes["kind"], "NodeMetricsList");
        let node = &nodes["items"][0];
        assert_eq!(node["metadata"]["name"], "pi-1");
        assert_eq!(node["usage"]["cpu"], "250m");
        assert_eq!(node["usage"]["memory"], "512Mi");
        assert_eq!(node["window"], "50s");
        assert_eq!(node["timestamp"], rfc3339_ms(T0 + 50_000));
        assert_eq!(
            store.read(|n| node_list(n, Some("pi-2")))["items"],
            json!([])
        );

        let pods = store.read(|n| pod_list(n, Some("default"), None));
        assert_eq!(pods["kind"], "PodMetricsList");
        let items = pods["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{pods}");
        assert_eq!(items[0]["metadata"]["namespace"], "default");
        assert_eq!(
            items[0]["containers"],
            json!([
                {"name": "log", "usage": {"cpu": "0", "memory": "1k"}},
                {"name": "nginx", "usage": {"cpu": "1m", "memory": "3Mi"}},
            ])
        );
        let all = store.read(|n| pod_list(n, None, None));
        assert_eq!(
            all["items"].as_array().unwrap().len(),
            1,
            "batch has no CPU"
        );

        // Pods with series of their own (network) besides their containers' are listed once.
        let mut b = Batch::new(2, T0 + 60_000, true);
        for pod in ["a", "b"] {
            let p = b.pod("default", pod);
            b.flat(Metric::NetworkRxBytes, p, 1);
            let c = b.container("default", pod, "c");
            b.series(Metric::CpuUsageNanoseconds, c, 0, &[0, 1]);
            b.flat(Metric::MemoryWorkingSetBytes, c, 1);
        }
        store.record("pi-2", &b.samples, T0);
        let names: Vec<String> = store.read(|n| pod_list(n, Some("default"), None))["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a", "b", "web"]);
    }
}
