//! `/metrics`: the latest sample of every series in Prometheus' text format 0.0.4, named and
//! labelled as the kubelet's `/metrics/resource` and cAdvisor name them, each line with its
//! sample's timestamp (ms).
//!
//! Labels: `node` on everything (one controller serves the whole fleet); `namespace` and
//! `pod` on pod and container series; `container` on container series. Network counters are
//! per pod (the pod's network namespace) and carry `container="POD"`, as cAdvisor labels the
//! sandbox's. A pod's CPU and memory come from its pod-level series, else the sum of its
//! containers'.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Metric, NodeMetrics, Nodes, SubjectKey};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which subjects a family reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Node,
    Pod,
    Container,
    /// Pod subjects, shown as the `POD` container (network).
    PodNetwork,
}

/// One metric family.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    metric: Metric,
    level: Level,
    /// Nanoseconds shown as seconds.
    seconds: bool,
}

const fn family(
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    metric: Metric,
    level: Level,
    seconds: bool,
) -> Family {
    Family {
        name,
        kind,
        help,
        metric,
        level,
        seconds,
    }
}

const FAMILIES: &[Family] = &[
    family(
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
        Metric::CpuUsageNanoseconds,
        Level::Node,
        true,
    ),
    family(
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
        Metric::MemoryWorkingSetBytes,
        Level::Node,
        false,
    ),
    family(
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        Metric::CpuUsageNanoseconds,
        Level::Pod,
        true,
    ),
    family(
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        Metric::MemoryWorkingSetBytes,
        Level::Pod,
        false,
    ),
    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        Metric::CpuUsageNanoseconds,
        Level::Container,
        true,
    ),
    family(
        "container_cpu_user_seconds_total",
        "counter",
        "Cumulative user cpu time consumed in seconds",
        Metric::CpuUserNanoseconds,
        Level::Container,
        true,
    ),
    family(
        "container_cpu_system_seconds_total",
        "counter",
        "Cumulative system cpu time consumed in seconds",
        Metric::CpuSystemNanoseconds,
        Level::Container,
        true,
    ),
    family(
        "container_cpu_cfs_periods_total",
        "counter",
        "Number of elapsed enforcement period intervals",
        Metric::CpuPeriods,
        Level::Container,
        false,
    ),
    family(
        "container_cpu_cfs_throttled_periods_total",
        "counter",
        "Number of throttled period intervals",
        Metric::CpuThrottledPeriods,
        Level::Container,
        false,
    ),
    family(
        "container_cpu_cfs_throttled_seconds_total",
        "counter",
        "Total time duration the container has been throttled",
        Metric::CpuThrottledNanoseconds,
        Level::Container,
        true,
    ),
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        Metric::MemoryWorkingSetBytes,
        Level::Container,
        false,
    ),
    family(
        "container_memory_usage_bytes",
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        Metric::MemoryUsageBytes,
        Level::Container,
        false,
    ),
    family(
        "container_memory_rss",
        "gauge",
        "Size of RSS in bytes",
        Metric::MemoryRssBytes,
        Level::Container,
        false,
    ),
    family(
        "container_memory_cache",
        "gauge",
        "Number of bytes of page cache memory",
        Metric::MemoryCacheBytes,
        Level::Container,
        false,
    ),
    family(
        "container_spec_memory_limit_bytes",
        "gauge",
        "Memory limit for the container",
        Metric::MemoryLimitBytes,
        Level::Container,
        false,
    ),
    family(
        "container_oom_events_total",
        "counter",
        "Count of out of memory events observed for the container",
        Metric::OomEvents,
        Level::Container,
        false,
    ),
    family(
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds",
        Metric::StartTimeSeconds,
        Level::Container,
        false,
    ),
    family(
        "container_fs_usage_bytes",
        "gauge",
        "Number of bytes that are consumed by the container on this filesystem",
        Metric::FsUsedBytes,
        Level::Container,
        false,
    ),
    family(
        "container_processes",
        "gauge",
        "Number of processes running inside the container",
        Metric::Processes,
        Level::Container,
        false,
    ),
    family(
        "container_network_receive_bytes_total",
        "counter",
        "Cumulative count of bytes received",
        Metric::NetworkRxBytes,
        Level::PodNetwork,
        false,
    ),
    family(
        "container_network_receive_packets_total",
        "counter",
        "Cumulative count of packets received",
        Metric::NetworkRxPackets,
        Level::PodNetwork,
        false,
    ),
    family(
        "container_network_receive_errors_total",
        "counter",
        "Cumulative count of errors encountered while receiving",
        Metric::NetworkRxErrors,
        Level::PodNetwork,
        false,
    ),
    family(
        "container_network_receive_packets_dropped_total",
        "counter",
        "Cumulative count of packets dropped while receiving",
        Metric::NetworkRxDropped,
        Level::PodNetwork,
        false,
    ),
    family(
        "container_network_transmit_bytes_total",
        "counter",
        "Cumulative count of bytes transmitted",
        Metric::NetworkTxBytes,
        Level::PodNetwork,
        false,
    ),
    family(
        "container_network_transmit_packets_total",
        "counter",
        "Cumulative count of packets transmitted",
        Metric::NetworkTxPackets,
        Level::PodNetwork,
        false,
    ),
    family(
        "container_network_transmit_errors_total",
        "counter",
        "Cumulative count of errors encountered while transmitting",
        Metric::NetworkTxErrors,
        Level::PodNetwork,
        false,
    ),
    family(
        "container_network_transmit_packets_dropped_total",
        "counter",
        "Cumulative count of packets dropped while transmitting",
        Metric::NetworkTxDropped,
        Level::PodNetwork,
        false,
    ),
];

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn value_text(value: i64, seconds: bool) -> String {
    if seconds {
        // Exact decimal seconds from nanoseconds (no float rounding in the text).
        let sign = if value < 0 { "-" } else { "" };
        let abs = value.unsigned_abs();
        let (s, ns) = (abs / 1_000_000_000, abs % 1_000_000_000);
        if ns == 0 {
            format!("{sign}{s}")
        } else {
            let frac = format!("{ns:09}");
            format!("{sign}{s}.{}", frac.trim_end_matches('0'))
        }
    } else {
        value.to_string()
    }
}

/// The latest pod-level value of `metric` for every pod of a node: its own series, else the
/// sum of its containers' (newest time of them).
fn pod_values(node: &NodeMetrics, metric: Metric) -> BTreeMap<(String, String), (u64, i64)> {
    let mut own = BTreeMap::new();
    let mut summed: BTreeMap<(String, String), (u64, i64)> = BTreeMap::new();
    for (subject, m, points) in node.series() {
        if m != metric {
            continue;
        }
        let Some((t, v)) = points.latest() else {
            continue;
        };
        match subject {
            SubjectKey::Pod { namespace, name } => {
                own.insert((namespace.clone(), name.clone()), (t, v));
            }
            SubjectKey::Container { namespace, pod, .. } => {
                let e = summed
                    .entry((namespace.clone(), pod.clone()))
                    .or_insert((0, 0));
                *e = (e.0.max(t), e.1.saturating_add(v));
            }
            SubjectKey::Node => {}
        }
    }
    for (k, v) in summed {
        own.entry(k).or_insert(v);
    }
    own
}

/// Renders every node's latest samples.
pub fn render(nodes: &Nodes) -> String {
    let mut names: Vec<&String> = nodes.keys().collect();
    names.sort();
    let mut out = String::new();
    for f in FAMILIES {
        let mut lines = Vec::new();
        for name in &names {
            let node = &nodes[*name];
            let node_label = escape(name);
            match f.level {
                Level::Node => {
                    if let Some((t, v)) = node.latest(&SubjectKey::Node, f.metric) {
                        lines.push(format!(
                            "{}{{node=\"{node_label}\"}} {} {t}",
                            f.name,
                            value_text(v, f.seconds)
                        ));
                    }
                }
                Level::Pod => {
                    for ((ns, pod), (t, v)) in pod_values(node, f.metric) {
                        lines.push(format!(
                            "{}{{namespace=\"{}\",node=\"{node_label}\",pod=\"{}\"}} {} {t}",
                            f.name,
                            escape(&ns),
                            escape(&pod),
                            value_text(v, f.seconds)
                        ));
                    }
                }
                Level::Container | Level::PodNetwork => {
                    let mut series: Vec<(&SubjectKey, (u64, i64))> = node
                        .series()
                        .filter(|(_, m, _)| *m == f.metric)
                        .filter_map(|(s, _, p)| Some((s, p.latest()?)))
                        .collect();
                    series.sort_by(|a, b| a.0.cmp(b.0));
                    for (subject, (t, v)) in series {
                        let (ns, pod, container) = match (f.level, subject) {
                            (
                                Level::Container,
                                SubjectKey::Container {
                                    namespace,
                                    pod,
                                    name,
                                },
                            ) => (namespace, pod, name.as_str()),
                            (Level::PodNetwork, SubjectKey::Pod { namespace, name }) => {
                                (namespace, name, "POD")
                            }
                            _ => continue,
                        };
                        lines.push(format!(
                            "{}{{container=\"{}\",namespace=\"{}\",node=\"{node_label}\",pod=\"{}\"}} {} {t}",
                            f.name,
                            escape(container),
                            escape(ns),
                            escape(pod),
                            value_text(v, f.seconds)
                        ));
                    }
                }
            }
        }
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Batch, T0};
    use super::super::MetricsStore;
    use super::*;

    #[test]
    fn families_labels_timestamps() {
        let store = MetricsStore::default();
        let mut b = Batch::new(1, T0, true);
        b.series(Metric::CpuUsageNanoseconds, 0, 5, &[1_500_000_000]);
        let c = b.container("kube-system", "dns\"x", "co\\re");
        b.series(Metric::CpuUsageNanoseconds, c, 5, &[2_000_000_001]);
        b.series(Metric::MemoryWorkingSetBytes, c, 5, &[4096]);
        let p = b.pod("kube-system", "dns\"x");
        b.series(Metric::NetworkRxBytes, p, 5, &[77]);
        store.record("pi-1", &b.samples, T0);
        let text = store.read(render);
        let t = T0 + 50_000;
        let expected = format!(
            "# HELP node_cpu_usage_seconds_total Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total{{node=\"pi-1\"}} 1.5 {t}
# HELP pod_cpu_usage_seconds_total Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{{namespace=\"kube-system\",node=\"pi-1\",pod=\"dns\\\"x\"}} 2.000000001 {t}
# HELP pod_memory_working_set_bytes Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{{namespace=\"kube-system\",node=\"pi-1\",pod=\"dns\\\"x\"}} 4096 {t}
# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{{container=\"co\\\\re\",namespace=\"kube-system\",node=\"pi-1\",pod=\"dns\\\"x\"}} 2.000000001 {t}
# HELP container_memory_working_set_bytes Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{{container=\"co\\\\re\",namespace=\"kube-system\",node=\"pi-1\",pod=\"dns\\\"x\"}} 4096 {t}
# HELP container_network_receive_bytes_total Cumulative count of bytes received
# TYPE container_network_receive_bytes_total counter
container_network_receive_bytes_total{{container=\"POD\",namespace=\"kube-system\",node=\"pi-1\",pod=\"dns\\\"x\"}} 77 {t}
"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn seconds_from_nanoseconds_are_exact() {
        assert_eq!(value_text(0, true), "0");
        assert_eq!(value_text(1_000_000_000, true), "1");
        assert_eq!(value_text(1_000_000, true), "0.001");
        assert_eq!(value_text(-1_500_000_000, true), "-1.5");
        assert_eq!(value_text(i64::MIN, true), "-9223372036.854775808");
        assert_eq!(value_text(12, false), "12");
    }
}
