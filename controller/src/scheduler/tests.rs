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

/// The names of `nodes` that pass every filter for `pod`, nothing placed on them.
fn feasible(pod: &PodView, nodes: &[NodeView]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| misfit(pod, n, &Load::default()).is_none())
        .map(|n| n.name.clone())
        .collect()
}

fn required(terms: Value) -> PodView {
    pod(
        "aff",
        "100m",
        "64Mi",
        json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms},
        }}}),
    )
}

fn labelled() -> Vec<NodeView> {
    vec![
        node(
            "a",
            "4",
            "4Gi",
            json!({"zone": "a", "cores": "4"}),
            json!([]),
        ),
        node(
            "b",
            "4",
            "4Gi",
            json!({"zone": "b", "cores": "8"}),
            json!([]),
        ),
        node("c", "4", "4Gi", json!({"cores": "many"}), json!([])),
    ]
}

#[test]
fn required_node_affinity_operators() {
    let nodes = labelled();
    let with = |expressions: Value| {
        feasible(
            &required(json!([{"matchExpressions": expressions}])),
            &nodes,
        )
    };
    let expr = |key: &str, op: &str, values: Value| json!([{"key": key, "operator": op, "values": values}]);
    assert_eq!(with(expr("zone", "In", json!(["a", "b"]))), ["a", "b"]);
    assert_eq!(
        with(expr("zone", "NotIn", json!(["a"]))),
        ["b", "c"],
        "NotIn holds where the label is absent"
    );
    assert_eq!(with(expr("zone", "Exists", json!([]))), ["a", "b"]);
    assert_eq!(with(expr("zone", "DoesNotExist", json!([]))), ["c"]);
    assert_eq!(
        with(expr("cores", "Gt", json!(["4"]))),
        ["b"],
        "a label that is not an integer never compares"
    );
    assert_eq!(with(expr("cores", "Lt", json!(["8"]))), ["a"]);
    assert!(
        with(expr("cores", "Gt", json!(["4", "5"]))).is_empty(),
        "Gt takes exactly one value"
    );
    assert!(with(expr("zone", "Near", json!(["a"]))).is_empty());
    // Within a term, requirements are ANDed.
    assert_eq!(
        with(json!([
            {"key": "zone", "operator": "Exists"},
            {"key": "cores", "operator": "Gt", "values": ["5"]},
        ])),
        ["b"]
    );
}

#[test]
fn required_node_affinity_terms_or_and_fields() {
    let nodes = labelled();
    let terms = json!([
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]},
    ]);
    assert_eq!(
        feasible(&required(terms), &nodes),
        ["a", "c"],
        "terms are ORed"
    );
    let both = json!([{
        "matchExpressions": [{"key": "cores", "operator": "Exists"}],
        "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["a"]}],
    }]);
    assert_eq!(
        feasible(&required(both), &nodes),
        ["b", "c"],
        "expressions and fields of one term are ANDed"
    );
    let other_field = json!([{"matchFields": [{"key": "metadata.uid", "operator": "Exists"}]}]);
    assert!(feasible(&required(other_field), &nodes).is_empty());
    assert!(
        feasible(&required(json!([{}])), &nodes).is_empty(),
        "an empty term matches nothing"
    );
    // nodeSelector and affinity must both hold, with the selector's reason text.
    let mut p = required(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]));
    p.node_selector = [("cores".to_owned(), "4".to_owned())].into();
    assert_eq!(feasible(&p, &nodes), ["a"]);
    p.node_selector = [("cores".to_owned(), "many".to_owned())].into();
    assert_eq!(
        placed(&schedule(&[p], &nodes)),
        ["0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."]
    );
}

fn preferring(preferences: Value) -> PodView {
    pod(
        "pref",
        "100m",
        "64Mi",
        json!({"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": preferences,
        }}}),
    )
}

fn prefer(weight: i64, key: &str, value: &str) -> Value {
    json!({"weight": weight, "preference": {
        "matchExpressions": [{"key": key, "operator": "In", "values": [value]}],
    }})
}

#[test]
fn preferred_node_affinity_weights() {
    let nodes = labelled();
    let p = preferring(json!([prefer(10, "zone", "a"), prefer(50, "zone", "b")]));
    assert_eq!(p.preference(&nodes[0]), 10);
    assert_eq!(p.preference(&nodes[1]), 50);
    assert_eq!(p.preference(&nodes[2]), 0);
    assert_eq!(placed(&schedule(&[p], &nodes)), ["b"]);
    // Matching terms add up: 30 + 30 on a beats 50 on b.
    let p = preferring(json!([
        prefer(30, "zone", "a"),
        prefer(30, "cores", "4"),
        prefer(50, "zone", "b"),
    ]));
    assert_eq!(placed(&schedule(&[p], &nodes)), ["a"]);
    // Weights outside 1..=100 are dropped.
    let p = preferring(json!([prefer(0, "zone", "a"), prefer(101, "zone", "a")]));
    assert!(p.preferred_affinity.is_empty());
}

#[test]
fn preferred_affinity_is_normalised_against_least_allocated() {
    // The preferred node is half full: preference (weight 2, scaled to 100) outweighs the
    // least-allocated difference (at most 100).
    let nodes = [
        node("busy", "4", "4Gi", json!({"zone": "a"}), json!([])),
        node("idle", "4", "4Gi", json!({"zone": "b"}), json!([])),
    ];
    let mut bound = pod("old", "2", "2Gi", json!({}));
    bound.node_name = Some("busy".into());
    let p = preferring(json!([prefer(1, "zone", "a")]));
    assert_eq!(placed(&schedule(&[bound.clone(), p], &nodes)), ["busy"]);
    // Whatever the weight, the best match scores 100: weight 1 and weight 100 decide alike.
    let candidates = |preference: i64| {
        [
            Candidate {
                node: 0,
                least_allocated: 40,
                siblings: 0,
                preference,
            },
            Candidate {
                node: 1,
                least_allocated: 100,
                siblings: 0,
                preference: 0,
            },
        ]
    };
    assert_eq!(best(&candidates(1)), Some(0));
    assert_eq!(best(&candidates(100)), Some(0));
    assert_eq!(
        best(&candidates(0)),
        Some(1),
        "no preference: least allocated"
    );
    // A preference that matches no node leaves least allocated alone.
    let p = preferring(json!([prefer(100, "zone", "elsewhere")]));
    assert_eq!(placed(&schedule(&[bound, p], &nodes)), ["idle"]);
}

#[test]
fn spreading_is_normalised_and_weighs_more_than_free_space() {
    let candidate = |node, least_allocated, siblings| Candidate {
        node,
        least_allocated,
        siblings,
        preference: 0,
    };
    // The emptiest node already has 2 replicas, the others 1 and 0: 0, 50 and 100 points,
    // times 2.
    assert_eq!(
        best(&[
            candidate(0, 100, 2),
            candidate(1, 0, 0),
            candidate(2, 90, 1)
        ]),
        Some(1)
    );
    assert_eq!(best(&[candidate(0, 100, 2), candidate(2, 90, 1)]), Some(2));
    assert_eq!(best(&[]), None);
}

#[test]
fn pods_without_requests_spread_by_default_requests() {
    let nodes = [
        node("a", "4", "4Gi", json!({}), json!([])),
        node("b", "4", "4Gi", json!({}), json!([])),
    ];
    let bare = |name: &str| {
        PodView::from_object(
            &json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c"}]}}),
        )
    };
    let p = bare("x");
    assert_eq!(p.requests, Resources::default());
    assert_eq!(p.score_requests.cpu_millis, 100);
    assert_eq!(p.score_requests.memory, 200 << 20);
    assert_eq!(
        placed(&schedule(&[bare("x"), bare("y"), bare("z")], &nodes)),
        ["a", "b", "a"]
    );
}

#[test]
fn desired_bytes_are_the_trimmed_json() {
    let object = json!({
        "metadata": {"name": "p", "namespace": "default", "resourceVersion": "7",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running"},
    });
    let sent = json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    assert_eq!(
        PodView::from_object(&object).desired_bytes,
        serde_json::to_vec(&sent).unwrap().len()
    );
    let mut mirror = object.clone();
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "uid"});
    assert_eq!(
        PodView::from_object(&mirror).desired_bytes,
        0,
        "a mirror pod is not sent back to its node"
    );
    let n = node("a", "1", "1Gi", json!({}), json!([]));
    assert!(
        n.desired_bytes > 0 && n.desired_bytes < 100,
        "status is not sent"
    );
}

#[test]
fn desired_state_size_limit() {
    let mut nodes = [
        node("a", "4", "4Gi", json!({}), json!([])),
        node("b", "4", "4Gi", json!({}), json!([])),
    ];
    let big = |name: &str| {
        let mut p = pod(name, "100m", "64Mi", json!({}));
        p.desired_bytes = DESIRED_STATE_LIMIT / 2;
        p
    };
    // Half the limit each, plus the Node object: one per node.
    assert_eq!(
        placed(&schedule(&[big("x"), big("y"), big("z")], &nodes)),
        [
            "a",
            "b",
            "0/2 nodes are available: 2 node(s) had too large a desired state."
        ]
    );
    // Bound pods count, and a small pod still fits beside a big one.
    let mut bound = big("old");
    bound.node_name = Some("a".into());
    assert_eq!(
        placed(&schedule(
            &[bound.clone(), pod("small", "1", "1Gi", json!({}))],
            &nodes[..1]
        )),
        ["a"]
    );
    assert_eq!(
        placed(&schedule(&[bound, big("y")], &nodes[..1])),
        ["0/1 nodes are available: 1 node(s) had too large a desired state."]
    );
    nodes[1].desired_bytes = DESIRED_STATE_LIMIT;
    assert_eq!(
        placed(&schedule(
            &[pod("tiny", "1", "1Gi", json!({}))],
            &nodes[1..]
        )),
        ["0/1 nodes are available: 1 node(s) had too large a desired state."]
    );
}

#[test]
fn how_many_feasible_nodes_are_looked_for() {
    assert_eq!(feasible_to_find(0), 0);
    assert_eq!(feasible_to_find(99), 99);
    assert_eq!(feasible_to_find(100), 100);
    assert_eq!(feasible_to_find(150), 100, "49% of 150, raised to 100");
    assert_eq!(feasible_to_find(1_000), 420);
    assert_eq!(feasible_to_find(5_000), 500);
    assert_eq!(feasible_to_find(10_000), 500, "5% at least");
    assert_eq!(feasible_to_find(100_000), 5_000);
}

fn many(count: usize) -> Vec<NodeView> {
    let template = node("", "4", "4Gi", json!({}), json!([]));
    (0..count)
        .map(|i| NodeView {
            name: format!("n-{i:05}"),
            ..template.clone()
        })
        .collect()
}

#[test]
fn sampling_still_finds_the_only_feasible_node() {
    let mut nodes = many(10_000);
    nodes[7_777]
        .labels
        .insert("gpu".to_owned(), "yes".to_owned());
    let picky = pod("picky", "1", "1Gi", json!({"nodeSelector": {"gpu": "yes"}}));
    let plain = pod("plain", "1", "1Gi", json!({}));
    let impossible = pod("x", "1", "1Gi", json!({"nodeSelector": {"gpu": "no"}}));
    assert_eq!(
        placed(&schedule(&[plain.clone(), picky, impossible], &nodes)),
        [
            "n-00000",
            "n-07777",
            "0/10000 nodes are available: 10000 node(s) didn't match Pod's node affinity/selector."
        ]
    );
}

#[test]
fn large_clusters_are_searched_in_turns() {
    // 1,000 equal nodes: 420 feasible are enough; the next pod starts where the last stopped.
    let nodes = many(1_000);
    let pods: Vec<PodView> = (0..4)
        .map(|i| pod(&format!("p{i}"), "1", "1Gi", json!({})))
        .collect();
    assert_eq!(
        placed(&schedule(&pods, &nodes)),
        ["n-00000", "n-00420", "n-00840", "n-00260"],
        "the third search wraps round (840..999, then 0..259); ties go to the first found"
    );
}

#[test]
fn message_orders_reasons_by_count_then_text() {
    let mut nodes = vec![
        node("m1", "8", "512Mi", json!({}), json!([])),
        node("c1", "1", "8Gi", json!({}), json!([])),
        node("m2", "8", "512Mi", json!({}), json!([])),
        node("c2", "1", "8Gi", json!({}), json!([])),
        node("down", "8", "8Gi", json!({}), json!([])),
    ];
    nodes[4].ready = false;
    let p = pod("p", "2", "1Gi", json!({}));
    assert_eq!(
        placed(&schedule(std::slice::from_ref(&p), &nodes)),
        ["0/5 nodes are available: 2 Insufficient cpu, 2 Insufficient memory, 1 node(s) were not ready."]
    );
    assert_eq!(placed(&schedule(&[p], &[])), ["0/0 nodes are available."]);
}

#[test]
fn pressure_taints_refuse_only_the_pods_kubernetes_refuses() {
    let taint = |key: &str| json!([{"key": key, "effect": "NoSchedule"}]);
    let memory = node(
        "mem",
        "4",
        "4Gi",
        json!({}),
        taint("node.kubernetes.io/memory-pressure"),
    );
    let disk = node(
        "disk",
        "4",
        "4Gi",
        json!({}),
        taint("node.kubernetes.io/disk-pressure"),
    );
    let pid = node(
        "pid",
        "4",
        "4Gi",
        json!({}),
        taint("node.kubernetes.io/pid-pressure"),
    );
    let nodes = [memory, disk, pid];
    // Burstable (it requests something): tolerates memory pressure only.
    let burstable = pod("b", "100m", "64Mi", json!({}));
    assert_eq!(feasible(&burstable, &nodes), ["mem"]);
    // BestEffort: refused by all three.
    let best_effort = PodView::from_object(
        &json!({"metadata": {"name": "be"}, "spec": {"containers": [{"name": "c"}]}}),
    );
    assert!(feasible(&best_effort, &nodes).is_empty());
    assert_eq!(
        placed(&schedule(&[best_effort], &nodes)),
        ["0/3 nodes are available: 3 node(s) had untolerated taint."]
    );
    // A limit alone makes a pod Burstable too; an init container's request counts.
    let limited = PodView::from_object(&json!({"metadata": {"name": "l"}, "spec": {"containers": [
        {"name": "c", "resources": {"limits": {"memory": "64Mi"}}}]}}));
    assert_eq!(feasible(&limited, &nodes), ["mem"]);
    let init = PodView::from_object(&json!({"metadata": {"name": "i"}, "spec": {
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "10m"}}}],
        "containers": [{"name": "c"}]}}));
    assert_eq!(feasible(&init, &nodes), ["mem"]);
    // A DaemonSet's pod, even BestEffort, tolerates all three.
    let daemon = PodView::from_object(&json!({"metadata": {"name": "d", "ownerReferences": [
        {"kind": "DaemonSet", "name": "ds", "uid": "u", "controller": true}]},
        "spec": {"containers": [{"name": "c"}]}}));
    assert_eq!(feasible(&daemon, &nodes), ["mem", "disk", "pid"]);
}
