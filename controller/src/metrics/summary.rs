//! The kubelet's Summary API (`stats/v1alpha1`), served by the controller for each node at
//! `/api/v1/nodes/{node}/proxy/stats/summary` from the node's latest samples.
//!
//! Field names are the kubelet's: `node` (`nodeName`, `startTime`, `cpu`, `memory`,
//! `network`, `fs`, `runtime.imageFs`, `rlimit`) and `pods[]` (`podRef`, `startTime`, `cpu`,
//! `memory`, `network`, `containers[]` with `rootfs` and `logs`, `ephemeral-storage`,
//! `process_stats`). Statistics a node did not report are left out (they are pointers,
//! `omitempty`, in the kubelet's types). `volume` is not reported yet.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{rfc3339_ms, Metric, NodeMetrics, SubjectKey};

/// The latest values of a subject's metrics, by metric, with the newest time.
struct Latest<'a> {
    node: &'a NodeMetrics,
    subject: &'a SubjectKey,
}

impl Latest<'_> {
    fn get(&self, m: Metric) -> Option<(u64, i64)> {
        self.node.latest(self.subject, m)
    }

    fn value(&self, m: Metric) -> Option<u64> {
        self.get(m).map(|(_, v)| u64::try_from(v).unwrap_or(0))
    }

    /// The newest time among `metrics`.
    fn time(&self, metrics: &[Metric]) -> Option<u64> {
        metrics
            .iter()
            .filter_map(|m| self.get(*m).map(|(t, _)| t))
            .max()
    }

    /// An object with `time` and each `(field, metric)` present; `None` when none is.
    fn stats(&self, fields: &[(&str, Metric)], extra: &[(&str, Option<u64>)]) -> Option<Value> {
        let metrics: Vec<Metric> = fields.iter().map(|(_, m)| *m).collect();
        let time = self.time(&metrics)?;
        let mut out = Map::new();
        out.insert("time".into(), json!(rfc3339_ms(time)));
        for (field, m) in fields {
            if let Some(v) = self.value(*m) {
                out.insert((*field).into(), json!(v));
            }
        }
        for (field, v) in extra {
            if let Some(v) = v {
                out.insert((*field).into(), json!(v));
            }
        }
        Some(Value::Object(out))
    }

    fn cpu(&self) -> Option<Value> {
        let (t, total) = self.get(Metric::CpuUsageNanoseconds)?;
        let mut cpu = json!({
            "time": rfc3339_ms(t),
            "usageCoreNanoSeconds": u64::try_from(total).unwrap_or(0),
        });
        if let Some(rate) = self.node.rate(self.subject, Metric::CpuUsageNanoseconds) {
            cpu["usageNanoCores"] = json!(rate.per_second.round().max(0.0) as u64);
        }
        Some(cpu)
    }

    /// Memory; `availableBytes` is the limit (or, for the node, its capacity) minus the
    /// working set, as the kubelet computes it.
    fn memory(&self, capacity: Option<u64>) -> Option<Value> {
        let mut memory = self.stats(
            &[
                ("usageBytes", Metric::MemoryUsageBytes),
                ("workingSetBytes", Metric::MemoryWorkingSetBytes),
                ("rssBytes", Metric::MemoryRssBytes),
            ],
            &[],
        )?;
        let available = self.value(Metric::MemoryAvailableBytes).or_else(|| {
            let limit = capacity.or(self.value(Metric::MemoryLimitBytes))?;
            Some(limit.saturating_sub(self.value(Metric::MemoryWorkingSetBytes)?))
        });
        if let Some(a) = available {
            memory["availableBytes"] = json!(a);
        }
        Some(memory)
    }

    fn network(&self) -> Option<Value> {
        let mut net = self.stats(
            &[
                ("rxBytes", Metric::NetworkRxBytes),
                ("rxErrors", Metric::NetworkRxErrors),
                ("txBytes", Metric::NetworkTxBytes),
                ("txErrors", Metric::NetworkTxErrors),
            ],
            &[],
        )?;
        // The pod's interface; the inline fields repeat it, as the kubelet's do.
        let mut iface = net.clone();
        if let Some(o) = iface.as_object_mut() {
            o.remove("time");
            o.insert("name".into(), json!("eth0"));
        }
        net["name"] = json!("eth0");
        net["interfaces"] = json!([iface]);
        Some(net)
    }
}

/// A node's Summary. `pods` are the stored Pod objects bound to the node (for `podRef.uid`
/// and `startTime`).
pub fn summary(name: &str, node: &NodeMetrics, pods: &[&Value]) -> Value {
    let n = Latest {
        node,
        subject: &SubjectKey::Node,
    };
    let mut stats = Map::new();
    stats.insert("nodeName".into(), json!(name));
    // The node started its uptime before the newest uptime sample.
    let start = n
        .get(Metric::UptimeSeconds)
        .map(|(t, up)| t.saturating_sub(u64::try_from(up).unwrap_or(0).saturating_mul(1000)));
    stats.insert(
        "startTime".into(),
        json!(start.map(rfc3339_ms).unwrap_or_default()),
    );
    let capacity = n.value(Metric::MemoryCapacityBytes);
    let fs = n.stats(
        &[
            ("availableBytes", Metric::FsAvailableBytes),
            ("capacityBytes", Metric::FsCapacityBytes),
            ("inodesFree", Metric::FsInodesFree),
            ("inodes", Metric::FsInodes),
        ],
        &[
            (
                "usedBytes",
                n.value(Metric::FsCapacityBytes)
                    .zip(n.value(Metric::FsAvailableBytes))
                    .map(|(c, a)| c.saturating_sub(a)),
            ),
            (
                "inodesUsed",
                n.value(Metric::FsInodes)
                    .zip(n.value(Metric::FsInodesFree))
                    .map(|(t, f)| t.saturating_sub(f)),
            ),
        ],
    );
    let image_fs = n.stats(
        &[
            ("availableBytes", Metric::ImageFsAvailableBytes),
            ("capacityBytes", Metric::ImageFsCapacityBytes),
            ("usedBytes", Metric::ImageFsUsedBytes),
        ],
        &[],
    );
    let rlimit = n.stats(
        &[("maxpid", Metric::PidsMax), ("curproc", Metric::PidsInUse)],
        &[],
    );
    for (field, value) in [
        ("cpu", n.cpu()),
        ("memory", n.memory(capacity)),
        ("network", n.network()),
        ("fs", fs),
        ("runtime", image_fs.map(|i| json!({"imageFs": i}))),
        ("rlimit", rlimit),
    ] {
        if let Some(v) = value {
            stats.insert(field.into(), v);
        }
    }

    // Pods: every pod or container subject, grouped by pod.
    let mut by_pod: BTreeMap<(String, String), Vec<&SubjectKey>> = BTreeMap::new();
    let subjects = node.subjects();
    for s in &subjects {
        if let Some((ns, pod)) = s.pod() {
            by_pod
                .entry((ns.to_owned(), pod.to_owned()))
                .or_default()
                .push(s);
        }
    }
    let mut pod_stats = Vec::new();
    for ((ns, pod), subjects) in by_pod {
        let object = pods.iter().find(|p| {
            p["metadata"]["namespace"].as_str() == Some(&ns)
                && p["metadata"]["name"].as_str() == Some(&pod)
        });
        let mut p = Map::new();
        p.insert(
            "podRef".into(),
            json!({
                "name": pod,
                "namespace": ns,
                "uid": object.and_then(|o| o["metadata"]["uid"].as_str()).unwrap_or(""),
            }),
        );
        let start = object
            .and_then(|o| o["status"]["startTime"].as_str())
            .map(str::to_owned);
        let mut containers = Vec::new();
        let (mut rootfs_total, mut logs_total, mut ephemeral_time) = (None::<u64>, 0u64, None);
        for s in &subjects {
            let SubjectKey::Container { name, .. } = s else {
                continue;
            };
            let c = Latest { node, subject: s };
            let mut cs = Map::new();
            cs.insert("name".into(), json!(name));
            let started = c
                .get(Metric::StartTimeSeconds)
                .map(|(_, secs)| rfc3339_ms(u64::try_from(secs).unwrap_or(0) * 1000));
            cs.insert(
                "startTime".into(),
                json!(started.or(start.clone()).unwrap_or_default()),
            );
            let rootfs = c.stats(&[("usedBytes", Metric::FsUsedBytes)], &[]);
            let logs = c.stats(&[("usedBytes", Metric::LogsUsedBytes)], &[]);
            if let Some(used) = c.value(Metric::FsUsedBytes) {
                rootfs_total = Some(rootfs_total.unwrap_or(0) + used);
            }
            if let Some(used) = c.value(Metric::LogsUsedBytes) {
                logs_total += used;
            }
            ephemeral_time =
                ephemeral_time.max(c.time(&[Metric::FsUsedBytes, Metric::LogsUsedBytes]));
            for (field, value) in [
                ("cpu", c.cpu()),
                ("memory", c.memory(None)),
                ("rootfs", rootfs),
                ("logs", logs),
            ] {
                if let Some(v) = value {
                    cs.insert(field.into(), v);
                }
            }
            containers.push(Value::Object(cs));
        }
        let pod_subject = SubjectKey::Pod {
            namespace: ns.clone(),
            name: pod.clone(),
        };
        let ps = Latest {
            node,
            subject: &pod_subject,
        };
        p.insert("startTime".into(), json!(start.unwrap_or_default()));
        p.insert("containers".into(), Value::Array(containers));
        for (field, value) in [
            ("cpu", ps.cpu()),
            ("memory", ps.memory(None)),
            ("network", ps.network()),
        ] {
            if let Some(v) = value {
                p.insert(field.into(), v);
            }
        }
        if let Some(t) = ephemeral_time {
            // The kubelet's ephemeral storage: the containers' writable layers and logs.
            p.insert(
                "ephemeral-storage".into(),
                json!({
                    "time": rfc3339_ms(t),
                    "usedBytes": rootfs_total.unwrap_or(0) + logs_total,
                }),
            );
        }
        if let Some(count) = ps.value(Metric::Processes) {
            p.insert("process_stats".into(), json!({"process_count": count}));
        }
        pod_stats.push(Value::Object(p));
    }
    json!({"node": stats, "pods": pod_stats})
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Batch, T0};
    use super::super::MetricsStore;
    use super::*;

    #[test]
    fn summary_has_the_kubelets_shape() {
        let store = MetricsStore::default();
        let mut b = Batch::new(1, T0, true);
        b.series(
            Metric::CpuUsageNanoseconds,
            0,
            4,
            &[1_000_000_000, 2_000_000_000],
        );
        b.flat(Metric::MemoryWorkingSetBytes, 0, 300);
        b.flat(Metric::MemoryCapacityBytes, 0, 1000);
        b.flat(Metric::FsCapacityBytes, 0, 100);
        b.flat(Metric::FsAvailableBytes, 0, 40);
        b.flat(Metric::FsInodes, 0, 10);
        b.flat(Metric::FsInodesFree, 0, 4);
        b.flat(Metric::ImageFsCapacityBytes, 0, 100);
        b.flat(Metric::ImageFsAvailableBytes, 0, 50);
        b.flat(Metric::ImageFsUsedBytes, 0, 7);
        b.flat(Metric::PidsMax, 0, 4096);
        b.flat(Metric::PidsInUse, 0, 80);
        b.flat(Metric::UptimeSeconds, 0, 100);
        let pod = b.pod("default", "web");
        b.flat(Metric::NetworkRxBytes, pod, 11);
        b.flat(Metric::NetworkTxBytes, pod, 22);
        let c = b.container("default", "web", "nginx");
        b.series(Metric::CpuUsageNanoseconds, c, 4, &[0, 500_000_000]);
        b.flat(Metric::MemoryWorkingSetBytes, c, 64);
        b.flat(Metric::MemoryLimitBytes, c, 100);
        b.flat(Metric::FsUsedBytes, c, 5);
        b.flat(Metric::LogsUsedBytes, c, 6);
        b.flat(Metric::StartTimeSeconds, c, 1_700_000_000);
        store.record("pi-1", &b.samples, T0);
        let pod_object = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
            "status": {"startTime": "2023-11-14T22:00:00Z"}});
        let s = store.read(|n| summary("pi-1", &n["pi-1"], &[&pod_object]));
        let t = rfc3339_ms(T0 + 50_000);
        let node = &s["node"];
        assert_eq!(node["nodeName"], "pi-1");
        assert_eq!(node["startTime"], rfc3339_ms(T0 + 50_000 - 100_000));
        assert_eq!(
            node["cpu"],
            json!({"time": t, "usageCoreNanoSeconds": 2_000_000_000u64, "usageNanoCores": 100_000_000u64})
        );
        assert_eq!(
            node["memory"],
            json!({"time": t, "workingSetBytes": 300, "availableBytes": 700})
        );
        assert_eq!(
            node["fs"],
            json!({"time": t, "availableBytes": 40, "capacityBytes": 100, "usedBytes": 60,
                "inodesFree": 4, "inodes": 10, "inodesUsed": 6})
        );
        assert_eq!(
            node["runtime"]["imageFs"],
            json!({"time": t, "availableBytes": 50, "capacityBytes": 100, "usedBytes": 7})
        );
        assert_eq!(
            node["rlimit"],
            json!({"time": t, "maxpid": 4096, "curproc": 80})
        );
        assert!(node.get("network").is_none());

        let pod = &s["pods"][0];
        assert_eq!(
            pod["podRef"],
            json!({"name": "web", "namespace": "default", "uid": "u-1"})
        );
        assert_eq!(pod["startTime"], "2023-11-14T22:00:00Z");
        assert_eq!(pod["network"]["rxBytes"], 11);
        assert_eq!(pod["network"]["txBytes"], 22);
        assert_eq!(pod["network"]["interfaces"][0]["name"], "eth0");
        assert_eq!(
            pod["ephemeral-storage"],
            json!({"time": t, "usedBytes": 11})
        );
        let c = &pod["containers"][0];
        assert_eq!(c["name"], "nginx");
        assert_eq!(c["startTime"], rfc3339_ms(1_700_000_000_000));
        assert_eq!(c["cpu"]["usageNanoCores"], 50_000_000);
        assert_eq!(c["memory"]["availableBytes"], 36);
        assert_eq!(c["rootfs"], json!({"time": t, "usedBytes": 5}));
        assert_eq!(c["logs"], json!({"time": t, "usedBytes": 6}));
    }
}
