//! The one writer: batches requests, checks preconditions, commits, publishes.
//!
//! A request waits in a bounded channel. The writer takes the first one, then everything that
//! arrives within the group-commit window (up to a batch limit), checks each request against
//! the committed state plus the batch's own earlier writes, gives the successful ones
//! consecutive revisions, commits them in one backend transaction (durable if any of them asks
//! for it), publishes them to readers and watches, and only then answers each request.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::backend::{Backend, Change};
use super::state::Shared;
use super::{Durability, EventType, Key, Revision, StoreError, Stored, WatchEvent};

/// What a store handle asks of the writer.
pub(super) enum Msg {
    /// A write.
    Write(WriteRequest),
    /// Flush, close the backend, stop; the answer comes once the backend is closed.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// One write and where its answer goes.
pub(super) struct WriteRequest {
    pub(super) op: Op,
    pub(super) durability: Durability,
    pub(super) reply: Answer,
}

/// The write itself.
pub(super) enum Op {
    Create {
        key: Key,
        object: Value,
    },
    Update {
        key: Key,
        object: Value,
        expected: Option<Revision>,
    },
    Delete {
        key: Key,
        expected: Option<Revision>,
    },
}

/// The writer's settings (from [`StoreOptions`](super::StoreOptions)).
#[derive(Clone, Copy)]
pub(super) struct Settings {
    pub(super) window: Duration,
    pub(super) max_batch: usize,
    pub(super) relaxed_flush_interval: Option<Duration>,
    pub(super) relaxed_flush_revisions: u64,
}

/// Where a write's answer goes.
type Answer = oneshot::Sender<Result<Stored, StoreError>>;

type Reply = (Answer, Result<Stored, StoreError>);

/// What one batch did.
struct Outcome {
    replies: Vec<Reply>,
    /// `Some(durable)` when the batch committed.
    committed: Option<bool>,
}

/// The writer task. Ends when asked to close, when every store handle is gone, or when a
/// batch panics (then the requests in flight see their reply channel dropped).
pub(super) async fn run(
    mut rx: mpsc::Receiver<Msg>,
    backend: Box<dyn Backend>,
    shared: Arc<Shared>,
    notify: watch::Sender<Revision>,
    settings: Settings,
) {
    let mut backend = Some(backend);
    // When the oldest commit not yet made durable happened.
    let mut relaxed_since: Option<Instant> = None;
    // The revision of the last durable commit (or the session's start): a batch reaching
    // `relaxed_flush_revisions` past it is committed durably.
    let mut durable_revision = shared.read().revision;
    let mut close_reply = None;
    loop {
        let flush_at = relaxed_since
            .zip(settings.relaxed_flush_interval)
            .map(|(since, interval)| since + interval);
        let first = match flush_at {
            Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                Ok(msg) => msg,
                Err(_elapsed) => {
                    // Make the relaxed commits durable, with an empty durable commit.
                    let Some((committed, revision)) =
                        run_batch(&mut backend, &shared, &notify, Vec::new(), 0).await
                    else {
                        return;
                    };
                    if committed.is_some() {
                        durable_revision = revision;
                    }
                    // On failure, try again one interval later rather than at once.
                    relaxed_since = committed.is_none().then(Instant::now);
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(first) = first else { break };
        let mut batch = Vec::new();
        let mut disconnected = false;
        match first {
            Msg::Write(request) => batch.push(request),
            Msg::Close(reply) => close_reply = Some(reply),
        }
        if close_reply.is_none() {
            let deadline = Instant::now() + settings.window;
            while batch.len() < settings.max_batch {
                let msg = match rx.try_recv() {
                    Ok(msg) => msg,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if settings.window.is_zero() {
                            break;
                        }
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(msg)) => msg,
                            Ok(None) => {
                                disconnected = true;
                                break;
                            }
                            Err(_elapsed) => break,
                        }
                    }
                };
                match msg {
                    Msg::Write(request) => batch.push(request),
                    Msg::Close(reply) => {
                        close_reply = Some(reply);
                        break;
                    }
                }
            }
        }
        if !batch.is_empty() {
            // Durable if the flush is due, or relaxed writes would run too far ahead.
            let durable_from = if flush_at.is_some_and(|at| Instant::now() >= at) {
                0
            } else {
                durable_revision.saturating_add(settings.relaxed_flush_revisions)
            };
            let Some((committed, revision)) =
                run_batch(&mut backend, &shared, &notify, batch, durable_from).await
            else {
                return;
            };
            match committed {
                Some(true) => {
                    relaxed_since = None;
                    durable_revision = revision;
                }
                Some(false) => {
                    relaxed_since.get_or_insert_with(Instant::now);
                }
                None => {}
            }
        }
        if close_reply.is_some() || disconnected {
            break;
        }
    }

    // Closing: refuse what is still queued, make everything durable, close the backend.
    rx.close();
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Write(request) => {
                let _ = request.reply.send(Err(StoreError::Closed));
            }
            Msg::Close(reply) => {
                let _ = reply.send(Err(StoreError::Closed));
            }
        }
    }
    let mut result = Ok(());
    if let Some(mut backend) = backend.take() {
        let revision = shared.read().revision;
        // Closing and dropping a redb database write to it: keep that off the async threads.
        let closed = tokio::task::spawn_blocking(move || {
            let closed = backend.close(revision);
            drop(backend);
            closed
        })
        .await;
        result = match closed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::error!(error = %err, "store close failed; relaxed writes may be lost");
                Err(err)
            }
            Err(_panicked) => Err(StoreError::Backend(
                "closing the backend panicked".to_string(),
            )),
        };
    }
    if result.is_ok() {
        shared.closed_cleanly.store(true, Ordering::SeqCst);
    }
    drop(notify);
    if let Some(reply) = close_reply {
        let _ = reply.send(result);
    }
}

/// Runs one batch on a blocking thread (see [`process_batch`]), then notifies watches and
/// answers. Gives whether it committed (`Some(durable)`) and the revision after it, or `None`
/// if it panicked: the backend is gone with it and the writer must stop.
async fn run_batch(
    backend: &mut Option<Box<dyn Backend>>,
    shared: &Arc<Shared>,
    notify: &watch::Sender<Revision>,
    batch: Vec<WriteRequest>,
    durable_from: Revision,
) -> Option<(Option<bool>, Revision)> {
    let mut owned = backend.take()?;
    let shared_for_batch = Arc::clone(shared);
    let joined = tokio::task::spawn_blocking(move || {
        let outcome = process_batch(owned.as_mut(), &shared_for_batch, batch, durable_from);
        (owned, outcome)
    })
    .await;
    match joined {
        Ok((owned, (outcome, revision))) => {
            *backend = Some(owned);
            if outcome.committed.is_some() {
                notify.send_replace(revision);
            }
            for (reply, result) in outcome.replies {
                // The caller may have gone away; the write stands.
                let _ = reply.send(result);
            }
            Some((outcome.committed, revision))
        }
        Err(err) => {
            tracing::error!(error = %err, "store writer: a write batch panicked; the store is closed");
            None
        }
    }
}

/// Checks, commits and publishes one batch; returns the replies to send and the revision.
///
/// The commit is durable if a write asks for it or the batch's last revision reaches
/// `durable_from`; with `durable_from` 0 it is made (durably) even without changes.
fn process_batch(
    backend: &mut dyn Backend,
    shared: &Shared,
    batch: Vec<WriteRequest>,
    durable_from: Revision,
) -> (Outcome, Revision) {
    let force_durable = durable_from == 0;
    let mut changes = Vec::new();
    let mut events: Vec<WatchEvent> = Vec::new();
    // Each request's answer: an index into `events`, or its error.
    let mut pending: Vec<(Answer, Result<usize, StoreError>)> = Vec::with_capacity(batch.len());
    let mut durable = force_durable;
    let start_revision;
    let mut revision;
    {
        let state = shared.read();
        start_revision = state.revision;
        revision = state.revision;
        // This batch's own writes so far: `None` for a deletion.
        let mut overlay: HashMap<Key, Option<Stored>> = HashMap::new();
        for request in batch {
            let WriteRequest {
                op,
                durability,
                reply,
            } = request;
            let key = match &op {
                Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
            };
            let current = match overlay.get(key) {
                Some(in_batch) => in_batch.clone(),
                None => state.objects.get(key).cloned(),
            };
            let checked = check(op, current);
            let (event_type, key, mut object) = match checked {
                Ok(ok) => ok,
                Err(err) => {
                    pending.push((reply, Err(err)));
                    continue;
                }
            };
            let next = revision + 1;
            set_resource_version(&mut object, next);
            let change = match event_type {
                EventType::Added | EventType::Modified => match serde_json::to_vec(&object) {
                    Ok(json) => Change::Put {
                        key: key.clone(),
                        revision: next,
                        json,
                    },
                    Err(err) => {
                        pending.push((
                            reply,
                            Err(StoreError::Backend(format!("{key}: encode JSON: {err}"))),
                        ));
                        continue;
                    }
                },
                EventType::Deleted => Change::Delete { key: key.clone() },
            };
            revision = next;
            if durability == Durability::Durable {
                durable = true;
            }
            let stored = Stored {
                key: key.clone(),
                revision,
                object: Arc::new(object),
            };
            overlay.insert(
                key,
                (event_type != EventType::Deleted).then(|| stored.clone()),
            );
            changes.push(change);
            events.push(WatchEvent {
                event_type,
                object: stored,
            });
            pending.push((reply, Ok(events.len() - 1)));
        }
    }

    if revision >= durable_from {
        durable = true;
    }
    let committed = if changes.is_empty() && !force_durable {
        None
    } else {
        match backend.commit(&changes, revision, durable) {
            Ok(()) => Some(durable),
            Err(err) => {
                tracing::error!(error = %err, ops = changes.len(), "store commit failed");
                let message = match err {
                    StoreError::Backend(message) => message,
                    other => other.to_string(),
                };
                let replies = pending
                    .into_iter()
                    .map(|(reply, _)| (reply, Err(StoreError::Backend(message.clone()))))
                    .collect();
                return (
                    Outcome {
                        replies,
                        committed: None,
                    },
                    start_revision,
                );
            }
        }
    };

    // Without a commit there are no changes, so every answer is an error.
    let replies = pending
        .into_iter()
        .map(|(reply, result)| (reply, result.map(|index| events[index].object.clone())))
        .collect();
    if committed.is_some() {
        let counters = &shared.counters;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        if durable {
            counters.durable_commits.fetch_add(1, Ordering::Relaxed);
        }
        counters
            .ops
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        shared.write().apply(events);
    }
    (Outcome { replies, committed }, revision)
}

/// Checks a request's precondition against the object's current state; gives the event type,
/// the key and the object to store (for a deletion: the last state).
fn check(op: Op, current: Option<Stored>) -> Result<(EventType, Key, Value), StoreError> {
    match op {
        Op::Create { key, object } => match current {
            Some(_) => Err(StoreError::AlreadyExists(key)),
            None => Ok((EventType::Added, key, object)),
        },
        Op::Update {
            key,
            object,
            expected,
        } => {
            let current = current.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            check_expected(&key, expected, current.revision)?;
            Ok((EventType::Modified, key, object))
        }
        Op::Delete { key, expected } => {
            let current = current.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            check_expected(&key, expected, current.revision)?;
            Ok((EventType::Deleted, key, (*current.object).clone()))
        }
    }
}

fn check_expected(
    key: &Key,
    expected: Option<Revision>,
    actual: Revision,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != actual => Err(StoreError::Conflict {
            key: key.clone(),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

/// Sets `metadata.resourceVersion` to the revision, as a decimal string (Kubernetes' form).
/// A JSON value that is not an object is stored as it is.
pub(super) fn set_resource_version(object: &mut Value, revision: Revision) {
    if let Value::Object(map) = object {
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(metadata) = metadata {
            metadata.insert(
                "resourceVersion".to_string(),
                Value::String(revision.to_string()),
            );
        }
    }
}
