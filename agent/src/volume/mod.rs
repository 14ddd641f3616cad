//! Pod volumes, set up on the host before a container starts, as the kubelet's volume manager
//! does; the container's spec then bind-mounts the host paths returned by [`prepare`].
//!
//! - **emptyDir**: a directory in the pod's data directory (disk), or with `medium: Memory` a
//!   tmpfs mounted there, `sizeLimit` bytes (else the pod's memory limit when every container
//!   has one, else the kernel's default of half the RAM).
//! - **hostPath**: the host's path after the `type` check (`host_path.rs`).
//! - **configMap, secret, downwardAPI, projected**: files computed from the pod and its
//!   namespace's ConfigMaps and Secrets (`payload.rs`), written by the atomic writer
//!   (`atomic.rs`) into `<pod run dir>/volumes/<name>`, which is on tmpfs. Secret and projected
//!   volumes get a small tmpfs of their own, as the kubelet gives them. The container mounts
//!   them read-only (`runtime/spec/mounts.rs`).
//!
//! [`prepare`] runs at every container start: it is idempotent (a mounted tmpfs is never
//! mounted over, files are rewritten only when their content changed), and a new version of a
//! ConfigMap or Secret reaches the volume at the next container start. Everything mounted here
//! sits below the pod's run or data directory, which `remove_sandbox` unmounts and removes.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kelp_shared::api::core::{Pod, ResourceList, Volume};

use crate::runtime::spec::EnvLookup;

pub mod atomic;
pub mod host_path;
pub mod payload;

#[cfg(test)]
mod tests;

use payload::{Invalid, Payload, Sources};

/// Everything [`prepare`] needs to know about the pod.
pub struct PodVolumes<'a> {
    pub pod: &'a Pod,
    /// The pod's directory on tmpfs (`<run-dir>/pods/<uid>`): configMap, secret, downwardAPI
    /// and projected volumes go in its `volumes/`.
    pub run_dir: PathBuf,
    /// The pod's directory on disk (`<state-dir>/pods/<uid>`): emptyDir volumes go in its
    /// `volumes/`.
    pub data_dir: PathBuf,
    /// The ConfigMaps and Secrets of the pod's namespace.
    pub lookup: &'a dyn EnvLookup,
    /// The node's allocatable resources for `resourceFieldRef` (`None`: a limit the container
    /// does not set cannot be read).
    pub node_allocatable: Option<&'a ResourceList>,
}

/// Why a volume cannot be set up. Printed as the kubelet's `FailedMount` event message:
/// `MountVolume.SetUp failed for volume "cfg": spec.volumes[0].configMap: configmap "app"
/// not found`.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The pod asks for something that is not there or not allowed.
    #[error("MountVolume.SetUp failed for volume {volume:?}: {field}: {problem}")]
    Invalid {
        volume: String,
        field: String,
        problem: String,
    },
    /// The host refused an operation.
    #[error("MountVolume.SetUp failed for volume {volume:?}: {field}: {}: {error}", .path.display())]
    Io {
        volume: String,
        field: String,
        path: PathBuf,
        error: io::Error,
    },
}

/// The mount operations volumes need: the real ones in [`SystemMounter`], a fake in tests.
pub trait Mounter {
    /// Whether `path` is the root of a mount.
    fn is_mount_point(&self, path: &Path) -> io::Result<bool>;
    /// Mounts a new tmpfs (`nosuid`, `nodev`) at `path`, its root with `mode`; `size` in bytes,
    /// `None` for the kernel's default (half the RAM).
    fn mount_tmpfs(&self, path: &Path, size: Option<u64>, mode: u32) -> io::Result<()>;
    /// The size of the file system at `path`, in bytes.
    fn size(&self, path: &Path) -> io::Result<u64>;
    /// Changes the size of the tmpfs at `path`.
    fn resize_tmpfs(&self, path: &Path, size: u64) -> io::Result<()>;
}

/// The host's mounts.
pub struct SystemMounter;

impl Mounter for SystemMounter {
    fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
        let own = std::fs::symlink_metadata(path)?;
        let parent = std::fs::metadata(path.join(".."))?;
        Ok(own.dev() != parent.dev() || own.ino() == parent.ino())
    }

    fn mount_tmpfs(&self, path: &Path, size: Option<u64>, mode: u32) -> io::Result<()> {
        use rustix::mount::{mount, MountFlags};
        let mut options = format!("mode={mode:o}");
        if let Some(size) = size {
            options.push_str(&format!(",size={size}"));
        }
        let data = std::ffi::CString::new(options).map_err(io::Error::other)?;
        mount(
            "tmpfs",
            path,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(data.as_c_str()),
        )?;
        Ok(())
    }

    fn size(&self, path: &Path) -> io::Result<u64> {
        let st = rustix::fs::statvfs(path)?;
        Ok(st.f_blocks.saturating_mul(st.f_frsize))
    }

    fn resize_tmpfs(&self, path: &Path, size: u64) -> io::Result<()> {
        use rustix::mount::{mount_remount, MountFlags};
        mount_remount(
            path,
            MountFlags::NOSUID | MountFlags::NODEV,
            format!("size={size}").as_str(),
        )?;
        Ok(())
    }
}

/// Sets up every volume of the pod and returns its host path by volume name.
pub fn prepare(
    pv: &PodVolumes,
    mounter: &dyn Mounter,
) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let volumes = pv
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[]);
    let mut out = BTreeMap::new();
    for (i, v) in volumes.iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let path = set_up(pv, mounter, v, &field).map_err(|e| e.named(&v.name))?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// A [`VolumeError`] before the volume's name is attached.
enum Failure {
    Invalid(Invalid),
    Io {
        field: String,
        path: PathBuf,
        error: io::Error,
    },
}

impl Failure {
    fn named(self, volume: &str) -> VolumeError {
        let volume = volume.to_owned();
        match self {
            Self::Invalid(Invalid { field, problem }) => VolumeError::Invalid {
                volume,
                field,
                problem,
            },
            Self::Io { field, path, error } => VolumeError::Io {
                volume,
                field,
                path,
                error,
            },
        }
    }
}

impl From<Invalid> for Failure {
    fn from(e: Invalid) -> Self {
        Self::Invalid(e)
    }
}

fn io_at<'a>(field: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> Failure + 'a {
    move |error| Failure::Io {
        field: field.to_owned(),
        path: path.to_path_buf(),
        error,
    }
}

/// A directory with `mode` (the umask does not narrow it), parents as needed; an existing
/// one is left as it is.
fn make_dir(path: &Path, mode: u32, field: &str) -> Result<(), Failure> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(io_at(field, path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_at(field, path))
}

fn set_up(
    pv: &PodVolumes,
    mounter: &dyn Mounter,
    v: &Volume,
    field: &str,
) -> Result<PathBuf, Failure> {
    let name = v.name.as_str();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Invalid::new(
            format!("{field}.name"),
            format!("{name:?} is not a valid volume name"),
        )
        .into());
    }
    let sources = v.source_names();
    if sources.len() > 1 {
        return Err(Invalid::new(
            format!("{field}.{}", sources[1]),
            "may not specify more than 1 volume type",
        )
        .into());
    }
    let s = Sources {
        pod: pv.pod,
        lookup: pv.lookup,
        node_allocatable: pv.node_allocatable,
    };
    let files_dir = pv.run_dir.join("volumes").join(name);
    if let Some(hp) = &v.host_path {
        let path = PathBuf::from(&hp.path);
        if !path.is_absolute() {
            return Err(Invalid::new(
                format!("{field}.hostPath.path"),
                format!("{:?} must be an absolute path", hp.path),
            )
            .into());
        }
        let type_ = hp.type_.as_deref().unwrap_or("");
        return match host_path::check(&path, type_) {
            Ok(()) => Ok(path),
            Err(host_path::HostPathError::Create(error)) => Err(Failure::Io {
                field: format!("{field}.hostPath.path"),
                path,
                error,
            }),
            Err(e) => Err(Invalid::new(format!("{field}.hostPath.type"), e.to_string()).into()),
        };
    }
    if let Some(ed) = &v.empty_dir {
        let at = format!("{field}.emptyDir");
        let path = pv.data_dir.join("volumes").join(name);
        match ed.medium.as_deref().unwrap_or("") {
            "" => make_dir(&path, 0o777, &at)?,
            "Memory" => {
                make_dir(&path, 0o777, &at)?;
                if !mounter.is_mount_point(&path).map_err(io_at(&at, &path))? {
                    let size = memory_size(pv.pod, ed.size_limit.as_ref());
                    mounter
                        .mount_tmpfs(&path, size, 0o777)
                        .map_err(io_at(&at, &path))?;
                }
            }
            m if m.starts_with("HugePages") => {
                return Err(Invalid::new(
                    format!("{at}.medium"),
                    "HugePages emptyDir volumes are not supported by kelp-agent",
                )
                .into())
            }
            other => {
                return Err(Invalid::new(
                    format!("{at}.medium"),
                    format!("unsupported value {other:?}: supported values: \"\", \"Memory\""),
                )
                .into())
            }
        }
        return Ok(path);
    }
    if let Some(src) = &v.config_map {
        let at = format!("{field}.configMap");
        let files = payload::config_map(&s, src, &at)?;
        write_files(mounter, &files_dir, &files, false, &at)?;
        return Ok(files_dir);
    }
    if let Some(src) = &v.downward_api {
        let at = format!("{field}.downwardAPI");
        let files = payload::downward_api(&s, src, &at)?;
        write_files(mounter, &files_dir, &files, false, &at)?;
        return Ok(files_dir);
    }
    if let Some(src) = &v.secret {
        let at = format!("{field}.secret");
        let files = payload::secret(&s, src, &at)?;
        write_files(mounter, &files_dir, &files, true, &at)?;
        return Ok(files_dir);
    }
    if let Some(src) = &v.projected {
        let at = format!("{field}.projected");
        let files = payload::projected(&s, src, &at)?;
        write_files(mounter, &files_dir, &files, true, &at)?;
        return Ok(files_dir);
    }
    match sources.first() {
        Some(source) => Err(Invalid::new(
            format!("{field}.{source}"),
            "this volume type is not supported by kelp-agent",
        )
        .into()),
        None => Err(Invalid::new(field, "a volume source is required").into()),
    }
}

/// Writes a payload into `dir` (on the run dir's tmpfs); with `own_tmpfs`, on a tmpfs of its
/// own sized for it, grown when a new version needs more room.
fn write_files(
    mounter: &dyn Mounter,
    dir: &Path,
    files: &Payload,
    own_tmpfs: bool,
    field: &str,
) -> Result<(), Failure> {
    make_dir(dir, 0o755, field)?;
    if own_tmpfs {
        let need = payload::tmpfs_bytes(files);
        if !mounter.is_mount_point(dir).map_err(io_at(field, dir))? {
            mounter
                .mount_tmpfs(dir, Some(need), 0o755)
                .map_err(io_at(field, dir))?;
        } else if mounter.size(dir).map_err(io_at(field, dir))? < need {
            mounter.resize_tmpfs(dir, need).map_err(io_at(field, dir))?;
        }
    }
    atomic::write(dir, files).map_err(|e| Failure::Io {
        field: field.to_owned(),
        path: e.path,
        error: e.error,
    })?;
    Ok(())
}

/// The size of a memory-backed emptyDir: the smaller of `sizeLimit` and the pod's memory
/// limit (the kubelet's rule without the node's allocatable memory, which kelp does not know
/// yet); `None` when neither is set.
pub fn memory_size(
    pod: &Pod,
    size_limit: Option<&kelp_shared::api::quantity::Quantity>,
) -> Option<u64> {
    let limit = size_limit
        .map(|q| q.value())
        .filter(|v| *v > 0)
        .map(|v| v as u64);
    [limit, pod_memory_limit(pod)].into_iter().flatten().min()
}

/// The pod's memory limit as the kubelet computes it: the sum of its app containers' limits,
/// or the largest init container limit if larger; `None` when a container has no limit.
pub fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let limit = |c: &kelp_shared::api::core::Container| -> Option<u64> {
        let q = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
        u64::try_from(q.value()).ok().filter(|v| *v > 0)
    };
    let mut sum = 0u64;
    for c in &spec.containers {
        sum = sum.saturating_add(limit(c)?);
    }
    let mut max_init = 0u64;
    for c in spec.init_containers.iter().flatten() {
        max_init = max_init.max(limit(c)?);
    }
    Some(sum.max(max_init))
}
