//! Admission: what every write goes through before it reaches the store.
//!
//! Decode (typed, unknown fields become warnings) → defaults → validation → kelp's own
//! limits (fields the agent does not implement yet are refused, naming the field; kinds that
//! nothing acts on yet are stored with a warning) → for updates, Kubernetes' rules on what
//! may change.

use serde_json::Value;

use kelp_shared::api::core::{Pod, PodSpec};
use kelp_shared::api::kinds::KindInfo;
use kelp_shared::api::validation::{self, FieldError};
use kelp_shared::api::{defaults, Object};
use kelp_shared::manifest;

use super::status::{ApiError, Cause};

/// The warning stored objects of kinds that nothing acts on yet carry.
pub const NOT_ENFORCED: &str = "stored, not enforced by this kelp version";

/// Kinds this kelp version acts on (or that are pure data, which storing fulfils).
const ENFORCED_KINDS: &[&str] = &[
    "Namespace",
    "ConfigMap",
    "Secret",
    "Event",
    "Node",
    "Pod",
    "ReplicaSet",
];

/// Pod fields the agent does not implement yet: `(field name, where)`. Later issues remove
/// rows as they implement them.
const UNSUPPORTED_VOLUME_SOURCES: &[&str] =
    &["persistentVolumeClaim", "nfs", "image", "ephemeral", "csi"];

/// A decoded, admitted object and the warnings to return with it.
#[derive(Debug)]
pub struct Admitted {
    /// The object, defaulted and valid.
    pub object: Object,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
}

/// Reads a request body for `info`: sets `apiVersion`/`kind` when absent, refuses a body of
/// another kind or version, types it.
pub fn decode(info: &KindInfo, mut body: Value) -> Result<(Object, Vec<String>), ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let want_version = info.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None => {
            map.insert("apiVersion".into(), Value::String(want_version.clone()));
        }
        Some(v) if v == want_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None => {
            map.insert("kind".into(), Value::String(info.kind.to_string()));
        }
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )))
        }
    }
    let loaded = manifest::load_json_value(body, "request body").map_err(|e| {
        let field = e
            .field
            .clone()
            .map(|f| format!("{f}: "))
            .unwrap_or_default();
        ApiError::bad_request(format!("{field}{}", e.message))
    })?;
    Ok((loaded.object, loaded.warnings))
}

fn causes(errs: &[FieldError]) -> Vec<Cause> {
    errs.iter()
        .map(|e| {
            let text = e.to_string();
            let message = text
                .strip_prefix(&format!("{}: ", e.path))
                .unwrap_or(&text)
                .to_string();
            Cause {
                reason: e.kind.reason().to_string(),
                message,
                field: e.path.clone(),
            }
        })
        .collect()
}

fn invalid(obj: &Object, errs: &[FieldError]) -> ApiError {
    ApiError::invalid(obj.kind(), obj.metadata().name(), causes(errs))
}

/// Defaults and validates `obj`; applies kelp's limits. Returns the warnings to add.
pub fn admit(obj: &mut Object) -> Result<Vec<String>, ApiError> {
    defaults::apply(obj);
    let errs = validation::validate(obj);
    if !errs.is_empty() {
        return Err(invalid(obj, &errs));
    }
    let mut errs = Vec::new();
    match &*obj {
        Object::Pod(p) => {
            if let Some(spec) = &p.spec {
                unsupported_pod_fields(spec, "spec", &mut errs);
            }
        }
        Object::Deployment(o) => {
            template_fields(o.spec.as_ref().and_then(|s| s.template.as_ref()), &mut errs)
        }
        Object::ReplicaSet(o) => {
            template_fields(o.spec.as_ref().and_then(|s| s.template.as_ref()), &mut errs)
        }
        Object::DaemonSet(o) => {
            template_fields(o.spec.as_ref().and_then(|s| s.template.as_ref()), &mut errs)
        }
        Object::StatefulSet(o) => {
            template_fields(o.spec.as_ref().and_then(|s| s.template.as_ref()), &mut errs)
        }
        Object::Job(o) => {
            template_fields(o.spec.as_ref().and_then(|s| s.template.as_ref()), &mut errs)
        }
        _ => {}
    }
    if !errs.is_empty() {
        return Err(invalid(obj, &errs));
    }
    let mut warnings = Vec::new();
    if !ENFORCED_KINDS.contains(&obj.kind()) {
        warnings.push(format!(
            "{} {:?}: {NOT_ENFORCED}",
            obj.kind(),
            obj.metadata().name()
        ));
    }
    Ok(warnings)
}

fn template_fields(
    t: Option<&kelp_shared::api::core::PodTemplateSpec>,
    errs: &mut Vec<FieldError>,
) {
    if let Some(spec) = t.and_then(|t| t.spec.as_ref()) {
        unsupported_pod_fields(spec, "spec.template.spec", errs);
    }
}

fn not_yet(path: String) -> FieldError {
    FieldError::forbidden(path, "not supported by kelp yet")
}

/// Pod spec fields the agent cannot honour yet.
fn unsupported_pod_fields(spec: &PodSpec, at: &str, errs: &mut Vec<FieldError>) {
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        for source in v.source_names() {
            if UNSUPPORTED_VOLUME_SOURCES.contains(&source) {
                errs.push(not_yet(format!("{at}.volumes[{i}].{source}")));
            }
        }
    }
    let mut flag = |present: bool, field: &str| {
        if present {
            errs.push(not_yet(format!("{at}.{field}")));
        }
    };
    flag(spec.ephemeral_containers.is_some(), "ephemeralContainers");
    flag(spec.resource_claims.is_some(), "resourceClaims");
    flag(
        spec.topology_spread_constraints.is_some(),
        "topologySpreadConstraints",
    );
    flag(spec.scheduling_gates.is_some(), "schedulingGates");
    flag(spec.runtime_class_name.is_some(), "runtimeClassName");
    flag(spec.host_users == Some(false), "hostUsers");
    flag(
        spec.os.as_ref().is_some_and(|o| o.name != "linux"),
        "os.name",
    );
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("initContainers[{i}]"), c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("containers[{i}]"), c)),
        );
    for (path, c) in containers {
        if c.volume_devices.is_some() {
            errs.push(not_yet(format!("{at}.{path}.volumeDevices")));
        }
        if c.security_context
            .as_ref()
            .is_some_and(|s| s.windows_options.is_some())
        {
            errs.push(not_yet(format!(
                "{at}.{path}.securityContext.windowsOptions"
            )));
        }
    }
}

/// Kubernetes' rule for pod updates: only container images, `activeDeadlineSeconds` and
/// added tolerations may change.
pub fn check_pod_update(old: &Pod, new: &Pod) -> Result<(), ApiError> {
    let (Some(old_spec), Some(new_spec)) = (&old.spec, &new.spec) else {
        return Ok(());
    };
    // Blank out what may change, then compare the rest.
    let mut a = old_spec.clone();
    let mut b = new_spec.clone();
    let same_len = a.containers.len() == b.containers.len()
        && a.init_containers.as_ref().map(Vec::len) == b.init_containers.as_ref().map(Vec::len);
    if same_len {
        for (x, y) in a.containers.iter_mut().zip(b.containers.iter_mut()) {
            x.image = y.image.clone();
        }
        for (x, y) in a
            .init_containers
            .iter_mut()
            .flatten()
            .zip(b.init_containers.iter_mut().flatten())
        {
            x.image = y.image.clone();
        }
    }
    a.active_deadline_seconds = None;
    b.active_deadline_seconds = None;
    let old_tol = a.tolerations.take().unwrap_or_default();
    let new_tol = b.tolerations.take().unwrap_or_default();
    let only_added = old_tol.iter().all(|t| new_tol.contains(t));
    // The scheduler binds pods by setting nodeName once.
    if a.node_name.is_none() {
        a.node_name = b.node_name.clone();
    }
    if a == b && only_added {
        return Ok(());
    }
    Err(ApiError::invalid(
        "Pod",
        new.metadata.name(),
        vec![Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
            field: "spec".into(),
        }],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_shared::api::kinds;
    use serde_json::json;

    fn pod(extra: Value) -> Value {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]}});
        json_patch::merge(&mut p, &extra);
        p
    }

    fn admit_json(v: Value) -> Result<(Object, Vec<String>), ApiError> {
        let (mut obj, mut w) = decode(kinds::by_kind("Pod").unwrap(), v)?;
        w.extend(admit(&mut obj)?);
        Ok((obj, w))
    }

    #[test]
    fn a_valid_pod_is_defaulted_and_kinds_not_acted_on_are_warned_about() {
        let (obj, w) = admit_json(pod(json!({"metadata": {"colour": "red"}}))).unwrap();
        assert_eq!(obj.to_json()["spec"]["restartPolicy"], "Always");
        assert!(
            w.iter()
                .any(|w| w.contains("unknown field \"metadata.colour\"")),
            "{w:?}"
        );
        assert!(
            !w.iter().any(|w| w.contains(NOT_ENFORCED)),
            "pods are run: {w:?}"
        );
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let (mut obj, _) = decode(kinds::by_kind("Deployment").unwrap(), deployment).unwrap();
        let w = admit(&mut obj).unwrap();
        assert!(w.iter().any(|w| w.contains(NOT_ENFORCED)), "{w:?}");
    }

    #[test]
    fn invalid_pods_get_422_with_causes() {
        let e = admit_json(pod(
            json!({"spec": {"containers": [{"name": "c", "image": null}]}}),
        ))
        .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(e.causes[0].field, "spec.containers[0].image");
        assert!(
            e.message
                .contains("spec.containers[0].image: Required value"),
            "{}",
            e.message
        );
    }

    #[test]
    fn unimplemented_fields_are_refused_by_name() {
        let e = admit_json(pod(json!({"spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}]}}))).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.contains(
                "spec.volumes[0].persistentVolumeClaim: Forbidden: not supported by kelp yet"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn wrong_kind_or_version_in_body_is_400() {
        let e = decode(
            kinds::by_kind("Pod").unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Pod"}),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
        let e = decode(kinds::by_kind("Pod").unwrap(), json!({"kind": "Service"})).unwrap_err();
        assert_eq!(e.code, 400);
        let e = decode(
            kinds::by_kind("Pod").unwrap(),
            json!({"spec": {"containers": "x"}}),
        )
        .unwrap_err();
        assert!(
            e.message.starts_with("spec.containers: invalid type"),
            "{}",
            e.message
        );
    }

    #[test]
    fn pod_updates_follow_kubernetes_rules() {
        let (Object::Pod(old), _) = admit_json(pod(json!({}))).unwrap() else {
            unreachable!()
        };
        let mut new = old.clone();
        new.spec.as_mut().unwrap().containers[0].image = Some("busybox:1.37".into());
        new.spec.as_mut().unwrap().node_name = Some("pi-1".into());
        check_pod_update(&old, &new).unwrap();
        let mut bad = old.clone();
        bad.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()[0]
            .container_port = 81;
        let e = check_pod_update(&old, &bad).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("Forbidden: pod updates may not change fields other than"),
            "{}",
            e.message
        );
    }
}
