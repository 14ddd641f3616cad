//! Node pressure conditions from a node's latest samples, with the kubelet's default hard
//! eviction thresholds (Linux):
//!
//! | condition | true when |
//! |---|---|
//! | `MemoryPressure` | `memory.available` < 100Mi |
//! | `DiskPressure` | `nodefs.available` < 10%, `nodefs.inodesFree` < 5%, or `imagefs.available` < 15% |
//! | `PIDPressure` | fewer than 5% of `pid_max` free (kelp's choice: the kubelet has no default) |
//!
//! `memory.available` is the node's `MemoryAvailableBytes` sample, else its capacity minus
//! its working set (the kubelet's formula). A signal the node does not report decides
//! nothing; a condition with no signal at all is not written.
//!
//! `kelp server --eviction-hard` changes them, in the kubelet's syntax
//! (`memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,pid.available<5%`;
//! signals left out keep their default): [`Thresholds`].
//!
//! As the kubelet's `--eviction-pressure-transition-period` (default 5 minutes), a condition
//! stays true until its signals have been clear for [`TRANSITION_PERIOD`], so it does not flap.

use std::time::Duration;

use super::{Metric, NodeMetrics, SubjectKey};

/// 100Mi.
pub const MEMORY_AVAILABLE_MIN: i64 = 100 * 1024 * 1024;
/// `nodefs.available` < 10%.
pub const NODEFS_AVAILABLE_PERCENT: i64 = 10;
/// `nodefs.inodesFree` < 5%.
pub const NODEFS_INODES_FREE_PERCENT: i64 = 5;
/// `imagefs.available` < 15%.
pub const IMAGEFS_AVAILABLE_PERCENT: i64 = 15;
/// Free PIDs < 5% of `pid_max`.
pub const PIDS_FREE_PERCENT: i64 = 5;
/// How long a condition stays true after its signals cleared.
pub const TRANSITION_PERIOD: Duration = Duration::from_secs(5 * 60);

/// The hard eviction thresholds the conditions compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// `memory.available` below this many bytes.
    pub memory_available: i64,
    /// `nodefs.available` below this percentage.
    pub nodefs_available_percent: i64,
    /// `nodefs.inodesFree` below this percentage.
    pub nodefs_inodes_free_percent: i64,
    /// `imagefs.available` below this percentage.
    pub imagefs_available_percent: i64,
    /// `pid.available` (of pid_max) below this percentage.
    pub pids_free_percent: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            memory_available: MEMORY_AVAILABLE_MIN,
            nodefs_available_percent: NODEFS_AVAILABLE_PERCENT,
            nodefs_inodes_free_percent: NODEFS_INODES_FREE_PERCENT,
            imagefs_available_percent: IMAGEFS_AVAILABLE_PERCENT,
            pids_free_percent: PIDS_FREE_PERCENT,
        }
    }
}

impl std::str::FromStr for Thresholds {
    type Err = String;

    /// The kubelet's `--eviction-hard` syntax: `SIGNAL<VALUE` separated by commas; memory
    /// as a quantity (`100Mi`), the others as percentages (`10%`).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut t = Thresholds::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (signal, value) = item
                .split_once('<')
                .ok_or_else(|| format!("{item:?}: expected SIGNAL<VALUE"))?;
            let percent = || -> Result<i64, String> {
                value
                    .strip_suffix('%')
                    .and_then(|v| v.parse::<i64>().ok())
                    .filter(|v| (0..=100).contains(v))
                    .ok_or_else(|| format!("{item:?}: expected a percentage (10%)"))
            };
            match signal {
                "memory.available" => {
                    t.memory_available = kelp_shared::api::Quantity::parse(value)
                        .map_err(|e| format!("{item:?}: {e}"))?
                        .value();
                }
                "nodefs.available" => t.nodefs_available_percent = percent()?,
                "nodefs.inodesFree" => t.nodefs_inodes_free_percent = percent()?,
                "imagefs.available" => t.imagefs_available_percent = percent()?,
                "pid.available" => t.pids_free_percent = percent()?,
                other => return Err(format!("unknown eviction signal {other:?}")),
            }
        }
        Ok(t)
    }
}

/// The three conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `MemoryPressure`.
    Memory,
    /// `DiskPressure`.
    Disk,
    /// `PIDPressure`.
    Pid,
}

impl Kind {
    /// All three, in the order the kubelet lists them.
    pub const ALL: [Kind; 3] = [Kind::Memory, Kind::Disk, Kind::Pid];

    /// The condition type.
    pub const fn condition(self) -> &'static str {
        match self {
            Kind::Memory => "MemoryPressure",
            Kind::Disk => "DiskPressure",
            Kind::Pid => "PIDPressure",
        }
    }

    /// The taint the node lifecycle controller puts on a node with the condition true.
    pub const fn taint(self) -> &'static str {
        match self {
            Kind::Memory => "node.kubernetes.io/memory-pressure",
            Kind::Disk => "node.kubernetes.io/disk-pressure",
            Kind::Pid => "node.kubernetes.io/pid-pressure",
        }
    }

    /// The kubelet's reason and message for the condition being true or false.
    pub const fn reason_message(self, pressure: bool) -> (&'static str, &'static str) {
        match (self, pressure) {
            (Kind::Memory, true) => (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (Kind::Memory, false) => (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            (Kind::Disk, true) => ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            (Kind::Disk, false) => ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            (Kind::Pid, true) => (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            (Kind::Pid, false) => (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
        }
    }
}

/// The node-level signals the thresholds read (each `None` when not reported).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// `MemoryAvailableBytes`.
    pub memory_available: Option<i64>,
    /// `MemoryCapacityBytes`.
    pub memory_capacity: Option<i64>,
    /// `MemoryWorkingSetBytes`.
    pub memory_working_set: Option<i64>,
    /// `FsAvailableBytes` / `FsCapacityBytes`.
    pub nodefs: Option<(i64, i64)>,
    /// `FsInodesFree` / `FsInodes`.
    pub nodefs_inodes: Option<(i64, i64)>,
    /// `ImageFsAvailableBytes` / `ImageFsCapacityBytes`.
    pub imagefs: Option<(i64, i64)>,
    /// `PidsInUse` / `PidsMax`.
    pub pids: Option<(i64, i64)>,
}

impl Signals {
    /// The node's latest values.
    pub fn of(node: &NodeMetrics) -> Signals {
        let get = |m| node.latest(&SubjectKey::Node, m).map(|(_, v)| v);
        let pair = |a, b| Some((get(a)?, get(b)?));
        Signals {
            memory_available: get(Metric::MemoryAvailableBytes),
            memory_capacity: get(Metric::MemoryCapacityBytes),
            memory_working_set: get(Metric::MemoryWorkingSetBytes),
            nodefs: pair(Metric::FsAvailableBytes, Metric::FsCapacityBytes),
            nodefs_inodes: pair(Metric::FsInodesFree, Metric::FsInodes),
            imagefs: pair(Metric::ImageFsAvailableBytes, Metric::ImageFsCapacityBytes),
            pids: pair(Metric::PidsInUse, Metric::PidsMax),
        }
    }
}

/// `part / whole < percent%`, in integers; `None` for a whole of 0 or less.
fn below(part: i64, whole: i64, percent: i64) -> Option<bool> {
    (whole > 0).then(|| i128::from(part) * 100 < i128::from(whole) * i128::from(percent))
}

/// Whether the thresholds of `kind` are crossed now; `None` when no signal says.
pub fn observed(kind: Kind, s: &Signals, t: &Thresholds) -> Option<bool> {
    match kind {
        Kind::Memory => {
            let available = s
                .memory_available
                .or_else(|| Some(s.memory_capacity?.saturating_sub(s.memory_working_set?)))?;
            Some(available < t.memory_available)
        }
        Kind::Disk => {
            let checks = [
                s.nodefs
                    .and_then(|(a, c)| below(a, c, t.nodefs_available_percent)),
                s.nodefs_inodes
                    .and_then(|(f, n)| below(f, n, t.nodefs_inodes_free_percent)),
                s.imagefs
                    .and_then(|(a, c)| below(a, c, t.imagefs_available_percent)),
            ];
            if checks.iter().all(Option::is_none) {
                return None;
            }
            Some(checks.contains(&Some(true)))
        }
        Kind::Pid => {
            let (used, max) = s.pids?;
            below(max.saturating_sub(used), max, t.pids_free_percent)
        }
    }
}

/// Per node: when each condition's thresholds were last crossed (controller clock, ms), for
/// the transition period.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    last_crossed: [Option<u64>; 3],
}

impl Memory {
    /// The conditions to hold now, from the signals observed at `now_ms`: (kind, pressure)
    /// for every kind some signal decides.
    pub fn update(
        &mut self,
        signals: &Signals,
        thresholds: &Thresholds,
        now_ms: u64,
    ) -> Vec<(Kind, bool)> {
        let period = u64::try_from(TRANSITION_PERIOD.as_millis()).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            let Some(crossed) = observed(kind, signals, thresholds) else {
                continue;
            };
            if crossed {
                self.last_crossed[i] = Some(now_ms);
            }
            let pressure =
                self.last_crossed[i].is_some_and(|at| now_ms.saturating_sub(at) < period);
            out.push((kind, pressure));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: i64 = 1024 * 1024;

    fn observed_d(kind: Kind, s: &Signals) -> Option<bool> {
        observed(kind, s, &Thresholds::default())
    }

    #[test]
    fn thresholds_parse_as_the_kubelets_eviction_hard() {
        assert_eq!("".parse::<Thresholds>().unwrap(), Thresholds::default());
        let t: Thresholds = "memory.available<1Gi, nodefs.available<1%,pid.available<2%"
            .parse()
            .unwrap();
        assert_eq!(t.memory_available, 1 << 30);
        assert_eq!(t.nodefs_available_percent, 1);
        assert_eq!(t.pids_free_percent, 2);
        assert_eq!(t.imagefs_available_percent, 15, "left out: the default");
        for bad in [
            "nodefs.available<10",
            "x<1%",
            "memory.available",
            "imagefs.available<101%",
        ] {
            assert!(bad.parse::<Thresholds>().is_err(), "{bad}");
        }
        let low = Signals {
            nodefs: Some((5, 100)),
            ..Signals::default()
        };
        assert_eq!(observed(Kind::Disk, &low, &t), Some(false));
        assert_eq!(observed_d(Kind::Disk, &low), Some(true));
    }

    #[test]
    fn memory_threshold_is_100_mi_available() {
        let s = |available| Signals {
            memory_available: Some(available),
            ..Signals::default()
        };
        assert_eq!(observed_d(Kind::Memory, &s(100 * MI)), Some(false));
        assert_eq!(observed_d(Kind::Memory, &s(100 * MI - 1)), Some(true));
        // Without MemoryAvailableBytes: capacity - working set, as the kubelet computes it.
        let derived = Signals {
            memory_capacity: Some(1024 * MI),
            memory_working_set: Some(1000 * MI),
            ..Signals::default()
        };
        assert_eq!(observed_d(Kind::Memory, &derived), Some(true));
        assert_eq!(observed_d(Kind::Memory, &Signals::default()), None);
    }

    #[test]
    fn disk_thresholds_nodefs_inodes_imagefs() {
        let base = Signals {
            nodefs: Some((10, 100)),
            nodefs_inodes: Some((5, 100)),
            imagefs: Some((15, 100)),
            ..Signals::default()
        };
        assert_eq!(observed_d(Kind::Disk, &base), Some(false), "at the limits");
        for crossed in [
            Signals {
                nodefs: Some((9, 100)),
                ..base
            },
            Signals {
                nodefs_inodes: Some((4, 100)),
                ..base
            },
            Signals {
                imagefs: Some((14, 100)),
                ..base
            },
        ] {
            assert_eq!(observed_d(Kind::Disk, &crossed), Some(true), "{crossed:?}");
        }
        // One signal is enough to decide; none decides nothing; a zero capacity says nothing.
        let only = Signals {
            imagefs: Some((1, 100)),
            ..Signals::default()
        };
        assert_eq!(observed_d(Kind::Disk, &only), Some(true));
        assert_eq!(observed_d(Kind::Disk, &Signals::default()), None);
        let zero = Signals {
            nodefs: Some((0, 0)),
            ..Signals::default()
        };
        assert_eq!(observed_d(Kind::Disk, &zero), None);
    }

    #[test]
    fn pid_threshold_is_5_percent_of_pid_max_free() {
        let s = |used| Signals {
            pids: Some((used, 1000)),
            ..Signals::default()
        };
        assert_eq!(observed_d(Kind::Pid, &s(950)), Some(false));
        assert_eq!(observed_d(Kind::Pid, &s(951)), Some(true));
    }

    #[test]
    fn pressure_holds_for_the_transition_period() {
        let mut memory = Memory::default();
        let d = Thresholds::default();
        let low = Signals {
            memory_available: Some(MI),
            ..Signals::default()
        };
        let fine = Signals {
            memory_available: Some(1024 * MI),
            ..Signals::default()
        };
        assert_eq!(memory.update(&fine, &d, 0), [(Kind::Memory, false)]);
        assert_eq!(memory.update(&low, &d, 1_000), [(Kind::Memory, true)]);
        assert_eq!(memory.update(&fine, &d, 61_000), [(Kind::Memory, true)]);
        assert_eq!(
            memory.update(&fine, &d, 1_000 + 300_000),
            [(Kind::Memory, false)]
        );
        // Kinds no signal decides are left out.
        assert!(memory.update(&Signals::default(), &d, 0).is_empty());
    }
}
