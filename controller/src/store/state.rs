//! The committed state every reader sees: objects, the revision, the change log.
//!
//! Only the writer task changes it, after the backend commit that contains the change.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{EventType, Key, Revision, StoreStats, Stored, WatchEvent};

/// What the store handles, the writer task and the watches share.
pub(super) struct Shared {
    state: RwLock<State>,
    pub(super) counters: Counters,
    /// Set by the writer when it has flushed and closed the backend on request.
    pub(super) closed_cleanly: AtomicBool,
}

/// The committed state.
pub(super) struct State {
    pub(super) objects: BTreeMap<Key, Stored>,
    /// The revision of the last committed change.
    pub(super) revision: Revision,
    /// The last changes, one per revision, without gaps: the last one's revision is `revision`.
    log: VecDeque<WatchEvent>,
    log_capacity: usize,
}

/// Counters behind [`StoreStats`].
#[derive(Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) durable_commits: AtomicU64,
    pub(super) ops: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            durable_commits: self.durable_commits.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
        }
    }
}

/// What [`State::events_after`] found.
pub(super) enum Since {
    /// Nothing after the asked revision yet.
    UpToDate,
    /// These events (at most the asked number), in revision order.
    Events,
    /// The log no longer holds the next revision.
    Compacted,
}

impl Shared {
    pub(super) fn new(
        objects: BTreeMap<Key, Stored>,
        revision: Revision,
        log_capacity: usize,
    ) -> Shared {
        Shared {
            state: RwLock::new(State {
                objects,
                revision,
                log: VecDeque::new(),
                log_capacity: log_capacity.max(1),
            }),
            counters: Counters::default(),
            closed_cleanly: AtomicBool::new(false),
        }
    }

    /// Reads the state. A panic elsewhere cannot leave it half-changed (see [`State::apply`]),
    /// so a poisoned lock is still read.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    /// The oldest revision a watch can start from: it receives every change after it.
    pub(super) fn oldest_watchable(&self) -> Revision {
        self.revision - self.log.len() as Revision
    }

    /// Publishes committed changes (consecutive revisions after `self.revision`).
    pub(super) fn apply(&mut self, events: Vec<WatchEvent>) {
        for event in events {
            let stored = &event.object;
            match event.event_type {
                EventType::Added | EventType::Modified => {
                    self.objects.insert(stored.key.clone(), stored.clone());
                }
                EventType::Deleted => {
                    self.objects.remove(&stored.key);
                }
            }
            self.revision = stored.revision;
            if self.log.len() == self.log_capacity {
                self.log.pop_front();
            }
            self.log.push_back(event);
        }
    }

    /// Calls `each` on up to `max` events after revision `after`, in order.
    pub(super) fn events_after(
        &self,
        after: Revision,
        max: usize,
        mut each: impl FnMut(&WatchEvent),
    ) -> Since {
        if after >= self.revision {
            return Since::UpToDate;
        }
        let oldest = self.oldest_watchable();
        if after < oldest {
            return Since::Compacted;
        }
        // The log has no gaps: the event at index i has revision oldest + 1 + i.
        let start = usize::try_from(after - oldest).unwrap_or(usize::MAX);
        for event in self.log.iter().skip(start).take(max) {
            each(event);
        }
        Since::Events
    }

    /// Objects of `kind` (in `namespace` if given), sorted by namespace and name.
    pub(super) fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Stored> {
        let start = Key::new(kind, namespace.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(|(key, _)| {
                key.kind == kind && namespace.is_none_or(|ns| key.namespace == ns)
            })
            .map(|(_, stored)| stored.clone())
            .collect()
    }
}
