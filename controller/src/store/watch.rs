//! Watches: every change after a revision, in order, exactly once.
//!
//! A watch keeps a cursor (the last revision it has looked at) and reads the store's change
//! log after it; the writer's notification wakes it when there is more. Nothing is queued per
//! watcher, so a slow watcher costs nothing until the log has moved past its cursor; then its
//! next [`Watch::next`] returns `None` and it lists again, as a Kubernetes client does on 410.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use super::state::{Shared, Since};
use super::{Revision, WatchEvent};

/// How many events a watch copies out of the log per lock.
const READ_CHUNK: usize = 256;

/// A stream of changes; see [`Store::watch`](super::Store::watch).
pub struct Watch {
    shared: Arc<Shared>,
    notify: watch::Receiver<Revision>,
    kind: Option<String>,
    namespace: Option<String>,
    /// The last revision looked at (delivered or filtered out).
    cursor: Revision,
    buffer: VecDeque<WatchEvent>,
    /// The writer has stopped: deliver what is committed, then end.
    writer_gone: bool,
    ended: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("kind", &self.kind)
            .field("namespace", &self.namespace)
            .field("cursor", &self.cursor)
            .field("buffered", &self.buffer.len())
            .field("ended", &self.ended)
            .finish()
    }
}

/// What one look at the log gave.
enum Fill {
    /// The cursor moved (some events may have been filtered out).
    Progress,
    /// Nothing new.
    Nothing,
    /// The log no longer holds the next revision.
    FellBehind,
}

impl Watch {
    pub(super) fn new(
        shared: Arc<Shared>,
        notify: watch::Receiver<Revision>,
        kind: Option<&str>,
        namespace: Option<&str>,
        from: Revision,
    ) -> Watch {
        Watch {
            shared,
            notify,
            kind: kind.map(str::to_string),
            namespace: namespace.map(str::to_string),
            cursor: from,
            buffer: VecDeque::new(),
            writer_gone: false,
            ended: false,
        }
    }

    /// The next change, waiting for one if needed.
    ///
    /// `None` ends the watch, for good: either the watcher fell so far behind that the change
    /// log no longer holds its next revision, or the store closed (after every committed change
    /// has been delivered). Either way the client lists again and watches from the list's
    /// revision, as a Kubernetes client does.
    ///
    /// Cancel-safe: dropping the future (a `select!`, a timeout) loses no event.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            // Mark the current notification seen before reading, so a commit published after
            // the read wakes `changed()` below.
            if !self.writer_gone {
                self.notify.borrow_and_update();
            }
            match self.fill() {
                Fill::Progress => continue,
                Fill::FellBehind => {
                    self.ended = true;
                    return None;
                }
                Fill::Nothing => {}
            }
            if self.writer_gone {
                self.ended = true;
                return None;
            }
            if self.notify.changed().await.is_err() {
                // Look once more: the last commit may have landed before the writer stopped.
                self.writer_gone = true;
            }
        }
    }

    /// Copies the next events that match the filter out of the log.
    fn fill(&mut self) -> Fill {
        let state = self.shared.read();
        let mut cursor = self.cursor;
        let kind = self.kind.as_deref();
        let namespace = self.namespace.as_deref();
        let buffer = &mut self.buffer;
        let since = state.events_after(self.cursor, READ_CHUNK, |event| {
            cursor = event.object.revision;
            let key = &event.object.key;
            if kind.is_none_or(|k| key.kind == k) && namespace.is_none_or(|ns| key.namespace == ns)
            {
                buffer.push_back(event.clone());
            }
        });
        drop(state);
        self.cursor = cursor;
        match since {
            Since::Events => Fill::Progress,
            Since::UpToDate => Fill::Nothing,
            Since::Compacted => Fill::FellBehind,
        }
    }
}
