//! Sampling slots into [`Samples`] batches, and what a batch may leave out: pure, no I/O.
//!
//! Every sample is recorded in the next slot of the open batch. [`Batcher::take`] closes
//! the batch:
//!
//! - A **complete** batch carries every series: all its slots, or only the last when it
//!   did not change through the batch. The first batch, the
//!   first after each (re)connect ([`Batcher::resend_all`]), every `complete_every`th
//!   batch, and any batch whose set of series differs from what the receiver knows (a pod
//!   came or went) are complete.
//! - Otherwise a series whose values all equal the value the receiver last got (within
//!   the metric's dead band, [`unchanged`]) is left out, and one that changed starts at its
//!   first slot that differs ("values before `first_slot` are unchanged"). An idle node
//!   thus sends only what moves.
//!
//! A series with a slot missing in the middle (a read that failed once) is sent as two
//! [`SampleSeries`] of the same metric and subject.

use std::collections::{BTreeMap, BTreeSet};

use kelp_shared::wire::{BootId, Metric, SampleSeries, Samples, Subject};

use super::{Readings, SubjectKey};

type Key = (SubjectKey, Metric);

/// The open batch and what the receiver is known to hold.
#[derive(Debug)]
pub struct Batcher {
    interval_ms: u32,
    complete_every: u32,
    start_unix_ms: Option<u64>,
    slots: u32,
    /// Per series, its (slot, value)s in this batch, oldest first.
    open: BTreeMap<Key, Vec<(u32, i64)>>,
    /// Per series, the last value sent (what the receiver holds); empty until a complete
    /// batch is sent.
    sent: BTreeMap<Key, i64>,
    /// Batches taken since the last complete one; None forces the next to be complete.
    since_complete: Option<u32>,
    seq: u64,
}

impl Batcher {
    /// `complete_every`: every how many batches one is complete (1: all).
    pub fn new(interval_ms: u32, complete_every: u32) -> Self {
        Self {
            interval_ms,
            complete_every: complete_every.max(1),
            start_unix_ms: None,
            slots: 0,
            open: BTreeMap::new(),
            sent: BTreeMap::new(),
            since_complete: None,
            seq: 0,
        }
    }

    /// Slots recorded in the open batch.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Records one sample, taken at `unix_ms` (the open batch's first sample sets its
    /// start; later ones take the next slot).
    pub fn record(&mut self, unix_ms: u64, readings: Readings) {
        let slot = self.slots;
        if self.start_unix_ms.is_none() {
            self.start_unix_ms = Some(unix_ms);
        }
        self.slots += 1;
        for (subject, metric, value) in readings.items {
            self.open
                .entry((subject, metric))
                .or_default()
                .push((slot, value));
        }
    }

    /// The receiver lost what it knew (a new session): the next batch is complete.
    pub fn resend_all(&mut self) {
        self.since_complete = None;
    }

    /// Closes the open batch; None when it has no slot. The batch is counted as sent:
    /// QoS 0 may lose it, which the regular complete batches repair.
    pub fn take(&mut self, boot_id: BootId, agent_start_unix_ms: u64) -> Option<Samples> {
        let start_unix_ms = self.start_unix_ms.take()?;
        let slots = std::mem::take(&mut self.slots);
        let open = std::mem::take(&mut self.open);
        let keys: BTreeSet<&Key> = open.keys().collect();
        let same_series =
            keys.len() == self.sent.len() && keys.iter().all(|k| self.sent.contains_key(k));
        let complete = match self.since_complete {
            None => true,
            Some(n) => n + 1 >= self.complete_every || !same_series,
        };
        self.since_complete = if complete {
            Some(0)
        } else {
            self.since_complete.map(|n| n + 1)
        };
        if complete {
            self.sent.clear();
        }

        let mut subjects: Vec<Subject> = Vec::new();
        let mut index: BTreeMap<SubjectKey, u32> = BTreeMap::new();
        let mut series = Vec::new();
        for ((subject, metric), values) in &open {
            let last = values.last().map(|&(_, v)| v);
            let from = if complete {
                // A series that stayed the same through the batch: its last value says it.
                if values.iter().all(|&(_, v)| Some(v) == last) {
                    values.len() - 1
                } else {
                    0
                }
            } else {
                match self.sent.get(&(subject.clone(), *metric)) {
                    Some(&known) => match values
                        .iter()
                        .position(|&(_, v)| !unchanged(*metric, known, v))
                    {
                        Some(at) => at,
                        None => continue,
                    },
                    None => 0,
                }
            };
            let at = subject_index(subject, &mut subjects, &mut index);
            for run in runs(&values[from..]) {
                let first_slot = run[0].0;
                let values: Vec<i64> = run.iter().map(|&(_, v)| v).collect();
                series.push(SampleSeries::from_values(*metric, at, first_slot, &values));
            }
            if let Some(last) = last {
                self.sent.insert((subject.clone(), *metric), last);
            }
        }
        self.seq += 1;
        Some(Samples {
            boot_id,
            agent_start_unix_ms,
            seq: self.seq,
            start_unix_ms,
            interval_ms: self.interval_ms,
            slots,
            complete,
            subjects,
            series,
        })
    }
}

/// Whether `value` counts as unchanged from `known`, the value the receiver holds: equal,
/// or within the metric's dead band. A series within its dead band is left out of an
/// incomplete batch; once it leaves it, its exact values are sent. So what a receiver holds
/// is never further from the truth than the dead band, and is exact after every complete
/// batch:
///
/// - CPU time: 10 ms (an idle pod's monitor waking up; 0.02% of a core over a minute);
/// - memory and disk gauges: 1%, or 1 MiB if that is more (`kelp top` shows MiB); the
///   RSS and cache breakdowns 5%; limits and capacities exact;
/// - network: 4 KiB and 16 packets (an idle pod's neighbour discovery); errors and drops
///   exact;
/// - load average: 10% (at least 0.1); the node's pids in use: 5%;
/// - uptime: an hour (it moves with the clock; complete batches carry it);
/// - temperature: 1 °C;
/// - every other counter (periods, OOM kills), processes, flags, start times: exact.
pub fn unchanged(metric: Metric, known: i64, value: i64) -> bool {
    let delta = value.abs_diff(known);
    let relative = |percent: u64, floor: u64| {
        delta
            < (known.unsigned_abs() / 100)
                .saturating_mul(percent)
                .max(floor)
    };
    match metric {
        Metric::CpuUsageNanoseconds
        | Metric::CpuUserNanoseconds
        | Metric::CpuSystemNanoseconds
        | Metric::CpuThrottledNanoseconds => delta < 10_000_000,
        // Breakdowns of the usage, shown for information only.
        Metric::MemoryRssBytes | Metric::MemoryCacheBytes => relative(5, 1 << 20),
        Metric::MemoryUsageBytes
        | Metric::MemoryWorkingSetBytes
        | Metric::MemoryAvailableBytes
        | Metric::FsUsedBytes
        | Metric::LogsUsedBytes
        | Metric::ImageFsUsedBytes
        | Metric::ImageFsAvailableBytes
        | Metric::FsAvailableBytes => relative(1, 1 << 20),
        Metric::FsInodesFree => relative(1, 1),
        Metric::NetworkRxBytes | Metric::NetworkTxBytes => delta < 4096,
        Metric::NetworkRxPackets | Metric::NetworkTxPackets => delta < 16,
        Metric::Load1Milli | Metric::Load5Milli | Metric::Load15Milli => relative(10, 100),
        Metric::PidsInUse => relative(5, 1),
        Metric::UptimeSeconds => delta < 3_600,
        Metric::TemperatureMillicelsius => delta < 1_000,
        _ => delta == 0,
    }
}

/// The index of `subject` in `subjects`, adding it (and, for a container, its pod first).
fn subject_index(
    subject: &SubjectKey,
    subjects: &mut Vec<Subject>,
    index: &mut BTreeMap<SubjectKey, u32>,
) -> u32 {
    if let Some(&at) = index.get(subject) {
        return at;
    }
    let wire = match subject {
        SubjectKey::Node => Subject::Node,
        SubjectKey::Pod { namespace, name } => Subject::Pod {
            namespace: namespace.clone(),
            name: name.clone(),
        },
        SubjectKey::Container {
            namespace,
            pod,
            name,
        } => {
            let pod_key = SubjectKey::Pod {
                namespace: namespace.clone(),
                name: pod.clone(),
            };
            Subject::Container {
                pod: subject_index(&pod_key, subjects, index),
                name: name.clone(),
            }
        }
    };
    let at = u32::try_from(subjects.len()).unwrap_or(u32::MAX);
    subjects.push(wire);
    index.insert(subject.clone(), at);
    at
}

/// Splits (slot, value)s into runs of consecutive slots.
fn runs(values: &[(u32, i64)]) -> Vec<&[(u32, i64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=values.len() {
        if i == values.len() || values[i].0 != values[i - 1].0 + 1 {
            if i > start {
                out.push(&values[start..i]);
            }
            start = i;
        }
    }
    out
}
