//! The cluster's events, kept in memory only: never in the store, so a crash-looping pod on
//! an SD-card controller costs no writes.
//!
//! Events are aggregated per (involved object, reason, message) with a count and the first
//! and last time, as Kubernetes' event correlator does; each aggregate lives for an hour after
//! its last change (the API server's event TTL), and the store holds a bounded number (the
//! least recently changed go first). Nodes send their events in batches on
//! `{prefix}/nodes/{node}/events` (QoS 1, so a batch may come twice): a batch already seen —
//! same node, agent run (boot id) and sequence number — is dropped. A node's aggregate carries
//! the count over its agent run, so a re-sent aggregate adds only what is new.
//!
//! The API serves them as `v1 Event` objects ([`EventStore::list`]); clients may post events
//! too ([`EventStore::record`]).

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use kelp_shared::wire::{BootId, EventBatch, EventType, ObjectRef};
use serde_json::{json, Map, Value};

/// How long an event is kept after its last change (Kubernetes' default `--event-ttl`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// How many aggregated events are kept at most.
pub const DEFAULT_MAX: usize = 50_000;
/// How many batch sequence numbers are remembered per agent run.
const SEQ_WINDOW: usize = 256;

/// Who reported an event (`source` in a `v1 Event`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// `source.component` (`kelp-agent`, `kelp-hub`).
    pub component: String,
    /// `source.host`: the node, for node components.
    pub host: String,
}

/// One occurrence (or several, with `count`) of an event, as recorded by the controller's
/// own components or posted through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// What it is about.
    pub object: ObjectRef,
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// Short CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Who reports it.
    pub source: Source,
    /// How many occurrences this adds (at least 1).
    pub count: u32,
    /// When it first and last happened (now, when not given).
    pub first: Option<DateTime<Utc>>,
    /// See `first`.
    pub last: Option<DateTime<Utc>>,
}

type Key = (ObjectRef, String, String);

#[derive(Debug)]
struct Entry {
    name: String,
    namespace: String,
    uid: String,
    warning: bool,
    count: u32,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    source: Source,
    /// The node, agent run and that run's count this aggregate was last reported with: a
    /// re-sent aggregate adds only its increase.
    from: Option<(String, BootId, u32)>,
    /// When it last changed here (expiry and eviction).
    touched: DateTime<Utc>,
    revision: u64,
}

/// The batch sequence numbers seen from one agent run.
#[derive(Debug, Default)]
struct Seen {
    seqs: BTreeSet<u64>,
    /// Every sequence number at or below this one counts as seen (it fell out of the window).
    floor: u64,
    touched: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    runs: HashMap<(String, BootId), Seen>,
    revision: u64,
    swept: Option<DateTime<Utc>>,
}

/// The in-memory event store, shared by the hub (which feeds it) and the API (which serves
/// it).
#[derive(Debug)]
pub struct EventStore {
    inner: Mutex<Inner>,
    ttl: chrono::Duration,
    max: usize,
}

impl Default for EventStore {
    fn default() -> Self {
        EventStore::new(DEFAULT_TTL, DEFAULT_MAX)
    }
}

/// What became of a node's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// Its events were recorded.
    Recorded,
    /// It was seen before (QoS 1 redelivery): dropped.
    Duplicate,
}

impl EventStore {
    /// A store keeping each event for `ttl` after its last change, and at most `max` events.
    pub fn new(ttl: Duration, max: usize) -> EventStore {
        EventStore {
            inner: Mutex::new(Inner::default()),
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a batch of events from `node`'s agent, unless that batch (node, boot id,
    /// sequence number) was recorded already.
    pub fn record_batch(&self, node: &str, batch: &EventBatch, now: DateTime<Utc>) -> Batch {
        let mut inner = self.lock();
        self.sweep(&mut inner, now, false);
        let seen = inner
            .runs
            .entry((node.to_owned(), batch.boot_id))
            .or_default();
        seen.touched = Some(now);
        if batch.seq <= seen.floor || !seen.seqs.insert(batch.seq) {
            return Batch::Duplicate;
        }
        while seen.seqs.len() > SEQ_WINDOW {
            if let Some(oldest) = seen.seqs.pop_first() {
                seen.floor = oldest;
            }
        }
        let source = Source {
            component: "kelp-agent".to_owned(),
            host: node.to_owned(),
        };
        for e in &batch.events {
            let time = |ms: u64| {
                i64::try_from(ms)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(now)
            };
            let event = NewEvent {
                object: e.object.clone(),
                warning: e.event_type == EventType::Warning,
                reason: e.reason.clone(),
                message: e.message.clone(),
                source: source.clone(),
                count: e.count,
                first: Some(time(e.first_unix_ms)),
                last: Some(time(e.last_unix_ms)),
            };
            self.upsert(
                &mut inner,
                event,
                Some((node.to_owned(), batch.boot_id, e.count)),
                now,
            );
        }
        self.sweep(&mut inner, now, false);
        Batch::Recorded
    }

    /// Records an event (adding `count` occurrences to its aggregate) and returns it as a
    /// `v1 Event`.
    pub fn record(&self, event: NewEvent, now: DateTime<Utc>) -> Value {
        let mut inner = self.lock();
        self.sweep(&mut inner, now, false);
        let key = self.upsert(&mut inner, event, None, now);
        let object = inner.entries.get(&key).map(|e| to_json(&key, e));
        self.sweep(&mut inner, now, false);
        object.unwrap_or(Value::Null)
    }

    fn upsert(
        &self,
        inner: &mut Inner,
        event: NewEvent,
        from: Option<(String, BootId, u32)>,
        now: DateTime<Utc>,
    ) -> Key {
        inner.revision += 1;
        let revision = inner.revision;
        let first = event.first.unwrap_or(now);
        let last = event.last.unwrap_or(now).max(first);
        let key = (event.object, event.reason, event.message);
        match inner.entries.get_mut(&key) {
            Some(entry) => {
                let added = match (&entry.from, &from) {
                    (Some((node, boot, had)), Some((n, b, count))) if node == n && boot == b => {
                        // The same agent run: its count is over the run. A lower one means
                        // the agent dropped and restarted the aggregate.
                        if count >= had {
                            count - had
                        } else {
                            *count
                        }
                    }
                    _ => event.count.max(1),
                };
                entry.count = entry.count.saturating_add(added);
                entry.first = entry.first.min(first);
                entry.last = entry.last.max(last);
                entry.warning = event.warning;
                entry.source = event.source;
                entry.from = from;
                entry.touched = now;
                entry.revision = revision;
            }
            None => {
                let namespace = match key.0.namespace.as_str() {
                    "" => "default".to_owned(),
                    ns => ns.to_owned(),
                };
                let entry = Entry {
                    name: format!("{}.{:016x}", key.0.name, stable_hash(&key)),
                    namespace,
                    uid: uuid::Uuid::new_v4().to_string(),
                    warning: event.warning,
                    count: event.count.max(1),
                    first,
                    last,
                    source: event.source,
                    from,
                    touched: now,
                    revision,
                };
                inner.entries.insert(key.clone(), entry);
            }
        }
        key
    }

    /// Drops what expired (at most once a minute unless `force`), and the least recently
    /// changed events over the bound (down to nine tenths of it, so eviction is rare).
    fn sweep(&self, inner: &mut Inner, now: DateTime<Utc>, force: bool) {
        let due = force
            || inner
                .swept
                .is_none_or(|t| now - t >= chrono::Duration::seconds(60).min(self.ttl));
        if due {
            inner.swept = Some(now);
            let ttl = self.ttl;
            inner.entries.retain(|_, e| now - e.touched < ttl);
            inner
                .runs
                .retain(|_, s| s.touched.is_some_and(|t| now - t < ttl));
        }
        if inner.entries.len() > self.max {
            let keep = self.max - self.max / 10;
            let mut by_age: Vec<(DateTime<Utc>, u64, Key)> = inner
                .entries
                .iter()
                .map(|(k, e)| (e.touched, e.revision, k.clone()))
                .collect();
            by_age.sort_by_key(|a| (a.0, a.1));
            let drop = inner.entries.len() - keep;
            for (_, _, key) in by_age.into_iter().take(drop) {
                inner.entries.remove(&key);
            }
        }
        // Agent runs are few (one per node and agent start within the TTL), but bounded too.
        if inner.runs.len() > self.max {
            inner.runs.clear();
        }
    }

    /// The events (of `namespace`, or all), oldest change first, as `v1 Event` objects, and
    /// the store's revision.
    pub fn list(&self, namespace: Option<&str>, now: DateTime<Utc>) -> (Vec<Value>, u64) {
        let mut inner = self.lock();
        self.sweep(&mut inner, now, true);
        let mut items: Vec<(&Key, &Entry)> = inner
            .entries
            .iter()
            .filter(|(_, e)| namespace.is_none_or(|ns| e.namespace == ns))
            .collect();
        items.sort_by_key(|(_, e)| e.revision);
        let items = items.into_iter().map(|(k, e)| to_json(k, e)).collect();
        (items, inner.revision)
    }

    /// The event `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str, now: DateTime<Utc>) -> Option<Value> {
        let mut inner = self.lock();
        self.sweep(&mut inner, now, true);
        inner
            .entries
            .iter()
            .find(|(_, e)| e.namespace == namespace && e.name == name)
            .map(|(k, e)| to_json(k, e))
    }

    /// Removes the event `namespace/name`, returning it.
    pub fn delete(&self, namespace: &str, name: &str) -> Option<Value> {
        let mut inner = self.lock();
        let key = inner
            .entries
            .iter()
            .find(|(_, e)| e.namespace == namespace && e.name == name)
            .map(|(k, _)| k.clone())?;
        let entry = inner.entries.remove(&key)?;
        inner.revision += 1;
        Some(to_json(&key, &entry))
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A hash of the key that does not change between runs (FNV-1a), for event names.
fn stable_hash(key: &Key) -> u64 {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    h.finish()
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An event as the Kubernetes `v1 Event` object.
fn to_json(key: &Key, e: &Entry) -> Value {
    let (object, reason, message) = key;
    let mut involved = Map::new();
    let api_version = kelp_shared::api::kinds::by_kind(&object.kind)
        .map(|k| k.api_version())
        .unwrap_or_else(|| "v1".to_owned());
    involved.insert("apiVersion".into(), json!(api_version));
    involved.insert("kind".into(), json!(object.kind));
    if !object.namespace.is_empty() {
        involved.insert("namespace".into(), json!(object.namespace));
    }
    involved.insert("name".into(), json!(object.name));
    if !object.uid.is_empty() {
        involved.insert("uid".into(), json!(object.uid));
    }
    let mut source = Map::new();
    source.insert("component".into(), json!(e.source.component));
    if !e.source.host.is_empty() {
        source.insert("host".into(), json!(e.source.host));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": e.name,
            "namespace": e.namespace,
            "uid": e.uid,
            "resourceVersion": e.revision.to_string(),
            "creationTimestamp": time(e.first),
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": if e.warning { "Warning" } else { "Normal" },
        "count": e.count,
        "firstTimestamp": time(e.first),
        "lastTimestamp": time(e.last),
        "source": source,
        "reportingComponent": e.source.component,
        "reportingInstance": e.source.host,
    })
}

#[cfg(test)]
mod tests;
