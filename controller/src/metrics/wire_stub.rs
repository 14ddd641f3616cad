//! TEMPORARY: the `Samples` message as the agent side will add it to `kelp_shared::wire`
//! (spec in the issue 11 brief). Removed when branch `metrics-agent` is merged.
#![allow(missing_docs)]

use kelp_shared::wire::BootId;

#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    pub boot_id: BootId,
    pub agent_start_unix_ms: u64,
    pub seq: u64,
    pub start_unix_ms: u64,
    pub interval_ms: u32,
    pub slots: u32,
    pub complete: bool,
    pub subjects: Vec<Subject>,
    pub series: Vec<SampleSeries>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Node,
    Pod { namespace: String, name: String },
    Container { pod: u32, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSeries {
    pub metric: Metric,
    pub subject: u32,
    pub first_slot: u32,
    pub deltas: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    CpuUsageNanoseconds,
    CpuUserNanoseconds,
    CpuSystemNanoseconds,
    CpuPeriods,
    CpuThrottledPeriods,
    CpuThrottledNanoseconds,
    MemoryUsageBytes,
    MemoryWorkingSetBytes,
    MemoryRssBytes,
    MemoryCacheBytes,
    MemoryLimitBytes,
    OomEvents,
    NetworkRxBytes,
    NetworkRxPackets,
    NetworkRxErrors,
    NetworkRxDropped,
    NetworkTxBytes,
    NetworkTxPackets,
    NetworkTxErrors,
    NetworkTxDropped,
    FsUsedBytes,
    LogsUsedBytes,
    ImageFsUsedBytes,
    ImageFsCapacityBytes,
    ImageFsAvailableBytes,
    FsCapacityBytes,
    FsAvailableBytes,
    FsInodes,
    FsInodesFree,
    Processes,
    StartTimeSeconds,
    Load1Milli,
    Load5Milli,
    Load15Milli,
    UptimeSeconds,
    MemoryAvailableBytes,
    MemoryCapacityBytes,
    PidsInUse,
    PidsMax,
    TemperatureMillicelsius,
    ThrottledFlags,
}
