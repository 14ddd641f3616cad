use serde_json::json;

use super::*;

fn node(name: &str, cpu: &str, memory: &str, labels: Value, taints: Value) -> NodeView {
    NodeView::from_object(&json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
}

fn pod(name: &str, cpu: &str, memory: &str, spec: Value) -> PodView {
    let mut spec = spec;
    spec["containers"] = json!([{
        "name": "c",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }]);
    PodView::from_object(&json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}))
}

fn placed(result: &[(String, Placement)]) -> Vec<String> {
    result
        .iter()
        .map(|(_, p)| match p {
            Placement::Node(n) => n.clone(),
            Placement::Unschedulable(m) => m.clone(),
        })
        .collect()
}

#[test]
fn views_read_the_objects() {
    let n = node(
        "a",
        "4",
        "8Gi",
        json!({"zone": "x"}),
        json!([{"key": "k", "value": "v", "effect": "NoSchedule"}]),
    );
    assert_eq!(
        n.allocatable,
        Resources {
            cpu_millis: 4000,
            memory: 8 << 30,
            pods: 110
        }
    );
    assert!(n.ready && !n.unschedulable);
    assert_eq!(
        n.taints,
        vec![("k".into(), "v".into(), "NoSchedule".into())]
    );
    let p = PodView::from_object(&json!({
        "metadata": {"name": "p", "ownerReferences": [{"uid": "rs-1", "controller": true}]},
        "spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}},
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
        },
    }));
    assert_eq!(p.key, "default/p");
    assert_eq!(
        p.requests.cpu_millis, 1000,
        "the largest init container counts"
    );
    assert_eq!(p.requests.memory, 64 << 20);
    assert_eq!(p.host_ports, vec![("TCP".into(), 8080)]);
    assert_eq!(p.owner.as_deref(), Some("rs-1"));
}

#[test]
fn least_allocated_node_wins_and_bound_pods_count() {
    let nodes = [
        node("a", "4", "4Gi", json!({}), json!([])),
        node("b", "4", "4Gi", json!({}), json!([])),
    ];
    let mut bound = pod("old", "3", "3Gi", json!({}));
    bound.node_name = Some("a".into());
    let pods = [bound, pod("new", "1", "1Gi", json!({}))];
    assert_eq!(placed(&schedule(&pods, &nodes)), ["b"]);
    // Equal nodes: the first by name, deterministically.
    let pods = [pod("x", "1", "1Gi", json!({}))];
    assert_eq!(placed(&schedule(&pods, &nodes)), ["a"]);
}

#[test]
fn placements_made_in_one_pass_count_for_the_next_pods() {
    let nodes = [
        node("a", "2", "2Gi", json!({}), json!([])),
        node("b", "2", "2Gi", json!({}), json!([])),
    ];
    let pods: Vec<PodView> = (0..4)
        .map(|i| pod(&format!("p{i}"), "1", "1Gi", json!({})))
        .collect();
    assert_eq!(placed(&schedule(&pods, &nodes)), ["a", "b", "a", "b"]);
    let fifth = [pods.clone(), vec![pod("p4", "1", "1Gi", json!({}))]].concat();
    assert_eq!(
        placed(&schedule(&fifth, &nodes))[4],
        "0/2 nodes are available: 2 Insufficient cpu."
    );
}

#[test]
fn pods_of_one_owner_spread() {
    let nodes = [
        node("a", "8", "8Gi", json!({}), json!([])),
        node("b", "4", "4Gi", json!({}), json!([])),
        node("c", "4", "4Gi", json!({}), json!([])),
    ];
    let replica = |i: u32| {
        let mut p = pod(&format!("r{i}"), "100m", "64Mi", json!({}));
        p.owner = Some("rs".into());
        p
    };
    let pods: Vec<PodView> = (0..3).map(replica).collect();
    let mut on: Vec<String> = placed(&schedule(&pods, &nodes));
    on.sort();
    assert_eq!(
        on,
        ["a", "b", "c"],
        "one replica per node, though a is the emptiest"
    );
}

#[test]
fn filters_and_the_unschedulable_message() {
    let nodes = [
        node("small-1", "1", "512Mi", json!({"disk": "ssd"}), json!([])),
        node("small-2", "1", "512Mi", json!({"disk": "ssd"}), json!([])),
        node("big", "8", "16Gi", json!({"disk": "hdd"}), json!([])),
    ];
    let p = pod(
        "db",
        "500m",
        "1Gi",
        json!({"nodeSelector": {"disk": "ssd"}}),
    );
    assert_eq!(
        placed(&schedule(&[p], &nodes)),
        ["0/3 nodes are available: 2 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector."]
    );
    let huge = pod("huge", "1", "64Gi", json!({}));
    assert_eq!(
        placed(&schedule(&[huge], &nodes)),
        ["0/3 nodes are available: 3 Insufficient memory."]
    );
    let fits = pod(
        "web",
        "100m",
        "64Mi",
        json!({"nodeSelector": {"disk": "hdd"}}),
    );
    assert_eq!(placed(&schedule(&[fits], &nodes)), ["big"]);
}

#[test]
fn taints_tolerations_readiness_cordon_and_ports() {
    let tainted = node(
        "edge",
        "4",
        "4Gi",
        json!({}),
        json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]),
    );
    let mut cordoned = node("cordoned", "4", "4Gi", json!({}), json!([]));
    cordoned.unschedulable = true;
    let mut down = node("down", "4", "4Gi", json!({}), json!([]));
    down.ready = false;
    let nodes = [tainted, cordoned, down];
    let plain = pod("p", "100m", "64Mi", json!({}));
    assert_eq!(
        placed(&schedule(&[plain], &nodes)),
        ["0/3 nodes are available: 1 node(s) had untolerated taint, 1 node(s) were not ready, 1 node(s) were unschedulable."]
    );
    let tolerant = pod(
        "t",
        "100m",
        "64Mi",
        json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]}),
    );
    assert_eq!(placed(&schedule(&[tolerant], &nodes)), ["edge"]);
    let everything = pod(
        "e",
        "100m",
        "64Mi",
        json!({"tolerations": [{"operator": "Exists"}]}),
    );
    assert_eq!(placed(&schedule(&[everything], &nodes)), ["edge"]);

    // Host ports: the second pod asking for 8080 has to go elsewhere, or nowhere.
    let one = [node("a", "4", "4Gi", json!({}), json!([]))];
    let with_port = |name: &str| {
        PodView::from_object(&json!({"metadata": {"name": name}, "spec": {"containers": [
            {"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}))
    };
    assert_eq!(
        placed(&schedule(&[with_port("x"), with_port("y")], &one)),
        ["a", "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."]
    );
}
