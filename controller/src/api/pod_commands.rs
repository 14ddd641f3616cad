//! A pod's `log` and `exec` subresources, answered by the pod's node over the MQTT request
//! topics ([`crate::hub::requests`]).
//!
//! - `GET /api/v1/namespaces/{ns}/pods/{name}/log?container=&follow=&tailLines=&previous=`:
//!   plain text, as Kubernetes serves it; with `follow=true` streamed until the container's
//!   run ends, the client hangs up, or `timeoutSeconds` (default [`FOLLOW_TIMEOUT`]) passes.
//! - `POST /api/v1/namespaces/{ns}/pods/{name}/exec?container=&command=a&command=b`: a
//!   non-interactive exec (kubectl's SPDY/websocket streams are not served). The answer is
//!   JSON: `{"kind":"ExecResult","stdout":...,"stderr":...,"exitCode":N}`, each stream kept
//!   up to 1 MiB (`stdoutTruncated`/`stderrTruncated` and a `Warning` say when it was cut;
//!   bytes that are not UTF-8 are replaced). The command is killed after `timeoutSeconds`
//!   (default [`EXEC_TIMEOUT`]).
//!
//! The container defaults to the pod's only one; a pod with several needs `container`
//! (a 400 names them). A node that does not answer within [`ANSWER_TIMEOUT`] is a 504
//! naming it.

use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kelp_shared::wire::{RequestBody, ResponseBody, EXEC_OUTPUT_LIMIT};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::routes::Query;
use super::status::ApiError;
use super::{with_warnings, ApiState};
use crate::hub::requests::{RequestError, ResponseStream};
use crate::store::Key;

/// How long a node gets to start answering.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a log request may take (not following).
pub const LOG_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a followed log streams at most, unless `timeoutSeconds` says otherwise.
pub const FOLLOW_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// How long an exec's command may run, unless `timeoutSeconds` says otherwise.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `timeoutSeconds` an exec may ask for.
pub const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long after its deadline the node's last answer may come (an exec killed at its
/// deadline reports it).
const GRACE: Duration = Duration::from_secs(5);

type Result<T> = std::result::Result<T, ApiError>;

/// The names of a pod's containers: app, init and ephemeral ones.
fn names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Picks the container a request is about, as the Kubernetes API does.
pub fn pick_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String> {
    let app = names(pod, "containers");
    let init = names(pod, "initContainers");
    let ephemeral = names(pod, "ephemeralContainers");
    match asked {
        Some(c) if app.iter().chain(&init).chain(&ephemeral).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if app.len() == 1 => Ok(app[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                app.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// The pod's node and the container, checked; fails when the node cannot answer now.
fn target(state: &ApiState, key: &Key, container: Option<&str>) -> Result<(String, String)> {
    let pod = state
        .store
        .get(key)
        .ok_or_else(|| ApiError::not_found(key))?;
    let container = pick_container(&pod.object, &key.name, container)?;
    let node = pod.object["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "pod {} is not bound to a node yet; there is no node to ask",
                key.name
            ))
        })?
        .to_string();
    let Some(node_object) = state.store.get(&Key::new("Node", "", &node)) else {
        return Err(ApiError::unavailable(format!(
            "pod {} is bound to node {node:?}, which is not registered",
            key.name
        )));
    };
    let ready = node_object.object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    if let Some(ready) = ready.filter(|c| c["status"] == "Unknown") {
        return Err(ApiError::unavailable(format!(
            "node {node:?} of pod {} is not connected: {}",
            key.name,
            ready["message"]
                .as_str()
                .unwrap_or("its Ready condition is Unknown")
        )));
    }
    Ok((node, container))
}

fn requests_error(e: RequestError) -> ApiError {
    match e {
        RequestError::Busy { .. } => ApiError::unavailable(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// The first response, or a 504 naming the node when none comes in time.
async fn first(stream: &mut ResponseStream, deadline: Instant) -> Result<ResponseBody> {
    let wait = ANSWER_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
    match tokio::time::timeout(wait, stream.next()).await {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err(ApiError::unavailable(format!(
            "node {:?} stopped answering",
            stream.node()
        ))),
        Err(_) => Err(ApiError::timeout(format!(
            "node {:?} did not answer within {}s (is its agent connected to the broker?)",
            stream.node(),
            wait.as_secs()
        ))),
    }
}

/// The node's `Error` as an API error: the node names what was wrong (a container that is
/// not there, not running, no previous run), which is the request's fault.
fn node_error(node: &str, message: String) -> ApiError {
    ApiError::bad_request(format!("{message} (node {node:?})"))
}

fn timeout_seconds(q: &Query, default: Duration, max: Duration) -> Duration {
    match q.timeout_seconds {
        Some(s) if s > 0 => Duration::from_secs(s).min(max),
        _ => default,
    }
}

/// `GET .../pods/{name}/log`.
pub async fn logs(state: &ApiState, key: &Key, q: &Query) -> Result<Response> {
    let tail_lines = match q.tail_lines.as_deref() {
        None | Some("") => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "tailLines: invalid value {v:?}: must be a whole number"
                )))
            }
        },
    };
    let (node, container) = target(state, key, q.container.as_deref())?;
    let requests = state
        .node_requests
        .clone()
        .ok_or_else(|| ApiError::unavailable("the node hub is not running"))?;
    let follow = q.follow && !q.previous;
    let limit = if follow { FOLLOW_TIMEOUT } else { LOG_TIMEOUT };
    let timeout = timeout_seconds(q, limit, Duration::MAX);
    let deadline = Instant::now() + timeout;
    let body = RequestBody::Logs {
        namespace: key.namespace.clone(),
        pod: key.name.clone(),
        container,
        tail_lines,
        follow,
        previous: q.previous,
    };
    let mut stream = requests
        .send(&node, "logs", body, SystemTime::now() + timeout)
        .map_err(requests_error)?;
    let first = first(&mut stream, deadline + GRACE).await?;
    let first = match first {
        ResponseBody::Error(message) => return Err(node_error(&node, message)),
        other => other,
    };
    let stream = futures_util::stream::unfold(
        (stream, Some(first), deadline + GRACE),
        |(mut stream, pending, deadline)| async move {
            let next = match pending {
                Some(body) => Some(body),
                None => tokio::time::timeout_at(deadline, stream.next())
                    .await
                    .unwrap_or(None),
            };
            let item = match next? {
                ResponseBody::Chunk(bytes) | ResponseBody::Stderr(bytes) => {
                    Ok::<_, std::io::Error>(Bytes::from(bytes))
                }
                ResponseBody::End { .. } => return None,
                ResponseBody::Error(message) => {
                    tracing::warn!(node = %stream.node(), "log stream failed: {message}");
                    Err(std::io::Error::other(message))
                }
            };
            Some((item, (stream, None, deadline)))
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `POST .../pods/{name}/exec`.
pub async fn exec(state: &ApiState, key: &Key, q: &Query) -> Result<Response> {
    if q.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let (node, container) = target(state, key, q.container.as_deref())?;
    let requests = state
        .node_requests
        .clone()
        .ok_or_else(|| ApiError::unavailable("the node hub is not running"))?;
    let timeout = timeout_seconds(q, EXEC_TIMEOUT, MAX_EXEC_TIMEOUT);
    let deadline = Instant::now() + timeout + GRACE;
    let body = RequestBody::Exec {
        namespace: key.namespace.clone(),
        pod: key.name.clone(),
        container: container.clone(),
        command: q.command.clone(),
        stdin: false,
        tty: false,
    };
    let mut stream = requests
        .send(&node, "exec", body, SystemTime::now() + timeout)
        .map_err(requests_error)?;
    let mut next = Some(first(&mut stream, deadline).await?);
    let mut out = Output::default();
    let mut err = Output::default();
    let exit_code = loop {
        let body = match next.take() {
            Some(body) => body,
            None => match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(body)) => body,
                Ok(None) => {
                    return Err(ApiError::unavailable(format!(
                        "node {node:?} stopped answering before the command ended"
                    )))
                }
                Err(_) => {
                    return Err(ApiError::timeout(format!(
                        "node {node:?} did not report the end of the command within {}s",
                        timeout.as_secs()
                    )))
                }
            },
        };
        match body {
            ResponseBody::Chunk(bytes) => out.add(&bytes),
            ResponseBody::Stderr(bytes) => err.add(&bytes),
            ResponseBody::End { exit_code } => break exit_code,
            ResponseBody::Error(message)
                if message.contains("did not finish before its deadline") =>
            {
                return Err(ApiError::timeout(format!("{message} (node {node:?})")))
            }
            ResponseBody::Error(message) => return Err(node_error(&node, message)),
        }
    };
    let mut warnings = Vec::new();
    for (name, output) in [("stdout", &out), ("stderr", &err)] {
        if output.truncated {
            warnings.push(format!(
                "the command's {name} was cut after {EXEC_OUTPUT_LIMIT} bytes"
            ));
        }
    }
    let result = json!({
        "kind": "ExecResult",
        "apiVersion": "v1",
        "container": container,
        "stdout": String::from_utf8_lossy(&out.bytes),
        "stderr": String::from_utf8_lossy(&err.bytes),
        "stdoutTruncated": out.truncated,
        "stderrTruncated": err.truncated,
        "exitCode": exit_code,
    });
    Ok(with_warnings(
        (StatusCode::OK, axum::Json(result)).into_response(),
        &warnings,
    ))
}

/// One output stream of an exec, kept up to the limit.
#[derive(Default)]
struct Output {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Output {
    fn add(&mut self, data: &[u8]) {
        let room = EXEC_OUTPUT_LIMIT.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(app: &[&str], init: &[&str]) -> Value {
        let list = |names: &[&str]| names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>();
        json!({"spec": {"containers": list(app), "initContainers": list(init)}})
    }

    #[test]
    fn the_container_defaults_to_the_only_one_and_must_be_named_among_several() {
        assert_eq!(pick_container(&pod(&["c"], &[]), "web", None).unwrap(), "c");
        assert_eq!(
            pick_container(&pod(&["a", "b"], &["setup"]), "web", Some("setup")).unwrap(),
            "setup"
        );
        let err = pick_container(&pod(&["a", "b"], &["setup"]), "web", None).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [setup]"
        );
        let err = pick_container(&pod(&["a", "b"], &[]), "web", Some("x")).unwrap_err();
        assert_eq!(err.message, "container x is not valid for pod web");
    }

    #[test]
    fn exec_output_is_kept_up_to_the_limit() {
        let mut out = Output::default();
        out.add(&vec![b'a'; EXEC_OUTPUT_LIMIT - 1]);
        assert!(!out.truncated);
        out.add(b"bc");
        assert!(out.truncated);
        assert_eq!(out.bytes.len(), EXEC_OUTPUT_LIMIT);
        assert_eq!(out.bytes.last(), Some(&b'b'));
    }
}
