//! `events` (`v1 Event`): served from the controller's in-memory
//! [`EventStore`](crate::events::EventStore), never from the store.
//!
//! - `GET /api/v1/events`, `GET /api/v1/namespaces/{ns}/events`: an `EventList`, with
//!   `labelSelector` and `fieldSelector` (`involvedObject.kind/name/namespace/uid`, `reason`,
//!   `type`, `metadata.name`), as `kubectl describe` asks.
//! - `GET`/`DELETE .../events/{name}`: one event.
//! - `POST .../namespaces/{ns}/events`: a client's event, aggregated with the others by
//!   (involved object, reason, message): the answer names the aggregate it went into.
//! - Watches, updates and patches are refused, saying why: events are not versioned objects
//!   here (a client-go recorder that patches its event's count can post it again instead).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use kelp_shared::wire::ObjectRef;
use serde_json::{json, Value};

use super::handlers::Request;
use super::routes::Route;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause};
use super::ApiState;
use crate::events::{NewEvent, Source};
use crate::store::Key;

type Result<T> = std::result::Result<T, ApiError>;

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, axum::Json(v)).into_response()
}

/// Serves a request on `events`.
pub fn handle(state: &ApiState, req: &Request) -> Result<Response> {
    let now = Utc::now();
    let events = &state.events;
    match (&req.route, &req.method) {
        (Route::Collection { .. }, &Method::GET) if req.query.watch => {
            Err(ApiError::method_not_allowed(
                "watch",
                "events: the controller keeps them in memory, without a change log; list them instead",
            ))
        }
        (Route::Collection { namespace, .. }, &Method::GET) => {
            let labels = LabelSelector::parse(req.query.label_selector.as_deref().unwrap_or(""))?;
            let fields = FieldSelector::parse(req.query.field_selector.as_deref().unwrap_or(""))?;
            let (items, revision) = events.list(namespace.as_deref(), now);
            let items: Vec<Value> = items
                .into_iter()
                .filter(|e| labels.matches(e) && fields.matches(e))
                .collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "EventList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": revision.to_string()},
                    "items": items,
                }),
            ))
        }
        (Route::Collection { namespace, .. }, &Method::POST) => {
            let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            })?;
            let event = new_event(&body, namespace.as_deref(), now)?;
            let object = events.record(event, now);
            Ok(json_response(StatusCode::CREATED, &object))
        }
        (
            Route::Object {
                namespace,
                name,
                subresource: None,
                ..
            },
            m,
        ) => {
            let namespace = namespace.as_deref().unwrap_or("default");
            let key = Key::new("Event", namespace, name);
            let found = match *m {
                Method::GET => events.get(namespace, name, now),
                Method::DELETE => events.delete(namespace, name),
                _ => {
                    return Err(ApiError::method_not_allowed(
                        m.as_str(),
                        &format!(
                            "event {key}: the controller keeps events in memory, aggregated; post the event again to count it"
                        ),
                    ))
                }
            };
            let object = found.ok_or_else(|| ApiError::not_found(&key))?;
            Ok(json_response(StatusCode::OK, &object))
        }
        (route, m) => Err(ApiError::method_not_allowed(
            m.as_str(),
            &format!("{route:?}"),
        )),
    }
}

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    }
}

fn invalid(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message,
        field: field.into(),
    }
}

/// A posted `v1 Event` as an occurrence for the event store; every problem names its field.
fn new_event(body: &Value, path_namespace: Option<&str>, now: DateTime<Utc>) -> Result<NewEvent> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let name = text("/metadata/name");
    if let Some(kind) = body.get("kind").and_then(Value::as_str) {
        if kind != "Event" {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind (Event)"
            )));
        }
    }
    if let Some(version) = body.get("apiVersion").and_then(Value::as_str) {
        if version != "v1" {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({version}) does not match the expected API version (v1)"
            )));
        }
    }
    let mut causes = Vec::new();
    let kind = text("/involvedObject/kind");
    let object_name = text("/involvedObject/name");
    let reason = text("/reason");
    if kind.is_empty() {
        causes.push(required("involvedObject.kind"));
    }
    if object_name.is_empty() {
        causes.push(required("involvedObject.name"));
    }
    if reason.is_empty() {
        causes.push(required("reason"));
    }
    let namespaced = kelp_shared::api::kinds::by_kind(kind).is_none_or(|k| k.namespaced);
    let mut object_namespace = text("/involvedObject/namespace").to_owned();
    let event_namespace = path_namespace
        .or(body.pointer("/metadata/namespace").and_then(Value::as_str))
        .unwrap_or("default");
    if namespaced {
        if object_namespace.is_empty() {
            object_namespace = event_namespace.to_owned();
        } else if object_namespace != event_namespace {
            causes.push(invalid(
                "involvedObject.namespace",
                format!(
                    "Invalid value: {object_namespace:?}: does not match event.namespace {event_namespace:?}"
                ),
            ));
        }
    }
    let warning = match text("/type") {
        "" | "Normal" => false,
        "Warning" => true,
        other => {
            causes.push(invalid(
                "type",
                format!("Unsupported value: {other:?}: supported values: \"Normal\", \"Warning\""),
            ));
            false
        }
    };
    let count = match body.get("count") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64().and_then(|c| u32::try_from(c).ok()) {
            Some(c) => c.max(1),
            None => {
                causes.push(invalid(
                    "count",
                    format!("Invalid value: {v}: must be a non-negative 32-bit integer"),
                ));
                1
            }
        },
    };
    let mut time = |field: &str| match body.get(field) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => Some(t.with_timezone(&Utc).min(now)),
            _ => {
                causes.push(invalid(
                    field,
                    format!("Invalid value: {v}: not an RFC 3339 time"),
                ));
                None
            }
        },
    };
    let first = time("firstTimestamp");
    let last = time("lastTimestamp");
    if !causes.is_empty() {
        return Err(ApiError::invalid("Event", name, causes));
    }
    let component = match text("/source/component") {
        "" => text("/reportingComponent"),
        c => c,
    };
    let host = match text("/source/host") {
        "" => text("/reportingInstance"),
        h => h,
    };
    Ok(NewEvent {
        object: ObjectRef {
            kind: kind.to_owned(),
            namespace: if namespaced {
                object_namespace
            } else {
                String::new()
            },
            name: object_name.to_owned(),
            uid: text("/involvedObject/uid").to_owned(),
        },
        warning,
        reason: reason.to_owned(),
        message: text("/message").to_owned(),
        source: Source {
            component: component.to_owned(),
            host: host.to_owned(),
        },
        count,
        first,
        last,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Bytes;
    use kelp_shared::wire::{BootId, EventBatch, EventType, NodeEvent};

    use super::*;
    use crate::api::routes::{self, Query};
    use crate::store::{Store, StoreOptions};

    fn state() -> Arc<ApiState> {
        ApiState::new(
            Store::open_in_memory(StoreOptions::default()).unwrap(),
            "t".into(),
        )
    }

    async fn call(
        state: &Arc<ApiState>,
        method: Method,
        path_and_query: &str,
        body: &str,
    ) -> (u16, Value) {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let req = crate::api::handlers::Request {
            method,
            route: routes::parse(path).unwrap(),
            query: Query::parse(query),
            content_type: "application/json".into(),
            body: Bytes::from(body.to_owned()),
        };
        let resp = crate::api::handlers::handle(state, req).await;
        let code = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    fn node_batch(state: &ApiState) {
        let ev = |kind: &str, ns: &str, name: &str, uid: &str, reason: &str| NodeEvent {
            object: ObjectRef {
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
                uid: uid.into(),
            },
            reason: reason.into(),
            message: format!("{reason} {name}"),
            event_type: EventType::Normal,
            count: 1,
            first_unix_ms: 1_800_000_000_000,
            last_unix_ms: 1_800_000_000_000,
        };
        let batch = EventBatch {
            boot_id: BootId([1; 16]),
            agent_start_unix_ms: 1,
            seq: 1,
            events: vec![
                ev("Pod", "default", "web", "uid-1", "Started"),
                // An older pod of the same name.
                ev("Pod", "default", "web", "uid-0", "Killing"),
                ev("Pod", "default", "db", "uid-2", "Started"),
                ev("Pod", "prod", "web", "uid-3", "Pulled"),
                ev("Node", "", "pi-1", "", "ImageGCRemoved"),
            ],
        };
        state.events.record_batch("pi-1", &batch, Utc::now());
    }

    fn reasons(list: &Value) -> Vec<&str> {
        let mut r: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap())
            .collect();
        r.sort();
        r
    }

    #[tokio::test]
    async fn lists_events_with_the_field_selectors_kubectl_describe_uses() {
        let state = state();
        node_batch(&state);
        let (code, all) = call(&state, Method::GET, "/api/v1/events", "").await;
        assert_eq!(code, 200, "{all}");
        assert_eq!(all["kind"], "EventList");
        assert_eq!(all["items"].as_array().unwrap().len(), 5);
        let (_, default) = call(&state, Method::GET, "/api/v1/namespaces/default/events", "").await;
        assert_eq!(
            reasons(&default),
            ["ImageGCRemoved", "Killing", "Started", "Started"]
        );
        let (_, web) = call(
            &state,
            Method::GET,
            "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb,involvedObject.namespace%3Ddefault,involvedObject.kind%3DPod,involvedObject.uid%3Duid-1",
            "",
        )
        .await;
        assert_eq!(reasons(&web), ["Started"]);
        let (_, node) = call(
            &state,
            Method::GET,
            "/api/v1/events?fieldSelector=involvedObject.kind=Node,involvedObject.name=pi-1",
            "",
        )
        .await;
        assert_eq!(reasons(&node), ["ImageGCRemoved"]);
        assert_eq!(node["items"][0]["source"]["host"], "pi-1");
        let (code, bad) = call(
            &state,
            Method::GET,
            "/api/v1/events?fieldSelector=involvedObject.color=red",
            "",
        )
        .await;
        assert_eq!(code, 400);
        assert!(
            bad["message"]
                .as_str()
                .unwrap()
                .contains("involvedObject.color"),
            "{bad}"
        );
        // Nothing about events is in the store.
        assert!(state.store.list("Event", None).0.is_empty());
    }

    #[tokio::test]
    async fn posted_events_are_aggregated_in_memory() {
        let state = state();
        let body = r#"{"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x.1"},
            "involvedObject": {"kind": "Pod", "name": "web", "uid": "u"},
            "reason": "Tested", "message": "hello", "type": "Warning",
            "source": {"component": "my-operator"}}"#;
        let (code, first) =
            call(&state, Method::POST, "/api/v1/namespaces/prod/events", body).await;
        assert_eq!(code, 201, "{first}");
        assert_eq!(first["involvedObject"]["namespace"], "prod");
        assert_eq!(first["metadata"]["namespace"], "prod");
        assert_eq!(first["count"], 1);
        assert_eq!(first["source"]["component"], "my-operator");
        let (_, second) = call(&state, Method::POST, "/api/v1/namespaces/prod/events", body).await;
        assert_eq!(second["count"], 2);
        assert_eq!(second["metadata"]["name"], first["metadata"]["name"]);
        assert!(state.store.list("Event", None).0.is_empty());

        let name = first["metadata"]["name"].as_str().unwrap();
        let path = format!("/api/v1/namespaces/prod/events/{name}");
        let (code, got) = call(&state, Method::GET, &path, "").await;
        assert_eq!(code, 200);
        assert_eq!(got["count"], 2);
        let (code, refused) = call(&state, Method::PUT, &path, body).await;
        assert_eq!(code, 405);
        assert!(
            refused["message"].as_str().unwrap().contains("in memory"),
            "{refused}"
        );
        let (code, _) = call(&state, Method::DELETE, &path, "").await;
        assert_eq!(code, 200);
        let (code, gone) = call(&state, Method::GET, &path, "").await;
        assert_eq!(code, 404, "{gone}");
        let (code, watch) = call(&state, Method::GET, "/api/v1/events?watch=true", "").await;
        assert_eq!(code, 405);
        assert!(watch["message"].as_str().unwrap().contains("list them"));
    }

    #[tokio::test]
    async fn a_posted_event_missing_fields_is_refused_naming_them() {
        let state = state();
        let (code, err) = call(
            &state,
            Method::POST,
            "/api/v1/namespaces/prod/events",
            r#"{"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "namespace": "other"}, "type": "Odd", "count": -1}"#,
        )
        .await;
        assert_eq!(code, 422, "{err}");
        let message = err["message"].as_str().unwrap();
        for field in [
            "involvedObject.name: Required value",
            "reason: Required value",
            "involvedObject.namespace: Invalid value: \"other\"",
            "type: Unsupported value: \"Odd\"",
            "count: Invalid value: -1",
        ] {
            assert!(message.contains(field), "{field} in {message}");
        }
        assert!(state.events.is_empty());
    }
}
