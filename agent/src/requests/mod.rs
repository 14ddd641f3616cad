//! Answering the controller's requests: `kelp logs` ([`logs`]) and `kelp exec` ([`exec`]).
//!
//! The link verifies a request and hands it here with a [`Responder`]; each request is
//! answered on a thread of its own, so neither the link nor the agent's loop waits for one.
//! Pods are found the way `kelp-agent pods` finds them, from the status files under the
//! run dir, so answering needs nothing of the agent's loop. A `Cancel` request stops a
//! running one (a followed log, an exec) by id.
//!
//! Every failure is answered with `Error("...")`, naming the pod and container.

pub mod exec;
pub mod logs;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kelp_shared::wire::{Request, RequestBody, ResponseBody};

use crate::agent::PodReport;
use crate::link::request::Responder;
use crate::link::RequestHandler;
use crate::runtime::state::{read_json, ContainerRun, PodPaths};
use crate::runtime::RuntimeConfig;

/// The largest output chunk published at once (a packet stays far below the 1 MiB limit).
pub const CHUNK: usize = 64 * 1024;

/// What answering needs: where pods, their state and their logs are.
#[derive(Debug, Clone)]
pub struct Requests {
    runtime: RuntimeConfig,
    node: String,
    /// Running requests by id, with the flag that cancels each.
    running: Arc<Mutex<HashMap<u64, Arc<AtomicBool>>>>,
}

impl Requests {
    /// Answers requests about the pods of `runtime` on node `node`.
    pub fn new(runtime: RuntimeConfig, node: &str) -> Self {
        Self {
            runtime,
            node: node.to_string(),
            running: Arc::default(),
        }
    }

    /// The handler the link calls with each verified request.
    pub fn handler(self) -> RequestHandler {
        Box::new(move |request, responder| self.take(request, responder))
    }

    /// Starts answering `request` on a thread of its own (a `Cancel` is done at once).
    pub fn take(&self, request: Request, mut responder: Responder) {
        let deadline = UNIX_EPOCH + Duration::from_millis(request.deadline_unix_ms);
        let id = request.id;
        let body = match request.body {
            RequestBody::Cancel { request_id } => {
                if let Some(flag) = self.lock().get(&request_id) {
                    flag.store(true, Ordering::SeqCst);
                }
                return;
            }
            body => body,
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.lock().insert(id, cancel.clone());
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("request-{id}"))
            .spawn(move || {
                let job = Job {
                    requests: &this,
                    deadline,
                    cancel: &cancel,
                };
                let result = match body {
                    RequestBody::Logs {
                        namespace,
                        pod,
                        container,
                        tail_lines,
                        follow,
                        previous,
                    } => logs::serve(
                        &job,
                        &logs::LogsRequest {
                            namespace,
                            pod,
                            container,
                            tail_lines,
                            follow,
                            previous,
                        },
                        &mut responder,
                    ),
                    RequestBody::Exec {
                        stdin: true, ..
                    }
                    | RequestBody::Exec { tty: true, .. } => Err(
                        "interactive exec (stdin or a terminal) is not supported: kelp exec runs a command and returns its output"
                            .to_string(),
                    ),
                    RequestBody::Exec {
                        namespace,
                        pod,
                        container,
                        command,
                        ..
                    } => exec::serve(&job, &namespace, &pod, &container, &command, &mut responder),
                    RequestBody::Stdin { request_id, .. } => Err(format!(
                        "request {request_id}: stdin is not supported (kelp exec is not interactive)"
                    )),
                    RequestBody::Cancel { .. } => Ok(()),
                };
                let sent = match result {
                    Ok(()) => true,
                    Err(message) => {
                        tracing::info!(id, "request failed: {message}");
                        responder.send(ResponseBody::Error(message))
                    }
                };
                if !sent {
                    tracing::warn!(id, "the answer to request {id} could not be published");
                }
                this.lock().remove(&id);
            });
        if let Err(e) = spawned {
            self.lock().remove(&id);
            tracing::warn!(id, "cannot start a thread for request {id}: {e}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicBool>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One request being answered.
pub struct Job<'a> {
    requests: &'a Requests,
    deadline: SystemTime,
    cancel: &'a AtomicBool,
}

impl Job<'_> {
    /// Whether to stop: cancelled, or past the deadline.
    pub fn should_stop(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || SystemTime::now() >= self.deadline
    }

    /// Whether a `Cancel` came for it.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// How long until the deadline (zero once past).
    pub fn time_left(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }

    /// The runtime's directories.
    pub fn runtime(&self) -> &RuntimeConfig {
        &self.requests.runtime
    }

    /// Finds a pod and one of its containers on this node.
    pub fn locate(&self, namespace: &str, pod: &str, container: &str) -> Result<Located, String> {
        locate(
            &self.requests.runtime.run_dir,
            &self.requests.node,
            namespace,
            pod,
            container,
        )
    }
}

/// A pod's container on this node, as its files say.
#[derive(Debug, Clone)]
pub struct Located {
    /// The pod's status file.
    pub pod: PodReport,
    /// The pod's run-dir layout.
    pub paths: PodPaths,
    /// The container's name.
    pub container: String,
    /// The container's last run (None before it was first started).
    pub run: Option<ContainerRun>,
}

impl Located {
    /// `namespace/name` of the pod.
    pub fn pod_name(&self) -> String {
        format!("{}/{}", self.pod.namespace, self.pod.name)
    }
}

/// The pods the agent keeps status files for, named `namespace`/`name` (a pod being
/// replaced by a new one of the same name can have two).
fn pods_named(run_dir: &Path, namespace: &str, name: &str) -> Vec<PodReport> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("pods")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| read_json::<PodReport>(&e.path().join("status.json")).ok()?)
        .filter(|r| r.namespace == namespace && r.name == name)
        .collect()
}

/// The containers of a pod, app containers first, as its status lists them.
pub fn container_names(pod: &PodReport) -> Vec<String> {
    let app = pod.status.container_statuses.iter().flatten();
    let init = pod.status.init_container_statuses.iter().flatten();
    app.chain(init).map(|s| s.name.clone()).collect()
}

/// Finds `container` of pod `namespace`/`pod` under `run_dir` (on node `node`, for messages).
pub fn locate(
    run_dir: &Path,
    node: &str,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Located, String> {
    let found = pods_named(run_dir, namespace, pod)
        .into_iter()
        .max_by_key(|r| r.status.start_time);
    let Some(report) = found else {
        return Err(format!(
            "pod {namespace}/{pod} is not running on node {node:?} (the agent has no such pod)"
        ));
    };
    let names = container_names(&report);
    if !names.iter().any(|n| n == container) {
        return Err(format!(
            "container {container:?} not found in pod {namespace}/{pod}; it has: {}",
            names.join(", ")
        ));
    }
    let paths = PodPaths::new(run_dir, &report.uid);
    let run = read_json::<ContainerRun>(&paths.container_state(container))
        .map_err(|e| format!("container {container:?} of pod {namespace}/{pod}: {e}"))?;
    Ok(Located {
        pod: report,
        paths,
        container: container.to_string(),
        run,
    })
}

/// Parses a run's RFC 3339 time.
pub fn parse_time(text: Option<&str>) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(text?).ok()?;
    Some(SystemTime::from(t.with_timezone(&chrono::Utc)))
}

#[cfg(test)]
mod tests;
