//! kelp's own small cgroup layer: the per-pod monitor's cgroup, pod-level cleanup, stats and
//! OOM counts, on cgroup v1 (legacy or hybrid layout) and cgroup v2 (unified).
//!
//! Containers' cgroups are created and limited by youki's libcontainer from the OCI spec's
//! `linux.cgroupsPath`; this module manages what lies around them. Paths are *root-relative*,
//! like `linux.cgroupsPath`: `/kelp/pod-<uid>` names `/sys/fs/cgroup/kelp/pod-<uid>` on v2 and
//! `/sys/fs/cgroup/<hierarchy>/kelp/pod-<uid>` in every v1 hierarchy.
//!
//! # Why libcgroups
//!
//! kelp uses youki's `libcgroups` as its one cgroup library rather than `cgroups-rs`:
//!
//! - it is already linked, because libcontainer creates and limits containers' cgroups with
//!   it, so one library both controls and reads kelp's cgroups, with the same idea of which
//!   v1 hierarchies exist and how v2 controllers are enabled;
//! - `cgroups-rs` 0.5 always pulls in `zbus` (a D-Bus stack for its systemd support), which a
//!   single-digit-MB edge agent has no use for.
//!
//! Its gaps are filled here by reading cgroupfs directly:
//!
//! - no call creates a cgroup without moving a process into it, none lists or removes a
//!   subtree, and none kills without removing: [`Cgroups::create`], [`Cgroups::processes`],
//!   [`Cgroups::kill_all`] and [`Cgroups::remove`] are written here (freezing is libcgroups');
//! - v1 CPU user/system time comes in `USER_HZ` ticks (`cpuacct.stat`) while the total is in
//!   nanoseconds: [`Cgroups::stats`] reads `cpuacct.usage_user`/`cpuacct.usage_sys` instead;
//! - there is no OOM kill counter: [`Cgroups::oom_kills`] reads `memory.events` (v2) or
//!   `memory.oom_control` (v1);
//! - `CgroupManager::stats()` is all-or-nothing: one missing optional file (v1 `memsw` files
//!   without swap accounting, v2 pressure files with `psi=0`, a controller not enabled for
//!   the cgroup) fails the lot. [`Cgroups::stats`] then reads the core values itself.
//!
//! # Cleanup
//!
//! [`Cgroups::kill_all`] then [`Cgroups::remove`] take a pod's whole subtree down (the pod's
//! cgroup, its monitor's and its containers'). cgroupfs directories can only be `rmdir`ed, so
//! removal walks the subtree leaf-first and never deletes files recursively.

mod stats;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use libcgroups::common::{
    AnyCgroupManager, CgroupConfig, CgroupManager, CgroupSetup, FreezerState, DEFAULT_CGROUP_ROOT,
};
use libcgroups::v1::ControllerType;
use rustix::io::Errno;

pub use stats::{CgroupStats, CpuStats, MemoryStats, PidsStats};

/// The v2 controllers kelp relies on for pod limits and stats. [`Cgroups::create`] enables
/// every controller a parent offers, as libcontainer does (libcgroups' stats also read
/// hugetlb files); failing to enable one of these is an error, the others are best-effort.
pub const V2_CONTROLLERS: [&str; 5] = ["cpu", "memory", "pids", "io", "cpuset"];

/// How long [`Cgroups::kill_all`] keeps killing before giving up, unless changed with
/// [`Cgroups::with_kill_timeout`].
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the cgroup layer; each names the cgroup or file involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("cannot tell the cgroup layout at {root}")]
    Detect {
        root: PathBuf,
        #[source]
        source: libcgroups::common::GetCgroupSetupError,
    },
    #[error("no cgroup v1 hierarchy usable by libcgroups is mounted")]
    NoHierarchy,
    #[error("cannot list the mounted cgroup v1 hierarchies")]
    Mounts(#[source] libcgroups::v1::util::V1MountPointError),
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cgroup {path} still has processes {pids:?}")]
    Populated { path: String, pids: Vec<u32> },
    #[error("processes of cgroup {path} survived SIGKILL for {waited:?}: {pids:?}")]
    KillTimeout {
        path: String,
        waited: Duration,
        pids: Vec<u32>,
    },
    #[error("libcgroups cannot manage cgroup {path}")]
    Manager {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cgroup {path} does not have the {controller} controller")]
    NoController {
        path: String,
        controller: &'static str,
    },
}

type Result<T, E = CgroupError> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Which cgroup hierarchy the machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Controllers in per-controller v1 hierarchies (legacy, or hybrid with a controller-less
    /// cgroup2 at `/sys/fs/cgroup/unified`).
    V1,
    /// `/sys/fs/cgroup` itself is cgroup2 (unified).
    V2,
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// The cgroup version of this machine: V2 only when `/sys/fs/cgroup` itself is a cgroup2
/// filesystem (statfs magic, via libcgroups); a hybrid layout counts as V1.
pub fn detect() -> Result<CgroupVersion> {
    let root = Path::new(DEFAULT_CGROUP_ROOT);
    match libcgroups::common::get_cgroup_setup_with_root(root) {
        Ok(CgroupSetup::Unified) => Ok(CgroupVersion::V2),
        Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid) => Ok(CgroupVersion::V1),
        Err(source) => Err(CgroupError::Detect {
            root: root.to_path_buf(),
            source,
        }),
    }
}

/// The cgroup version from the text of `/proc/self/mountinfo`, for callers that cannot
/// statfs (preflight on a fake root): V2 when the last mount on `/sys/fs/cgroup` is cgroup2,
/// V1 when any cgroup v1 hierarchy is mounted, `None` when neither.
pub fn version_from_mountinfo(mountinfo: &str) -> Option<CgroupVersion> {
    let mut root_is_v2 = None;
    let mut any_v1 = false;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let (Some(mount_point), Some(fs_type)) = (left.split(' ').nth(4), right.split(' ').next())
        else {
            continue;
        };
        if mount_point == DEFAULT_CGROUP_ROOT {
            root_is_v2 = Some(fs_type == "cgroup2");
        }
        any_v1 |= fs_type == "cgroup";
    }
    match (root_is_v2, any_v1) {
        (Some(true), _) => Some(CgroupVersion::V2),
        (_, true) => Some(CgroupVersion::V1),
        _ => None,
    }
}

/// A validated root-relative cgroup path, kept as its components (`["kelp", "pod-1"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RelPath {
    text: String,
    rel: PathBuf,
}

impl RelPath {
    fn parse(path: &str) -> Result<Self> {
        let invalid = |reason| CgroupError::InvalidPath {
            path: path.to_owned(),
            reason,
        };
        let mut rel = PathBuf::new();
        for component in Path::new(path).components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => rel.push(name),
                Component::ParentDir => return Err(invalid("`..` is not allowed")),
                Component::Prefix(_) => return Err(invalid("not a Unix path")),
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(invalid("the root cgroup cannot be managed"));
        }
        Ok(RelPath {
            text: format!("/{}", rel.display()),
            rel,
        })
    }
}

/// Handle on the machine's cgroup filesystem. Cheap to keep; every call takes a root-relative
/// path such as `/kelp/pod-<uid>` or `/kelp/pod-<uid>/monitor`.
#[derive(Debug, Clone)]
pub struct Cgroups {
    version: CgroupVersion,
    layout: Layout,
    kill_timeout: Duration,
}

#[derive(Debug, Clone)]
enum Layout {
    /// Mount points of the v1 hierarchies libcgroups uses, one entry per hierarchy (co-mounted
    /// controllers such as `cpu,cpuacct` share one), plus the ones this layer reads.
    V1 {
        hierarchies: Vec<PathBuf>,
        controllers: HashMap<ControllerType, PathBuf>,
    },
    /// The cgroup2 mount point.
    V2 { root: PathBuf },
}

impl Cgroups {
    /// Detects the layout of `/sys/fs/cgroup` (see [`detect`]) and, on v1, the hierarchies
    /// libcgroups would use.
    pub fn detect() -> Result<Self> {
        let version = detect()?;
        let layout = match version {
            CgroupVersion::V2 => Layout::V2 {
                root: PathBuf::from(DEFAULT_CGROUP_ROOT),
            },
            CgroupVersion::V1 => {
                let mounts = libcgroups::v1::util::list_supported_mount_points()
                    .map_err(CgroupError::Mounts)?;
                let hierarchies: BTreeSet<PathBuf> = mounts.values().cloned().collect();
                if hierarchies.is_empty() {
                    return Err(CgroupError::NoHierarchy);
                }
                Layout::V1 {
                    hierarchies: hierarchies.into_iter().collect(),
                    controllers: mounts,
                }
            }
        };
        Ok(Cgroups {
            version,
            layout,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
        })
    }

    /// A cgroup filesystem laid out below `root` instead of `/sys/fs/cgroup`: on v1 each
    /// hierarchy is the subdirectory named after its controller (`cpu`, `cpuacct`,
    /// `memory`, `pids`, … — symlinks to a co-mounted `cpu,cpuacct` are fine), on v2 `root`
    /// itself. For reading captured cgroup trees ([`Cgroups::sample`]); libcgroups, which
    /// [`Cgroups::stats`] and the freezer use, still looks at the real root.
    pub fn at(version: CgroupVersion, root: &Path) -> Self {
        let layout = match version {
            CgroupVersion::V2 => Layout::V2 {
                root: root.to_path_buf(),
            },
            CgroupVersion::V1 => {
                let controllers: HashMap<ControllerType, PathBuf> = [
                    (ControllerType::Cpu, "cpu"),
                    (ControllerType::CpuAcct, "cpuacct"),
                    (ControllerType::CpuSet, "cpuset"),
                    (ControllerType::Memory, "memory"),
                    (ControllerType::Pids, "pids"),
                    (ControllerType::Freezer, "freezer"),
                    (ControllerType::Blkio, "blkio"),
                    (ControllerType::Devices, "devices"),
                ]
                .into_iter()
                .map(|(controller, name)| (controller, root.join(name)))
                .filter(|(_, dir)| dir.is_dir())
                .collect();
                let mut hierarchies: Vec<PathBuf> = controllers
                    .values()
                    .map(|dir| fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if hierarchies.is_empty() {
                    hierarchies.push(root.to_path_buf());
                }
                Layout::V1 {
                    hierarchies,
                    controllers,
                }
            }
        };
        Cgroups {
            version,
            layout,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
        }
    }

    /// Changes how long [`Cgroups::kill_all`] keeps trying.
    pub fn with_kill_timeout(mut self, timeout: Duration) -> Self {
        self.kill_timeout = timeout;
        self
    }

    /// The machine's cgroup version.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directories of `path`, one per hierarchy (a single one on v2).
    pub fn dirs(&self, path: &str) -> Result<Vec<PathBuf>> {
        let rel = RelPath::parse(path)?;
        Ok(self.dirs_of(&rel))
    }

    fn dirs_of(&self, rel: &RelPath) -> Vec<PathBuf> {
        self.mounts().iter().map(|m| m.join(&rel.rel)).collect()
    }

    /// v1: the directory of `rel` in `controller`'s hierarchy, if that one is mounted.
    fn v1_dir(&self, controller: ControllerType, rel: &RelPath) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { controllers, .. } => {
                controllers.get(&controller).map(|m| m.join(&rel.rel))
            }
            Layout::V2 { .. } => None,
        }
    }

    /// v2: the directory of `rel`. Only called on v2 paths; on v1 it would name `rel` in the
    /// first hierarchy.
    fn v2_dir(&self, rel: &RelPath) -> PathBuf {
        match &self.layout {
            Layout::V2 { root } => root.join(&rel.rel),
            Layout::V1 { hierarchies, .. } => hierarchies[0].join(&rel.rel),
        }
    }

    fn mounts(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1 { hierarchies, .. } => hierarchies.clone(),
            Layout::V2 { root } => vec![root.clone()],
        }
    }

    /// Creates `path` and its missing ancestors.
    ///
    /// - v1: in every hierarchy libcgroups uses (cpu, cpuacct, memory, pids, freezer, …);
    ///   a new cpuset cgroup gets its parent's `cpuset.cpus`/`cpuset.mems`, without which
    ///   no process could join it.
    /// - v2: enables, in the `cgroup.subtree_control` of the root and of every ancestor of
    ///   `path`, each controller its `cgroup.controllers` offers (as libcontainer does), so
    ///   that `path` and the container cgroups libcontainer creates below it can be limited.
    ///   `path`'s own `subtree_control` is left alone: `path` may become a leaf holding
    ///   processes, and v2 allows processes only in cgroups without enabled controllers
    ///   (the "no internal processes" rule). Ancestors therefore must hold no processes.
    ///
    /// Creating an existing cgroup is not an error.
    pub fn create(&self, path: &str) -> Result<()> {
        let rel = RelPath::parse(path)?;
        match &self.layout {
            Layout::V1 {
                hierarchies,
                controllers,
            } => {
                let cpuset = controllers.get(&ControllerType::CpuSet);
                for mount in hierarchies {
                    let mut dir = mount.clone();
                    for name in rel.rel.iter() {
                        let parent = dir.clone();
                        dir.push(name);
                        if make_dir(&dir)? && cpuset == Some(mount) {
                            inherit_cpuset(&parent, &dir)?;
                        }
                    }
                }
            }
            Layout::V2 { root } => {
                let mut dir = root.clone();
                for name in rel.rel.iter() {
                    enable_controllers(&dir)?;
                    dir.push(name);
                    make_dir(&dir)?;
                }
            }
        }
        Ok(())
    }

    /// Moves process `pid` (all its threads) into `path`, in every hierarchy.
    pub fn add_process(&self, path: &str, pid: u32) -> Result<()> {
        let rel = RelPath::parse(path)?;
        for dir in self.dirs_of(&rel) {
            let procs = dir.join("cgroup.procs");
            fs::write(&procs, pid.to_string()).map_err(io_err("write a pid to", &procs))?;
        }
        Ok(())
    }

    /// The processes in `path` (and, if `recursive`, in its descendants), sorted, without
    /// duplicates. On v1 this is the union over all hierarchies. An absent cgroup has none.
    pub fn processes(&self, path: &str, recursive: bool) -> Result<Vec<u32>> {
        let rel = RelPath::parse(path)?;
        self.processes_of(&rel, recursive)
    }

    fn processes_of(&self, rel: &RelPath, recursive: bool) -> Result<Vec<u32>> {
        let mut pids = BTreeSet::new();
        for dir in self.dirs_of(rel) {
            let dirs = if recursive { subtree(&dir)? } else { vec![dir] };
            for dir in dirs {
                read_procs(&dir, &mut pids)?;
            }
        }
        Ok(pids.into_iter().collect())
    }

    /// Kills every process in `path` and its descendants, and waits until they are gone
    /// (bounded by the kill timeout, then [`CgroupError::KillTimeout`]).
    ///
    /// - v2 with `cgroup.kill` (Linux ≥ 5.14): one write kills the whole subtree, forks
    ///   included.
    /// - otherwise (older v2, and v1 through the freezer hierarchy): freeze the subtree so
    ///   nothing can fork, SIGKILL every process, thaw so the signals are delivered; repeat
    ///   until nothing is left.
    ///
    /// An absent cgroup has nothing to kill.
    pub fn kill_all(&self, path: &str) -> Result<()> {
        let rel = RelPath::parse(path)?;
        let kill_file = match &self.layout {
            Layout::V2 { root } => Some(root.join(&rel.rel).join("cgroup.kill")),
            Layout::V1 { .. } => None,
        };
        match kill_file {
            Some(file) if file.exists() => self.kill_with_cgroup_kill(&rel, &file),
            _ => self.kill_with_freezer(&rel),
        }
    }

    fn kill_with_cgroup_kill(&self, rel: &RelPath, kill_file: &Path) -> Result<()> {
        let deadline = Instant::now() + self.kill_timeout;
        loop {
            let pids = self.processes_of(rel, true)?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.kill_timeout_error(rel, pids));
            }
            match fs::write(kill_file, "1") {
                Ok(()) => {}
                // The cgroup went away meanwhile: nothing left to kill.
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(err) => return Err(io_err("write 1 to", kill_file)(err)),
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_with_freezer(&self, rel: &RelPath) -> Result<()> {
        let deadline = Instant::now() + self.kill_timeout;
        let manager = self.manager(rel)?;
        loop {
            let pids = self.processes_of(rel, true)?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.kill_timeout_error(rel, pids));
            }
            // Freezing can fail when the cgroup vanishes meanwhile, or when a v1 machine has
            // no freezer hierarchy; killing without it still converges, only more slowly.
            let frozen = manager.freeze(FreezerState::Frozen).is_ok();
            for pid in self.processes_of(rel, true)? {
                send_sigkill(pid);
            }
            if frozen {
                manager
                    .freeze(FreezerState::Thawed)
                    .map_err(|err| manager_error(rel, err))?;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_timeout_error(&self, rel: &RelPath, pids: Vec<u32>) -> CgroupError {
        CgroupError::KillTimeout {
            path: rel.text.clone(),
            waited: self.kill_timeout,
            pids,
        }
    }

    /// Removes `path` and every cgroup below it, leaf-first, in every hierarchy, with `rmdir`
    /// only. Fails with [`CgroupError::Populated`] while processes remain (call
    /// [`Cgroups::kill_all`] first); an absent cgroup is already removed.
    pub fn remove(&self, path: &str) -> Result<()> {
        let rel = RelPath::parse(path)?;
        let pids = self.processes_of(&rel, true)?;
        if !pids.is_empty() {
            return Err(CgroupError::Populated {
                path: rel.text,
                pids,
            });
        }
        for dir in self.dirs_of(&rel) {
            // `subtree` lists parents before children: remove in reverse.
            for dir in subtree(&dir)?.iter().rev() {
                remove_dir(dir, &rel)?;
            }
        }
        Ok(())
    }

    /// Resource usage of `path` (its subtree included: cgroup counters are hierarchical),
    /// read through libcgroups, with the gaps described in the module documentation filled.
    pub fn stats(&self, path: &str) -> Result<CgroupStats> {
        let rel = RelPath::parse(path)?;
        stats::read(self, &rel)
    }

    /// What [`Cgroups::stats`] reads, read from the cgroup's files directly, without
    /// libcgroups: cheaper (no manager per call, which on v1 reads the mount table; none of
    /// the hugetlb, blkio and pressure files the metrics collector does not report), for
    /// sampling every few seconds. Files of controllers the cgroup lacks are left out, as
    /// in the fallback of [`Cgroups::stats`].
    pub fn sample(&self, path: &str) -> Result<CgroupStats> {
        let rel = RelPath::parse(path)?;
        let mut stats = match self.version {
            CgroupVersion::V1 => stats::read_v1(self, &rel)?,
            CgroupVersion::V2 => stats::read_v2(&self.v2_dir(&rel))?,
        };
        stats.oom_kills = match stats::oom_kills(self, &rel) {
            Ok(kills) => Some(kills),
            Err(CgroupError::NoController { .. }) => None,
            Err(err) => return Err(err),
        };
        Ok(stats)
    }

    /// How many processes the kernel's OOM killer killed in `path`'s subtree.
    ///
    /// - v2: `oom_kill` of `memory.events`, which counts kills in the whole subtree and keeps
    ///   counting those of children already removed (unless cgroup2 is mounted with
    ///   `memory_localevents`, when it equals `memory.events.local`: this cgroup's own kills).
    ///   For a container, read its own cgroup: the count then means "this container".
    /// - v1: the `oom_kill` line of `memory.oom_control` (Linux ≥ 4.13), which counts only
    ///   kills of processes that were in that very cgroup; so it is summed over the subtree,
    ///   and kills in children already removed are lost.
    pub fn oom_kills(&self, path: &str) -> Result<u64> {
        let rel = RelPath::parse(path)?;
        stats::oom_kills(self, &rel)
    }

    /// A libcgroups manager for `rel` (no systemd: kelp names cgroups by path).
    fn manager(&self, rel: &RelPath) -> Result<AnyCgroupManager> {
        libcgroups::common::create_cgroup_manager(CgroupConfig {
            cgroup_path: PathBuf::from(&rel.text),
            systemd_cgroup: false,
            container_name: String::new(),
        })
        .map_err(|err| manager_error(rel, err))
    }
}

fn manager_error(
    rel: &RelPath,
    source: impl std::error::Error + Send + Sync + 'static,
) -> CgroupError {
    CgroupError::Manager {
        path: rel.text.clone(),
        source: Box::new(source),
    }
}

/// `mkdir`; true when it made the directory, false when it already existed.
fn make_dir(dir: &Path) -> Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(io_err("create cgroup", dir)(err)),
    }
}

/// Copies `cpuset.cpus` and `cpuset.mems` from `parent` to the new v1 cpuset cgroup `dir`
/// when they are empty (they are, unless the parent has `cgroup.clone_children` set).
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let current = fs::read_to_string(&own).map_err(io_err("read", &own))?;
        if current.trim().is_empty() {
            let from = parent.join(file);
            let value = fs::read_to_string(&from).map_err(io_err("read", &from))?;
            fs::write(&own, value.trim()).map_err(io_err("write", &own))?;
        }
    }
    Ok(())
}

/// Enables in `dir`'s `cgroup.subtree_control` every controller its `cgroup.controllers`
/// offers and that is not enabled yet. Failing to enable one of [`V2_CONTROLLERS`] is an
/// error; the others (hugetlb, rdma, misc, …) are best-effort, as in libcontainer.
fn enable_controllers(dir: &Path) -> Result<()> {
    let available = read_words(&dir.join("cgroup.controllers"))?;
    let control = dir.join("cgroup.subtree_control");
    let enabled = read_words(&control)?;
    for controller in available.difference(&enabled) {
        let Err(source) = fs::write(&control, format!("+{controller}")) else {
            continue;
        };
        if V2_CONTROLLERS.contains(&controller.as_str()) {
            return Err(CgroupError::Io {
                op: if errno(&source) == Some(Errno::BUSY) {
                    "enable a controller (v2 forbids it in a cgroup holding processes) in"
                } else {
                    "enable a controller in"
                },
                path: control,
                source,
            });
        }
    }
    Ok(())
}

fn read_words(file: &Path) -> Result<BTreeSet<String>> {
    let text = fs::read_to_string(file).map_err(io_err("read", file))?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// Reads `dir/cgroup.procs` into `pids`; an absent cgroup has no processes.
fn read_procs(dir: &Path, pids: &mut BTreeSet<u32>) -> Result<()> {
    let file = dir.join("cgroup.procs");
    let text = match fs::read_to_string(&file) {
        Ok(text) => text,
        // ENODEV: the cgroup was removed between listing and reading.
        Err(err) if err.kind() == io::ErrorKind::NotFound || errno(&err) == Some(Errno::NODEV) => {
            return Ok(());
        }
        Err(err) => return Err(io_err("read", &file)(err)),
    };
    for line in text.lines() {
        let pid = line.trim().parse().map_err(|_| CgroupError::Parse {
            path: file.clone(),
            reason: format!("not a pid: {line:?}"),
        })?;
        pids.insert(pid);
    }
    Ok(())
}

/// `dir` and every directory below it, each parent before its children. Empty when `dir`
/// does not exist.
fn subtree(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(dir) = queue.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err)
                if err.kind() == io::ErrorKind::NotFound || errno(&err) == Some(Errno::NODEV) =>
            {
                continue;
            }
            Err(err) => return Err(io_err("list", &dir)(err)),
        };
        let mut children = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            if entry
                .file_type()
                .map_err(io_err("stat", &entry.path()))?
                .is_dir()
            {
                children.push(entry.path());
            }
        }
        out.push(dir);
        queue.extend(children);
    }
    Ok(out)
}

/// `rmdir` one cgroup directory; absent is fine. A cgroup whose last process just exited
/// can stay busy for a moment, so EBUSY is retried briefly.
fn remove_dir(dir: &Path, rel: &RelPath) -> Result<()> {
    let mut delay = Duration::from_millis(5);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) if errno(&err) == Some(Errno::BUSY) && Instant::now() < deadline => {
                thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(err) if errno(&err) == Some(Errno::BUSY) => {
                let mut pids = BTreeSet::new();
                read_procs(dir, &mut pids)?;
                return Err(CgroupError::Populated {
                    path: rel.text.clone(),
                    pids: pids.into_iter().collect(),
                });
            }
            Err(err) => return Err(io_err("remove cgroup", dir)(err)),
        }
    }
}

/// SIGKILL `pid`; a process that is already gone is fine.
fn send_sigkill(pid: u32) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // ESRCH (already exited) is the only expected failure, and harmless here.
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

fn errno(err: &io::Error) -> Option<Errno> {
    Errno::from_io_error(err)
}
