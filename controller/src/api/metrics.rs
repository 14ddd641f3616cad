//! Metrics from the controller's memory ([`crate::metrics`]), behind the same bearer token as
//! every route:
//!
//! - `/metrics`: Prometheus text format 0.0.4;
//! - `/apis/metrics.k8s.io/v1beta1/...`: `NodeMetrics` and `PodMetrics` (what `kelp top` and
//!   `kubectl top` read): `nodes`, `nodes/{name}`, `pods`, `namespaces/{ns}/pods`,
//!   `namespaces/{ns}/pods/{name}`;
//! - `/api/v1/nodes/{node}/proxy/stats/summary`: the kubelet's Summary API for one node.

use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::status::ApiError;
use super::ApiState;
use crate::metrics::{prometheus, resource, summary};
use crate::store::Key;

fn json(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn not_found(kind: &str, name: &str) -> Response {
    ApiError::not_found(&Key::new(kind, "", name)).into_response()
}

/// The response for a metrics path; `None` when the path is not one of them. Built on a
/// blocking thread: a fleet's `/metrics` is megabytes of text.
pub async fn serve(state: &Arc<ApiState>, method: &Method, path: &str) -> Option<Response> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let is_metrics = matches!(
        segs.as_slice(),
        ["metrics"]
            | ["apis", resource::GROUP, ..]
            | ["api", "v1", "nodes", _, "proxy", "stats", "summary"]
    );
    if !is_metrics {
        return None;
    }
    if method != Method::GET {
        return Some(ApiError::method_not_allowed(method.as_str(), path).into_response());
    }
    let (state, path) = (state.clone(), path.to_owned());
    let built = tokio::task::spawn_blocking(move || respond(&state, &path)).await;
    Some(built.unwrap_or_else(|e| ApiError::internal(e.to_string()).into_response()))
}

fn respond(state: &ApiState, path: &str) -> Response {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let metrics = &state.metrics;
    match segs.as_slice() {
        ["metrics"] => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
            metrics.read(prometheus::render),
        )
            .into_response(),
        ["apis", _] => json(&serde_json::json!({
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": resource::GROUP,
            "versions": [{"groupVersion": format!("{}/{}", resource::GROUP, resource::VERSION), "version": resource::VERSION}],
            "preferredVersion": {"groupVersion": format!("{}/{}", resource::GROUP, resource::VERSION), "version": resource::VERSION},
        })),
        ["apis", _, resource::VERSION] => json(&resource::discovery()),
        ["apis", _, resource::VERSION, "nodes"] => {
            json(&metrics.read(|n| resource::node_list(n, None)))
        }
        ["apis", _, resource::VERSION, "nodes", name] => {
            let list = metrics.read(|n| resource::node_list(n, Some(name)));
            match list["items"].get(0) {
                Some(item) => json(item),
                None => not_found("NodeMetrics", name),
            }
        }
        ["apis", _, resource::VERSION, "pods"] => {
            json(&metrics.read(|n| resource::pod_list(n, None, None)))
        }
        ["apis", _, resource::VERSION, "namespaces", ns, "pods"] => {
            json(&metrics.read(|n| resource::pod_list(n, Some(ns), None)))
        }
        ["apis", _, resource::VERSION, "namespaces", ns, "pods", name] => {
            let list = metrics.read(|n| resource::pod_list(n, Some(ns), Some(name)));
            match list["items"].get(0) {
                Some(item) => json(item),
                None => ApiError::not_found(&Key::new("PodMetrics", ns, name)).into_response(),
            }
        }
        ["api", "v1", "nodes", node, "proxy", "stats", "summary"] => {
            if state.store.get(&Key::new("Node", "", node)).is_none() {
                return not_found("Node", node);
            }
            let (pods, _) = state.store.list("Pod", None);
            let on_node: Vec<&Value> = pods
                .iter()
                .map(|p| &*p.object)
                .filter(|p| p["spec"]["nodeName"].as_str() == Some(node))
                .collect();
            let body = metrics.read(|n| n.get(*node).map(|m| summary::summary(node, m, &on_node)));
            match body {
                Some(body) => json(&body),
                None => ApiError::unavailable(format!(
                    "no metrics from node {node:?} yet (nodes publish them every minute)"
                ))
                .into_response(),
            }
        }
        _ => ApiError::no_route(path).into_response(),
    }
}
