//! The kubelet's atomic writer: a volume's files live in a timestamped directory
//! (`..2025_01_31_12_00_00.123456789`), `..data` is a symlink to it, and each top-level name
//! the user sees is a symlink through `..data` (`key -> ..data/key`). A new version is written
//! beside the old one and swapped in by renaming a new `..data` link over the old: a reader
//! sees either version whole, never a mix.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::payload::Payload;

/// The link to the current version.
pub const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// What [`write`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// The volume already held exactly this payload.
    Unchanged,
    /// A new version was swapped in.
    Updated,
}

/// A step of the writer that failed, with the path involved.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
pub struct WriteError {
    pub path: PathBuf,
    pub error: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |error| WriteError {
        path: path.to_path_buf(),
        error,
    }
}

/// Writes `payload` into `dir` (which must exist), unless it already holds exactly that.
pub fn write(dir: &Path, payload: &Payload) -> Result<Written, WriteError> {
    let data_link = dir.join(DATA_DIR);
    let old = match fs::read_link(&data_link) {
        Ok(target) => Some(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(at(&data_link)(e)),
    };
    let old_version = old.as_ref().map(|t| dir.join(t));
    if let Some(v) = &old_version {
        if holds(v, payload).map_err(at(v))? {
            user_visible_links(dir, payload)?;
            return Ok(Written::Unchanged);
        }
    }

    let version = new_version_dir(dir)?;
    for (rel, file) in payload {
        let path = version.join(rel);
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(at(parent))?;
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(at(&path))?;
        f.write_all(&file.data).map_err(at(&path))?;
        // The umask does not apply to chmod.
        f.set_permissions(fs::Permissions::from_mode(file.mode))
            .map_err(at(&path))?;
    }

    let tmp_link = dir.join(DATA_DIR_TMP);
    match fs::remove_file(&tmp_link) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(at(&tmp_link)(e)),
    }
    let version_name = version.file_name().expect("a named directory");
    std::os::unix::fs::symlink(version_name, &tmp_link).map_err(at(&tmp_link))?;
    fs::rename(&tmp_link, &data_link).map_err(at(&data_link))?;

    user_visible_links(dir, payload)?;
    if let Some(v) = old_version {
        // Only a version directory of ours: `..data` could have been anything.
        let named_ours = v
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("..") && n != DATA_DIR);
        if named_ours && v.parent() == Some(dir) {
            crate::runtime::fsutil::remove_tree(&v).map_err(|e| WriteError {
                path: v.clone(),
                error: io::Error::other(format!("{e:#}")),
            })?;
        }
    }
    Ok(Written::Updated)
}

/// A fresh version directory, named after the time as the kubelet names them.
fn new_version_dir(dir: &Path) -> Result<PathBuf, WriteError> {
    let now = chrono::Utc::now();
    let base = now.format("..%Y_%m_%d_%H_%M_%S.%9f").to_string();
    for n in 0u32..100 {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let path = dir.join(name);
        match fs::DirBuilder::new().mode(0o755).create(&path) {
            Ok(()) => {
                // The umask does not apply to chmod.
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(at(&path))?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(at(&path)(e)),
        }
    }
    Err(WriteError {
        path: dir.join(base),
        error: io::Error::other("no free name for a new version directory"),
    })
}

/// The names the user sees: one symlink per top-level name of the payload into `..data`;
/// links of ours to names no longer in the payload are removed.
fn user_visible_links(dir: &Path, payload: &Payload) -> Result<(), WriteError> {
    let wanted: BTreeSet<OsString> = payload
        .keys()
        .filter_map(|p| p.components().next())
        .map(|c| c.as_os_str().to_owned())
        .collect();
    for name in &wanted {
        let link = dir.join(name);
        let target = Path::new(DATA_DIR).join(name);
        match fs::read_link(&link) {
            Ok(t) if t == target => continue,
            Ok(_) => fs::remove_file(&link).map_err(at(&link))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&link)(e)),
        }
        std::os::unix::fs::symlink(&target, &link).map_err(at(&link))?;
    }
    for entry in fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("..") || wanted.contains(&name) {
            continue;
        }
        let path = entry.path();
        if let Ok(t) = fs::read_link(&path) {
            if t.starts_with(DATA_DIR) {
                fs::remove_file(&path).map_err(at(&path))?;
            }
        }
    }
    Ok(())
}

/// Whether the version directory `version` holds exactly `payload`: the same files, bytes and
/// modes, and nothing else.
fn holds(version: &Path, payload: &Payload) -> io::Result<bool> {
    for (rel, file) in payload {
        let path = version.join(rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if !meta.is_file()
            || meta.permissions().mode() & 0o7777 != file.mode
            || meta.len() != file.data.len() as u64
            || fs::read(&path)? != file.data
        {
            return Ok(false);
        }
    }
    Ok(count_files(version)? == payload.len())
}

fn count_files(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let t = entry.file_type()?;
        if t.is_dir() {
            n += count_files(&entry.path())?;
        } else {
            n += 1;
        }
    }
    Ok(n)
}
