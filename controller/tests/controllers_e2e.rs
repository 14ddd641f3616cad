//! End to end through a real `kelp server` (no agents): the scheduler's task, node taints,
//! the ReplicaSet controller, the garbage collector and a `kill -9` in the middle of a
//! scale-up. Nodes are API objects here, their status written as an agent's would be; the
//! same controllers against real agents on three network-namespace hosts are in
//! `agent/tests/scheduler_e2e.rs`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{eventually, text, Http, Server};
use serde_json::{json, Value};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--node-grace", "10m", "--controller-resync", "1s"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A Node as an agent leaves it: Ready (or not), with allocatable resources and labels.
fn add_node(http: &Http, name: &str, ready: &str, memory: &str, labels: Value) {
    let created = http.post(
        "/api/v1/nodes",
        &json!({"metadata": {"name": name, "labels": labels}}),
    );
    assert_eq!(created.code, 201, "{}", created.text);
    set_ready(http, name, ready, memory);
    if ready == "True" {
        // Created without status, the node was tainted unreachable; the node controller lifts
        // the taint on its next pass. Until then the scheduler rightly passes the node by, and
        // a test that counts where pods land would race it.
        eventually(
            Duration::from_secs(10),
            "the node controller to untaint a Ready node",
            || {
                let node = http.get(&format!("/api/v1/nodes/{name}")).body;
                let taints = node["spec"]["taints"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                taints
                    .iter()
                    .all(|t| {
                        !t["key"]
                            .as_str()
                            .unwrap_or_default()
                            .starts_with("node.kubernetes.io/")
                    })
                    .then_some(())
            },
        );
    }
}

fn set_ready(http: &Http, name: &str, ready: &str, memory: &str) {
    let path = format!("/api/v1/nodes/{name}/status");
    for _ in 0..20 {
        let mut node = http.get(&format!("/api/v1/nodes/{name}")).body;
        node["status"] = json!({
            "conditions": [{"type": "Ready", "status": ready, "reason": "Test",
                            "lastTransitionTime": kelp_now()}],
            "capacity": {"cpu": "4", "memory": memory, "pods": "110"},
            "allocatable": {"cpu": "4", "memory": memory, "pods": "110"},
        });
        let put = http.put(&path, &node);
        if put.code == 200 {
            return;
        }
        assert_eq!(put.code, 409, "{}", put.text);
    }
    panic!("could not write node {name}'s status");
}

fn kelp_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn pods(http: &Http, namespace: &str) -> Vec<Value> {
    http.get(&format!("/api/v1/namespaces/{namespace}/pods"))
        .body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn active(pods: &[Value]) -> Vec<&Value> {
    pods.iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn node_of(pod: &Value) -> Option<String> {
    pod["spec"]["nodeName"].as_str().map(str::to_owned)
}

fn replicaset(name: &str, replicas: u32, extra_spec: Value) -> String {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox:1.36",
        "resources": {"requests": {"memory": "64Mi", "cpu": "100m"}}}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::to_string(&json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }))
    .unwrap()
}

fn apply(server: &Server, manifest: &str) {
    ok(&server.kelp_stdin(&["apply", "-f", "-"], Some(manifest)));
}

/// Waits until the set's active pods number `n`, and returns them.
fn wait_active(http: &Http, owner: &str, n: usize, bound: bool) -> Vec<Value> {
    eventually(
        Duration::from_secs(30),
        &format!("{n} active pods of {owner}"),
        || {
            let all = pods(http, "default");
            let mine: Vec<Value> = active(&all)
                .into_iter()
                .filter(|p| p["metadata"]["ownerReferences"][0]["name"] == owner)
                .cloned()
                .collect();
            (mine.len() == n && (!bound || mine.iter().all(|p| node_of(p).is_some())))
                .then_some(mine)
        },
    )
}

#[test]
fn replicaset_spreads_replaces_scales_and_its_deletion_reaches_the_pods() {
    let server = start(&[]);
    let http = server.http(true);
    for n in ["n1", "n2", "n3"] {
        add_node(&http, n, "True", "8Gi", json!({}));
    }
    apply(&server, &replicaset("web", 3, json!({})));
    let three = wait_active(&http, "web", 3, true);
    let nodes: std::collections::BTreeSet<String> = three.iter().filter_map(node_of).collect();
    assert_eq!(nodes.len(), 3, "one replica per node: {three:#?}");
    for pod in &three {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["controller"], true);
        let scheduled = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(scheduled["status"], "True");
    }
    let rs = eventually(Duration::from_secs(10), "status.replicas 3", || {
        let rs = http
            .get("/apis/apps/v1/namespaces/default/replicasets/web")
            .body;
        (rs["status"]["replicas"] == 3).then_some(rs)
    });
    assert_eq!(rs["status"]["observedGeneration"], 1);

    // A deleted pod is replaced.
    let victim = three[0]["metadata"]["name"].as_str().unwrap().to_owned();
    ok(&server.kelp(&["delete", "pod", &victim, "--grace-period=0", "--force"]));
    let after = wait_active(&http, "web", 3, true);
    assert!(after
        .iter()
        .all(|p| p["metadata"]["name"] != victim.as_str()));

    // Scaled up and down (`spec.replicas` patched as `kelp scale` does).
    let patch = |n: u32| {
        let r = http.patch(
            "/apis/apps/v1/namespaces/default/replicasets/web",
            &json!({"spec": {"replicas": n}}),
        );
        assert_eq!(r.code, 200, "{}", r.text);
    };
    patch(5);
    wait_active(&http, "web", 5, true);
    patch(2);
    wait_active(&http, "web", 2, true);
    // The three extra pods were bound: they are Terminating until their node stops them.
    let terminating = pods(&http, "default")
        .into_iter()
        .filter(|p| !p["metadata"]["deletionTimestamp"].is_null())
        .count();
    assert_eq!(terminating, 3);

    // Deleting the ReplicaSet (background) deletes its pods.
    ok(&server.kelp(&["delete", "rs", "web"]));
    eventually(Duration::from_secs(20), "every pod of web deleted", || {
        active(&pods(&http, "default")).is_empty().then_some(())
    });
}

#[test]
fn unschedulable_pods_say_why_and_selectors_taints_and_cordons_steer() {
    let server = start(&[]);
    let http = server.http(true);
    add_node(&http, "n1", "True", "2Gi", json!({"disk": "ssd"}));
    add_node(&http, "n2", "True", "2Gi", json!({"disk": "hdd"}));
    add_node(&http, "n3", "True", "2Gi", json!({"disk": "hdd"}));

    let big = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
        "resources": {"requests": {"memory": "100Gi"}}}]}}"#;
    apply(&server, big);
    let message = "0/3 nodes are available: 3 Insufficient memory.";
    eventually(Duration::from_secs(20), "big unschedulable", || {
        let pod = http.get("/api/v1/namespaces/default/pods/big").body;
        let c = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        (c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == message)
            .then_some(())
    });
    let described = ok(&server.kelp(&["describe", "pod", "big"]));
    assert!(described.contains("FailedScheduling"), "{described}");
    assert!(described.contains(message), "{described}");
    assert!(http.get("/api/v1/namespaces/default/pods/big").body["spec"]["nodeName"].is_null());

    // A node that fits joins: the pending pod goes there.
    add_node(&http, "n4", "True", "200Gi", json!({}));
    eventually(Duration::from_secs(20), "big bound to n4", || {
        let pod = http.get("/api/v1/namespaces/default/pods/big").body;
        (node_of(&pod).as_deref() == Some("n4")).then_some(())
    });

    // nodeSelector: only n1 has an SSD.
    let ssd = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ssd"},
        "spec": {"nodeSelector": {"disk": "ssd"},
        "containers": [{"name": "c", "image": "busybox:1.36"}]}}"#;
    apply(&server, ssd);
    eventually(Duration::from_secs(20), "ssd bound to n1", || {
        let pod = http.get("/api/v1/namespaces/default/pods/ssd").body;
        (node_of(&pod).as_deref() == Some("n1")).then_some(())
    });

    // A taint keeps pods away unless they tolerate it; a cordon keeps everything away.
    let taint = http.patch(
        "/api/v1/nodes/n2",
        &json!({"spec": {"taints": [{"key": "dedicated", "value": "edge", "effect": "NoSchedule"}]}}),
    );
    assert_eq!(taint.code, 200, "{}", taint.text);
    let cordon = http.patch(
        "/api/v1/nodes/n3",
        &json!({"spec": {"unschedulable": true}}),
    );
    assert_eq!(cordon.code, 200, "{}", cordon.text);
    eventually(Duration::from_secs(10), "n3 tainted unschedulable", || {
        let n3 = http.get("/api/v1/nodes/n3").body;
        n3["spec"]["taints"]
            .as_array()?
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unschedulable" && t["effect"] == "NoSchedule")
            .then_some(())
    });
    apply(
        &server,
        &replicaset(
            "plain",
            4,
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]}}}}),
        ),
    );
    let plain = wait_active(&http, "plain", 4, true);
    let placed: Vec<String> = plain.iter().filter_map(node_of).collect();
    assert!(placed.iter().all(|n| n == "n1"), "{placed:?}");
    apply(
        &server,
        &replicaset(
            "edge",
            2,
            json!({"nodeSelector": {"disk": "hdd"},
                   "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}]}),
        ),
    );
    let edge = wait_active(&http, "edge", 2, true);
    let placed: Vec<String> = edge.iter().filter_map(node_of).collect();
    assert_eq!(placed, ["n2", "n2"], "tolerated taint on n2; n3 cordoned");

    // Nothing fits the next one: the message counts every node's reason.
    apply(
        &server,
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
        "spec": {"nodeSelector": {"disk": "hdd"}, "containers": [{"name": "c", "image": "busybox:1.36"}]}}"#,
    );
    eventually(Duration::from_secs(20), "nowhere unschedulable", || {
        let pod = http.get("/api/v1/namespaces/default/pods/nowhere").body;
        let c = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        let m = c["message"].as_str()?.to_owned();
        (m.starts_with("0/4 nodes are available: ")
            && m.contains("2 node(s) didn't match Pod's node affinity/selector")
            && m.contains("1 node(s) had untolerated taint")
            && m.contains("1 node(s) were unschedulable"))
        .then_some(())
    });
}

#[test]
fn node_readiness_becomes_no_schedule_taints() {
    let server = start(&[]);
    let http = server.http(true);
    add_node(&http, "down", "False", "1Gi", json!({}));
    add_node(&http, "gone", "Unknown", "1Gi", json!({}));
    add_node(&http, "up", "True", "1Gi", json!({}));
    let taints = |name: &str| -> BTreeMap<String, String> {
        http.get(&format!("/api/v1/nodes/{name}")).body["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap().to_owned(),
                    t["effect"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    eventually(Duration::from_secs(10), "taints", || {
        (taints("down")
            .get("node.kubernetes.io/not-ready")
            .map(String::as_str)
            == Some("NoSchedule")
            && taints("gone")
                .get("node.kubernetes.io/unreachable")
                .map(String::as_str)
                == Some("NoSchedule")
            && taints("up").is_empty())
        .then_some(())
    });
    set_ready(&http, "gone", "True", "1Gi");
    eventually(Duration::from_secs(10), "gone's taint removed", || {
        taints("gone").is_empty().then_some(())
    });
}

#[test]
fn foreground_and_orphan_deletion() {
    let server = start(&[]);
    let http = server.http(true);
    // No node: the pods stay unbound, so their own deletion does not wait on a node.
    apply(&server, &replicaset("fg", 2, json!({})));
    apply(&server, &replicaset("orph", 2, json!({})));
    wait_active(&http, "fg", 2, false);
    let orphans = wait_active(&http, "orph", 2, false);

    ok(&server.kelp(&["delete", "rs", "orph", "--cascade=orphan"]));
    eventually(Duration::from_secs(20), "orph gone, pods kept", || {
        let gone = http
            .get("/apis/apps/v1/namespaces/default/replicasets/orph")
            .code
            == 404;
        let kept: Vec<Value> = orphans
            .iter()
            .map(|p| {
                http.get(&format!(
                    "/api/v1/namespaces/default/pods/{}",
                    p["metadata"]["name"].as_str().unwrap()
                ))
                .body
            })
            .collect();
        (gone
            && kept.iter().all(|p| {
                p["metadata"]["name"].is_string() && p["metadata"]["ownerReferences"].is_null()
            }))
        .then_some(())
    });

    let deleted = http.request(
        "DELETE",
        "/apis/apps/v1/namespaces/default/replicasets/fg",
        Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"})),
        "application/json",
    );
    assert_eq!(deleted.code, 200, "{}", deleted.text);
    assert!(deleted.body["metadata"]["finalizers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "foregroundDeletion"));
    eventually(Duration::from_secs(20), "fg and its pods gone", || {
        let gone = http
            .get("/apis/apps/v1/namespaces/default/replicasets/fg")
            .code
            == 404;
        let left = pods(&http, "default")
            .iter()
            .filter(|p| p["metadata"]["ownerReferences"][0]["name"] == "fg")
            .count();
        (gone && left == 0).then_some(())
    });
    // The orphans are still there, and a new ReplicaSet of the same selector adopts them
    // instead of making new pods.
    assert_eq!(pods(&http, "default").len(), 2);
    apply(&server, &replicaset("orph", 2, json!({})));
    let adopted = wait_active(&http, "orph", 2, false);
    let names = |pods: &[Value]| -> std::collections::BTreeSet<String> {
        pods.iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&adopted), names(&orphans));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        pods(&http, "default").len(),
        2,
        "no pod made besides the adopted"
    );

    let bad = http.request(
        "DELETE",
        "/api/v1/namespaces/default/pods/x?propagationPolicy=Sideways",
        None,
        "application/json",
    );
    assert_eq!(bad.code, 400, "{}", bad.text);
    assert!(bad.text.contains("propagationPolicy"), "{}", bad.text);
}

#[test]
fn kill_9_while_scaling_up_makes_exactly_the_replicas_asked_for() {
    let mut server = start(&[]);
    let http = server.http(true);
    for n in ["n1", "n2", "n3"] {
        add_node(&http, n, "True", "64Gi", json!({}));
    }
    apply(&server, &replicaset("web", 3, json!({})));
    wait_active(&http, "web", 3, true);
    let mut target = 3;
    for delay_ms in [0u64, 20, 60] {
        target += 7;
        let http = server.http(true);
        let r = http.patch(
            "/apis/apps/v1/namespaces/default/replicasets/web",
            &json!({"spec": {"replicas": target}}),
        );
        assert_eq!(r.code, 200, "{}", r.text);
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.kill9_and_restart();
        let http = server.http(true);
        wait_active(&http, "web", target, true);
        // And no more come later.
        std::thread::sleep(Duration::from_millis(1500));
        let count = active(&pods(&http, "default")).len();
        assert_eq!(
            count, target,
            "after kill -9 {delay_ms} ms into the scale-up"
        );
    }
}

#[test]
fn eviction_only_when_asked_for() {
    for (flag, evicts) in [(None, false), (Some("2s"), true)] {
        let mut extra = vec![];
        if let Some(timeout) = flag {
            extra = vec!["--pod-eviction-timeout", timeout];
        }
        let server = start(&extra);
        let http = server.http(true);
        for n in ["n1", "n2"] {
            add_node(&http, n, "True", "8Gi", json!({}));
        }
        apply(&server, &replicaset("web", 2, json!({})));
        let before = wait_active(&http, "web", 2, true);
        let on_n1: Vec<String> = before
            .iter()
            .filter(|p| node_of(p).as_deref() == Some("n1"))
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(on_n1.len(), 1, "{before:#?}");
        set_ready(&http, "n1", "Unknown", "8Gi");
        if evicts {
            eventually(Duration::from_secs(20), "a replacement on n2", || {
                let all = pods(&http, "default");
                let old = all
                    .iter()
                    .find(|p| p["metadata"]["name"] == on_n1[0].as_str())?;
                let replaced = active(&all)
                    .iter()
                    .filter(|p| node_of(p).as_deref() == Some("n2"))
                    .count()
                    == 2;
                (!old["metadata"]["deletionTimestamp"].is_null() && replaced).then_some(())
            });
        } else {
            std::thread::sleep(Duration::from_secs(4));
            let all = pods(&http, "default");
            let old = all
                .iter()
                .find(|p| p["metadata"]["name"] == on_n1[0].as_str())
                .expect("the pod of the lost node is still there");
            assert!(old["metadata"]["deletionTimestamp"].is_null());
            assert_eq!(active(&all).len(), 2);
        }
    }
}
