//! The Kubernetes-shaped HTTPS API.
//!
//! Paths and JSON follow Kubernetes (`/api/v1/namespaces/{ns}/pods/{name}`,
//! `/apis/{group}/{version}/...`), every error is a `Status`, and every route needs the
//! bearer token. One handler parses the path ([`routes`]) and dispatches; [`admission`]
//! runs on every write; [`namespaces`] keeps the system namespaces and finishes namespace
//! deletion; [`pod_commands`] serves a pod's `log` and `exec` by asking its node;
//! [`events`] serves Events from the controller's memory, not the store; [`metrics`] serves
//! `/metrics`, `metrics.k8s.io` and the Summary API from the metrics in memory.

pub mod admission;
pub mod discovery;
pub mod events;
pub mod handlers;
pub mod metrics;
pub mod namespaces;
pub mod pod_commands;
pub mod routes;
pub mod selectors;
pub mod status;
pub mod tls;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::events::EventStore;
use crate::hub::requests::NodeRequests;
use crate::metrics::MetricsStore;
use crate::store::Store;
use status::ApiError;

/// What every request handler shares.
pub struct ApiState {
    /// The object store.
    pub store: Store,
    /// The admin bearer token.
    pub token: String,
    /// Wakes the namespace controller when a namespace starts terminating.
    pub namespace_kick: tokio::sync::Notify,
    /// Requests to nodes (pod logs and exec), when the node hub runs.
    pub node_requests: Option<Arc<NodeRequests>>,
    /// The events nodes and components report (in memory only).
    pub events: Arc<EventStore>,
    /// When set, Secrets are refused: their data would reach the nodes over this link,
    /// which is neither TLS nor loopback (the broker URL nodes are given).
    pub plaintext_link: Option<String>,
    /// The metrics nodes publish (in memory only).
    pub metrics: Arc<MetricsStore>,
}

impl ApiState {
    /// The shared state for a store and token.
    pub fn new(store: Store, token: String) -> Arc<ApiState> {
        Arc::new(ApiState {
            store,
            token,
            namespace_kick: tokio::sync::Notify::new(),
            node_requests: None,
            events: Arc::default(),
            plaintext_link: None,
            metrics: Arc::default(),
        })
    }

    /// The shared state for a store and token, reaching nodes through the hub's requests
    /// and serving the events and metrics the hub records.
    pub fn with_node_requests(
        store: Store,
        token: String,
        node_requests: Arc<NodeRequests>,
        events: Arc<EventStore>,
        metrics: Arc<MetricsStore>,
        plaintext_link: Option<String>,
    ) -> Arc<ApiState> {
        Arc::new(ApiState {
            store,
            token,
            namespace_kick: tokio::sync::Notify::new(),
            node_requests: Some(node_requests),
            events,
            plaintext_link,
            metrics,
        })
    }
}

/// The API as an axum router.
pub fn router(state: Arc<ApiState>) -> axum::Router {
    axum::Router::new().fallback(serve).with_state(state)
}

/// Whether the request carries the admin token (compared in constant time).
fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return false;
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (token.trim().as_bytes(), state.token.as_bytes());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

async fn serve(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return ApiError::unauthorized().into_response();
    }
    if let Some(response) = metrics::serve(&state, &method, uri.path()).await {
        return response;
    }
    let route = match routes::parse(uri.path()) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let query = routes::Query::parse(uri.query().unwrap_or(""));
    let req = handlers::Request {
        method,
        route,
        query,
        content_type: headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string(),
        body,
    };
    handlers::handle(&state, req).await
}

/// Adds Kubernetes `Warning` headers (`299 - "text"`) to a response.
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text: String = w
            .chars()
            .map(|c| {
                if c == '"' {
                    '\''
                } else if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}
