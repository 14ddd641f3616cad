//! The node's own figures: procfs (CPU, memory, load, uptime, pids), the filesystems of the
//! agent's state dir and image store (statvfs), and a Raspberry Pi's SoC temperature and
//! firmware throttling flags (sysfs).
//!
//! The procfs and sysfs files are opened once and re-read from offset 0 at every sample
//! (the kernel regenerates their contents on each read), so a sample costs a few `pread`s
//! and no `open`. Parsing is procfs-core's, on the bytes read, so the same code reads the
//! captured files of the unit tests.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use kelp_shared::wire::Metric;
use procfs::{ExplicitSystemInfo, FromBufRead, FromBufReadSI, FromRead};

use super::Readings;

/// Where the node reader looks: `/proc`, `/sys`, and the two directories whose filesystems
/// it reports.
#[derive(Debug, Clone)]
pub struct NodePaths {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    /// The agent's state dir: nodefs (`FsCapacityBytes`, ...).
    pub state_dir: PathBuf,
    /// The image store: imagefs.
    pub image_dir: PathBuf,
}

impl NodePaths {
    /// The real `/proc` and `/sys`.
    pub fn system(state_dir: &Path, image_dir: &Path) -> Self {
        Self {
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            state_dir: state_dir.to_path_buf(),
            image_dir: image_dir.to_path_buf(),
        }
    }
}

/// An open procfs/sysfs file, re-read from the start on every read.
#[derive(Debug)]
pub(super) struct ProcFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

impl ProcFile {
    pub(super) fn open(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        Ok(Self {
            path,
            file,
            buf: Vec::with_capacity(4096),
        })
    }

    /// The file's current contents.
    pub(super) fn read(&mut self) -> io::Result<&[u8]> {
        self.buf.clear();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_end(&mut self.buf)?;
        Ok(&self.buf)
    }

    fn text(&mut self) -> io::Result<&str> {
        let path = self.path.clone();
        let bytes = self.read()?;
        std::str::from_utf8(bytes).map_err(|_| invalid(&path, "not UTF-8"))
    }
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

/// Reads the node's figures; open it once and call [`NodeReader::read`] per sample.
#[derive(Debug)]
pub struct NodeReader {
    paths: NodePaths,
    system: ExplicitSystemInfo,
    stat: ProcFile,
    meminfo: ProcFile,
    loadavg: ProcFile,
    uptime: ProcFile,
    pid_max: ProcFile,
    /// Raspberry Pi (and any board with a thermal zone): SoC temperature.
    temperature: Option<ProcFile>,
    /// Raspberry Pi firmware: `get_throttled`.
    throttled: Option<ProcFile>,
}

/// Paths of the Raspberry Pi firmware's `get_throttled` attribute (below the sys root),
/// added to the firmware device by Raspberry Pi kernels: `soc:firmware` under `soc` on
/// the Pi 1–4, under other buses on newer boards, so every device bound to the
/// `raspberrypi-firmware` driver is looked at too.
const THROTTLED_PATHS: [&str; 2] = [
    "devices/platform/soc/soc:firmware/get_throttled",
    "devices/platform/scb/soc:firmware/get_throttled",
];

impl NodeReader {
    /// Opens the files; fails when a procfs file every Linux has is missing.
    pub fn open(paths: NodePaths, ticks_per_second: u64) -> io::Result<Self> {
        let proc = |name: &str| {
            let path = paths.proc_root.join(name);
            ProcFile::open(path.clone())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        let temperature =
            ProcFile::open(paths.sys_root.join("class/thermal/thermal_zone0/temp")).ok();
        let throttled = throttled_file(&paths.sys_root);
        Ok(Self {
            system: ExplicitSystemInfo {
                boot_time_secs: 0,
                ticks_per_second: ticks_per_second.max(1),
                page_size: 4096,
                is_little_endian: cfg!(target_endian = "little"),
            },
            stat: proc("stat")?,
            meminfo: proc("meminfo")?,
            loadavg: proc("loadavg")?,
            uptime: proc("uptime")?,
            pid_max: proc("sys/kernel/pid_max")?,
            temperature,
            throttled,
            paths,
        })
    }

    /// The node's quickly changing figures now: CPU, memory, pids in use.
    pub fn read(&mut self, out: &mut Readings) -> io::Result<()> {
        let node = super::SubjectKey::Node;
        let mut put = |metric, value: u64| out.push(node.clone(), metric, value);

        let stats = procfs::KernelStats::from_buf_read(self.stat.read()?, &self.system)
            .map_err(|e| invalid(&self.stat.path, e))?;
        let tick_ns = 1_000_000_000 / self.system.ticks_per_second;
        let total = &stats.total;
        let ns = |ticks: u64| ticks.saturating_mul(tick_ns);
        let user = total.user.saturating_add(total.nice);
        let system = total
            .system
            .saturating_add(total.irq.unwrap_or(0))
            .saturating_add(total.softirq.unwrap_or(0));
        let usage = user
            .saturating_add(system)
            .saturating_add(total.steal.unwrap_or(0));
        put(Metric::CpuUsageNanoseconds, ns(usage));
        put(Metric::CpuUserNanoseconds, ns(user));
        put(Metric::CpuSystemNanoseconds, ns(system));

        let mem = self.meminfo()?;
        // As the kubelet's root cgroup on v2 (from /proc/meminfo): usage is what is not
        // free, the working set leaves the inactive page cache out.
        let usage = mem.mem_total.saturating_sub(mem.mem_free);
        put(Metric::MemoryUsageBytes, usage);
        put(
            Metric::MemoryWorkingSetBytes,
            usage.saturating_sub(mem.inactive_file.unwrap_or(0)),
        );
        put(Metric::MemoryRssBytes, mem.anon_pages.unwrap_or(0));
        put(Metric::MemoryCacheBytes, mem.cached);
        put(
            Metric::MemoryAvailableBytes,
            mem.mem_available.unwrap_or(mem.mem_free),
        );

        // Scheduling entities (processes and threads) that exist, as the kubelet counts
        // them for PID pressure.
        put(Metric::PidsInUse, u64::from(self.loadavg()?.max));
        Ok(())
    }

    /// The node's slowly changing figures: load, capacity, uptime, pid_max, filesystems
    /// (statvfs), the board's temperature and throttling.
    pub fn read_slow(&mut self, out: &mut Readings) -> io::Result<()> {
        let node = super::SubjectKey::Node;
        let load = self.loadavg()?;
        let mem_total = self.meminfo()?.mem_total;
        let mut put = |metric, value: u64| out.push(node.clone(), metric, value);
        let milli = |load: f32| (f64::from(load) * 1000.0).round().max(0.0) as u64;
        put(Metric::Load1Milli, milli(load.one));
        put(Metric::Load5Milli, milli(load.five));
        put(Metric::Load15Milli, milli(load.fifteen));
        put(Metric::MemoryCapacityBytes, mem_total);

        let uptime = procfs::Uptime::from_read(self.uptime.read()?)
            .map_err(|e| invalid(&self.uptime.path, e))?;
        put(Metric::UptimeSeconds, uptime.uptime.max(0.0) as u64);
        let pid_max = self.pid_max.text()?.trim().to_owned();
        let pid_max = pid_max
            .parse()
            .map_err(|_| invalid(&self.pid_max.path, "not a number"))?;
        put(Metric::PidsMax, pid_max);

        if let Some(fs) = statvfs(&self.paths.state_dir) {
            put(Metric::FsCapacityBytes, fs.capacity);
            put(Metric::FsAvailableBytes, fs.available);
            put(Metric::FsInodes, fs.inodes);
            put(Metric::FsInodesFree, fs.inodes_free);
        }
        if let Some(fs) = statvfs(&self.paths.image_dir) {
            put(Metric::ImageFsCapacityBytes, fs.capacity);
            put(Metric::ImageFsAvailableBytes, fs.available);
        }
        if let Some(file) = &mut self.temperature {
            // A board without the zone was never opened; a read failing now (a sensor
            // gone away) leaves it out of this sample.
            if let Some(milli) = file.text().ok().and_then(|t| t.trim().parse::<i64>().ok()) {
                put(Metric::TemperatureMillicelsius, milli.max(0) as u64);
            }
        }
        if let Some(file) = &mut self.throttled {
            if let Some(flags) = file.text().ok().and_then(parse_throttled) {
                put(Metric::ThrottledFlags, flags);
            }
        }
        Ok(())
    }

    fn meminfo(&mut self) -> io::Result<procfs::Meminfo> {
        procfs::Meminfo::from_buf_read(self.meminfo.read()?)
            .map_err(|e| invalid(&self.meminfo.path, e))
    }

    fn loadavg(&mut self) -> io::Result<procfs::LoadAverage> {
        procfs::LoadAverage::from_read(self.loadavg.read()?)
            .map_err(|e| invalid(&self.loadavg.path, e))
    }
}

/// The firmware's `get_throttled` file, if this is a Raspberry Pi.
fn throttled_file(sys_root: &Path) -> Option<ProcFile> {
    let mut candidates: Vec<PathBuf> = THROTTLED_PATHS.iter().map(|p| sys_root.join(p)).collect();
    if let Ok(entries) =
        std::fs::read_dir(sys_root.join("bus/platform/drivers/raspberrypi-firmware"))
    {
        candidates.extend(entries.flatten().map(|e| e.path().join("get_throttled")));
    }
    candidates
        .into_iter()
        .find_map(|path| ProcFile::open(path).ok())
}

/// `get_throttled`'s value: hexadecimal, with or without `0x` (the kernel writes `%x`).
pub(super) fn parse_throttled(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    u64::from_str_radix(digits, 16).ok()
}

/// A filesystem's size, free space and inodes, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FsFigures {
    pub capacity: u64,
    pub available: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// statvfs of the filesystem holding `dir` (None when it cannot be asked: not there yet).
pub(super) fn statvfs(dir: &Path) -> Option<FsFigures> {
    let st = rustix::fs::statvfs(dir).ok()?;
    let fragment = st.f_frsize.max(1);
    Some(FsFigures {
        capacity: st.f_blocks.saturating_mul(fragment),
        available: st.f_bavail.saturating_mul(fragment),
        inodes: st.f_files,
        inodes_free: st.f_ffree,
    })
}
