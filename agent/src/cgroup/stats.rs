//! Stats and OOM counts of one cgroup, in units that do not depend on the cgroup version.
//!
//! [`read`] asks libcgroups' `CgroupManager::stats()` first and normalizes what it returns
//! (v2 CPU times are microseconds, v1 totals nanoseconds and v1 user/system `USER_HZ` ticks).
//! When libcgroups fails, because one optional file it insists on is missing, [`read`] reads
//! the core files itself and leaves out what is absent.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use libcgroups::common::CgroupManager;
use libcgroups::v1::ControllerType;

use super::{io_err, CgroupError, CgroupVersion, Cgroups, RelPath, Result};

/// `USER_HZ`: the unit of v1 `cpuacct.stat`; 100 on every architecture kelp targets.
const USER_HZ: u64 = 100;

/// v1 reports "no limit" as the largest page-aligned `i64`; anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// Resource usage of a cgroup and its descendants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    /// Processes killed by the OOM killer (see [`Cgroups::oom_kills`]); `None` when the
    /// memory controller is not available.
    pub oom_kills: Option<u64>,
}

/// CPU time, in nanoseconds, and CFS throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Total CPU time (`container_cpu_usage_seconds_total` × 10⁹).
    pub usage_ns: u64,
    /// CPU time in user mode.
    pub user_ns: u64,
    /// CPU time in kernel mode.
    pub system_ns: u64,
    /// Elapsed CFS enforcement periods (0 without a CPU limit or the cpu controller).
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Total time throttled.
    pub throttled_ns: u64,
}

/// Memory, in bytes. All zero when the memory controller is not available.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Charged memory, page cache included (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage_bytes: u64,
    /// The limit; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// `usage_bytes` − inactive file cache: what the kubelet calls the working set.
    pub working_set_bytes: u64,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub rss_bytes: u64,
    /// Page cache (v1 `total_cache`, v2 `file`).
    pub cache_bytes: u64,
}

/// Number of tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

/// The stats of `rel`.
pub(super) fn read(cgroups: &Cgroups, rel: &RelPath) -> Result<CgroupStats> {
    let from_libcgroups = cgroups
        .manager(rel)
        .ok()
        .and_then(|manager| manager.stats().ok());
    let mut stats = match from_libcgroups {
        Some(raw) => {
            let mut stats = normalize(cgroups.version, &raw);
            if cgroups.version == CgroupVersion::V1 {
                // libcgroups gives v1 user/system time in ticks; read nanoseconds if we can.
                if let Some(dir) = cgroups.v1_dir(ControllerType::CpuAcct, rel) {
                    v1_user_system_ns(&dir, &mut stats.cpu)?;
                }
            }
            stats
        }
        None => match cgroups.version {
            CgroupVersion::V1 => read_v1(cgroups, rel)?,
            CgroupVersion::V2 => read_v2(&cgroups.v2_dir(rel))?,
        },
    };
    stats.oom_kills = match oom_kills(cgroups, rel) {
        Ok(kills) => Some(kills),
        Err(CgroupError::NoController { .. }) => None,
        Err(err) => return Err(err),
    };
    Ok(stats)
}

/// kelp's units from libcgroups' [`Stats`](libcgroups::stats::Stats).
fn normalize(version: CgroupVersion, raw: &libcgroups::stats::Stats) -> CgroupStats {
    let usage = &raw.cpu.usage;
    let throttling = &raw.cpu.throttling;
    let cpu = match version {
        CgroupVersion::V2 => CpuStats {
            usage_ns: usage.usage_total.saturating_mul(1000),
            user_ns: usage.usage_user.saturating_mul(1000),
            system_ns: usage.usage_kernel.saturating_mul(1000),
            periods: throttling.periods,
            throttled_periods: throttling.throttled_periods,
            throttled_ns: throttling.throttled_time.saturating_mul(1000),
        },
        CgroupVersion::V1 => CpuStats {
            usage_ns: usage.usage_total,
            user_ns: ticks_to_ns(usage.usage_user),
            system_ns: ticks_to_ns(usage.usage_kernel),
            periods: throttling.periods,
            throttled_periods: throttling.throttled_periods,
            throttled_ns: throttling.throttled_time,
        },
    };
    let memory = memory_stats(
        version,
        raw.memory.memory.usage,
        raw.memory.memory.limit,
        &raw.memory.stats,
    );
    let pids = PidsStats {
        current: raw.pids.current,
        limit: (raw.pids.limit != 0).then_some(raw.pids.limit),
    };
    CgroupStats {
        cpu,
        memory,
        pids,
        oom_kills: None,
    }
}

fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000 / USER_HZ)
}

fn memory_stats(
    version: CgroupVersion,
    usage: u64,
    limit: u64,
    stat: &HashMap<String, u64>,
) -> MemoryStats {
    let (inactive_file, rss, cache) = match version {
        CgroupVersion::V1 => ("total_inactive_file", "total_rss", "total_cache"),
        CgroupVersion::V2 => ("inactive_file", "anon", "file"),
    };
    let get = |key| stat.get(key).copied().unwrap_or(0);
    MemoryStats {
        usage_bytes: usage,
        limit_bytes: (limit < V1_UNLIMITED).then_some(limit),
        working_set_bytes: usage.saturating_sub(get(inactive_file)),
        rss_bytes: get(rss),
        cache_bytes: get(cache),
    }
}

/// v1 user/system nanoseconds from `cpuacct.usage_user`/`cpuacct.usage_sys` (Linux ≥ 4.16);
/// leaves the tick-based values when those files are missing.
fn v1_user_system_ns(dir: &Path, cpu: &mut CpuStats) -> Result<()> {
    if let Some(user) = read_u64_opt(&dir.join("cpuacct.usage_user"))? {
        cpu.user_ns = user;
    }
    if let Some(system) = read_u64_opt(&dir.join("cpuacct.usage_sys"))? {
        cpu.system_ns = system;
    }
    Ok(())
}

/// Fallback reader for v1: whatever core files exist.
pub(super) fn read_v1(cgroups: &Cgroups, rel: &RelPath) -> Result<CgroupStats> {
    let mut stats = CgroupStats::default();
    if let Some(dir) = cgroups.v1_dir(ControllerType::CpuAcct, rel) {
        stats.cpu.usage_ns = read_u64(&dir.join("cpuacct.usage"))?;
        if let Some(ticks) = read_keyed_opt(&dir.join("cpuacct.stat"))? {
            stats.cpu.user_ns = ticks_to_ns(ticks.get("user").copied().unwrap_or(0));
            stats.cpu.system_ns = ticks_to_ns(ticks.get("system").copied().unwrap_or(0));
        }
        v1_user_system_ns(&dir, &mut stats.cpu)?;
    }
    if let Some(dir) = cgroups.v1_dir(ControllerType::Cpu, rel) {
        if let Some(cpu) = read_keyed_opt(&dir.join("cpu.stat"))? {
            let get = |key| cpu.get(key).copied().unwrap_or(0);
            stats.cpu.periods = get("nr_periods");
            stats.cpu.throttled_periods = get("nr_throttled");
            stats.cpu.throttled_ns = get("throttled_time");
        }
    }
    if let Some(dir) = cgroups.v1_dir(ControllerType::Memory, rel) {
        let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
        let limit = read_u64(&dir.join("memory.limit_in_bytes"))?;
        let stat = read_keyed(&dir.join("memory.stat"))?;
        stats.memory = memory_stats(CgroupVersion::V1, usage, limit, &stat);
    }
    if let Some(dir) = cgroups.v1_dir(ControllerType::Pids, rel) {
        stats.pids = read_pids(&dir)?;
    }
    Ok(stats)
}

/// Fallback reader for v2: whatever core files exist (interface files of controllers that
/// are not enabled for the cgroup are absent).
pub(super) fn read_v2(dir: &Path) -> Result<CgroupStats> {
    let mut stats = CgroupStats::default();
    let cpu = read_keyed(&dir.join("cpu.stat"))?;
    let get = |key| cpu.get(key).copied().unwrap_or(0).saturating_mul(1000);
    stats.cpu = CpuStats {
        usage_ns: get("usage_usec"),
        user_ns: get("user_usec"),
        system_ns: get("system_usec"),
        periods: cpu.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
        throttled_ns: get("throttled_usec"),
    };
    if let Some(usage) = read_u64_opt(&dir.join("memory.current"))? {
        let limit = read_u64(&dir.join("memory.max"))?;
        let stat = read_keyed(&dir.join("memory.stat"))?;
        stats.memory = memory_stats(CgroupVersion::V2, usage, limit, &stat);
    }
    if dir.join("pids.current").exists() {
        stats.pids = read_pids(dir)?;
    }
    Ok(stats)
}

fn read_pids(dir: &Path) -> Result<PidsStats> {
    let limit = read_u64(&dir.join("pids.max"))?;
    Ok(PidsStats {
        current: read_u64(&dir.join("pids.current"))?,
        limit: (limit != u64::MAX).then_some(limit),
    })
}

/// See [`Cgroups::oom_kills`].
pub(super) fn oom_kills(cgroups: &Cgroups, rel: &RelPath) -> Result<u64> {
    let no_memory = || CgroupError::NoController {
        path: rel.text.clone(),
        controller: "memory",
    };
    match cgroups.version {
        CgroupVersion::V2 => {
            let file = cgroups.v2_dir(rel).join("memory.events");
            match fs::read_to_string(&file) {
                Ok(text) => oom_kill_field(&text, &file),
                Err(err)
                    if err.kind() == io::ErrorKind::NotFound
                        && file.parent().is_some_and(Path::exists) =>
                {
                    Err(no_memory())
                }
                Err(err) => Err(io_err("read", &file)(err)),
            }
        }
        CgroupVersion::V1 => {
            let dir = cgroups
                .v1_dir(ControllerType::Memory, rel)
                .ok_or_else(no_memory)?;
            let dirs = super::subtree(&dir)?;
            if dirs.is_empty() {
                return Err(io_err("read", &dir)(io::ErrorKind::NotFound.into()));
            }
            let mut total = 0u64;
            for dir in dirs {
                let file = dir.join("memory.oom_control");
                match fs::read_to_string(&file) {
                    Ok(text) => total = total.saturating_add(oom_kill_field(&text, &file)?),
                    // The child went away while we walked.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_err("read", &file)(err)),
                }
            }
            Ok(total)
        }
    }
}

/// The `oom_kill` value of a v2 `memory.events` or a v1 `memory.oom_control` file.
pub(super) fn oom_kill_field(text: &str, file: &Path) -> Result<u64> {
    let fields = parse_keyed(text, file)?;
    fields
        .get("oom_kill")
        .copied()
        .ok_or_else(|| CgroupError::Parse {
            path: file.to_path_buf(),
            reason: "no oom_kill line (Linux older than 4.13?)".to_owned(),
        })
}

/// Parses a flat-keyed cgroup file (`key value` per line).
pub(super) fn parse_keyed(text: &str, file: &Path) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(parse_error(file, line));
        };
        let value = value.parse().map_err(|_| parse_error(file, line))?;
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

fn parse_error(file: &Path, line: &str) -> CgroupError {
    CgroupError::Parse {
        path: file.to_path_buf(),
        reason: format!("unexpected line {line:?}"),
    }
}

fn read_keyed(file: &Path) -> Result<HashMap<String, u64>> {
    let text = fs::read_to_string(file).map_err(io_err("read", file))?;
    parse_keyed(&text, file)
}

fn read_keyed_opt(file: &Path) -> Result<Option<HashMap<String, u64>>> {
    read_opt(file)?
        .map(|text| parse_keyed(&text, file))
        .transpose()
}

/// A single-value file; `max` reads as `u64::MAX`.
fn read_u64(file: &Path) -> Result<u64> {
    read_u64_opt(file)?.ok_or_else(|| io_err("read", file)(io::ErrorKind::NotFound.into()))
}

fn read_u64_opt(file: &Path) -> Result<Option<u64>> {
    let Some(text) = read_opt(file)? else {
        return Ok(None);
    };
    let text = text.trim();
    if text == "max" {
        return Ok(Some(u64::MAX));
    }
    text.parse().map(Some).map_err(|_| CgroupError::Parse {
        path: PathBuf::from(file),
        reason: format!("not a number: {text:?}"),
    })
}

fn read_opt(file: &Path) -> Result<Option<String>> {
    match fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_err("read", file)(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_from_v2_memory_events() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(oom_kill_field(text, Path::new("memory.events")).unwrap(), 2);
    }

    #[test]
    fn oom_kill_from_v1_oom_control() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n";
        assert_eq!(
            oom_kill_field(text, Path::new("memory.oom_control")).unwrap(),
            5
        );
    }

    #[test]
    fn old_kernel_without_oom_kill_line_is_an_error_naming_the_file() {
        let err =
            oom_kill_field("oom_kill_disable 0\nunder_oom 0\n", Path::new("/x/oc")).unwrap_err();
        assert!(err.to_string().contains("/x/oc"), "{err}");
    }

    #[test]
    fn malformed_keyed_line_is_an_error() {
        assert!(parse_keyed("a 1 2\n", Path::new("f")).is_err());
        assert!(parse_keyed("a x\n", Path::new("f")).is_err());
        assert_eq!(parse_keyed("", Path::new("f")).unwrap().len(), 0);
    }

    #[test]
    fn normalize_converts_units_and_limits() {
        let mut raw = libcgroups::stats::Stats::default();
        raw.cpu.usage.usage_total = 7;
        raw.cpu.usage.usage_user = 3;
        raw.cpu.usage.usage_kernel = 4;
        raw.memory.memory.usage = 1000;
        raw.memory.memory.limit = u64::MAX;
        raw.memory.stats.insert("inactive_file".into(), 300);
        raw.memory.stats.insert("anon".into(), 600);
        let v2 = normalize(CgroupVersion::V2, &raw);
        assert_eq!((v2.cpu.usage_ns, v2.cpu.user_ns), (7000, 3000));
        assert_eq!(v2.memory.working_set_bytes, 700);
        assert_eq!(v2.memory.rss_bytes, 600);
        assert_eq!(v2.memory.limit_bytes, None);
        assert_eq!(v2.pids.limit, None);

        raw.memory.memory.limit = 9_223_372_036_854_771_712;
        let v1 = normalize(CgroupVersion::V1, &raw);
        assert_eq!((v1.cpu.usage_ns, v1.cpu.system_ns), (7, 40_000_000));
        assert_eq!(v1.memory.limit_bytes, None);
        assert_eq!(
            v1.memory.working_set_bytes, 1000,
            "v1 uses total_inactive_file"
        );
    }
}
