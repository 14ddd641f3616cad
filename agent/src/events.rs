//! Events the agent records, as Kubernetes Events read (`type`, `reason`, `message`, `count`,
//! first and last time): kept with each pod's status and, for the node (image garbage
//! collection), in `<run-dir>/events.json`, where `kelp-agent pods -o json` and
//! `kelp-agent events` show them. A node that joined a cluster also sends them to the
//! controller through its [`Outbox`]: aggregated by (object, reason, message), batched, only
//! what changed since the last batch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kelp_shared::wire::{BootId, EventBatch, EventType, NodeEvent, ObjectRef};
use serde::{Deserialize, Serialize};

/// How many events a pod or the node keeps (the oldest go first).
pub const KEEP: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: u32,
    pub first_timestamp: DateTime<Utc>,
    pub last_timestamp: DateTime<Utc>,
}

/// Records `reason`/`message` in `events`: a repeat of the latest event counts up, as the
/// kubelet's event aggregation does; others are appended, keeping the last [`KEEP`].
pub fn record(events: &mut Vec<Event>, warning: bool, reason: &str, message: String) {
    let now = Utc::now();
    if let Some(e) = events
        .iter_mut()
        .rev()
        .find(|e| e.reason == reason && e.message == message)
    {
        e.count += 1;
        e.last_timestamp = now;
        return;
    }
    events.push(Event {
        type_: if warning { "Warning" } else { "Normal" }.into(),
        reason: reason.into(),
        message,
        count: 1,
        first_timestamp: now,
        last_timestamp: now,
    });
    if events.len() > KEEP {
        events.remove(0);
    }
}

/// How many aggregated events the outbox keeps (the least recently seen go first).
pub const OUTBOX_KEEP: usize = 512;
/// The longest message sent, in bytes (longer ones are cut, as Kubernetes cuts notes).
pub const MAX_MESSAGE: usize = 1024;
/// Estimated encoded size of one batch at most: far below the 1 MiB packet limit.
pub const BATCH_BYTES: usize = 64 * 1024;

type Key = (ObjectRef, String, String);

struct Slot {
    event: NodeEvent,
    /// Changed since it was last sent.
    dirty: bool,
    /// Order of the last change, for eviction and batch order.
    touched: u64,
}

/// Events on their way to the controller: aggregated by (object, reason, message) with a
/// count and first/last time over this agent run; each batch carries only the aggregates
/// that changed since the previous one (a repeat re-sends its aggregate with the new count),
/// at most once per interval. Nothing changed, nothing sent.
pub struct Outbox {
    slots: HashMap<Key, Slot>,
    clock: u64,
    seq: u64,
    interval: Duration,
    last_sent: Option<Instant>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(Duration::from_secs(1))
    }
}

impl Outbox {
    /// An outbox that sends at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Outbox {
            slots: HashMap::new(),
            clock: 0,
            seq: 0,
            interval,
            last_sent: None,
        }
    }

    /// Records one occurrence of an event at `now_ms`.
    pub fn record(
        &mut self,
        object: ObjectRef,
        warning: bool,
        reason: &str,
        message: &str,
        now_ms: u64,
    ) {
        self.clock += 1;
        let message = cut(message, MAX_MESSAGE);
        let key = (object, reason.to_owned(), message.to_owned());
        if let Some(slot) = self.slots.get_mut(&key) {
            slot.event.count = slot.event.count.saturating_add(1);
            slot.event.last_unix_ms = slot.event.last_unix_ms.max(now_ms);
            slot.dirty = true;
            slot.touched = self.clock;
            return;
        }
        if self.slots.len() >= OUTBOX_KEEP {
            // The least recently seen goes; one already sent before one not yet sent.
            let oldest = self
                .slots
                .iter()
                .min_by_key(|(_, s)| (s.dirty, s.touched))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.slots.remove(&oldest);
            }
        }
        let event = NodeEvent {
            object: key.0.clone(),
            reason: key.1.clone(),
            message: key.2.clone(),
            event_type: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            count: 1,
            first_unix_ms: now_ms,
            last_unix_ms: now_ms,
        };
        self.slots.insert(
            key,
            Slot {
                event,
                dirty: true,
                touched: self.clock,
            },
        );
    }

    /// Whether something waits to be sent.
    pub fn pending(&self) -> bool {
        self.slots.values().any(|s| s.dirty)
    }

    /// The batches to send now (none when nothing changed or the last batch went out less
    /// than the interval ago), each under [`BATCH_BYTES`], with increasing sequence numbers.
    /// What they carry counts as sent; give back what could not be sent with
    /// [`Outbox::unsent`].
    pub fn take_batches(
        &mut self,
        boot_id: BootId,
        agent_start_unix_ms: u64,
        now: Instant,
    ) -> Vec<EventBatch> {
        if !self.pending()
            || self
                .last_sent
                .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
        {
            return Vec::new();
        }
        let mut dirty: Vec<&mut Slot> = self.slots.values_mut().filter(|s| s.dirty).collect();
        dirty.sort_by_key(|s| s.touched);
        let mut batches = Vec::new();
        let mut events = Vec::new();
        let mut size = 0;
        for slot in dirty {
            slot.dirty = false;
            let e = &slot.event;
            let bytes = 48
                + e.object.kind.len()
                + e.object.namespace.len()
                + e.object.name.len()
                + e.object.uid.len()
                + e.reason.len()
                + e.message.len();
            if !events.is_empty() && size + bytes > BATCH_BYTES {
                self.seq += 1;
                batches.push(EventBatch {
                    boot_id,
                    agent_start_unix_ms,
                    seq: self.seq,
                    events: std::mem::take(&mut events),
                });
                size = 0;
            }
            size += bytes;
            events.push(e.clone());
        }
        if !events.is_empty() {
            self.seq += 1;
            batches.push(EventBatch {
                boot_id,
                agent_start_unix_ms,
                seq: self.seq,
                events,
            });
        }
        self.last_sent = Some(now);
        batches
    }

    /// Sends what is due through `publish` (false: it cannot take the batch now); what it
    /// did not take goes with the next batch.
    pub fn flush(
        &mut self,
        boot_id: BootId,
        agent_start_unix_ms: u64,
        now: Instant,
        mut publish: impl FnMut(&EventBatch) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let batches = self.take_batches(boot_id, agent_start_unix_ms, now);
        for (i, batch) in batches.iter().enumerate() {
            let sent = publish(batch);
            if !matches!(sent, Ok(true)) {
                for b in &batches[i..] {
                    self.unsent(b);
                }
                // Tried again at the next pass, not an interval later.
                self.last_sent = None;
                return sent.map(|_| ());
            }
        }
        Ok(())
    }

    /// Marks what `batch` carried as not sent: it goes with the next batch (with whatever
    /// count it has by then).
    pub fn unsent(&mut self, batch: &EventBatch) {
        for e in &batch.events {
            let key = (e.object.clone(), e.reason.clone(), e.message.clone());
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.dirty = true;
            }
        }
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelp_shared::wire::{ClusterId, Envelope, MAX_PACKET};

    fn pod(name: &str) -> ObjectRef {
        ObjectRef {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    fn boot() -> BootId {
        crate::link::node_info::new_boot_id()
    }

    #[test]
    fn outbox_aggregates_and_sends_only_what_changed() {
        let mut out = Outbox::new(Duration::from_secs(1));
        let boot = boot();
        let t0 = Instant::now();
        assert!(out.take_batches(boot, 5, t0).is_empty(), "nothing recorded");
        out.record(pod("a"), false, "Pulled", "Pulled image", 1000);
        out.record(pod("a"), true, "BackOff", "Back-off restarting", 1100);
        out.record(pod("a"), true, "BackOff", "Back-off restarting", 1200);
        out.record(pod("b"), true, "BackOff", "Back-off restarting", 1300);
        let batches = out.take_batches(boot, 5, t0);
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!((b.boot_id, b.agent_start_unix_ms, b.seq), (boot, 5, 1));
        assert_eq!(b.events.len(), 3);
        let backoff = &b.events[1];
        assert_eq!(backoff.object.name, "a");
        assert_eq!(backoff.reason, "BackOff");
        assert_eq!(backoff.event_type, EventType::Warning);
        assert_eq!(
            (backoff.count, backoff.first_unix_ms, backoff.last_unix_ms),
            (2, 1100, 1200)
        );
        assert_eq!(b.events[0].event_type, EventType::Normal);

        // Idle: nothing, however often asked.
        for s in 1..5 {
            assert!(out
                .take_batches(boot, 5, t0 + Duration::from_secs(s))
                .is_empty());
        }
        // A repeat re-sends its aggregate with the new count, and nothing else; not before
        // the interval has passed since the last batch.
        let t1 = t0 + Duration::from_secs(10);
        out.record(pod("a"), true, "BackOff", "Back-off restarting", 9000);
        assert!(out.take_batches(boot, 5, t1).len() == 1);
        out.record(pod("a"), true, "BackOff", "Back-off restarting", 9100);
        assert!(out
            .take_batches(boot, 5, t1 + Duration::from_millis(500))
            .is_empty());
        let batches = out.take_batches(boot, 5, t1 + Duration::from_secs(1));
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].seq, 3);
        assert_eq!(batches[0].events.len(), 1);
        assert_eq!(batches[0].events[0].count, 4);
        assert_eq!(batches[0].events[0].first_unix_ms, 1100);
        assert_eq!(batches[0].events[0].last_unix_ms, 9100);
    }

    #[test]
    fn unsent_batches_go_again_with_the_newer_count() {
        let mut out = Outbox::new(Duration::ZERO);
        let boot = boot();
        let now = Instant::now();
        out.record(pod("a"), false, "Started", "Started container c", 1);
        let first = out.take_batches(boot, 0, now);
        out.unsent(&first[0]);
        out.record(pod("a"), false, "Started", "Started container c", 2);
        let again = out.take_batches(boot, 0, now);
        assert_eq!(again.len(), 1);
        assert!(again[0].seq > first[0].seq);
        assert_eq!(again[0].events[0].count, 2);
        assert!(out.take_batches(boot, 0, now).is_empty());
    }

    #[test]
    fn a_full_queue_keeps_the_events_for_the_next_pass() {
        let mut out = Outbox::new(Duration::from_secs(60));
        let boot = boot();
        let now = Instant::now();
        out.record(pod("a"), false, "Pulled", "m", 1);
        out.flush(boot, 0, now, |_| Ok(false)).unwrap();
        assert!(out.pending());
        let err = out.flush(boot, 0, now, |_| anyhow::bail!("link gone"));
        assert!(err.is_err());
        let mut sent = Vec::new();
        out.flush(boot, 0, now, |b| {
            sent.push(b.clone());
            Ok(true)
        })
        .unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].seq, 3);
        assert!(!out.pending());
    }

    #[test]
    fn big_batches_are_split_under_the_packet_limit() {
        let mut out = Outbox::new(Duration::ZERO);
        let boot = boot();
        let long = "x".repeat(5000);
        for i in 0..OUTBOX_KEEP {
            out.record(pod(&format!("pod-{i}")), true, "Failed", &long, i as u64);
        }
        let batches = out.take_batches(boot, 0, Instant::now());
        assert!(batches.len() > 1, "{} batches", batches.len());
        let seqs: Vec<u64> = batches.iter().map(|b| b.seq).collect();
        assert_eq!(seqs, (1..=batches.len() as u64).collect::<Vec<_>>());
        let total: usize = batches.iter().map(|b| b.events.len()).sum();
        assert_eq!(total, OUTBOX_KEEP);
        for b in &batches {
            assert!(b.events.iter().all(|e| e.message.len() == MAX_MESSAGE));
            // Uncompressed, as the worst case.
            let bytes = Envelope::seal_message(ClusterId([1; 16]), b, false)
                .unwrap()
                .encode();
            assert!(bytes.len() <= BATCH_BYTES + 1024, "{}", bytes.len());
            assert!(bytes.len() < MAX_PACKET);
        }
        // A message cut inside a multi-byte character stays valid UTF-8.
        assert_eq!(cut("aé", 2), "a");
    }

    #[test]
    fn the_outbox_is_bounded_and_evicts_what_was_sent_first() {
        let mut out = Outbox::new(Duration::ZERO);
        let boot = boot();
        out.record(pod("sent"), false, "Pulled", "m", 0);
        assert_eq!(out.take_batches(boot, 0, Instant::now()).len(), 1);
        for i in 0..OUTBOX_KEEP {
            out.record(pod(&format!("p{i}")), false, "Pulled", "m", 1);
        }
        assert_eq!(out.slots.len(), OUTBOX_KEEP);
        assert!(!out.slots.keys().any(|k| k.0.name == "sent"));
        out.record(pod("one-more"), false, "Pulled", "m", 2);
        assert_eq!(out.slots.len(), OUTBOX_KEEP);
        assert!(
            !out.slots.keys().any(|k| k.0.name == "p0"),
            "the oldest went"
        );
    }

    #[test]
    fn repeats_count_up_and_old_events_go() {
        let mut events = Vec::new();
        record(&mut events, false, "Pulling", "Pulling image \"a\"".into());
        record(
            &mut events,
            true,
            "BackOff",
            "Back-off pulling image \"a\"".into(),
        );
        record(
            &mut events,
            true,
            "BackOff",
            "Back-off pulling image \"a\"".into(),
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].count, 2);
        assert_eq!(events[1].type_, "Warning");
        for i in 0..40 {
            record(&mut events, false, "Started", format!("run {i}"));
        }
        assert_eq!(events.len(), KEEP);
        assert_eq!(events.last().unwrap().message, "run 39");
    }
}
