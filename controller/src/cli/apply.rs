//! `kelp apply`: client-side apply as kubectl does it, over JSON merge patch.
//!
//! Three versions of an object meet:
//! - **original**: what was applied last time, kept in the live object's
//!   `kubectl.kubernetes.io/last-applied-configuration` annotation;
//! - **modified**: the manifest now, carrying its own new annotation;
//! - **current**: the live object, with fields others set (the scheduler's `nodeName`,
//!   defaults, `status`).
//!
//! The patch sets what changed from current to modified, and deletes (`null`) what the
//! original had and the manifest no longer has — so fields set by others survive. Lists are
//! replaced whole (merge-patch semantics). A list is sent when the manifest's list differs
//! from the one applied last time, or when the live list no longer contains it (someone
//! changed a field the manifest sets); a list the server only filled in with defaults is
//! left alone, so applying the same file twice reports `unchanged`.

use std::process::ExitCode;

use serde_json::{Map, Value};

use super::client::{report_errors, ApiError};
use super::resource::{kind_display, object_path};
use super::{emit, load_manifests, object_namespace, source_name, ApplyArgs, Context};

/// The annotation holding the last applied configuration.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manifest as it will be sent: with its `last-applied-configuration` annotation set to
/// the compact JSON of itself (without that annotation).
pub fn with_last_applied(manifest: &Value) -> Value {
    let mut bare = manifest.clone();
    if let Some(annotations) = bare
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let text = serde_json::to_string(&bare).expect("JSON values serialize");
    let mut modified = bare;
    let Some(root) = modified.as_object_mut() else {
        return modified;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    let annotations = metadata
        .as_object_mut()
        .expect("metadata is an object")
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    annotations
        .as_object_mut()
        .expect("annotations is an object")
        .insert(LAST_APPLIED.into(), Value::String(text));
    modified
}

/// The last applied configuration recorded on a live object, if any (and if it parses).
pub fn last_applied(current: &Value) -> Option<Value> {
    let text = current
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
}

/// The JSON merge patch that takes `current` to `modified`, deleting what `original` had
/// and `modified` dropped. An empty object means there is nothing to do.
pub fn three_way_merge_patch(original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    let empty = Map::new();
    let modified_map = modified.as_object().unwrap_or(&empty);
    let mut patch = match original.and_then(Value::as_object) {
        Some(o) => deletions(o, modified_map),
        None => Map::new(),
    };
    let adds = additions(Some(current), modified_map, original);
    merge_into(&mut patch, adds);
    Value::Object(patch)
}

/// Whether a patch does nothing.
pub fn is_empty_patch(patch: &Value) -> bool {
    patch.as_object().is_none_or(Map::is_empty)
}

/// Fields the original had that the manifest dropped (or set to null), as nulls.
fn deletions(original: &Map<String, Value>, modified: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, ov) in original {
        match (modified.get(k), ov) {
            (None, _) => {
                out.insert(k.clone(), Value::Null);
            }
            (Some(Value::Null), ov) if !ov.is_null() => {
                out.insert(k.clone(), Value::Null);
            }
            (Some(Value::Object(m)), Value::Object(o)) => {
                let sub = deletions(o, m);
                if !sub.is_empty() {
                    out.insert(k.clone(), Value::Object(sub));
                }
            }
            _ => {}
        }
    }
    out
}

/// Fields the manifest sets that differ from the live object (never nulls).
fn additions(
    current: Option<&Value>,
    modified: &Map<String, Value>,
    original: Option<&Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, mv) in modified {
        if mv.is_null() {
            continue;
        }
        let cv = current.and_then(|c| c.get(k)).filter(|v| !v.is_null());
        let ov = original.and_then(|o| o.get(k));
        match (cv, mv) {
            (None, Value::Object(m)) if m.is_empty() => {}
            (None, Value::Array(a)) if a.is_empty() => {}
            (None, mv) => {
                if let Some(v) = without_nulls(mv) {
                    out.insert(k.clone(), v);
                }
            }
            (Some(Value::Object(_)), Value::Object(m)) => {
                let sub = additions(cv, m, ov);
                if !sub.is_empty() {
                    out.insert(k.clone(), Value::Object(sub));
                }
            }
            (Some(c), Value::Array(_)) => {
                let changed_since_applied = ov.is_some_and(|o| o != mv);
                if changed_since_applied || !contained_in(mv, Some(c)) {
                    if let Some(v) = without_nulls(mv) {
                        out.insert(k.clone(), v);
                    }
                }
            }
            (Some(c), mv) => {
                if !scalar_eq(mv, c) {
                    if let Some(v) = without_nulls(mv) {
                        out.insert(k.clone(), v);
                    }
                }
            }
        }
    }
    out
}

/// Drops nulls inside objects, as kubectl's `keepOrDeleteNullInObj` does for additions; an
/// object emptied that way disappears, one that was empty to begin with stays.
fn without_nulls(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) if m.is_empty() => Some(v.clone()),
        Value::Object(m) => {
            let kept: Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other.clone()),
    }
}

/// Whether everything `m` sets is also so in `c` (which may hold more: defaults, fields set
/// by others). Lists must have the same length, item by item.
fn contained_in(m: &Value, c: Option<&Value>) -> bool {
    match (m, c) {
        (Value::Null, _) => true,
        (Value::Object(mm), Some(Value::Object(cm))) => {
            mm.iter().all(|(k, v)| contained_in(v, cm.get(k)))
        }
        (Value::Object(mm), None) => mm.is_empty(),
        (Value::Array(ma), Some(Value::Array(ca))) => {
            ma.len() == ca.len() && ma.iter().zip(ca).all(|(m, c)| contained_in(m, Some(c)))
        }
        (Value::Array(ma), None) => ma.is_empty(),
        (m, Some(c)) => scalar_eq(m, c),
        (_, None) => false,
    }
}

/// Equality that does not tell `3` from `3.0`, nor a number from the same text in a string
/// (quantities: `cpu: 1` against `"1"`).
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            n.to_string() == *s
        }
        _ => a == b,
    }
}

/// RFC 7386 merge of `patch` into `doc` (objects merge, everything else replaces).
fn merge_into(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, pv) in patch {
        match (doc.get_mut(&k), pv) {
            (Some(Value::Object(d)), Value::Object(p)) => merge_into(d, p),
            (_, pv) => {
                doc.insert(k, pv);
            }
        }
    }
}

/// `kelp apply -f`.
pub fn run(ctx: &Context, args: &ApplyArgs) -> ExitCode {
    let (docs, mut errors) = load_manifests(&args.filename);
    if docs.is_empty() && errors.is_empty() {
        errors.push(ApiError::Other("no objects passed to apply".into()));
    }
    let client = match ctx.client() {
        Ok(c) => c,
        Err(e) => {
            errors.push(e);
            report_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    for doc in docs {
        let info = doc.object.kind_info();
        let source = source_name(&doc.origin);
        let mut manifest = doc.object.to_json();
        let name = doc.object.metadata().name().to_string();
        let manifest_ns = doc.object.metadata().namespace.clone();
        let ns = match object_namespace(info, manifest_ns.as_deref(), ctx.namespace.as_deref()) {
            Ok(ns) => ns,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Some(meta) = manifest.get_mut("metadata").and_then(Value::as_object_mut) {
            match &ns {
                Some(ns) => {
                    meta.insert("namespace".into(), Value::String(ns.clone()));
                }
                None => {
                    meta.remove("namespace");
                }
            }
        }
        if name.is_empty() {
            errors.push(ApiError::Other(format!(
                "error when retrieving current configuration of {source:?}: resource name may not be empty"
            )));
            continue;
        }
        let modified = with_last_applied(&manifest);
        let path = object_path(info, ns.as_deref(), &name);
        let shown = format!("{}/{name}", kind_display(info));
        let current = match client.get(&path, &[]) {
            Ok(c) => c,
            Err(e) if e.is_not_found() => {
                let collection = super::resource::collection_path(info, ns.as_deref());
                match client.create(&collection, &modified) {
                    Ok(_) => {
                        emit(&format!("{shown} created\n"));
                    }
                    Err(e) => errors.push(e.with_source("creating", &source)),
                }
                continue;
            }
            Err(e) => {
                errors.push(e.with_source("retrieving current configuration of", &source));
                continue;
            }
        };
        let original = last_applied(&current);
        if original.is_none() {
            let resource = match info.group {
                "" => info.plural.to_string(),
                g => format!("{}.{g}", info.plural),
            };
            eprintln!(
                "Warning: resource {resource}/{name} is missing the {LAST_APPLIED} annotation which is required by kelp apply. kelp apply should only be used on resources created declaratively by either kelp create --save-config or kelp apply. The missing annotation will be patched automatically."
            );
        }
        let patch = three_way_merge_patch(original.as_ref(), &modified, &current);
        if is_empty_patch(&patch) {
            emit(&format!("{shown} unchanged\n"));
            continue;
        }
        tracing::debug!(%path, patch = %patch, "apply patch");
        match client.merge_patch(&path, &patch) {
            Ok(_) => {
                emit(&format!("{shown} configured\n"));
            }
            Err(e) => errors.push(e.with_source("patching", &source)),
        }
    }
    report_errors(&errors);
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(image: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "myblog", "namespace": "luffy", "labels": {"component": "myblog"}},
            "spec": {"containers": [{"name": "myblog", "image": image, "ports": [{"containerPort": 8002}]}]}
        })
    }

    /// What the server holds after applying `manifest`: defaults, scheduler, status.
    fn live(manifest: &Value) -> Value {
        let mut live = with_last_applied(manifest);
        live["metadata"]["uid"] = json!("u1");
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["creationTimestamp"] = json!("2024-05-10T12:00:00Z");
        live["metadata"]["annotations"]["other.io/note"] = json!("set by someone");
        let c = &mut live["spec"]["containers"][0];
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["ports"][0]["protocol"] = json!("TCP");
        live["spec"]["restartPolicy"] = json!("Always");
        live["spec"]["nodeName"] = json!("pi-1");
        live["status"] = json!({"phase": "Running", "podIP": "10.244.1.5"});
        live
    }

    fn patch_for(manifest: &Value, current: &Value) -> Value {
        let modified = with_last_applied(manifest);
        three_way_merge_patch(last_applied(current).as_ref(), &modified, current)
    }

    #[test]
    fn the_annotation_is_the_manifest_without_itself() {
        let mut m = pod("a");
        m["metadata"]["annotations"] = json!({LAST_APPLIED: "stale", "keep": "me"});
        let modified = with_last_applied(&m);
        let recorded: Value = serde_json::from_str(
            modified["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(recorded["metadata"]["annotations"], json!({"keep": "me"}));
        assert_eq!(recorded["spec"], m["spec"]);
        assert_eq!(last_applied(&modified), Some(recorded));
        // Compact JSON, stable across runs (sorted keys).
        let text = modified["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        assert!(!text.contains(": ") && !text.contains('\n'), "{text}");
        assert_eq!(with_last_applied(&m), modified);
    }

    #[test]
    fn applying_the_same_manifest_again_is_unchanged() {
        let m = pod("myblog:v1");
        let current = live(&m);
        let patch = patch_for(&m, &current);
        assert!(is_empty_patch(&patch), "{patch}");
    }

    #[test]
    fn a_changed_image_patches_only_the_containers_and_the_annotation() {
        let current = live(&pod("myblog:v1"));
        let m = pod("myblog:v2");
        let patch = patch_for(&m, &current);
        let keys: Vec<_> = patch.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["metadata", "spec"]);
        assert_eq!(
            patch["metadata"],
            json!({"annotations": {LAST_APPLIED: with_last_applied(&m)["metadata"]["annotations"][LAST_APPLIED]}})
        );
        // Lists are replaced whole, with exactly what the manifest says.
        assert_eq!(
            patch["spec"],
            json!({"containers": m["spec"]["containers"]})
        );
        assert_eq!(patch["spec"]["containers"][0]["image"], "myblog:v2");
    }

    #[test]
    fn a_field_removed_from_the_manifest_is_deleted() {
        let mut m = pod("myblog:v1");
        m["metadata"]["labels"]["tier"] = json!("web");
        m["spec"]["hostname"] = json!("blog");
        let current = live(&m);
        let mut m2 = m.clone();
        m2["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("tier");
        m2["spec"].as_object_mut().unwrap().remove("hostname");
        let patch = patch_for(&m2, &current);
        assert_eq!(patch["metadata"]["labels"], json!({"tier": null}));
        assert_eq!(patch["spec"], json!({"hostname": null}));
    }

    #[test]
    fn fields_set_by_others_survive() {
        let m = pod("myblog:v1");
        let current = live(&m);
        // Nothing the scheduler, the defaults or the status set is touched...
        let patch = patch_for(&pod("myblog:v2"), &current);
        assert!(patch["spec"].get("nodeName").is_none(), "{patch}");
        assert!(patch["spec"].get("restartPolicy").is_none(), "{patch}");
        assert!(patch.get("status").is_none(), "{patch}");
        assert!(patch["metadata"].get("uid").is_none(), "{patch}");
        assert!(patch["metadata"]["annotations"]
            .get("other.io/note")
            .is_none());
        // ...and merging the patch keeps them.
        let mut doc = current.as_object().unwrap().clone();
        merge_into(&mut doc, patch.as_object().unwrap().clone());
        assert_eq!(doc["spec"]["nodeName"], "pi-1");
        assert_eq!(doc["status"]["podIP"], "10.244.1.5");
        assert_eq!(doc["spec"]["containers"][0]["image"], "myblog:v2");
    }

    #[test]
    fn lists_are_replaced_wholesale() {
        let mut m = pod("myblog:v1");
        m["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
        let current = live(&m);
        let mut m2 = m.clone();
        m2["spec"]["containers"][0]["env"] = json!([{"name": "B", "value": "2"}]);
        let patch = patch_for(&m2, &current);
        assert_eq!(patch["spec"]["containers"], m2["spec"]["containers"]);
        // Removing a field of a list item (the user's own, not a default) sends the list.
        let mut m3 = m.clone();
        m3["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("ports");
        let patch = patch_for(&m3, &current);
        assert_eq!(patch["spec"]["containers"], m3["spec"]["containers"]);
    }

    #[test]
    fn a_list_changed_behind_apply_is_put_back() {
        let m = pod("myblog:v1");
        let mut current = live(&m);
        current["spec"]["containers"][0]["image"] = json!("edited-by-hand");
        let patch = patch_for(&m, &current);
        assert_eq!(patch["spec"]["containers"], m["spec"]["containers"]);
    }

    #[test]
    fn a_scalar_changed_behind_apply_is_put_back_and_new_fields_added() {
        let mut m = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let mut current = live_generic(&m);
        current["spec"]["replicas"] = json!(5);
        let patch = patch_for(&m, &current);
        assert_eq!(patch["spec"], json!({"replicas": 3}));
        m["spec"]["minReadySeconds"] = json!(10);
        let patch = patch_for(&m, &current);
        assert_eq!(patch["spec"], json!({"replicas": 3, "minReadySeconds": 10}));
    }

    fn live_generic(m: &Value) -> Value {
        let mut live = with_last_applied(m);
        live["metadata"]["uid"] = json!("u");
        live
    }

    #[test]
    fn objects_without_the_annotation_get_it() {
        // Created with `kelp create`: no last-applied annotation yet.
        let m = pod("myblog:v1");
        let mut current = live(&m);
        current["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(LAST_APPLIED);
        let patch = patch_for(&m, &current);
        let keys: Vec<_> = patch.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["metadata"], "only the annotation is added: {patch}");
        assert!(patch["metadata"]["annotations"][LAST_APPLIED].is_string());
    }

    #[test]
    fn merge_patch_helpers() {
        assert!(is_empty_patch(&json!({})));
        assert!(!is_empty_patch(&json!({"a": null})));
        assert_eq!(without_nulls(&json!({"a": null, "b": {"c": null}})), None);
        assert_eq!(without_nulls(&json!({"a": {}})), Some(json!({"a": {}})));
        assert!(scalar_eq(&json!(1), &json!(1.0)));
        assert!(scalar_eq(&json!(1), &json!("1")));
        assert!(!scalar_eq(&json!(true), &json!("true")));
        assert!(contained_in(
            &json!([{"a": 1}]),
            Some(&json!([{"a": 1, "b": 2}]))
        ));
        assert!(!contained_in(
            &json!([{"a": 1}]),
            Some(&json!([{"a": 1}, {"a": 2}]))
        ));
    }
}
