//! The verbs: get, list, watch, create, update, patch, delete.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use kelp_shared::api::core::Pod;
use kelp_shared::api::kinds::{self, KindInfo};
use kelp_shared::api::{Object, Time};

use super::admission;
use super::discovery;
use super::namespaces;
use super::routes::{Query, Route};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::{with_warnings, ApiState};
use crate::store::{Durability, EventType, Key, Revision, StoreError, Stored};

/// One parsed request.
pub struct Request {
    /// The HTTP method.
    pub method: Method,
    /// What the path names.
    pub route: Route,
    /// The query parameters.
    pub query: Query,
    /// The request's content type.
    pub content_type: String,
    /// The body.
    pub body: Bytes,
}

type Result<T> = std::result::Result<T, ApiError>;

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, axum::Json(v)).into_response()
}

/// Dispatches a request; every failure becomes a `Status` response.
pub async fn handle(state: &Arc<ApiState>, req: Request) -> Response {
    match dispatch(state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(state: &Arc<ApiState>, req: Request) -> Result<Response> {
    let method = req.method.clone();
    if let Route::Collection { info, .. } | Route::Object { info, .. } = &req.route {
        if info.kind == "Event" {
            return super::events::handle(state, &req);
        }
    }
    match (&req.route, &method) {
        (Route::Version, &Method::GET) => Ok(json_response(StatusCode::OK, &discovery::version())),
        (Route::CoreVersions, &Method::GET) => {
            Ok(json_response(StatusCode::OK, &discovery::core_versions()))
        }
        (Route::Groups, &Method::GET) => {
            Ok(json_response(StatusCode::OK, &discovery::group_list()))
        }
        (Route::Resources { group, version }, &Method::GET) => Ok(json_response(
            StatusCode::OK,
            &discovery::resource_list(group, version),
        )),
        (Route::Collection { info, namespace }, &Method::GET) => {
            if req.query.watch {
                watch(state, info, namespace.as_deref(), &req.query).await
            } else {
                list(state, info, namespace.as_deref(), &req.query)
            }
        }
        (Route::Collection { info, namespace }, &Method::POST) => {
            create(state, info, namespace.as_deref(), &req.body).await
        }
        (
            Route::Object {
                info,
                namespace,
                name,
                subresource,
            },
            m,
        ) => {
            let key = Key::new(info.kind, namespace.as_deref().unwrap_or(""), name);
            match (subresource.as_deref(), m) {
                (Some("log"), &Method::GET) => {
                    return super::pod_commands::logs(state, &key, &req.query).await
                }
                (Some("exec"), &Method::POST) => {
                    return super::pod_commands::exec(state, &key, &req.query).await
                }
                (Some(sub @ ("log" | "exec")), m) => {
                    return Err(ApiError::method_not_allowed(
                        m.as_str(),
                        &format!("{key}/{sub}"),
                    ))
                }
                _ => {}
            }
            if matches!(*m, Method::PUT | Method::PATCH | Method::DELETE) {
                refuse_mirror_pod(state, &key)?;
            }
            let status_only = subresource.is_some();
            match *m {
                Method::GET => get(state, &key),
                Method::PUT => {
                    let body = parse_body(&req.body)?;
                    update(state, info, &key, body, status_only).await
                }
                Method::PATCH => patch(state, info, &key, &req, status_only).await,
                Method::DELETE if !status_only => delete(state, &key, &req).await,
                _ => Err(ApiError::method_not_allowed(m.as_str(), &key.to_string())),
            }
        }
        (route, m) => Err(ApiError::method_not_allowed(
            m.as_str(),
            &format!("{route:?}"),
        )),
    }
}

fn parse_body(body: &Bytes) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn get(state: &ApiState, key: &Key) -> Result<Response> {
    let stored = state
        .store
        .get(key)
        .ok_or_else(|| ApiError::not_found(key))?;
    Ok(json_response(StatusCode::OK, &stored.object))
}

struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(namespace: Option<&str>, q: &Query) -> Result<Filter> {
        Ok(Filter {
            namespace: namespace.map(str::to_string),
            labels: LabelSelector::parse(q.label_selector.as_deref().unwrap_or(""))?,
            fields: FieldSelector::parse(q.field_selector.as_deref().unwrap_or(""))?,
        })
    }

    fn matches(&self, s: &Stored) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| s.key.namespace == ns)
            && self.labels.matches(&s.object)
            && self.fields.matches(&s.object)
    }
}

fn list(state: &ApiState, info: &KindInfo, namespace: Option<&str>, q: &Query) -> Result<Response> {
    let filter = Filter::new(namespace, q)?;
    let (items, rev) = state.store.list(info.kind, namespace);
    let items: Vec<Value> = items
        .iter()
        .filter(|s| filter.matches(s))
        .map(|s| (*s.object).clone())
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", info.kind),
            "apiVersion": info.api_version(),
            "metadata": {"resourceVersion": rev.to_string()},
            "items": items,
        }),
    ))
}

fn event_line(t: EventType, object: &Value) -> Bytes {
    let ty = match t {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    };
    let mut line = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

async fn watch(
    state: &ApiState,
    info: &'static KindInfo,
    namespace: Option<&str>,
    q: &Query,
) -> Result<Response> {
    let filter = Filter::new(namespace, q)?;
    let requested: Option<Revision> = match q.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
        ),
    };
    // Without a revision, a watch starts with the current state as ADDED events.
    let (initial, from) = match requested {
        Some(rev) => (Vec::new(), rev),
        None => {
            let (items, rev) = state.store.list(info.kind, namespace);
            let lines: Vec<Bytes> = items
                .iter()
                .filter(|s| filter.matches(s))
                .map(|s| event_line(EventType::Added, &s.object))
                .collect();
            (lines, rev)
        }
    };
    let watch = state
        .store
        .watch(Some(info.kind), from)
        .map_err(ApiError::from)?;
    let deadline = q
        .timeout_seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let initial = futures_util::stream::iter(initial.into_iter().map(Ok::<_, std::io::Error>));
    let live =
        futures_util::stream::unfold((watch, filter), move |(mut watch, filter)| async move {
            loop {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, watch.next()).await {
                        Ok(n) => n,
                        Err(_) => return None,
                    },
                    None => watch.next().await,
                };
                let ev = next?;
                if filter.matches(&ev.object) {
                    let line = event_line(ev.event_type, &ev.object.object);
                    return Some((Ok::<_, std::io::Error>(line), (watch, filter)));
                }
            }
        });
    let body = Body::from_stream(futures_util::StreamExt::chain(initial, live));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Whether `namespace` exists and accepts new objects.
fn check_namespace(state: &ApiState, info: &KindInfo, namespace: &str) -> Result<()> {
    let key = Key::new("Namespace", "", namespace);
    let Some(ns) = state.store.get(&key) else {
        return Err(ApiError::not_found(&key));
    };
    if ns.object.pointer("/metadata/deletionTimestamp").is_some() {
        let forbidden = ApiError::forbidden(
            &Key::new(info.kind, namespace, ""),
            &format!("unable to create new content in namespace {namespace} because it is being terminated"),
        );
        return Err(forbidden);
    }
    Ok(())
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The QoS class Kubernetes gives a pod.
fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let containers: Vec<_> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let r = c.resources.as_ref();
        let limits = r.and_then(|r| r.limits.as_ref());
        let requests = r.and_then(|r| r.requests.as_ref());
        if limits.is_some_and(|l| !l.is_empty()) || requests.is_some_and(|r| !r.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = limits.and_then(|l| l.get(res));
            let q = requests.and_then(|q| q.get(res)).or(l);
            if l.is_none() || l != q {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

async fn create(
    state: &ApiState,
    info: &'static KindInfo,
    namespace: Option<&str>,
    body: &Bytes,
) -> Result<Response> {
    let (stored, warnings) = create_object(state, info, namespace, parse_body(body)?).await?;
    Ok(with_warnings(
        json_response(StatusCode::CREATED, &stored.object),
        &warnings,
    ))
}

/// Creates an object as a `POST` would (decode, `generateName`, defaults, validation,
/// kelp's limits): used by the API and by the controllers, so a controller's pods are
/// admitted exactly like an operator's.
pub(crate) async fn create_object(
    state: &ApiState,
    info: &'static KindInfo,
    namespace: Option<&str>,
    body: Value,
) -> Result<(Stored, Vec<String>)> {
    if info.namespaced && namespace.is_none() {
        return Err(ApiError::method_not_allowed(
            "POST",
            &format!("{} across all namespaces", info.plural),
        ));
    }
    let (mut obj, mut warnings) = admission::decode(info, body)?;
    {
        let meta = obj.metadata_mut();
        if let (Some(ns), Some(body_ns)) = (namespace, meta.namespace.as_deref()) {
            if ns != body_ns {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                )));
            }
        }
        if meta.name.as_deref().unwrap_or("").is_empty() {
            if let Some(prefix) = meta.generate_name.clone().filter(|p| !p.is_empty()) {
                meta.name = Some(format!("{prefix}{}", random_suffix()));
            }
        }
        meta.namespace = namespace.map(str::to_string);
        meta.uid = Some(uuid::Uuid::new_v4().to_string());
        meta.creation_timestamp = Some(Time::now());
        meta.resource_version = None;
        meta.generation = Some(1);
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.managed_fields = None;
        meta.self_link = None;
    }
    warnings.extend(admission::admit(&mut obj)?);
    refuse_plaintext_secret(state, &obj)?;
    if let Object::Pod(p) = &mut obj {
        // Status belongs to the node; a new pod is Pending.
        let qos = qos_class(p).to_string();
        p.status = Some(kelp_shared::api::core::PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos),
            ..Default::default()
        });
    }
    if let Some(ns) = namespace {
        check_namespace(state, info, ns)?;
    }
    let key = Key::new(info.kind, namespace.unwrap_or(""), obj.metadata().name());
    let stored = state
        .store
        .create(key, obj.to_json(), Durability::Durable)
        .await?;
    Ok((stored, warnings))
}

/// Whether deleting this object must wait (finalizers, a pod on a node).
pub(crate) fn must_wait(kind: &str, obj: &Value) -> bool {
    let finalizers = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let bound_pod = kind == "Pod"
        && obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
    finalizers || bound_pod || kind == "Namespace"
}

/// Secret data reaches the nodes in their desired state: not over a link in clear text
/// across the network (`--allow-plaintext-secrets` lifts this). kelp's own credentials
/// Secrets never go to nodes and are exempt.
fn refuse_plaintext_secret(state: &ApiState, obj: &Object) -> Result<()> {
    let (Some(link), Object::Secret(secret)) = (&state.plaintext_link, obj) else {
        return Ok(());
    };
    if secret
        .type_
        .as_deref()
        .is_some_and(|t| t.starts_with("kelp.dev/"))
    {
        return Ok(());
    }
    let key = Key::new(
        "Secret",
        obj.metadata().namespace.as_deref().unwrap_or(""),
        obj.metadata().name(),
    );
    Err(ApiError::forbidden(
        &key,
        &format!(
            "its data would cross the nodes' MQTT link ({link}) unencrypted: use a TLS broker (mqtts:// with --mqtt-ca) or a loopback one, or start kelp server with --allow-plaintext-secrets"
        ),
    ))
}

/// A mirror pod (a node's static pod shown in the API) is read-only here: it changes with
/// the manifest on its node.
fn refuse_mirror_pod(state: &ApiState, key: &Key) -> Result<()> {
    if key.kind != "Pod" {
        return Ok(());
    }
    let Some(live) = state.store.get(key) else {
        return Ok(());
    };
    if live
        .object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(crate::hub::MIRROR_ANNOTATION))
        .is_none()
    {
        return Ok(());
    }
    let node = live
        .object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("?");
    Err(ApiError::forbidden(
        key,
        &format!(
            "it is the mirror of a static pod of node {node:?} and read-only in the API: \
             edit or remove its manifest in the node's manifest directory instead"
        ),
    ))
}

async fn update(
    state: &ApiState,
    info: &'static KindInfo,
    key: &Key,
    body: Value,
    status_only: bool,
) -> Result<Response> {
    let expected: Option<Revision> = match body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        None | Some("") => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
        ),
    };
    let live = state
        .store
        .get(key)
        .ok_or_else(|| ApiError::not_found(key))?;
    let (stored, warnings) = replace(state, info, key, &live, body, expected, status_only).await?;
    Ok(with_warnings(
        json_response(StatusCode::OK, &stored.object),
        &warnings,
    ))
}

/// Replaces `live` with `body`, keeping what a client may not change; finishes a deletion
/// whose last finalizer went away.
async fn replace(
    state: &ApiState,
    info: &'static KindInfo,
    key: &Key,
    live: &Stored,
    body: Value,
    expected: Option<Revision>,
    status_only: bool,
) -> Result<(Stored, Vec<String>)> {
    let old = (*live.object).clone();
    let mut warnings = Vec::new();
    let new_json = if status_only {
        let mut merged = old.clone();
        merged["status"] = body.get("status").cloned().unwrap_or(Value::Null);
        if merged["status"].is_null() {
            merged.as_object_mut().map(|m| m.remove("status"));
        }
        // Decode to check the status has the right shape.
        let (obj, w) = admission::decode(info, merged)?;
        warnings = w;
        obj.to_json()
    } else {
        let (mut obj, w) = admission::decode(info, body)?;
        warnings.extend(w);
        let name = obj.metadata().name().to_string();
        if name != key.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        {
            let m = obj.metadata_mut();
            let lm: kelp_shared::api::ObjectMeta = serde_json::from_value(old["metadata"].clone())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            m.namespace = lm.namespace;
            m.uid = lm.uid;
            m.creation_timestamp = lm.creation_timestamp;
            m.deletion_timestamp = lm.deletion_timestamp;
            m.deletion_grace_period_seconds = lm.deletion_grace_period_seconds;
            m.generation = lm.generation;
            m.resource_version = None;
        }
        warnings.extend(admission::admit(&mut obj)?);
        refuse_plaintext_secret(state, &obj)?;
        if let (Object::Pod(new_pod), Ok(Object::Pod(old_pod))) =
            (&obj, Object::from_json("Pod", old.clone()))
        {
            admission::check_pod_update(&old_pod, new_pod)?;
        }
        let mut v = obj.to_json();
        // The main resource never changes status; `/status` does.
        match old.get("status") {
            Some(s) => v["status"] = s.clone(),
            None => {
                v.as_object_mut().map(|m| m.remove("status"));
            }
        }
        if v.get("spec") != old.get("spec") {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            v["metadata"]["generation"] = json!(g + 1);
        }
        v
    };
    let mut new_json = new_json;
    new_json["metadata"]["resourceVersion"] = json!(live.revision.to_string());
    let unchanged = strip_rv(&new_json) == strip_rv(&old);
    if unchanged {
        return Ok((live.clone(), warnings));
    }
    let expected = expected.or(Some(live.revision));
    let stored = state
        .store
        .update(key.clone(), new_json, expected, Durability::Durable)
        .await?;
    // A deletion waiting only on finalizers ends when the last one goes.
    let deleting = stored
        .object
        .pointer("/metadata/deletionTimestamp")
        .is_some();
    if deleting && key.kind != "Namespace" && !must_wait(&key.kind, &stored.object) {
        let gone = state
            .store
            .delete(key.clone(), Some(stored.revision), Durability::Durable)
            .await?;
        return Ok((gone, warnings));
    }
    Ok((stored, warnings))
}

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

async fn patch(
    state: &ApiState,
    info: &'static KindInfo,
    key: &Key,
    req: &Request,
    status_only: bool,
) -> Result<Response> {
    let ct = req.content_type.split(';').next().unwrap_or("").trim();
    if ct != "application/merge-patch+json" && ct != "application/json" {
        return Err(ApiError::unsupported_media_type(ct));
    }
    let patch = parse_body(&req.body)?;
    // Retry on conflicts with writers between our read and our write, as the API server does.
    for _ in 0..5 {
        let live = state
            .store
            .get(key)
            .ok_or_else(|| ApiError::not_found(key))?;
        let mut doc = (*live.object).clone();
        json_patch::merge(&mut doc, &patch);
        let expected = match patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
            ),
            None => Some(live.revision),
        };
        match replace(state, info, key, &live, doc, expected, status_only).await {
            Err(e)
                if e.reason == "Conflict"
                    && patch.pointer("/metadata/resourceVersion").is_none() =>
            {
                continue
            }
            Err(e) => return Err(e),
            Ok((stored, warnings)) => {
                return Ok(with_warnings(
                    json_response(StatusCode::OK, &stored.object),
                    &warnings,
                ));
            }
        }
    }
    Err(ApiError::conflict(
        key,
        "too many concurrent writers; try again",
    ))
}

async fn delete(state: &ApiState, key: &Key, req: &Request) -> Result<Response> {
    let options: Value = if req.body.is_empty() {
        json!({})
    } else {
        parse_body(&req.body)?
    };
    let grace = req
        .query
        .grace_period_seconds
        .or_else(|| options.get("gracePeriodSeconds").and_then(Value::as_i64));
    let propagation = req
        .query
        .propagation_policy
        .clone()
        .or_else(|| {
            options
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| {
            (options.get("orphanDependents") == Some(&json!(true))).then(|| "Orphan".into())
        });
    let finalizer = propagation_finalizer(propagation.as_deref())?;
    let stored = delete_with(state, key, grace, finalizer).await?;
    Ok(json_response(StatusCode::OK, &stored.object))
}

/// The finalizer that makes the garbage collector handle an owner's dependents before the
/// owner goes (`propagationPolicy`): none for `Background` (the default: the owner goes now,
/// its dependents after it).
fn propagation_finalizer(policy: Option<&str>) -> Result<Option<&'static str>> {
    match policy {
        None | Some("") | Some("Background") => Ok(None),
        Some("Foreground") => Ok(Some(crate::controllers::gc::FOREGROUND)),
        Some("Orphan") => Ok(Some(crate::controllers::gc::ORPHAN)),
        Some(other) => Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Orphan\", \"Background\", \"Foreground\""
        ))),
    }
}

/// Deletes an object: at once, or (finalizers, a pod on a node, a namespace, a propagation
/// `finalizer`) by setting its `deletionTimestamp`. A pod with `grace` 0 goes at once.
pub(crate) async fn delete_with(
    state: &ApiState,
    key: &Key,
    grace: Option<i64>,
    finalizer: Option<&'static str>,
) -> Result<Stored> {
    if key.kind == "Namespace" && namespaces::SYSTEM.contains(&key.name.as_str()) {
        return Err(ApiError::forbidden(
            key,
            "this namespace may not be deleted",
        ));
    }
    loop {
        let live = state
            .store
            .get(key)
            .ok_or_else(|| ApiError::not_found(key))?;
        let force = grace == Some(0) && key.kind == "Pod";
        let waits = must_wait(&key.kind, &live.object) || finalizer.is_some();
        let result = if waits && !force {
            if live.object.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(live);
            }
            let mut v = (*live.object).clone();
            v["metadata"]["deletionTimestamp"] = json!(Time::now().to_string());
            if let Some(finalizer) = finalizer {
                let list = &mut v["metadata"]["finalizers"];
                if !list.is_array() {
                    *list = json!([]);
                }
                if let Some(list) = list.as_array_mut() {
                    if !list.iter().any(|f| f == finalizer) {
                        list.push(json!(finalizer));
                    }
                }
            }
            if key.kind == "Pod" {
                let g = grace
                    .or_else(|| {
                        v.pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                    })
                    .unwrap_or(30);
                v["metadata"]["deletionGracePeriodSeconds"] = json!(g);
            }
            if key.kind == "Namespace" {
                v["status"]["phase"] = json!("Terminating");
            }
            state
                .store
                .update(key.clone(), v, Some(live.revision), Durability::Durable)
                .await
        } else {
            state
                .store
                .delete(key.clone(), Some(live.revision), Durability::Durable)
                .await
        };
        match result {
            Ok(stored) => {
                if key.kind == "Namespace" {
                    namespaces::kick(state);
                }
                return Ok(stored);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Deletes one object as a `DELETE` without options would: used by the namespace controller.
pub(crate) async fn delete_object(
    state: &ApiState,
    key: &Key,
) -> std::result::Result<(), ApiError> {
    match delete_with(state, key, None, None).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every namespaced kind: what a namespace can hold.
pub(crate) fn namespaced_kinds() -> impl Iterator<Item = &'static KindInfo> {
    kinds::KINDS.iter().filter(|k| k.namespaced)
}
