//! What the node says, written into the API objects: a birth or last will into the Node, a
//! report into its pods' status. Pure functions over JSON; the hub does the store I/O.

use chrono::{DateTime, SecondsFormat, Utc};
use kelp_shared::wire::{
    AddressKind, Birth, ConditionStatus, ContainerReport, ContainerState, PodReport,
};
use serde_json::{json, Map, Value};

/// RFC 3339 (seconds, `Z`), as Kubernetes writes times.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn rfc3339_ms(unix_ms: u64) -> String {
    DateTime::from_timestamp_millis(i64::try_from(unix_ms).unwrap_or(i64::MAX))
        .map(rfc3339)
        .unwrap_or_default()
}

/// Kubernetes' spelling of a condition status.
pub fn condition_status(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

fn object_mut<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !value.is_object() {
        *value = json!({});
    }
    let map = value.as_object_mut().expect("made an object above");
    let entry = map.entry(key.to_owned()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("made an object above")
}

/// Sets condition `kind` in a `conditions` array, keeping `lastTransitionTime` when the
/// status does not change. Node conditions also get `lastHeartbeatTime` (`heartbeat`).
pub fn set_condition(
    conditions: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
    heartbeat: bool,
) {
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("made an array above");
    let old = list.iter().position(|c| c["type"] == kind);
    let transition = match old {
        Some(i) if list[i]["status"] == status => list[i]["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut condition = json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    if heartbeat {
        condition["lastHeartbeatTime"] = json!(now);
    }
    match old {
        Some(i) => list[i] = condition,
        None => list.push(condition),
    }
}

/// The status of condition `kind`, if present.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn quantity_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn quantity_memory(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// Writes a birth into a Node object: labels, pod CIDR (when given and none is set),
/// capacity, allocatable, addresses, node info and `Ready=True`.
pub fn apply_birth(node: &mut Value, birth: &Birth, pod_cidr: Option<&str>, now: &str) {
    let meta = object_mut(node, "metadata");
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    let labels = labels.as_object_mut().expect("made an object above");
    for (key, value) in &birth.labels {
        labels.insert(key.clone(), json!(value));
    }
    labels.insert("kubernetes.io/arch".into(), json!(birth.arch));
    labels.insert("kubernetes.io/os".into(), json!(birth.os));
    labels.insert("kubernetes.io/hostname".into(), json!(birth.node));

    let spec = object_mut(node, "spec");
    if let Some(cidr) = pod_cidr {
        if spec.get("podCIDR").and_then(Value::as_str).is_none() {
            spec.insert("podCIDR".into(), json!(cidr));
            spec.insert("podCIDRs".into(), json!([cidr]));
        }
    }

    let resources = json!({
        "cpu": quantity_cpu(birth.capacity.cpu_millis),
        "memory": quantity_memory(birth.capacity.memory_bytes),
        "pods": birth.capacity.pods.to_string(),
    });
    let mut addresses: Vec<Value> = birth
        .addresses
        .iter()
        .map(|a| json!({"type": a.kind.as_str(), "address": a.address}))
        .collect();
    if !birth
        .addresses
        .iter()
        .any(|a| a.kind == AddressKind::Hostname)
    {
        addresses.push(json!({"type": "Hostname", "address": birth.node}));
    }
    let status = object_mut(node, "status");
    status.insert("capacity".into(), resources.clone());
    status.insert("allocatable".into(), resources);
    status.insert("addresses".into(), Value::Array(addresses));
    status.insert(
        "nodeInfo".into(),
        json!({
            "architecture": birth.arch,
            "operatingSystem": birth.os,
            "kernelVersion": birth.kernel,
            "kubeletVersion": format!("kelp-agent/{}", birth.agent_version),
            "bootID": birth.boot_id.to_string(),
            "containerRuntimeVersion": format!("libcontainer (cgroup v{})", birth.cgroup_version),
            "machineID": "",
            "systemUUID": "",
            "kubeProxyVersion": "",
            "osImage": "",
        }),
    );
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    set_condition(
        conditions,
        "Ready",
        "True",
        "KubeletReady",
        "kelp-agent is posting ready status",
        now,
        true,
    );
}

/// Writes a last will into a Node object: `Ready=Unknown`.
pub fn apply_offline(node: &mut Value, now: &str) {
    apply_unknown(
        node,
        "kelp-agent stopped posting node status (its connection to the broker was lost).",
        now,
    );
}

/// Marks a Node `Ready=Unknown` (reason `NodeStatusUnknown`) with `message`.
pub fn apply_unknown(node: &mut Value, message: &str, now: &str) {
    let status = object_mut(node, "status");
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    set_condition(
        conditions,
        "Ready",
        "Unknown",
        "NodeStatusUnknown",
        message,
        now,
        true,
    );
}

/// The mirror pod of a node's static pod (`bytes`: its JSON Pod, from the node): the node's
/// spec and metadata, the mirror annotation with the static pod's UID, owned by the Node, no
/// status (the node's reports fill it). None when it is not a named Pod with a UID.
pub fn mirror_pod(bytes: &[u8], node: &str, node_uid: &str, now: &str) -> Option<Value> {
    let pod: Value = serde_json::from_slice(bytes).ok()?;
    if pod.get("kind")?.as_str()? != "Pod" {
        return None;
    }
    let name = pod.pointer("/metadata/name")?.as_str()?;
    let uid = pod.pointer("/metadata/uid")?.as_str()?;
    if kelp_shared::wire::check_node_name(name).is_err() || uid.is_empty() {
        return None;
    }
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mut annotations = pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    annotations.insert(super::MIRROR_ANNOTATION.into(), json!(uid));
    annotations.insert("kubernetes.io/config.source".into(), json!("file"));
    let mut spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["nodeName"] = json!(node);
    Some(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": now,
            "labels": pod.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Node",
                "name": node,
                "uid": node_uid,
                "controller": true,
            }],
        },
        "spec": spec,
    }))
}

/// The node's first InternalIP (the pods' `hostIP`).
pub fn internal_ip(node: &Value) -> Option<&str> {
    node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
}

fn container_state(state: &ContainerState) -> Value {
    match state {
        ContainerState::Waiting { reason, message } => {
            let mut waiting = json!({"reason": reason});
            if !message.is_empty() {
                waiting["message"] = json!(message);
            }
            json!({"waiting": waiting})
        }
        ContainerState::Running { started_at_unix_ms } => {
            json!({"running": {"startedAt": rfc3339_ms(*started_at_unix_ms)}})
        }
        ContainerState::Terminated {
            exit_code,
            reason,
            message,
            started_at_unix_ms,
            finished_at_unix_ms,
        } => {
            let mut terminated = json!({
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": rfc3339_ms(*started_at_unix_ms),
                "finishedAt": rfc3339_ms(*finished_at_unix_ms),
            });
            if !message.is_empty() {
                terminated["message"] = json!(message);
            }
            json!({"terminated": terminated})
        }
    }
}

fn container_status(report: &ContainerReport) -> Value {
    let mut status = json!({
        "name": report.name,
        "state": container_state(&report.state),
        "lastState": report.last_state.as_ref().map(container_state).unwrap_or_else(|| json!({})),
        "ready": report.ready,
        "restartCount": report.restart_count,
        "image": report.image,
        "imageID": report.image_id,
        "started": matches!(report.state, ContainerState::Running { .. }),
    });
    if !report.container_id.is_empty() {
        status["containerID"] = json!(report.container_id);
    }
    status
}

/// A pod's status from its report, keeping what the report does not own (`qosClass`,
/// `nominatedNodeName`, condition transition times that did not change).
pub fn pod_status(old: &Value, report: &PodReport, host_ip: Option<&str>, now: &str) -> Value {
    let mut status = if old.is_object() {
        old.clone()
    } else {
        json!({})
    };
    let map = status.as_object_mut().expect("an object");
    map.insert("phase".into(), json!(report.phase.as_str()));
    for (key, value) in [("reason", &report.reason), ("message", &report.message)] {
        if value.is_empty() {
            map.remove(key);
        } else {
            map.insert(key.into(), json!(value));
        }
    }
    match report.pod_ip {
        Some(ip) => {
            map.insert("podIP".into(), json!(ip.to_string()));
            map.insert("podIPs".into(), json!([{"ip": ip.to_string()}]));
        }
        None => {
            map.remove("podIP");
            map.remove("podIPs");
        }
    }
    if let Some(ip) = host_ip {
        map.insert("hostIP".into(), json!(ip));
        map.insert("hostIPs".into(), json!([{"ip": ip}]));
    }
    if let Some(start) = report.start_unix_ms {
        map.insert("startTime".into(), json!(rfc3339_ms(start)));
    }
    map.insert(
        "containerStatuses".into(),
        Value::Array(report.containers.iter().map(container_status).collect()),
    );
    if report.init_containers.is_empty() {
        map.remove("initContainerStatuses");
    } else {
        map.insert(
            "initContainerStatuses".into(),
            Value::Array(
                report
                    .init_containers
                    .iter()
                    .map(container_status)
                    .collect(),
            ),
        );
    }
    let initialized = report
        .init_containers
        .iter()
        .all(|c| matches!(&c.state, ContainerState::Terminated { exit_code: 0, .. }));
    let ready = !report.containers.is_empty() && report.containers.iter().all(|c| c.ready);
    let flag = |b: bool| if b { "True" } else { "False" };
    let conditions = map.entry("conditions").or_insert_with(|| json!([]));
    for (kind, value) in [
        ("PodScheduled", true),
        ("Initialized", initialized),
        ("ContainersReady", ready),
        ("Ready", ready),
    ] {
        set_condition(conditions, kind, flag(value), "", "", now, false);
        // Kubernetes leaves reason and message out when empty.
        if let Some(c) = conditions
            .as_array_mut()
            .and_then(|list| list.iter_mut().find(|c| c["type"] == kind))
        {
            let c = c.as_object_mut().expect("conditions are objects");
            c.remove("reason");
            c.remove("message");
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_shared::wire::{BootId, NodeAddress, PodPhase, Resources};

    fn birth() -> Birth {
        Birth {
            node: "pi-1".into(),
            boot_id: BootId([1; 16]),
            agent_start_unix_ms: 1_700_000_000_000,
            seq: 1,
            agent_version: "0.1.0".into(),
            wire_versions: vec![1],
            os: "linux".into(),
            arch: "arm64".into(),
            kernel: "6.6.31-v8".into(),
            capacity: Resources {
                cpu_millis: 4000,
                memory_bytes: 8 * 1024 * 1024 * 1024,
                pods: 110,
            },
            cgroup_version: 2,
            addresses: vec![NodeAddress {
                kind: AddressKind::InternalIp,
                address: "192.168.1.20".into(),
            }],
            labels: vec![("site".into(), "north".into())],
        }
    }

    #[test]
    fn birth_fills_the_node() {
        let mut node = json!({"metadata": {"name": "pi-1"}});
        apply_birth(
            &mut node,
            &birth(),
            Some("10.42.3.0/24"),
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "arm64");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "pi-1");
        assert_eq!(node["metadata"]["labels"]["site"], "north");
        assert_eq!(node["spec"]["podCIDR"], "10.42.3.0/24");
        assert_eq!(node["spec"]["podCIDRs"], json!(["10.42.3.0/24"]));
        assert_eq!(
            node["status"]["capacity"],
            json!({"cpu": "4", "memory": "8388608Ki", "pods": "110"})
        );
        assert_eq!(node["status"]["allocatable"], node["status"]["capacity"]);
        assert_eq!(internal_ip(&node), Some("192.168.1.20"));
        assert_eq!(
            node["status"]["addresses"][1],
            json!({"type": "Hostname", "address": "pi-1"})
        );
        let ready = condition(&node, "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:00:00Z");

        // A later birth keeps the pod CIDR and the transition time.
        apply_birth(
            &mut node,
            &birth(),
            Some("10.42.9.0/24"),
            "2026-01-01T00:05:00Z",
        );
        assert_eq!(node["spec"]["podCIDR"], "10.42.3.0/24");
        let ready = condition(&node, "Ready").unwrap();
        assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(ready["lastHeartbeatTime"], "2026-01-01T00:05:00Z");

        apply_offline(&mut node, "2026-01-01T00:06:00Z");
        let ready = condition(&node, "Ready").unwrap();
        assert_eq!(ready["status"], "Unknown");
        assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:06:00Z");
        assert_eq!(node["status"]["conditions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn report_becomes_pod_status() {
        let report = PodReport {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            phase: PodPhase::Running,
            pod_ip: Some("10.42.3.7".parse().unwrap()),
            containers: vec![ContainerReport {
                name: "nginx".into(),
                state: ContainerState::Running {
                    started_at_unix_ms: 1_700_000_000_000,
                },
                last_state: Some(ContainerState::Terminated {
                    exit_code: 137,
                    reason: "OOMKilled".into(),
                    message: String::new(),
                    started_at_unix_ms: 1_699_999_000_000,
                    finished_at_unix_ms: 1_699_999_999_000,
                }),
                ready: true,
                restart_count: 1,
                image: "nginx:1.27".into(),
                image_id: "sha256:abc".into(),
                container_id: "kelp://c1".into(),
            }],
            init_containers: vec![],
            reason: String::new(),
            message: String::new(),
            start_unix_ms: Some(1_699_000_000_000),
        };
        let old = json!({"phase": "Pending", "qosClass": "BestEffort"});
        let status = pod_status(&old, &report, Some("192.168.1.20"), "2026-01-01T00:00:00Z");
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["qosClass"], "BestEffort");
        assert_eq!(status["podIP"], "10.42.3.7");
        assert_eq!(status["podIPs"], json!([{"ip": "10.42.3.7"}]));
        assert_eq!(status["hostIP"], "192.168.1.20");
        assert_eq!(status["startTime"], "2023-11-03T08:26:40Z");
        let c = &status["containerStatuses"][0];
        assert_eq!(c["state"]["running"]["startedAt"], "2023-11-14T22:13:20Z");
        assert_eq!(c["lastState"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(c["restartCount"], 1);
        assert_eq!(c["containerID"], "kelp://c1");
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        // The same report again changes nothing.
        let again = pod_status(
            &status,
            &report,
            Some("192.168.1.20"),
            "2026-01-01T00:09:00Z",
        );
        assert_eq!(again, status);
    }
}
