//! The one trait the store persists through: redb now (the embedded default), etcd later.
//!
//! The [`Store`](super::Store) keeps the committed state in memory, checks preconditions,
//! assigns revisions and serves watches; a [`Backend`] only has to load what was committed and
//! commit a batch of changes atomically. Its methods are blocking: the store's writer calls
//! them from a blocking thread, never from an async task.

use super::{Key, Revision, StoreError};

/// One change inside a committed batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Create or replace the object at `key`.
    Put {
        /// Where it lives.
        key: Key,
        /// The revision of this change (also the `resourceVersion` inside `json`).
        revision: Revision,
        /// The object as JSON bytes.
        json: Vec<u8>,
    },
    /// Remove the object at `key`.
    Delete {
        /// Where it lived.
        key: Key,
    },
}

/// What a backend holds when the store opens it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    /// The store's revision: the revision of its last change, deletions included.
    pub revision: Revision,
    /// Every object: its key, the revision of its last change, its JSON bytes.
    pub objects: Vec<(Key, Revision, Vec<u8>)>,
    /// Whether the last session ended with [`Backend::close`] (true for a new backend). When
    /// false, non-durable commits of that session may have been lost, and with them revisions
    /// that readers saw.
    pub clean: bool,
}

/// Where committed batches go.
///
/// A session is `load`, `begin`, any number of `commit`s, `close`.
///
/// `commit` must be atomic: after a crash at any point, a later `load` sees either every change
/// of the batch (and its `revision`) or none of them. When `durable` is true the batch, and every
/// batch committed before it, must survive a power cut once `commit` returns `Ok`; when false it
/// may be lost in a power cut (but never partially).
pub trait Backend: Send + 'static {
    /// Reads everything committed.
    fn load(&mut self) -> Result<Loaded, StoreError>;

    /// Starts a session at `revision` (at least the loaded one): records it durably, and that
    /// the backend is in use, so that a `load` after a crash says `clean: false`.
    fn begin(&mut self, revision: Revision) -> Result<(), StoreError>;

    /// Commits `changes` (possibly none) and records `revision` as the store's revision.
    fn commit(
        &mut self,
        changes: &[Change],
        revision: Revision,
        durable: bool,
    ) -> Result<(), StoreError>;

    /// Ends the session: makes every commit durable and records a clean close at `revision`.
    fn close(&mut self, revision: Revision) -> Result<(), StoreError>;
}
