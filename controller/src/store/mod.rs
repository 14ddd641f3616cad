//! The object store: etcd's model on an embedded redb file.
//!
//! One revision counter for the whole store; every write gets the next revision, which
//! becomes the object's `metadata.resourceVersion`. Reads come from an in-memory copy of the
//! committed state. Writes go through one writer task that batches the requests arriving
//! within a short window into one redb transaction (group commit): a durable write is
//! acknowledged only after the commit that contains it is durable. A bounded in-memory change log lets a
//! watch resume from any revision it still holds; older ones are `Compacted` (HTTP 410).
//!
//! CONTRACT (the API layer codes against exactly this surface):
//!
//! ```text
//! let store = Store::open(path, StoreOptions::default())?;     // redb file
//! let store = Store::open_in_memory(StoreOptions::default())?; // tests
//! store.revision() -> Revision
//! store.get(&key) -> Option<Stored>
//! store.list(kind, namespace: Option<&str>) -> (Vec<Stored>, Revision)
//! store.create(key, json, Durability::Durable).await -> Result<Stored, StoreError>
//! store.update(key, json, Some(expected_rev), durability).await -> Result<Stored, StoreError>
//! store.delete(key, Some(expected_rev), durability).await -> Result<Stored, StoreError>
//! store.watch(Some(kind), from_rev) -> Result<Watch, StoreError>; watch.next().await -> Option<WatchEvent>
//! ```
//!
//! The backend sits behind one trait, [`Backend`]: [`RedbBackend`] (the embedded default) now,
//! an etcd backend later. What is durable when is written down in `docs/durability.md`.

mod backend;
mod redb_backend;
mod state;
mod watch;
mod writer;

#[cfg(test)]
mod test_storage;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use backend::{Backend, Change, Loaded};
pub use redb_backend::RedbBackend;
pub use watch::Watch;

use state::Shared;
use writer::{Msg, Op, WriteRequest};

/// A store revision; `0` means "before anything was written".
pub type Revision = u64;

/// Where an object lives: kind name (`Pod`), namespace (`""` for cluster-scoped), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The kind's name, as in the kind table (`Pod`).
    pub kind: String,
    /// The namespace, or `""` for cluster-scoped kinds.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl Key {
    /// A key.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Key {
        Key {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {:?}", self.kind, self.name)
        } else {
            write!(f, "{} \"{}/{}\"", self.kind, self.namespace, self.name)
        }
    }
}

/// An object as stored: its key, the revision that last changed it, and its JSON (whose
/// `metadata.resourceVersion` is that revision as a decimal string).
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// Where it lives.
    pub key: Key,
    /// The revision of its last change (for a deletion event: the deletion's revision).
    pub revision: Revision,
    /// The object.
    pub object: Arc<serde_json::Value>,
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted; the object is its last state.
    Deleted,
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// What happened.
    pub event_type: EventType,
    /// The object after the change (for a deletion, its last state with the deletion's
    /// revision as `resourceVersion`).
    pub object: Stored,
}

/// How durable a write must be before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// On disk (fsync) before the caller hears back. Every API write.
    Durable,
    /// Committed, but may be lost in a power cut: status rebuilt from nodes' retained reports.
    Relaxed,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object.
    #[error("{0} not found")]
    NotFound(Key),
    /// Create of an object that exists.
    #[error("{0} already exists")]
    AlreadyExists(Key),
    /// Update or delete with a stale resourceVersion.
    #[error("{key}: the object has been modified (resourceVersion {expected} is stale, current is {actual}); please apply your changes to the latest version and try again")]
    Conflict {
        /// The object.
        key: Key,
        /// The revision the caller had.
        expected: Revision,
        /// The current revision.
        actual: Revision,
    },
    /// A watch from a revision the change log no longer holds.
    #[error("too old resource version: {requested} (oldest available {oldest}); list again")]
    Compacted {
        /// What the watcher asked for.
        requested: Revision,
        /// The oldest revision a watch can start from.
        oldest: Revision,
    },
    /// The storage engine failed; the write was not applied.
    #[error("storage: {0}")]
    Backend(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// How the store batches, how much history it keeps.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How long the writer waits, after the first request of a batch, for more to share its
    /// commit (group commit). Default 2 ms.
    pub group_commit_window: Duration,
    /// The most writes one commit holds. Default 1,000.
    pub max_batch: usize,
    /// How many changes the in-memory change log keeps for watches to resume from.
    /// Default 10,000.
    pub log_capacity: usize,
    /// How many writes may wait for the writer before callers wait to hand theirs in.
    /// Default 4,096.
    pub queue_capacity: usize,
    /// The longest a [`Durability::Relaxed`] write stays non-durable when no durable write
    /// follows it: then an empty durable commit makes it durable. `None`: only the next
    /// durable write (or the close) does. Default 60 s.
    pub relaxed_flush_interval: Option<Duration>,
    /// The most revisions relaxed writes may run ahead of the last durable commit: a batch
    /// reaching it is committed durably. After an unclean shutdown (a crash, a power cut) the
    /// store's revision skips this far ahead, so that no revision a lost relaxed write had (and
    /// a watcher may have seen) is given to another change. Default 10,000.
    pub relaxed_flush_revisions: u64,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            group_commit_window: Duration::from_millis(2),
            max_batch: 1_000,
            log_capacity: 10_000,
            queue_capacity: 4_096,
            relaxed_flush_interval: Some(Duration::from_secs(60)),
            relaxed_flush_revisions: 10_000,
        }
    }
}

/// What the writer has done since the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Backend commits that succeeded (durable or not).
    pub commits: u64,
    /// Of those, the durable ones (one fsync each on redb).
    pub durable_commits: u64,
    /// Writes committed (creates, updates, deletes).
    pub ops: u64,
}

/// The object store. Cheap to clone: every clone is a handle on the same store.
///
/// Reads (`get`, `list`, `revision`) come from memory and never wait for the writer. Writes
/// are answered by the writer task after the commit that contains them (durable for
/// [`Durability::Durable`]). A write whose caller stops waiting still happens.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Msg>,
    notify: tokio::sync::watch::Receiver<Revision>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the redb file at `path` and loads every object into memory.
    ///
    /// Must be called within a tokio runtime: it spawns the writer task there. It reads the
    /// whole file before returning (blocking), which is what a controller does at startup.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        Store::open_with(RedbBackend::open(path.as_ref())?, options)
    }

    /// A store on redb's in-memory backend: real redb, nothing on disk (tests).
    pub fn open_in_memory(options: StoreOptions) -> Result<Store, StoreError> {
        Store::open_with_backend(redb::backends::InMemoryBackend::new(), options)
    }

    /// A store on redb over any [`redb::StorageBackend`] (a file, memory, a test double).
    pub fn open_with_backend(
        storage: impl redb::StorageBackend,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        Store::open_with(RedbBackend::with_storage(storage)?, options)
    }

    /// A store on any [`Backend`]. Must be called within a tokio runtime (see [`Store::open`]).
    pub fn open_with(
        mut backend: impl Backend,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::Backend("the store must be opened within a tokio runtime".to_string())
        })?;
        let loaded = backend.load()?;
        let relaxed_flush_revisions = options.relaxed_flush_revisions.max(1);
        let mut objects = BTreeMap::new();
        let mut revision = loaded.revision;
        for (key, object_revision, json) in loaded.objects {
            let object: serde_json::Value = serde_json::from_slice(&json)
                .map_err(|e| StoreError::Backend(format!("{key}: stored JSON: {e}")))?;
            revision = revision.max(object_revision);
            objects.insert(
                key.clone(),
                Stored {
                    key,
                    revision: object_revision,
                    object: Arc::new(object),
                },
            );
        }
        if !loaded.clean {
            // Relaxed writes after the last durable commit may be lost, and their revisions
            // were seen: never give them out again.
            tracing::warn!(
                revision,
                skip = relaxed_flush_revisions,
                "the store was not closed cleanly; its revision skips ahead past any lost relaxed writes"
            );
            revision = revision.saturating_add(relaxed_flush_revisions);
        }
        backend.begin(revision)?;
        let shared = Arc::new(Shared::new(objects, revision, options.log_capacity));
        let (requests, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (notify_tx, notify) = tokio::sync::watch::channel(revision);
        let settings = writer::Settings {
            window: options.group_commit_window,
            max_batch: options.max_batch.max(1),
            relaxed_flush_interval: options.relaxed_flush_interval,
            relaxed_flush_revisions,
        };
        runtime.spawn(writer::run(
            rx,
            Box::new(backend),
            Arc::clone(&shared),
            notify_tx,
            settings,
        ));
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                requests,
                notify,
            }),
        })
    }

    /// The revision of the last committed change.
    pub fn revision(&self) -> Revision {
        self.inner.shared.read().revision
    }

    /// The object at `key`, if any.
    pub fn get(&self, key: &Key) -> Option<Stored> {
        self.inner.shared.read().objects.get(key).cloned()
    }

    /// Every object of `kind` (in `namespace` if given), sorted by namespace then name, and
    /// the revision they were read at (watch from it to follow on).
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> (Vec<Stored>, Revision) {
        let state = self.inner.shared.read();
        (state.list(kind, namespace), state.revision)
    }

    /// Creates an object; its `metadata.resourceVersion` is set to the new revision.
    ///
    /// [`StoreError::AlreadyExists`] if `key` holds an object.
    pub async fn create(
        &self,
        key: Key,
        object: serde_json::Value,
        durability: Durability,
    ) -> Result<Stored, StoreError> {
        self.write(Op::Create { key, object }, durability).await
    }

    /// Replaces an object; its `metadata.resourceVersion` is set to the new revision.
    ///
    /// [`StoreError::NotFound`] if there is none; [`StoreError::Conflict`] if `expected` is
    /// given and is not the object's current revision.
    pub async fn update(
        &self,
        key: Key,
        object: serde_json::Value,
        expected: Option<Revision>,
        durability: Durability,
    ) -> Result<Stored, StoreError> {
        self.write(
            Op::Update {
                key,
                object,
                expected,
            },
            durability,
        )
        .await
    }

    /// Deletes an object; gives its last state, with the deletion's revision (also as its
    /// `resourceVersion`).
    ///
    /// [`StoreError::NotFound`] if there is none; [`StoreError::Conflict`] if `expected` is
    /// given and is not the object's current revision.
    pub async fn delete(
        &self,
        key: Key,
        expected: Option<Revision>,
        durability: Durability,
    ) -> Result<Stored, StoreError> {
        self.write(Op::Delete { key, expected }, durability).await
    }

    async fn write(&self, op: Op, durability: Durability) -> Result<Stored, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(Msg::Write(WriteRequest {
                op,
                durability,
                reply,
            }))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Every change after revision `from` to objects of `kind` (all kinds if `None`), in
    /// revision order, each exactly once, then live changes as they commit.
    ///
    /// [`StoreError::Compacted`] if the change log no longer reaches back to `from` (always so
    /// for `from` below the current revision right after the store opened: the log starts
    /// empty). Watch from the revision a `list` returned. See [`Watch::next`] for how a watch
    /// ends.
    pub fn watch(&self, kind: Option<&str>, from: Revision) -> Result<Watch, StoreError> {
        self.watch_in(kind, None, from)
    }

    /// [`Store::watch`], narrowed to one namespace when `namespace` is given.
    pub fn watch_in(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
        from: Revision,
    ) -> Result<Watch, StoreError> {
        if self.inner.notify.has_changed().is_err() {
            return Err(StoreError::Closed);
        }
        let oldest = self.inner.shared.read().oldest_watchable();
        if from < oldest {
            return Err(StoreError::Compacted {
                requested: from,
                oldest,
            });
        }
        Ok(Watch::new(
            Arc::clone(&self.inner.shared),
            self.inner.notify.clone(),
            kind,
            namespace,
            from,
        ))
    }

    /// What the writer has done since the store opened.
    pub fn stats(&self) -> StoreStats {
        self.inner.shared.counters.snapshot()
    }

    /// Stops the store: writes already handed in are committed, relaxed writes are made
    /// durable, the backend (the redb file) is closed, watches end once they have delivered
    /// every change. Later writes get [`StoreError::Closed`]; reads keep working on the last
    /// state. Closing again is `Ok`.
    ///
    /// Without `close`, the store stops the same way when its last handle is dropped, but
    /// nobody waits for it: close before reopening the same file.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.inner.requests.send(Msg::Close(reply)).await.is_err() {
            // Closing already, or closed.
            self.closed().await;
            return self.closed_result();
        }
        match answer.await {
            Ok(Err(StoreError::Closed)) | Err(_) => {
                self.closed().await;
                self.closed_result()
            }
            Ok(result) => result,
        }
    }

    fn closed_result(&self) -> Result<(), StoreError> {
        if self.inner.shared.closed_cleanly.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Closed)
        }
    }

    /// Resolves when the writer task has stopped: after [`Store::close`], or unexpectedly
    /// (a panic). A server selects on it to go down with its store.
    pub async fn closed(&self) {
        let mut notify = self.inner.notify.clone();
        while notify.changed().await.is_ok() {}
    }
}
