//! End to end: `kelp cordon`, `uncordon`, `drain`, `scale` and the node and replica set
//! tables, against a real `kelp server` (no agents: Nodes come from `kelp apply`, and pods
//! bound to them never run, so a deleted one stays Terminating unless its grace is 0).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{text, Server};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: &std::process::Output) -> (String, String) {
    assert!(!o.status.success(), "expected failure:\n{}", text(o));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A table as rows of header → cell, cut at the header's column starts (cells may hold
/// spaces, as an OS image does).
fn table(out: &str) -> Vec<HashMap<String, String>> {
    let mut lines = out.lines();
    let header = lines.next().expect("a header line");
    // Columns are at least two spaces apart; a header such as `NOMINATED NODE` has one.
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header[..i].ends_with("  ")))
        .map(|(i, _)| i)
        .collect();
    let names: Vec<String> = starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let end = starts.get(n + 1).copied().unwrap_or(header.len());
            header[s..end].trim().to_string()
        })
        .collect();
    lines
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(n, &s)| {
                    let end = starts
                        .get(n + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    let cell = line.get(s.min(line.len())..end).unwrap_or("").trim();
                    (names[n].clone(), cell.to_string())
                })
                .collect()
        })
        .collect()
}

fn header(out: &str) -> Vec<&str> {
    out.lines().next().unwrap().split_whitespace().collect()
}

fn row<'a>(rows: &'a [HashMap<String, String>], name: &str) -> &'a HashMap<String, String> {
    rows.iter()
        .find(|r| r["NAME"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {rows:?}"))
}

fn node(name: &str, ready: Option<&str>) -> String {
    let conditions = match ready {
        Some(s) => format!("  conditions:\n  - type: Ready\n    status: \"{s}\"\n"),
        None => String::new(),
    };
    format!(
        "apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
    node-role.kubernetes.io/edge: \"\"
status:
{conditions}  addresses:
  - type: InternalIP
    address: 10.0.0.11
  - type: Hostname
    address: {name}
  nodeInfo:
    kubeletVersion: kelp-0.1.0
    osImage: Debian GNU/Linux 12 (bookworm)
    kernelVersion: 6.6.31+rpt-rpi-2712
    containerRuntimeVersion: kelp://0.1.0
    operatingSystem: linux
    architecture: arm64
"
    )
}

/// A pod bound to `node`; `extra` is appended to its metadata (owner references,
/// annotations) and `volumes` to its spec.
fn pod(name: &str, node: &str, metadata: &str, volumes: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
{metadata}spec:
  nodeName: {node}
  containers:
  - name: c
    image: busybox:1.36
{volumes}"
    )
}

fn owned_by(kind: &str, name: &str) -> String {
    format!(
        "  ownerReferences:
  - apiVersion: apps/v1
    kind: {kind}
    name: {name}
    uid: 00000000-0000-0000-0000-000000000001
    controller: true
"
    )
}

const REPLICA_SET: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
";

const DAEMON_SET: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: default
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: busybox:1.36
";

fn apply(server: &Server, manifest: &str) {
    ok(&server.kelp_stdin(&["apply", "-f", "-"], Some(manifest)));
}

fn pod_names(server: &Server) -> Vec<String> {
    let list = server.http(true).get("/api/v1/namespaces/default/pods");
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cordon_and_uncordon_set_unschedulable_and_show_in_get_nodes() {
    let server = Server::start(&[]);
    apply(&server, &node("pi-1", Some("True")));

    assert_eq!(
        ok(&server.kelp(&["cordon", "pi-1"])),
        "node/pi-1 cordoned\n"
    );
    assert_eq!(
        ok(&server.kelp(&["cordon", "pi-1"])),
        "node/pi-1 already cordoned\n"
    );
    let live = server.http(true).get("/api/v1/nodes/pi-1");
    assert_eq!(live.body["spec"]["unschedulable"], true);
    let nodes = table(&ok(&server.kelp(&["get", "nodes"])));
    assert_eq!(row(&nodes, "pi-1")["STATUS"], "Ready,SchedulingDisabled");

    assert_eq!(
        ok(&server.kelp(&["uncordon", "pi-1"])),
        "node/pi-1 uncordoned\n"
    );
    assert_eq!(
        ok(&server.kelp(&["uncordon", "pi-1"])),
        "node/pi-1 already uncordoned\n"
    );
    let live = server.http(true).get("/api/v1/nodes/pi-1");
    assert_eq!(
        live.body["spec"].get("unschedulable"),
        None,
        "{}",
        live.text
    );
    let nodes = table(&ok(&server.kelp(&["get", "nodes"])));
    assert_eq!(row(&nodes, "pi-1")["STATUS"], "Ready");

    let (_, err) = fails(&server.kelp(&["cordon", "nope"]));
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): nodes "nope" not found"#
    );
    let (_, err) = fails(&server.kelp(&["drain", "nope"]));
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): nodes "nope" not found"#
    );
}

#[test]
fn get_nodes_status_and_wide_columns_like_kubectl() {
    let server = Server::start(&[]);
    apply(&server, &node("pi-1", Some("True")));
    apply(&server, &node("pi-2", Some("False")));
    apply(&server, &node("pi-3", None));
    ok(&server.kelp(&["cordon", "pi-2"]));

    let out = ok(&server.kelp(&["get", "nodes"]));
    assert_eq!(header(&out), ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let rows = table(&out);
    assert_eq!(row(&rows, "pi-1")["STATUS"], "Ready");
    assert_eq!(row(&rows, "pi-2")["STATUS"], "NotReady,SchedulingDisabled");
    assert_eq!(row(&rows, "pi-3")["STATUS"], "Unknown");
    assert_eq!(row(&rows, "pi-1")["ROLES"], "edge");
    assert_eq!(row(&rows, "pi-1")["VERSION"], "kelp-0.1.0");

    let out = ok(&server.kelp(&["get", "nodes", "-o", "wide"]));
    assert_eq!(
        header(&out),
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    let rows = table(&out);
    let pi1 = row(&rows, "pi-1");
    assert_eq!(pi1["INTERNAL-IP"], "10.0.0.11");
    assert_eq!(pi1["EXTERNAL-IP"], "<none>");
    assert_eq!(pi1["OS-IMAGE"], "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(pi1["KERNEL-VERSION"], "6.6.31+rpt-rpi-2712");
    assert_eq!(pi1["CONTAINER-RUNTIME"], "kelp://0.1.0");
}

#[test]
fn scale_patches_replicas_with_kubectl_preconditions_and_get_rs_shows_them() {
    let server = Server::start(&[]);
    apply(&server, REPLICA_SET);
    let http = server.http(true);
    let replicas = || {
        http.get("/apis/apps/v1/namespaces/default/replicasets/web")
            .body["spec"]["replicas"]
            .clone()
    };

    assert_eq!(
        ok(&server.kelp(&["scale", "rs", "web", "--replicas=3"])),
        "replicaset.apps/web scaled\n"
    );
    assert_eq!(replicas(), 3);

    let (_, err) = fails(&server.kelp(&[
        "scale",
        "replicaset/web",
        "--current-replicas=2",
        "--replicas=5",
    ]));
    assert_eq!(err.trim(), "error: Expected replicas to be 2, was 3");
    assert_eq!(replicas(), 3, "a failed precondition changes nothing");
    assert_eq!(
        ok(&server.kelp(&[
            "scale",
            "replicaset/web",
            "--current-replicas=3",
            "--replicas=1"
        ])),
        "replicaset.apps/web scaled\n"
    );
    assert_eq!(replicas(), 1);

    // The ReplicaSet controller brings CURRENT to DESIRED (no node: none is ready).
    let out = common::eventually(
        std::time::Duration::from_secs(20),
        "get rs showing 1 current replica",
        || {
            let out = ok(&server.kelp(&["get", "rs"]));
            let web = table(&out).remove(0);
            (web["CURRENT"] == "1").then_some(out)
        },
    );
    assert_eq!(header(&out), ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    let web = table(&out).remove(0);
    assert_eq!(
        (
            &web["NAME"][..],
            &web["DESIRED"][..],
            &web["CURRENT"][..],
            &web["READY"][..]
        ),
        ("web", "1", "1", "0")
    );
    let out = ok(&server.kelp(&["get", "rs", "-o", "wide"]));
    assert_eq!(
        header(&out),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let web = table(&out).remove(0);
    assert_eq!(
        (
            &web["CONTAINERS"][..],
            &web["IMAGES"][..],
            &web["SELECTOR"][..]
        ),
        ("web", "nginx:1.27", "app=web")
    );

    let (_, err) = fails(&server.kelp(&["scale", "rs", "nope", "--replicas=1"]));
    assert!(
        err.starts_with("Error from server (NotFound): replicasets")
            && err.contains(r#""nope" not found"#),
        "{err}"
    );
    let (_, err) = fails(&server.kelp(&["scale", "pod", "x", "--replicas=1"]));
    assert!(err.contains("cannot scale pods"), "{err}");
}

#[test]
fn drain_refuses_like_kubectl_then_deletes_and_waits() {
    let server = Server::start(&[]);
    apply(&server, &node("pi-1", Some("True")));
    apply(&server, &node("pi-2", Some("True")));
    // No replicas of its own: the ReplicaSet controller would add pods to the node.
    apply(&server, &REPLICA_SET.replace("replicas: 2", "replicas: 0"));
    apply(&server, DAEMON_SET);
    apply(
        &server,
        &pod("web-1", "pi-1", &owned_by("ReplicaSet", "web"), ""),
    );
    apply(&server, &pod("bare", "pi-1", "", ""));
    apply(
        &server,
        &pod("agent-x", "pi-1", &owned_by("DaemonSet", "agent"), ""),
    );
    apply(
        &server,
        &pod(
            "static-pi-1",
            "pi-1",
            "  annotations:\n    kubernetes.io/config.mirror: abc\n",
            "",
        ),
    );
    apply(
        &server,
        &pod(
            "cache",
            "pi-1",
            &owned_by("ReplicaSet", "web"),
            "  volumes:\n  - name: tmp\n    emptyDir: {}\n",
        ),
    );
    apply(&server, &pod("elsewhere", "pi-2", "", ""));
    let all = pod_names(&server);

    // Without flags: cordoned, nothing deleted, every refusal named.
    let (out, err) = fails(&server.kelp(&["drain", "pi-1", "--grace-period", "0"]));
    assert_eq!(out, "node/pi-1 cordoned\n");
    let ds =
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/agent-x";
    let bare = "cannot delete Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet (use --force to override): default/bare";
    let local = "cannot delete Pods with local storage (use --delete-emptydir-data to override): default/cache";
    // (The API may add a `Warning:` line about Node fields first.)
    assert!(
        err.contains("error: unable to drain node \"pi-1\" due to error: ["),
        "{err}"
    );
    assert!(
        err.contains(", continuing command...\nThere are pending nodes to be drained:\n pi-1\n"),
        "{err}"
    );
    for line in [ds, bare, local] {
        assert!(err.lines().any(|l| l == line), "{line} in\n{err}");
    }
    assert_eq!(pod_names(&server), all);

    // One refusal left: kubectl's single-error form.
    let (_, err) = fails(&server.kelp(&[
        "drain",
        "pi-1",
        "--grace-period=0",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
    ]));
    assert!(err.ends_with(&format!("\nerror: {bare}\n")), "{err}");
    assert_eq!(pod_names(&server), all);

    // With every override: the DaemonSet's pod and the mirror pod stay, the rest go.
    let o = server.kelp(&[
        "drain",
        "pi-1",
        "--grace-period=0",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--timeout=30s",
    ]);
    let out = ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.starts_with("node/pi-1 already cordoned\n"), "{out}");
    assert!(out.ends_with("node/pi-1 drained\n"), "{out}");
    for name in ["web-1", "bare", "cache"] {
        assert!(
            out.contains(&format!("evicting pod default/{name}\n")),
            "{out}"
        );
        assert!(out.contains(&format!("pod/{name} evicted\n")), "{out}");
    }
    assert!(
        !out.contains("agent-x") && !out.contains("static-pi-1"),
        "{out}"
    );
    assert!(
        err.contains("ignoring DaemonSet-managed Pods: default/agent-x"),
        "{err}"
    );
    assert!(err.contains("deleting Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet: default/bare"), "{err}");
    let mut left = pod_names(&server);
    left.sort();
    assert_eq!(left, ["agent-x", "elsewhere", "static-pi-1"]);
    let pi1 = server.http(true).get("/api/v1/nodes/pi-1");
    assert_eq!(pi1.body["spec"]["unschedulable"], true);

    // Without a grace period of 0 the pod waits for its (absent) node: the timeout names it.
    let started = Instant::now();
    let (out, err) = fails(&server.kelp(&["drain", "pi-2", "--force", "--timeout", "2s"]));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(out.contains("evicting pod default/elsewhere\n"), "{out}");
    assert!(
        err.ends_with(
            "error: drain did not complete within 2s: pods still terminating: default/elsewhere\n"
        ),
        "{err}"
    );
    let elsewhere = server
        .http(true)
        .get("/api/v1/namespaces/default/pods/elsewhere");
    assert!(
        elsewhere.body["metadata"]["deletionTimestamp"].is_string(),
        "{}",
        elsewhere.text
    );

    // --pod-selector picks the pods: none of pi-2's match, so it drains at once.
    let o = server.kelp(&["drain", "pi-2", "--pod-selector", "app=none"]);
    assert_eq!(ok(&o), "node/pi-2 already cordoned\nnode/pi-2 drained\n");
}
