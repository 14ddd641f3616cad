//! The seed document's Pod (`myblog`, two containers, namespace `luffy`), read straight from
//! `../shared/seed/`: it loads, and round-trips YAML → JSON → YAML with identical fields.

use std::path::Path;

use kelp_shared::api::Object;
use kelp_shared::manifest::load_str;

/// The seed's §2.5 Pod YAML, cut out of the seed document itself.
fn seed_pod_yaml() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seed");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("missing seed folder {}: {e}", dir.display()));
    let mut text = String::new();
    for entry in entries {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let start = text
        .find("apiVersion: v1\nkind: Pod")
        .expect("the seed has a Pod manifest");
    let end = start + text[start..].find("```").expect("the Pod block ends");
    text[start..end].to_string()
}

#[test]
fn seed_pod_loads_with_every_field() {
    let yaml = seed_pod_yaml();
    let docs = load_str(&yaml, "seed");
    assert_eq!(docs.len(), 1);
    let loaded = docs
        .into_iter()
        .next()
        .unwrap()
        .expect("the seed's Pod loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let Object::Pod(pod) = &loaded.object else {
        panic!("not a Pod: {}", loaded.object.kind())
    };
    assert_eq!(pod.metadata.name.as_deref(), Some("myblog"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("luffy"));
    let spec = pod.spec.as_ref().unwrap();
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["myblog", "mysql"]);
    assert_eq!(
        spec.containers[1].image.as_deref(),
        Some("192.168.136.10:5000/mysql:5.7-utf8")
    );
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0].container_port,
        8002
    );
    let env = spec.containers[0].env.as_ref().unwrap();
    assert_eq!(
        (env[0].name.as_str(), env[0].value.as_deref()),
        ("MYSQL_HOST", Some("127.0.0.1"))
    );
}

#[test]
fn seed_pod_round_trips_yaml_json_yaml() {
    let yaml = seed_pod_yaml();
    let original: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let loaded = load_str(&yaml, "seed").remove(0).unwrap();

    // YAML → typed → JSON keeps exactly the fields the author wrote.
    let json = serde_json::to_string(&loaded.object).unwrap();
    let as_json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(as_json, original);

    // JSON → YAML text → typed again: the same object, the same fields.
    let back_yaml = serde_yaml_ng::to_string(&as_json).unwrap();
    let again = load_str(&back_yaml, "round-trip").remove(0).unwrap();
    assert_eq!(again.object, loaded.object);
    let again_value: serde_json::Value = serde_yaml_ng::from_str(&back_yaml).unwrap();
    assert_eq!(again_value, original);
}
