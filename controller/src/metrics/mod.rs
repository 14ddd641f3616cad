//! Node, pod and container metrics, kept in the controller's memory only (never in the store).
//!
//! Nodes publish a [`Samples`] batch on `kelp/v1/nodes/{node}/metrics` every 60 s (samples
//! taken every 10 s); the hub hands each one to the [`MetricsStore`], which
//!
//! - drops a batch it has seen already or an older one of the same agent run, by (boot id,
//!   agent start, sequence);
//! - turns each series' deltas back into values at the batch's slot times;
//! - for an incomplete batch (`complete == false`), carries every series it leaves out
//!   forward at its last value (the node sent nothing because nothing changed); a complete
//!   batch drops the series it does not carry (their pod or container is gone);
//! - keeps [`HISTORY`] of samples per series (and at most [`MAX_POINTS`]): enough for the
//!   rates, little enough for 100,000 pods (a series costs about 10 samples, and each
//!   subject's name is kept once, not once per metric); forgets nodes and series not heard
//!   from for [`STALE`], and nodes that were removed.
//!
//! Readers ([`MetricsStore::read`]) get the latest value of a series and the rate of a
//! cumulative counter over the last [`RATE_WINDOW`] (a counter that went down, a container
//! restarted, starts the window again).
//!
//! The views built from it: [`resource`] (`metrics.k8s.io`, what `kelp top` reads),
//! [`prometheus`] (`/metrics`), [`summary`] (the kubelet's Summary API), and [`pressure`]
//! (the node conditions the hub writes from a node's latest samples).

pub mod pressure;
pub mod prometheus;
pub mod resource;
pub mod summary;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use kelp_shared::wire::BootId;
pub use kelp_shared::wire::{Metric, SampleSeries, Samples, Subject};

/// How long samples are kept per series (twice the rate window).
pub const HISTORY: Duration = Duration::from_secs(2 * 60);
/// A node or series not heard from for this long is forgotten.
pub const STALE: Duration = Duration::from_secs(15 * 60);
/// The most samples kept per series (2 minutes at the default 10 s interval is 13).
pub const MAX_POINTS: usize = 64;
/// The most series kept per node; a batch's series beyond it are dropped.
pub const MAX_SERIES_PER_NODE: usize = 20_000;
/// The most slots a batch may have (60 s at 10 s is 6).
pub const MAX_SLOTS: u32 = 4096;
/// The span over which rates of cumulative counters are computed.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub use kelp_shared::wire::SubjectKey;

/// A series' samples: (node time in ms since the epoch, value), oldest first.
#[derive(Debug, Clone, Default)]
pub struct Points(VecDeque<(u64, i64)>);

impl Points {
    /// The newest sample.
    pub fn latest(&self) -> Option<(u64, i64)> {
        self.0.back().copied()
    }

    /// Every sample, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &(u64, i64)> {
        self.0.iter()
    }

    fn push(&mut self, t: u64, v: i64, window_ms: u64) {
        if self.0.back().is_some_and(|(last, _)| *last >= t) {
            return;
        }
        self.0.push_back((t, v));
        while self.0.len() > MAX_POINTS
            || self
                .0
                .front()
                .is_some_and(|(first, _)| first.saturating_add(window_ms) < t)
        {
            self.0.pop_front();
        }
    }

    /// The rate per second of a cumulative counter over `window_ms` before its newest
    /// sample, or since the sample before it when that is older (a node's own figures come
    /// once a batch); a decrease (a reset) starts the window after it. `None` with fewer
    /// than two usable samples.
    pub fn rate(&self, window_ms: u64) -> Option<Rate> {
        let &(t1, v1) = self.0.back()?;
        let mut start = None;
        let mut next = v1;
        for &(t, v) in self.0.iter().rev().skip(1) {
            let outside = t.saturating_add(window_ms) < t1;
            if (outside && start.is_some()) || v > next {
                break;
            }
            start = Some((t, v));
            next = v;
            if outside {
                break;
            }
        }
        let (t0, v0) = start?;
        let dt = t1.checked_sub(t0).filter(|d| *d > 0)?;
        let dv = v1.checked_sub(v0)?;
        Some(Rate {
            time_ms: t1,
            window_ms: dt,
            per_second: dv as f64 * 1000.0 / dt as f64,
        })
    }
}

/// A counter's rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The newest sample's time (node clock, ms since the epoch).
    pub time_ms: u64,
    /// The span it was computed over.
    pub window_ms: u64,
    /// Units per second (CPU nanoseconds per second are nanocores).
    pub per_second: f64,
}

/// One node's series.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// (boot id, agent start, seq) of the latest batch, for de-duplication.
    last_batch: Option<(BootId, u64, u64)>,
    /// Per subject (its names kept once), per metric.
    series: HashMap<SubjectKey, HashMap<Metric, Points>>,
    /// When the controller last recorded a batch of this node (its own clock, ms).
    received_ms: u64,
}

impl NodeMetrics {
    /// The samples of one series.
    pub fn points(&self, subject: &SubjectKey, metric: Metric) -> Option<&Points> {
        self.series.get(subject)?.get(&metric)
    }

    /// The newest value of a series, with its time.
    pub fn latest(&self, subject: &SubjectKey, metric: Metric) -> Option<(u64, i64)> {
        self.points(subject, metric).and_then(Points::latest)
    }

    /// The rate of a cumulative series over [`RATE_WINDOW`].
    pub fn rate(&self, subject: &SubjectKey, metric: Metric) -> Option<Rate> {
        self.points(subject, metric)
            .and_then(|p| p.rate(ms(RATE_WINDOW)))
    }

    /// Every subject with at least one series, sorted (node, then pods and containers by
    /// namespace and name).
    pub fn subjects(&self) -> BTreeSet<SubjectKey> {
        self.series.keys().cloned().collect()
    }

    /// Every series, unordered.
    pub fn series(&self) -> impl Iterator<Item = (&SubjectKey, Metric, &Points)> {
        self.series
            .iter()
            .flat_map(|(s, metrics)| metrics.iter().map(move |(m, p)| (s, *m, p)))
    }

    fn series_count(&self) -> usize {
        self.series.values().map(HashMap::len).sum()
    }

    /// When the controller last recorded a batch of this node (ms since the epoch).
    pub fn received_ms(&self) -> u64 {
        self.received_ms
    }
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded: how many samples, and how many series were left out for being malformed.
    Recorded {
        /// Samples stored.
        samples: usize,
        /// Series dropped as malformed (bad subject index, slots out of range, overflow).
        dropped: usize,
    },
    /// Seen before, or older than one seen (same boot id and agent start, a sequence not
    /// newer).
    Duplicate,
    /// Unusable as a whole.
    Invalid(String),
}

/// Every node's metrics, by node name.
pub type Nodes = HashMap<String, NodeMetrics>;

/// The in-memory metrics of the whole cluster, shared by the hub (writer) and the API.
#[derive(Debug)]
pub struct MetricsStore {
    inner: Mutex<Inner>,
    history_ms: u64,
    stale_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: Nodes,
    last_prune_ms: u64,
}

impl Default for MetricsStore {
    fn default() -> Self {
        MetricsStore::new(HISTORY, STALE)
    }
}

/// Resolves a batch's subjects; `None` for a container whose pod index names no pod.
fn resolve(subjects: &[Subject]) -> Vec<Option<SubjectKey>> {
    subjects
        .iter()
        .map(|s| match s {
            Subject::Node => Some(SubjectKey::Node),
            Subject::Pod { namespace, name } => Some(SubjectKey::Pod {
                namespace: namespace.clone(),
                name: name.clone(),
            }),
            Subject::Container { pod, name } => match subjects.get(usize::try_from(*pod).ok()?)? {
                Subject::Pod {
                    namespace,
                    name: pod,
                } => Some(SubjectKey::Container {
                    namespace: namespace.clone(),
                    pod: pod.clone(),
                    name: name.clone(),
                }),
                _ => None,
            },
        })
        .collect()
}

/// The values of a series at its slots' times; `None` when malformed.
fn values(batch: &Samples, series: &SampleSeries) -> Option<Vec<(u64, i64)>> {
    let end = u64::from(series.first_slot).checked_add(series.deltas.len() as u64)?;
    if end > u64::from(batch.slots) {
        return None;
    }
    let mut value: i64 = 0;
    let mut out = Vec::with_capacity(series.deltas.len());
    for (i, delta) in series.deltas.iter().enumerate() {
        value = value.checked_add(*delta)?;
        let slot = u64::from(series.first_slot) + i as u64;
        let t = slot
            .checked_mul(u64::from(batch.interval_ms))?
            .checked_add(batch.start_unix_ms)?;
        out.push((t, value));
    }
    Some(out)
}

impl MetricsStore {
    /// An empty store keeping `history` of samples per series and forgetting what was not
    /// heard from for `stale`.
    pub fn new(history: Duration, stale: Duration) -> MetricsStore {
        MetricsStore {
            inner: Mutex::default(),
            history_ms: ms(history),
            stale_ms: ms(stale),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a node's batch, received at `now_ms` (the controller's clock). The topic
    /// names the node (the broker lets a node write only its own).
    pub fn record(&self, node: &str, batch: &Samples, now_ms: u64) -> Outcome {
        if batch.interval_ms == 0 || batch.slots == 0 || batch.slots > MAX_SLOTS {
            return Outcome::Invalid(format!(
                "interval {} ms, {} slots",
                batch.interval_ms, batch.slots
            ));
        }
        let Some(batch_end) = u64::from(batch.slots - 1)
            .checked_mul(u64::from(batch.interval_ms))
            .and_then(|d| d.checked_add(batch.start_unix_ms))
        else {
            return Outcome::Invalid("slot times overflow".into());
        };
        let subjects = resolve(&batch.subjects);
        let (history_ms, stale_ms) = (self.history_ms, self.stale_ms);
        let mut inner = self.lock();
        if now_ms.saturating_sub(inner.last_prune_ms) >= 60_000 {
            prune(&mut inner.nodes, now_ms, stale_ms);
            inner.last_prune_ms = now_ms;
        }
        let entry = inner.nodes.entry(node.to_owned()).or_default();
        // Within one agent run batches are ordered by sequence; a new run starts afresh.
        if let Some((boot, start, seq)) = entry.last_batch {
            if (boot, start) == (batch.boot_id, batch.agent_start_unix_ms) && batch.seq <= seq {
                return Outcome::Duplicate;
            }
        }
        entry.last_batch = Some((batch.boot_id, batch.agent_start_unix_ms, batch.seq));
        entry.received_ms = now_ms;
        let mut present: HashSet<(&SubjectKey, Metric)> = HashSet::new();
        let mut count = entry.series_count();
        let (mut samples, mut dropped) = (0, 0);
        for series in &batch.series {
            let subject = usize::try_from(series.subject)
                .ok()
                .and_then(|i| subjects.get(i))
                .and_then(Option::as_ref);
            let (Some(subject), Some(values)) = (subject, values(batch, series)) else {
                dropped += 1;
                continue;
            };
            let known = entry
                .series
                .get(subject)
                .is_some_and(|m| m.contains_key(&series.metric));
            if !known && count >= MAX_SERIES_PER_NODE {
                dropped += 1;
                continue;
            }
            count += usize::from(!known);
            let points = match entry.series.get_mut(subject) {
                Some(metrics) => metrics.entry(series.metric).or_default(),
                None => entry
                    .series
                    .entry(subject.clone())
                    .or_default()
                    .entry(series.metric)
                    .or_default(),
            };
            for (t, v) in values {
                points.push(t, v, history_ms);
                samples += 1;
            }
            present.insert((subject, series.metric));
        }
        for (subject, metrics) in entry.series.iter_mut() {
            if batch.complete {
                metrics.retain(|m, _| present.contains(&(subject, *m)));
                continue;
            }
            for (metric, points) in metrics.iter_mut() {
                if present.contains(&(subject, *metric)) {
                    continue;
                }
                if let Some((_, v)) = points.latest() {
                    points.push(batch_end, v, history_ms);
                }
            }
        }
        // Series not heard from for long (carried forward by nothing), and empty subjects.
        for metrics in entry.series.values_mut() {
            metrics.retain(|_, p| {
                p.latest()
                    .is_some_and(|(t, _)| t.saturating_add(stale_ms) >= batch_end)
            });
        }
        entry.series.retain(|_, metrics| !metrics.is_empty());
        Outcome::Recorded { samples, dropped }
    }

    /// Forgets a node (removed from the cluster).
    pub fn remove_node(&self, node: &str) {
        self.lock().nodes.remove(node);
    }

    /// Keeps only the nodes for which `keep` holds.
    pub fn retain_nodes(&self, keep: impl Fn(&str) -> bool) {
        self.lock().nodes.retain(|n, _| keep(n));
    }

    /// Forgets nodes not heard from within the window (controller clock).
    pub fn prune(&self, now_ms: u64) {
        let stale_ms = self.stale_ms;
        let mut inner = self.lock();
        prune(&mut inner.nodes, now_ms, stale_ms);
        inner.last_prune_ms = now_ms;
    }

    /// Reads every node's metrics under the lock (keep `f` short: the hub waits for it).
    pub fn read<R>(&self, f: impl FnOnce(&Nodes) -> R) -> R {
        f(&self.lock().nodes)
    }
}

fn prune(nodes: &mut Nodes, now_ms: u64, stale_ms: u64) {
    nodes.retain(|_, n| n.received_ms.saturating_add(stale_ms) >= now_ms);
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// RFC 3339 with seconds, as Kubernetes prints times, of ms since the epoch.
pub fn rfc3339_ms(ms: u64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or_default();
    crate::hub::status::rfc3339(t)
}

#[cfg(test)]
pub(crate) mod tests;
