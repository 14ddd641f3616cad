//! The controllers of `kelp server` (seed §1.4, §1.5): node lifecycle, the scheduler's task,
//! ReplicaSets and the garbage collector.
//!
//! They are level-triggered and keep no state of their own: each round lists what the store
//! holds now and writes only what differs from what should be. A round runs shortly after a
//! change to a kind they follow (debounced) and on a resync tick, so time-based decisions
//! (eviction) are taken even when nothing changes. Killing the server in the middle of a
//! round loses nothing and duplicates nothing: every write is a store write with the object's
//! revision as precondition, and the next round starts again from the store.

pub mod gc;
pub mod nodes;
pub mod replicaset;
pub mod scheduling;

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use tokio::time::Instant;

use crate::api::ApiState;
use crate::store::StoreError;

/// How the controllers run.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a round waits after a change (changes arriving meanwhile join it).
    pub debounce: Duration,
    /// A round at least this often, changes or not.
    pub resync: Duration,
    /// Delete the pods of a node not Ready for this long (never when `None`: edge nodes
    /// go offline and keep running their pods).
    pub pod_eviction_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            debounce: Duration::from_millis(50),
            resync: Duration::from_secs(10),
            pod_eviction_timeout: None,
        }
    }
}

/// The kinds whose changes start a round.
const FOLLOWED: [&str; 4] = ["Node", "Pod", "ReplicaSet", "Namespace"];

/// How many writes one controller keeps in flight (the store commits them together).
/// Large enough that a burst of bindings shares a few durable commits (the store's batch
/// limit is 1,000 writes).
pub(crate) const WRITES_IN_FLIGHT: usize = 512;

/// Which controllers one task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// The scheduler alone: placing a pod is on the path from `kelp apply` to a running
    /// container, so it never waits for the slower whole-store passes of the others.
    Scheduler,
    /// Node lifecycle, ReplicaSets and the garbage collector.
    Others,
}

/// Starts the controllers (two tasks: the scheduler, and the others); they run until the
/// store closes.
pub fn spawn(state: Arc<ApiState>, options: Options) -> tokio::task::JoinHandle<()> {
    let scheduler = tokio::spawn(run(state.clone(), options.clone(), Pass::Scheduler));
    tokio::spawn(async move {
        run(state, options, Pass::Others).await;
        let _ = scheduler.await;
    })
}

async fn run(state: Arc<ApiState>, options: Options, pass: Pass) {
    let store = state.store.clone();
    let mut watch = match store.watch(None, store.revision()) {
        Ok(watch) => watch,
        Err(_) => return,
    };
    let mut resync = tokio::time::interval(options.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due: Option<Instant> = Some(Instant::now());
    // How long the last round took: the next one waits at least as long after a change, so
    // that on a large, busy store the controllers take at most about half of a core.
    let mut last_took = Duration::ZERO;
    let mut views = scheduling::Views::default();
    loop {
        let wait = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = watch.next() => match change {
                Some(change) => {
                    let kind = change.object.key.kind.as_str();
                    let followed = match pass {
                        Pass::Scheduler => kind == "Pod" || kind == "Node",
                        Pass::Others => FOLLOWED.contains(&kind) || has_owner(&change.object.object),
                    };
                    if due.is_none() && followed {
                        // The scheduler, on the path to a running pod, waits only the
                        // debounce; the others as long as their last round took.
                        let wait = match pass {
                            Pass::Scheduler => options.debounce,
                            Pass::Others => options.debounce.max(last_took),
                        };
                        due = Some(Instant::now() + wait);
                    }
                }
                None => {
                    watch = match store.watch(None, store.revision()) {
                        Ok(watch) => watch,
                        Err(_) => return,
                    };
                    due = Some(Instant::now());
                }
            },
            _ = resync.tick() => {
                if due.is_none() {
                    due = Some(Instant::now());
                }
            }
            () = wait => {
                due = None;
                let started = Instant::now();
                let result = match pass {
                    Pass::Scheduler => scheduling::reconcile(&state, &mut views).await,
                    Pass::Others => others(&state, &options).await,
                };
                last_took = started.elapsed();
                match result {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return,
                    Err(err) => {
                        tracing::warn!(error = %err, "controllers: retrying");
                        due = Some(Instant::now() + options.debounce.max(Duration::from_millis(200)));
                    }
                }
            }
        }
    }
}

/// One round of every controller, one after another (tests drive the controllers with it).
pub async fn round(state: &ApiState, options: &Options) -> Result<(), StoreError> {
    nodes::reconcile(state, options).await?;
    scheduling::reconcile(state, &mut scheduling::Views::default()).await?;
    replicaset::reconcile(state).await?;
    gc::reconcile(state).await
}

/// One round of node lifecycle, ReplicaSets and the garbage collector.
async fn others(state: &ApiState, options: &Options) -> Result<(), StoreError> {
    let started = Instant::now();
    nodes::reconcile(state, options).await?;
    let nodes = started.elapsed();
    replicaset::reconcile(state).await?;
    let replicasets = started.elapsed();
    gc::reconcile(state).await?;
    tracing::debug!(?nodes, ?replicasets, all = ?started.elapsed(), "controllers round (times since its start)");
    Ok(())
}

fn has_owner(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty())
        || object.pointer("/metadata/deletionTimestamp").is_some()
}

/// Runs `writes` with up to [`WRITES_IN_FLIGHT`] at once; a stale precondition or a vanished
/// object is not an error (the next round sees the new state); the first other error is.
pub(crate) async fn run_writes<F>(writes: Vec<F>) -> Result<usize, StoreError>
where
    F: std::future::Future<Output = Result<(), StoreError>>,
{
    let results: Vec<Result<(), StoreError>> = stream::iter(writes)
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    let mut done = 0;
    for result in results {
        match result {
            Ok(()) => done += 1,
            Err(StoreError::Conflict { .. })
            | Err(StoreError::NotFound(_))
            | Err(StoreError::AlreadyExists(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// The uid of an object.
pub(crate) fn uid(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether an object is being deleted.
pub(crate) fn deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// The uid of an object's controlling owner.
pub(crate) fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o["controller"] == true)
        .and_then(|o| o["uid"].as_str())
}

/// Whether a pod is a mirror of a node's static pod.
pub(crate) fn is_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(crate::hub::MIRROR_ANNOTATION))
        .is_some()
}

/// Records an event about `object` from controller `component` (in memory, as every event).
pub(crate) fn event(
    state: &ApiState,
    component: &str,
    object: &Value,
    warning: bool,
    reason: &str,
    message: String,
) {
    let meta = &object["metadata"];
    let text = |k: &str| meta[k].as_str().unwrap_or_default().to_owned();
    state.events.record(
        crate::events::NewEvent {
            object: kelp_shared::wire::ObjectRef {
                kind: object["kind"].as_str().unwrap_or_default().to_owned(),
                namespace: text("namespace"),
                name: text("name"),
                uid: text("uid"),
            },
            warning,
            reason: reason.to_owned(),
            message,
            source: crate::events::Source {
                component: component.to_owned(),
                host: String::new(),
            },
            count: 1,
            first: None,
            last: None,
        },
        chrono::Utc::now(),
    );
}
