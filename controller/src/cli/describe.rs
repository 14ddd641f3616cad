//! `kelp describe`: kubectl's describers for Pod, ConfigMap, Secret and Namespace, and its
//! generic describer (every field, as an indented outline) for the other kinds.
//!
//! Like kubectl, the text goes through the tab writer (minimum width 0, padding 2), so the
//! values of consecutive `Label:\tvalue` lines line up.

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use kelp_shared::api::kinds::KindInfo;
use kelp_shared::api::Quantity;
use serde_json::Value;

use super::apply::LAST_APPLIED;
use super::client::{report_errors, ApiError, Client};
use super::get::{list, list_query, selection_and_client, with_type_meta};
use super::printer::{age, at, bool_at, int_at, list_at, map_at, parse_time, str_at};
use super::resource::object_path;
use super::tabwriter::TabWriter;
use super::{emit, exit_code, Context, DescribeArgs};

/// Related objects some describers show.
#[derive(Debug, Clone, Default)]
pub struct Related {
    /// Events about the object (`None`: the section is left out).
    pub events: Option<Vec<Value>>,
    /// For a Namespace: its ResourceQuotas.
    pub quotas: Option<Vec<Value>>,
    /// For a Namespace: its LimitRanges.
    pub limit_ranges: Option<Vec<Value>>,
}

/// kubectl's prefix writer over the tab writer: two spaces of indent per level.
struct Out {
    tw: TabWriter,
    done: String,
}

impl Out {
    fn new() -> Self {
        Out {
            tw: TabWriter::for_describe(),
            done: String::new(),
        }
    }

    fn w(&mut self, level: usize, text: &str) {
        let indent = "  ".repeat(level);
        self.tw.write_str(&indent);
        self.tw.write_str(text);
    }

    fn flush(&mut self) {
        let text = self.tw.flush();
        self.done.push_str(&text);
    }

    fn finish(mut self) -> String {
        self.flush();
        self.done
    }
}

/// The RFC 1123 time kubectl prints (`Mon, 02 Jan 2006 15:04:05 +0000`).
fn rfc1123z(ts: &str) -> String {
    match parse_time(ts) {
        Some(t) => t.format("%a, %d %b %Y %H:%M:%S %z").to_string(),
        None => ts.to_string(),
    }
}

fn labels_multiline(out: &mut Out, title: &str, labels: &BTreeMap<String, String>) {
    out.w(0, &format!("{title}:\t"));
    if labels.is_empty() {
        out.w(0, "<none>\n");
        return;
    }
    for (i, (k, v)) in labels.iter().enumerate() {
        if i != 0 {
            out.w(0, "\t");
        }
        out.w(0, &format!("{k}={v}\n"));
    }
}

fn annotations_multiline(out: &mut Out, title: &str, annotations: &BTreeMap<String, String>) {
    const MAX: usize = 140;
    out.w(0, &format!("{title}:\t"));
    let keys: Vec<&String> = annotations.keys().filter(|k| *k != LAST_APPLIED).collect();
    if keys.is_empty() {
        out.w(0, "<none>\n");
        return;
    }
    for (i, key) in keys.iter().enumerate() {
        if i != 0 {
            out.w(0, "\t");
        }
        let value = annotations[*key].trim_end_matches('\n');
        if value.len() + key.len() + 2 > MAX || value.contains('\n') {
            out.w(0, &format!("{key}:\n"));
            for line in value.split('\n') {
                let short = if line.chars().count() > MAX - 2 {
                    format!("{}...", line.chars().take(MAX - 2).collect::<String>())
                } else {
                    line.to_string()
                };
                out.w(0, &format!("\t{short}\n"));
            }
        } else {
            out.w(0, &format!("{key}: {value}\n"));
        }
    }
}

/// Describes one object.
pub fn describe(info: &KindInfo, obj: &Value, related: &Related, now: DateTime<Utc>) -> String {
    let mut out = Out::new();
    match info.kind {
        "Pod" => describe_pod(&mut out, obj, now),
        "ConfigMap" => describe_config_map(&mut out, obj),
        "Secret" => describe_secret(&mut out, obj),
        "Namespace" => describe_namespace(&mut out, obj, related),
        _ => describe_generic(&mut out, obj),
    }
    if !matches!(info.kind, "Secret" | "Namespace") {
        if let Some(events) = &related.events {
            describe_events(&mut out, events, now);
        }
    }
    out.finish()
}

fn describe_namespace(out: &mut Out, ns: &Value, related: &Related) {
    out.w(0, &format!("Name:\t{}\n", str_at(ns, "metadata.name")));
    labels_multiline(out, "Labels", &map_at(ns, "metadata.labels"));
    annotations_multiline(out, "Annotations", &map_at(ns, "metadata.annotations"));
    out.w(0, &format!("Status:\t{}\n", str_at(ns, "status.phase")));
    if let Some(quotas) = &related.quotas {
        out.w(0, "\n");
        if quotas.is_empty() {
            out.w(0, "No resource quota.\n");
        } else {
            out.w(0, "Resource Quotas\n");
            for q in quotas {
                out.w(1, &format!("Name:\t{}\n", str_at(q, "metadata.name")));
                out.w(1, "Resource\tUsed\tHard\n");
                out.w(1, "--------\t---\t---\n");
                let used = map_at(q, "status.used");
                for (res, hard) in map_at(q, "status.hard") {
                    let u = used.get(&res).map_or("0", String::as_str);
                    out.w(1, &format!("{res}\t{u}\t{hard}\n"));
                }
            }
        }
    }
    if let Some(ranges) = &related.limit_ranges {
        out.w(0, "\n");
        if ranges.is_empty() {
            out.w(0, "No LimitRange resource.\n");
        } else {
            out.w(0, "Resource Limits\n");
            out.w(
                1,
                "Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n",
            );
            out.w(1, "----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n");
            for lr in ranges {
                for item in list_at(lr, "spec.limits") {
                    let mut names: Vec<String> = Vec::new();
                    for key in [
                        "min",
                        "max",
                        "default",
                        "defaultRequest",
                        "maxLimitRequestRatio",
                    ] {
                        names.extend(map_at(item, key).into_keys());
                    }
                    names.sort();
                    names.dedup();
                    for res in names {
                        let get = |key: &str| {
                            map_at(item, key)
                                .get(&res)
                                .cloned()
                                .unwrap_or_else(|| "-".into())
                        };
                        out.w(
                            1,
                            &format!(
                                "{}\t{res}\t{}\t{}\t{}\t{}\t{}\n",
                                str_at(item, "type"),
                                get("min"),
                                get("max"),
                                get("defaultRequest"),
                                get("default"),
                                get("maxLimitRequestRatio")
                            ),
                        );
                    }
                }
            }
        }
    }
}

fn describe_config_map(out: &mut Out, cm: &Value) {
    out.w(0, &format!("Name:\t{}\n", str_at(cm, "metadata.name")));
    out.w(
        0,
        &format!("Namespace:\t{}\n", str_at(cm, "metadata.namespace")),
    );
    labels_multiline(out, "Labels", &map_at(cm, "metadata.labels"));
    annotations_multiline(out, "Annotations", &map_at(cm, "metadata.annotations"));
    out.w(0, "\nData\n====\n");
    for (k, v) in map_at(cm, "data") {
        out.w(0, &format!("{k}:\n----\n"));
        out.w(0, &format!("{v}\n"));
    }
    out.w(0, "\nBinaryData\n====\n");
    for (k, v) in map_at(cm, "binaryData") {
        let bytes = decoded_len(&v);
        out.w(0, &format!("{k}: {bytes} bytes\n"));
    }
    out.w(0, "\n");
}

/// The length of base64 data once decoded.
fn decoded_len(b64: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_or(0, |d| d.len())
}

fn describe_secret(out: &mut Out, secret: &Value) {
    out.w(0, &format!("Name:\t{}\n", str_at(secret, "metadata.name")));
    out.w(
        0,
        &format!("Namespace:\t{}\n", str_at(secret, "metadata.namespace")),
    );
    labels_multiline(out, "Labels", &map_at(secret, "metadata.labels"));
    annotations_multiline(out, "Annotations", &map_at(secret, "metadata.annotations"));
    let ty = match str_at(secret, "type") {
        "" => "Opaque",
        t => t,
    };
    out.w(0, &format!("\nType:\t{ty}\n"));
    out.w(0, "\nData\n====\n");
    for (k, v) in map_at(secret, "data") {
        out.w(0, &format!("{k}:\t{} bytes\n", decoded_len(&v)));
    }
}

fn describe_pod(out: &mut Out, pod: &Value, now: DateTime<Utc>) {
    out.w(0, &format!("Name:\t{}\n", str_at(pod, "metadata.name")));
    out.w(
        0,
        &format!("Namespace:\t{}\n", str_at(pod, "metadata.namespace")),
    );
    if at(pod, "spec.priority").is_some() {
        out.w(0, &format!("Priority:\t{}\n", int_at(pod, "spec.priority")));
    }
    let pc = str_at(pod, "spec.priorityClassName");
    if !pc.is_empty() {
        out.w(0, &format!("Priority Class Name:\t{pc}\n"));
    }
    let rc = str_at(pod, "spec.runtimeClassName");
    if !rc.is_empty() {
        out.w(0, &format!("Runtime Class Name:\t{rc}\n"));
    }
    let sa = str_at(pod, "spec.serviceAccountName");
    if !sa.is_empty() {
        out.w(0, &format!("Service Account:\t{sa}\n"));
    }
    match str_at(pod, "spec.nodeName") {
        "" => out.w(0, "Node:\t<none>\n"),
        node => out.w(
            0,
            &format!("Node:\t{node}/{}\n", str_at(pod, "status.hostIP")),
        ),
    }
    let start = str_at(pod, "status.startTime");
    if !start.is_empty() {
        out.w(0, &format!("Start Time:\t{}\n", rfc1123z(start)));
    }
    labels_multiline(out, "Labels", &map_at(pod, "metadata.labels"));
    annotations_multiline(out, "Annotations", &map_at(pod, "metadata.annotations"));
    let phase = str_at(pod, "status.phase");
    match at(pod, "metadata.deletionTimestamp").and_then(Value::as_str) {
        Some(ts) if phase != "Failed" && phase != "Succeeded" => {
            out.w(
                0,
                &format!("Status:\tTerminating (lasts {})\n", age(ts, now)),
            );
            out.w(
                0,
                &format!(
                    "Termination Grace Period:\t{}s\n",
                    int_at(pod, "metadata.deletionGracePeriodSeconds")
                ),
            );
        }
        _ => out.w(0, &format!("Status:\t{phase}\n")),
    }
    for (label, path) in [("Reason", "status.reason"), ("Message", "status.message")] {
        let v = str_at(pod, path);
        if !v.is_empty() {
            out.w(0, &format!("{label}:\t{v}\n"));
        }
    }
    out.w(0, &format!("IP:\t{}\n", str_at(pod, "status.podIP")));
    let ips = list_at(pod, "status.podIPs");
    if ips.is_empty() {
        out.w(0, "IPs:\t<none>\n");
    } else {
        out.w(0, "IPs:\n");
        for ip in ips {
            out.w(1, &format!("IP:\t{}\n", str_at(ip, "ip")));
        }
    }
    if let Some(owner) = list_at(pod, "metadata.ownerReferences")
        .iter()
        .find(|o| bool_at(o, "controller"))
    {
        out.w(
            0,
            &format!(
                "Controlled By:\t{}/{}\n",
                str_at(owner, "kind"),
                str_at(owner, "name")
            ),
        );
    }
    let nominated = str_at(pod, "status.nominatedNodeName");
    if !nominated.is_empty() {
        out.w(0, &format!("NominatedNodeName:\t{nominated}\n"));
    }
    let init = list_at(pod, "spec.initContainers");
    if !init.is_empty() {
        describe_containers(
            out,
            "Init Containers",
            init,
            list_at(pod, "status.initContainerStatuses"),
            pod,
        );
    }
    describe_containers(
        out,
        "Containers",
        list_at(pod, "spec.containers"),
        list_at(pod, "status.containerStatuses"),
        pod,
    );
    let gates = list_at(pod, "spec.readinessGates");
    let conditions = list_at(pod, "status.conditions");
    if !gates.is_empty() {
        out.w(0, "Readiness Gates:\n  Type\tStatus\n");
        for g in gates {
            let ty = str_at(g, "conditionType");
            let status = conditions
                .iter()
                .find(|c| str_at(c, "type") == ty)
                .map_or("<none>", |c| str_at(c, "status"));
            out.w(1, &format!("{ty} \t{status} \n"));
        }
    }
    if !conditions.is_empty() {
        out.w(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            out.w(
                1,
                &format!("{} \t{} \n", str_at(c, "type"), str_at(c, "status")),
            );
        }
    }
    describe_volumes(out, list_at(pod, "spec.volumes"));
    out.w(0, &format!("QoS Class:\t{}\n", qos_class(pod)));
    labels_multiline(out, "Node-Selectors", &map_at(pod, "spec.nodeSelector"));
    tolerations_multiline(out, list_at(pod, "spec.tolerations"));
}

fn describe_containers(
    out: &mut Out,
    label: &str,
    containers: &[Value],
    statuses: &[Value],
    pod: &Value,
) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    out.w(0, &format!("{label}:{none}\n"));
    for c in containers {
        let name = str_at(c, "name");
        let status = statuses.iter().find(|s| str_at(s, "name") == name);
        out.w(1, &format!("{name}:\n"));
        if let Some(s) = status {
            out.w(2, &format!("Container ID:\t{}\n", str_at(s, "containerID")));
        }
        out.w(2, &format!("Image:\t{}\n", str_at(c, "image")));
        if let Some(s) = status {
            out.w(2, &format!("Image ID:\t{}\n", str_at(s, "imageID")));
        }
        let ports = list_at(c, "ports");
        let proto = |p: &Value| match str_at(p, "protocol") {
            "" => "TCP".to_string(),
            x => x.to_string(),
        };
        let port_text: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", int_at(p, "containerPort"), proto(p)))
            .collect();
        let host_text: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", int_at(p, "hostPort"), proto(p)))
            .collect();
        let or_none = |v: Vec<String>| {
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.join(", ")
            }
        };
        let (pl, hl) = if ports.len() > 1 {
            ("Ports", "Host Ports")
        } else {
            ("Port", "Host Port")
        };
        out.w(2, &format!("{pl}:\t{}\n", or_none(port_text)));
        out.w(2, &format!("{hl}:\t{}\n", or_none(host_text)));
        for (title, key) in [("Command", "command"), ("Args", "args")] {
            let items = list_at(c, key);
            if !items.is_empty() {
                out.w(2, &format!("{title}:\n"));
                for item in items {
                    for line in item.as_str().unwrap_or_default().split('\n') {
                        out.w(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(s) = status {
            describe_state(out, "State", at(s, "state"));
            if at(s, "lastState.terminated").is_some() {
                describe_state(out, "Last State", at(s, "lastState"));
            }
            let ready = if bool_at(s, "ready") { "True" } else { "False" };
            out.w(2, &format!("Ready:\t{ready}\n"));
            out.w(
                2,
                &format!("Restart Count:\t{}\n", int_at(s, "restartCount")),
            );
        }
        for (title, key) in [
            ("Limits", "resources.limits"),
            ("Requests", "resources.requests"),
        ] {
            let res = map_at(c, key);
            if !res.is_empty() {
                out.w(2, &format!("{title}:\n"));
                for (name, q) in res {
                    out.w(3, &format!("{name}:\t{q}\n"));
                }
            }
        }
        for (title, key) in [
            ("Liveness", "livenessProbe"),
            ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe"),
        ] {
            if let Some(p) = at(c, key) {
                out.w(2, &format!("{title}:\t{}\n", describe_probe(p)));
            }
        }
        let env_from = list_at(c, "envFrom");
        if !env_from.is_empty() {
            out.w(2, "Environment Variables from:\n");
            for e in env_from {
                let (from, r) = if let Some(r) = at(e, "configMapRef") {
                    ("ConfigMap", r)
                } else if let Some(r) = at(e, "secretRef") {
                    ("Secret", r)
                } else {
                    continue;
                };
                let optional = bool_at(r, "optional");
                let prefix = str_at(e, "prefix");
                let name = str_at(r, "name");
                if prefix.is_empty() {
                    out.w(3, &format!("{name}\t{from}\tOptional: {optional}\n"));
                } else {
                    out.w(
                        3,
                        &format!("{name}\t{from} with prefix '{prefix}'\tOptional: {optional}\n"),
                    );
                }
            }
        }
        describe_env(out, c, pod);
        let mut mounts: Vec<&Value> = list_at(c, "volumeMounts").iter().collect();
        if mounts.is_empty() {
            out.w(2, "Mounts:\t<none>\n");
        } else {
            out.w(2, "Mounts:\n");
            mounts.sort_by_key(|m| str_at(m, "mountPath"));
            for m in mounts {
                let mut flags = vec![if bool_at(m, "readOnly") { "ro" } else { "rw" }.to_string()];
                let sub = str_at(m, "subPath");
                if !sub.is_empty() {
                    flags.push(format!("path={sub:?}"));
                }
                out.w(
                    3,
                    &format!(
                        "{} from {} ({})\n",
                        str_at(m, "mountPath"),
                        str_at(m, "name"),
                        flags.join(",")
                    ),
                );
            }
        }
    }
}

fn describe_env(out: &mut Out, c: &Value, pod: &Value) {
    let env = list_at(c, "env");
    if env.is_empty() {
        out.w(2, "Environment:\t<none>\n");
        return;
    }
    out.w(2, "Environment:\n");
    for e in env {
        let name = str_at(e, "name");
        let Some(from) = at(e, "valueFrom") else {
            for (i, line) in str_at(e, "value").split('\n').enumerate() {
                if i == 0 {
                    out.w(3, &format!("{name}:\t{line}\n"));
                } else {
                    out.w(3, &format!("\t{line}\n"));
                }
            }
            continue;
        };
        if let Some(f) = at(from, "fieldRef") {
            let path = str_at(f, "fieldPath");
            let value = if path.contains('[') {
                ""
            } else {
                str_at(pod, path)
            };
            let api = match str_at(f, "apiVersion") {
                "" => "v1",
                v => v,
            };
            out.w(3, &format!("{name}:\t{value} ({api}:{path})\n"));
        } else if let Some(r) = at(from, "resourceFieldRef") {
            let resource = str_at(r, "resource");
            let found = resource
                .split_once('.')
                .and_then(|(kind, res)| map_at(c, &format!("resources.{kind}")).remove(res));
            let value = match found {
                Some(v) => v,
                None if resource == "limits.cpu" || resource == "limits.memory" => {
                    "node allocatable".into()
                }
                None => String::new(),
            };
            out.w(3, &format!("{name}:\t{value} ({resource})\n"));
        } else if let Some(s) = at(from, "secretKeyRef") {
            out.w(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    str_at(s, "key"),
                    str_at(s, "name"),
                    bool_at(s, "optional")
                ),
            );
        } else if let Some(s) = at(from, "configMapKeyRef") {
            out.w(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    str_at(s, "key"),
                    str_at(s, "name"),
                    bool_at(s, "optional")
                ),
            );
        }
    }
}

fn describe_state(out: &mut Out, title: &str, state: Option<&Value>) {
    let state = state.unwrap_or(&Value::Null);
    if let Some(r) = at(state, "running") {
        out.w(2, &format!("{title}:\tRunning\n"));
        out.w(
            3,
            &format!("Started:\t{}\n", rfc1123z(str_at(r, "startedAt"))),
        );
    } else if let Some(w) = at(state, "waiting") {
        out.w(2, &format!("{title}:\tWaiting\n"));
        let reason = str_at(w, "reason");
        if !reason.is_empty() {
            out.w(3, &format!("Reason:\t{reason}\n"));
        }
    } else if let Some(t) = at(state, "terminated") {
        out.w(2, &format!("{title}:\tTerminated\n"));
        for (label, key) in [("Reason", "reason"), ("Message", "message")] {
            let v = str_at(t, key);
            if !v.is_empty() {
                out.w(3, &format!("{label}:\t{v}\n"));
            }
        }
        out.w(3, &format!("Exit Code:\t{}\n", int_at(t, "exitCode")));
        let signal = int_at(t, "signal");
        if signal > 0 {
            out.w(3, &format!("Signal:\t{signal}\n"));
        }
        out.w(
            3,
            &format!("Started:\t{}\n", rfc1123z(str_at(t, "startedAt"))),
        );
        out.w(
            3,
            &format!("Finished:\t{}\n", rfc1123z(str_at(t, "finishedAt"))),
        );
    } else {
        out.w(2, &format!("{title}:\tWaiting\n"));
    }
}

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// kubectl's `DescribeProbe`: `http-get http://:8080/healthz delay=0s timeout=1s ...`.
pub fn describe_probe(p: &Value) -> String {
    let num = |key: &str, default: i64| at(p, key).map_or(default, |_| int_at(p, key));
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        num("initialDelaySeconds", 0),
        num("timeoutSeconds", 1),
        num("periodSeconds", 10),
        num("successThreshold", 1),
        num("failureThreshold", 3)
    );
    if let Some(e) = at(p, "exec") {
        let cmd: Vec<&str> = list_at(e, "command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        format!("exec [{}] {attrs}", cmd.join(" "))
    } else if let Some(h) = at(p, "httpGet") {
        let scheme = match str_at(h, "scheme") {
            "" => "http".to_string(),
            s => s.to_ascii_lowercase(),
        };
        let port = int_or_string(at(h, "port"));
        let host = str_at(h, "host");
        let authority = if port.is_empty() {
            host.to_string()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        format!(
            "http-get {scheme}://{authority}{} {attrs}",
            str_at(h, "path")
        )
    } else if let Some(t) = at(p, "tcpSocket") {
        format!(
            "tcp-socket {}:{} {attrs}",
            str_at(t, "host"),
            int_or_string(at(t, "port"))
        )
    } else if let Some(g) = at(p, "grpc") {
        format!(
            "grpc <pod>:{} {} {attrs}",
            int_at(g, "port"),
            str_at(g, "service")
        )
    } else {
        format!("unknown {attrs}")
    }
}

fn describe_volumes(out: &mut Out, volumes: &[Value]) {
    if volumes.is_empty() {
        out.w(0, "Volumes:\t<none>\n");
        return;
    }
    out.w(0, "Volumes:\n");
    for v in volumes {
        out.w(1, &format!("{}:\n", str_at(v, "name")));
        if let Some(h) = at(v, "hostPath") {
            out.w(2, &format!("Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n", str_at(h, "path"), match str_at(h, "type") { "" => "<none>", t => t }));
        } else if let Some(e) = at(v, "emptyDir") {
            let limit = match at(e, "sizeLimit") {
                Some(l) => int_or_string(Some(l)),
                None => "<unset>".into(),
            };
            out.w(2, &format!("Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{limit}\n", str_at(e, "medium")));
        } else if let Some(s) = at(v, "secret") {
            out.w(2, &format!("Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n", str_at(s, "secretName"), bool_at(s, "optional")));
        } else if let Some(c) = at(v, "configMap") {
            out.w(2, &format!("Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n", str_at(c, "name"), bool_at(c, "optional")));
        } else if let Some(c) = at(v, "persistentVolumeClaim") {
            out.w(2, &format!("Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n", str_at(c, "claimName"), bool_at(c, "readOnly")));
        } else if let Some(p) = at(v, "projected") {
            out.w(
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
            for s in list_at(p, "sources") {
                if let Some(x) = at(s, "secret") {
                    out.w(
                        2,
                        &format!(
                            "SecretName:\t{}\n    Optional:\t{}\n",
                            str_at(x, "name"),
                            bool_at(x, "optional")
                        ),
                    );
                } else if at(s, "downwardAPI").is_some() {
                    out.w(2, "DownwardAPI:\ttrue\n");
                } else if let Some(x) = at(s, "configMap") {
                    out.w(
                        2,
                        &format!(
                            "ConfigMapName:\t{}\n    Optional:\t{}\n",
                            str_at(x, "name"),
                            bool_at(x, "optional")
                        ),
                    );
                } else if let Some(x) = at(s, "serviceAccountToken") {
                    out.w(
                        2,
                        &format!(
                            "TokenExpirationSeconds:\t{}\n",
                            int_at(x, "expirationSeconds")
                        ),
                    );
                }
            }
        } else if at(v, "downwardAPI").is_some() {
            out.w(
                2,
                "Type:\tDownwardAPI (a volume populated by information about the pod)\n",
            );
        } else {
            out.w(2, "<unknown>\n");
        }
    }
}

fn tolerations_multiline(out: &mut Out, tolerations: &[Value]) {
    out.w(0, "Tolerations:\t");
    if tolerations.is_empty() {
        out.w(0, "<none>\n");
        return;
    }
    for (i, t) in tolerations.iter().enumerate() {
        if i != 0 {
            out.w(0, "\t");
        }
        let key = str_at(t, "key");
        let value = str_at(t, "value");
        let effect = str_at(t, "effect");
        let mut text = key.to_string();
        if !value.is_empty() {
            text.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            text.push_str(&format!(":{effect}"));
        }
        if str_at(t, "operator") == "Exists" && value.is_empty() {
            if !key.is_empty() || !effect.is_empty() {
                text.push_str(" op=Exists");
            } else {
                text.push_str("op=Exists");
            }
        }
        if at(t, "tolerationSeconds").is_some() {
            text.push_str(&format!(" for {}s", int_at(t, "tolerationSeconds")));
        }
        out.w(0, &format!("{text}\n"));
    }
}

fn quantity(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

/// The pod's QoS class: `status.qosClass`, else computed as Kubernetes does.
pub fn qos_class(pod: &Value) -> String {
    let recorded = str_at(pod, "status.qosClass");
    if !recorded.is_empty() {
        return recorded.to_string();
    }
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let zero = Quantity::default();
    let containers = list_at(pod, "spec.containers")
        .iter()
        .chain(list_at(pod, "spec.initContainers"));
    for c in containers {
        for res in ["cpu", "memory"] {
            if let Some(q) = at(c, "resources.requests")
                .and_then(|r| r.get(res))
                .and_then(quantity)
            {
                if q > zero {
                    let sum = match requests.get(res) {
                        Some(prev) => prev.checked_add(&q).unwrap_or(q),
                        None => q,
                    };
                    requests.insert(res, sum);
                }
            }
        }
        let mut found = 0;
        for res in ["cpu", "memory"] {
            if let Some(q) = at(c, "resources.limits")
                .and_then(|r| r.get(res))
                .and_then(quantity)
            {
                if q > zero {
                    found += 1;
                    let sum = match limits.get(res) {
                        Some(prev) => prev.checked_add(&q).unwrap_or(q),
                        None => q,
                    };
                    limits.insert(res, sum);
                }
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort".into();
    }
    if guaranteed
        && requests.iter().all(|(k, r)| limits.get(k) == Some(r))
        && requests.len() == limits.len()
    {
        return "Guaranteed".into();
    }
    "Burstable".into()
}

fn describe_events(out: &mut Out, events: &[Value], now: DateTime<Utc>) {
    if events.is_empty() {
        out.w(0, "Events:\t<none>\n");
        return;
    }
    out.flush();
    let when = |e: &Value| {
        let t = str_at(e, "lastTimestamp");
        let t = if t.is_empty() {
            str_at(e, "eventTime")
        } else {
            t
        };
        parse_time(t)
    };
    let mut sorted: Vec<&Value> = events.iter().collect();
    sorted.sort_by_key(|e| when(e));
    out.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    out.w(1, "----\t------\t----\t----\t-------\n");
    for e in sorted {
        let first = match str_at(e, "eventTime") {
            "" => age(str_at(e, "firstTimestamp"), now),
            t => age(t, now),
        };
        let interval = if at(e, "series").is_some() {
            format!(
                "{} (x{} over {first})",
                age(str_at(e, "series.lastObservedTime"), now),
                int_at(e, "series.count")
            )
        } else if int_at(e, "count") > 1 {
            format!(
                "{} (x{} over {first})",
                age(str_at(e, "lastTimestamp"), now),
                int_at(e, "count")
            )
        } else {
            first
        };
        let source = match str_at(e, "source.component") {
            "" => str_at(e, "reportingComponent"),
            s => s,
        };
        out.w(
            1,
            &format!(
                "{}\t{}\t{interval}\t{source}\t{}\n",
                str_at(e, "type"),
                str_at(e, "reason"),
                str_at(e, "message").trim()
            ),
        );
    }
}

/// kubectl's `smartLabelFor`: `creationTimestamp` → `Creation Timestamp`, `apiVersion` →
/// `API Version`; names with other characters than letters and `-` stay as they are.
pub fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    const ACRONYMS: [&str; 5] = ["API", "URL", "UID", "OSB", "GUID"];
    camel_split(field)
        .into_iter()
        .filter(|p| p != "_")
        .map(|p| {
            let upper = p.to_uppercase();
            if ACRONYMS.contains(&upper.as_str()) {
                upper
            } else {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// fatih/camelcase's split: runs of one character class, with the last upper-case letter of
/// a run moved to a following lower-case run (`HTTPServer` → `HTTP`, `Server`).
fn camel_split(s: &str) -> Vec<String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Lower,
        Upper,
        Digit,
        Other,
    }
    let class = |c: char| {
        if c.is_lowercase() {
            Class::Lower
        } else if c.is_uppercase() {
            Class::Upper
        } else if c.is_numeric() {
            Class::Digit
        } else {
            Class::Other
        }
    };
    let mut runs: Vec<(Class, Vec<char>)> = Vec::new();
    for c in s.chars() {
        let k = class(c);
        match runs.last_mut() {
            Some((last, chars)) if *last == k => chars.push(c),
            _ => runs.push((k, vec![c])),
        }
    }
    for i in 0..runs.len().saturating_sub(1) {
        if runs[i].0 == Class::Upper && runs[i + 1].0 == Class::Lower {
            if let Some(c) = runs[i].1.pop() {
                runs[i + 1].1.insert(0, c);
            }
        }
    }
    runs.into_iter()
        .filter(|(_, chars)| !chars.is_empty())
        .map(|(_, chars)| chars.into_iter().collect())
        .collect()
}

fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn describe_generic(out: &mut Out, obj: &Value) {
    out.w(0, &format!("Name:\t{}\n", str_at(obj, "metadata.name")));
    out.w(
        0,
        &format!("Namespace:\t{}\n", str_at(obj, "metadata.namespace")),
    );
    labels_multiline(out, "Labels", &map_at(obj, "metadata.labels"));
    annotations_multiline(out, "Annotations", &map_at(obj, "metadata.annotations"));
    if let Some(map) = obj.as_object() {
        content(out, 0, map, "");
    }
}

fn content(out: &mut Out, level: usize, map: &serde_json::Map<String, Value>, prefix: &str) {
    const SKIP: [&str; 5] = [
        ".metadata.name",
        ".metadata.namespace",
        ".metadata.labels",
        ".metadata.annotations",
        ".metadata.managedFields",
    ];
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let path = format!("{prefix}.{key}");
        if SKIP.contains(&path.as_str()) {
            continue;
        }
        match &map[key] {
            Value::Object(m) => {
                out.w(level, &format!("{}:\n", smart_label(key)));
                content(out, level + 1, m, &path);
            }
            Value::Array(items) => {
                out.w(level, &format!("{}:\n", smart_label(key)));
                for item in items {
                    match item {
                        Value::Object(m) => content(out, level + 1, m, &path),
                        other => out.w(level + 1, &format!("{}\n", go_value(other))),
                    }
                }
            }
            other => out.w(
                level,
                &format!("{}:\t{}\n", smart_label(key), go_value(other)),
            ),
        }
    }
}

/// Events about an object, newest last (best effort: none when the server has none).
fn events_for(client: &Client, info: &KindInfo, obj: &Value) -> Vec<Value> {
    let name = str_at(obj, "metadata.name");
    let ns = str_at(obj, "metadata.namespace");
    let uid = str_at(obj, "metadata.uid");
    let mut selector = format!(
        "involvedObject.name={name},involvedObject.kind={}",
        info.kind
    );
    if !ns.is_empty() {
        selector.push_str(&format!(",involvedObject.namespace={ns}"));
    }
    let path = if ns.is_empty() {
        "/api/v1/events".to_string()
    } else {
        format!(
            "/api/v1/namespaces/{}/events",
            super::resource::escape_segment(ns)
        )
    };
    // Servers that cannot select on involvedObject fields get the whole list, filtered here.
    let list = match client.get(&path, &[("fieldSelector", selector)]) {
        Ok(list) => list,
        Err(e) if e.code() == Some(400) => match client.get(&path, &[]) {
            Ok(list) => list,
            Err(_) => return Vec::new(),
        },
        Err(_) => return Vec::new(),
    };
    list_at(&list, "items")
        .iter()
        .filter(|e| {
            str_at(e, "involvedObject.name") == name
                && str_at(e, "involvedObject.kind") == info.kind
                && (ns.is_empty() || str_at(e, "involvedObject.namespace") == ns)
                && {
                    let euid = str_at(e, "involvedObject.uid");
                    uid.is_empty() || euid.is_empty() || euid == uid
                }
        })
        .cloned()
        .collect()
}

/// `kelp describe`.
pub fn run(ctx: &Context, args: &DescribeArgs) -> ExitCode {
    let (selection, client) = match selection_and_client(ctx, &args.resources) {
        Ok(sc) => sc,
        Err(code) => return code,
    };
    let mut errors: Vec<ApiError> = Vec::new();
    let mut first = true;
    let mut found_any = false;
    for (info, names) in &selection.groups {
        let ns = info.namespaced.then(|| ctx.default_namespace());
        let mut objects = Vec::new();
        if names.is_empty() {
            let list_ns = if args.all_namespaces { None } else { ns };
            match list(
                client,
                info,
                list_ns,
                &list_query(args.selector.as_deref(), None),
            ) {
                Ok((items, _)) => objects = items,
                Err(e) => errors.push(e),
            }
        } else {
            for name in names {
                match client.get(&object_path(info, ns, name), &[]) {
                    Ok(o) => objects.push(with_type_meta(info, o)),
                    Err(e) => errors.push(e),
                }
            }
        }
        for obj in objects {
            found_any = true;
            let mut related = Related::default();
            if !matches!(info.kind, "Secret" | "Namespace") {
                related.events = Some(events_for(client, info, &obj));
            }
            if info.kind == "Namespace" {
                let name = str_at(&obj, "metadata.name");
                let of = |kind: &str| {
                    let k = kelp_shared::api::kinds::by_kind(kind)?;
                    list(client, k, Some(name), &[])
                        .ok()
                        .map(|(items, _)| items)
                };
                related.quotas = of("ResourceQuota");
                related.limit_ranges = of("LimitRange");
            }
            let text = describe(info, &obj, &related, Utc::now());
            if first {
                first = false;
                emit(&text);
            } else {
                emit(&format!("\n\n{text}"));
            }
        }
    }
    if !found_any && errors.is_empty() {
        match selection.groups.iter().all(|(k, _)| k.namespaced) && !args.all_namespaces {
            true => eprintln!(
                "No resources found in {} namespace.",
                ctx.default_namespace()
            ),
            false => eprintln!("No resources found"),
        }
    }
    report_errors(&errors);
    exit_code(&errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::printer::format_labels;
    use chrono::TimeZone;
    use kelp_shared::api::kinds::by_kind;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 10, 12, 0, 0).unwrap()
    }

    fn seed_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "myblog", "namespace": "luffy", "uid": "u1",
                "creationTimestamp": "2024-05-10T11:00:00Z",
                "labels": {"component": "myblog"},
                "annotations": {LAST_APPLIED: "{}"}},
            "spec": {
                "nodeName": "k8s-slave-1",
                "priority": 0,
                "serviceAccountName": "default",
                "containers": [
                    {"name": "myblog", "image": "192.168.136.10:5000/myblog:v1",
                     "env": [{"name": "MYSQL_HOST", "value": "127.0.0.1"}, {"name": "MYSQL_PASSWD", "value": "123456"}],
                     "ports": [{"containerPort": 8002, "protocol": "TCP"}]},
                    {"name": "mysql", "image": "192.168.136.10:5000/mysql:5.7-utf8",
                     "ports": [{"containerPort": 3306}],
                     "env": [{"name": "MYSQL_ROOT_PASSWORD", "value": "123456"}, {"name": "MYSQL_DATABASE", "value": "myblog"}]}
                ]
            },
            "status": {
                "phase": "Running", "hostIP": "172.17.176.32", "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}],
                "startTime": "2024-05-10T11:00:01Z",
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
                               {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {"name": "myblog", "ready": true, "restartCount": 0, "image": "x", "imageID": "sha256:aa",
                     "containerID": "kelp://c1", "state": {"running": {"startedAt": "2024-05-10T11:00:05Z"}}},
                    {"name": "mysql", "ready": true, "restartCount": 1, "imageID": "sha256:bb", "containerID": "kelp://c2",
                     "state": {"running": {"startedAt": "2024-05-10T11:01:00Z"}},
                     "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2024-05-10T11:00:05Z", "finishedAt": "2024-05-10T11:00:59Z"}}}
                ]
            }
        })
    }

    #[test]
    fn describe_pod_like_kubectl() {
        let events = vec![
            json!({"type": "Normal", "reason": "Scheduled", "message": "Successfully assigned luffy/myblog to k8s-slave-1",
            "source": {"component": "default-scheduler"}, "firstTimestamp": "2024-05-10T11:00:00Z", "lastTimestamp": "2024-05-10T11:00:00Z", "count": 1}),
        ];
        let related = Related {
            events: Some(events),
            ..Default::default()
        };
        let text = describe(by_kind("Pod").unwrap(), &seed_pod(), &related, now());
        let want = "\
Name:             myblog
Namespace:        luffy
Priority:         0
Service Account:  default
Node:             k8s-slave-1/172.17.176.32
Start Time:       Fri, 10 May 2024 11:00:01 +0000
Labels:           component=myblog
Annotations:      <none>
Status:           Running
IP:               10.244.1.5
IPs:
  IP:  10.244.1.5
Containers:
  myblog:
    Container ID:   kelp://c1
    Image:          192.168.136.10:5000/myblog:v1
    Image ID:       sha256:aa
    Port:           8002/TCP
    Host Port:      0/TCP
    State:          Running
      Started:      Fri, 10 May 2024 11:00:05 +0000
    Ready:          True
    Restart Count:  0
    Environment:
      MYSQL_HOST:    127.0.0.1
      MYSQL_PASSWD:  123456
    Mounts:          <none>
  mysql:
    Container ID:   kelp://c2
    Image:          192.168.136.10:5000/mysql:5.7-utf8
    Image ID:       sha256:bb
    Port:           3306/TCP
    Host Port:      0/TCP
    State:          Running
      Started:      Fri, 10 May 2024 11:01:00 +0000
    Last State:     Terminated
      Reason:       Error
      Exit Code:    1
      Started:      Fri, 10 May 2024 11:00:05 +0000
      Finished:     Fri, 10 May 2024 11:00:59 +0000
    Ready:          True
    Restart Count:  1
    Environment:
      MYSQL_ROOT_PASSWORD:  123456
      MYSQL_DATABASE:       myblog
    Mounts:                 <none>
Conditions:
  Type              Status
  Initialized       True 
  Ready             True 
  ContainersReady   True 
  PodScheduled      True 
Volumes:            <none>
QoS Class:          BestEffort
Node-Selectors:     <none>
Tolerations:        <none>
Events:
  Type    Reason     Age   From               Message
  ----    ------     ----  ----               -------
  Normal  Scheduled  60m   default-scheduler  Successfully assigned luffy/myblog to k8s-slave-1
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn describe_without_events_says_none() {
        let mut pod = seed_pod();
        pod["status"] = json!({"phase": "Pending"});
        pod["spec"].as_object_mut().unwrap().remove("nodeName");
        let related = Related {
            events: Some(vec![]),
            ..Default::default()
        };
        let text = describe(by_kind("Pod").unwrap(), &pod, &related, now());
        assert!(text.contains("Node:             <none>\n"), "{text}");
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("Events:  ") && last.ends_with(" <none>"),
            "{text}"
        );
        assert!(!text.contains("Container ID"), "{text}");
    }

    #[test]
    fn secrets_show_sizes_not_values() {
        let s = json!({"metadata": {"name": "db", "namespace": "default"}, "type": "Opaque",
            "data": {"password": "MTIzNDU2"}});
        let text = describe(by_kind("Secret").unwrap(), &s, &Related::default(), now());
        assert!(text.contains("password:  6 bytes"), "{text}");
        assert!(!text.contains("MTIzNDU2"), "{text}");
    }

    #[test]
    fn generic_describer_prints_every_field() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u", "creationTimestamp": "2024-05-10T11:00:00Z"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let text = describe(
            by_kind("Deployment").unwrap(),
            &d,
            &Related {
                events: Some(vec![]),
                ..Default::default()
            },
            now(),
        );
        assert!(text.starts_with("Name:         web\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\nAPI Version:  apps/v1\nKind:         Deployment\nMetadata:\n  Creation Timestamp:  2024-05-10T11:00:00Z\n  UID:                 u\nSpec:\n  Replicas:  2\n"), "{text}");
        assert!(
            text.contains("      Containers:\n        Image:  nginx\n        Name:   web\n"),
            "{text}"
        );
    }

    #[test]
    fn labels_and_helpers() {
        assert_eq!(smart_label("creationTimestamp"), "Creation Timestamp");
        assert_eq!(smart_label("apiVersion"), "API Version");
        assert_eq!(smart_label("uid"), "UID");
        assert_eq!(smart_label("podIP"), "Pod IP");
        assert_eq!(
            smart_label("app.kubernetes.io/name"),
            "app.kubernetes.io/name"
        );
        assert_eq!(
            describe_probe(&json!({"httpGet": {"path": "/healthz", "port": 8080}})),
            "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"
        );
        assert_eq!(
            describe_probe(&json!({"exec": {"command": ["cat", "/tmp/ok"]}, "periodSeconds": 5})),
            "exec [cat /tmp/ok] delay=0s timeout=1s period=5s #success=1 #failure=3"
        );
        let burst = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "100m"}}}]}});
        assert_eq!(qos_class(&burst), "Burstable");
        let guaranteed = json!({"spec": {"containers": [{"resources": {
            "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{}]}})),
            "BestEffort"
        );
        assert_eq!(format_labels(&BTreeMap::new()), "<none>");
    }
}
