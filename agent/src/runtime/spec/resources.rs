//! `linux.resources`: CPU, memory, hugepages and pids limits, and the device cgroup rules.

use kelp_shared::api::quantity::Quantity;
use oci_spec::runtime::{
    LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
    LinuxPids, LinuxResources,
};

use super::{SpecError, SpecInput};

/// The CFS period, in microseconds (the kubelet's default `cpuCFSQuotaPeriod`).
pub const CPU_PERIOD: u64 = 100_000;
/// The smallest CFS quota the kubelet sets, in microseconds.
pub const MIN_CPU_QUOTA: i64 = 1_000;
/// The fewest CPU shares (the kernel's minimum, and what a container without a request gets).
pub const MIN_CPU_SHARES: u64 = 2;
/// The most CPU shares.
pub const MAX_CPU_SHARES: u64 = 262_144;

/// The kubelet's `MilliCPUToShares`.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_CPU_SHARES;
    }
    let shares = u64::try_from(milli_cpu.saturating_mul(1024) / 1000).unwrap_or(MAX_CPU_SHARES);
    shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

/// The kubelet's `milliCPUToQuota` for the default period; `None` for no limit.
pub fn milli_cpu_to_quota(milli_cpu: i64) -> Option<i64> {
    if milli_cpu <= 0 {
        return None;
    }
    let period = i64::try_from(CPU_PERIOD).unwrap_or(i64::MAX);
    Some((milli_cpu.saturating_mul(period) / 1000).max(MIN_CPU_QUOTA))
}

pub(super) fn build(input: &SpecInput, privileged: bool) -> Result<LinuxResources, SpecError> {
    let base = input.field_path.as_str();
    let res = input.container.resources.as_ref();
    let limits = res.and_then(|r| r.limits.as_ref());
    let requests = res.and_then(|r| r.requests.as_ref());
    let limit = |name: &str| limits.and_then(|l| l.get(name)).filter(|q| !q.is_zero());

    let mut cpu = LinuxCpu::default();
    let cpu_limit = limit("cpu");
    let cpu_request = requests
        .and_then(|r| r.get("cpu"))
        .filter(|q| !q.is_zero())
        .or(cpu_limit);
    cpu.set_shares(Some(milli_cpu_to_shares(
        cpu_request.map_or(0, Quantity::milli_value),
    )));
    if let Some(quota) = cpu_limit.and_then(|q| milli_cpu_to_quota(q.milli_value())) {
        cpu.set_quota(Some(quota));
        cpu.set_period(Some(CPU_PERIOD));
    }

    let mut resources = LinuxResources::default();
    resources.set_cpu(Some(cpu));
    if let Some(q) = limit("memory") {
        let bytes = q.value();
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(bytes));
        memory.set_swap(Some(bytes));
        resources.set_memory(Some(memory));
    }
    let mut hugepages = Vec::new();
    for (name, q) in limits.into_iter().flatten() {
        let Some(size) = name.strip_prefix("hugepages-") else {
            continue;
        };
        let page_size = page_size_name(size).ok_or_else(|| {
            SpecError::new(
                format!("{base}.resources.limits[{name}]"),
                format!("unsupported hugepage size {size:?}"),
            )
        })?;
        let mut h = LinuxHugepageLimit::default();
        h.set_page_size(page_size);
        h.set_limit(q.value());
        hugepages.push(h);
    }
    if !hugepages.is_empty() {
        resources.set_hugepage_limits(Some(hugepages));
    }
    if let Some(limit) = input.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    resources.set_devices(Some(device_rules(privileged)));
    Ok(resources)
}

/// `2Mi` -> `2MB`, `1Gi` -> `1GB`: the hugetlb page-size names (the kubelet's
/// `HugePageSizeFromResourceName` and `sizeToString` on base 1024).
fn page_size_name(size: &str) -> Option<String> {
    let bytes = Quantity::parse(size).ok()?.as_i64()?;
    if bytes <= 0 {
        return None;
    }
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes;
    let mut unit = 0;
    while value % 1024 == 0 && value >= 1024 && unit + 1 < units.len() {
        value /= 1024;
        unit += 1;
    }
    Some(format!("{value}{}", units[unit]))
}

fn char_device(path: &str, major: i64, minor: i64) -> LinuxDevice {
    let mut d = LinuxDevice::default();
    d.set_path(path.into());
    d.set_typ(LinuxDeviceType::C);
    d.set_major(major);
    d.set_minor(minor);
    d.set_file_mode(Some(0o666));
    d.set_uid(Some(0));
    d.set_gid(Some(0));
    d
}

/// The OCI default devices (`/dev/null`, `zero`, `full`, `random`, `urandom`, `tty`).
/// libcontainer creates these itself too; listing them keeps `config.json` self-describing.
pub(super) fn default_devices() -> Vec<LinuxDevice> {
    vec![
        char_device("/dev/null", 1, 3),
        char_device("/dev/zero", 1, 5),
        char_device("/dev/full", 1, 7),
        char_device("/dev/random", 1, 8),
        char_device("/dev/urandom", 1, 9),
        char_device("/dev/tty", 5, 0),
    ]
}

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some("rwm".to_owned()));
    r
}

/// Device cgroup rules: deny everything, then allow the default devices, `/dev/pts/*` and
/// `/dev/ptmx`; a privileged container may use every device.
pub(super) fn device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    if privileged {
        return vec![rule(true, LinuxDeviceType::A, None, None)];
    }
    let mut rules = vec![rule(false, LinuxDeviceType::A, None, None)];
    rules.extend(
        default_devices()
            .iter()
            .map(|d| rule(true, d.typ(), Some(d.major()), Some(d.minor()))),
    );
    rules.push(rule(true, LinuxDeviceType::C, Some(136), None)); // /dev/pts/*
    rules.push(rule(true, LinuxDeviceType::C, Some(5), Some(2))); // /dev/ptmx
    rules
}
