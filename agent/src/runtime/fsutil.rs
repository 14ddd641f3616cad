//! Mounts and removal of the runtime's own directories.
//!
//! Removal is the dangerous part of a runtime: a pod's directories may hold bind mounts of
//! host paths or symlinks a container planted. [`remove_tree`] therefore never crosses into
//! another filesystem and never follows a symlink, and pod deletion unmounts everything below
//! the pod's directories first ([`unmount_all_under`]).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use rustix::io::Errno;
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

/// Mount points at or below `dir`, deepest first, from `/proc/self/mountinfo`.
pub fn mounts_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_octal)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    Ok(found)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything mounted at or below `dir`, deepest first (lazily if busy).
pub fn unmount_all_under(dir: &Path) -> Result<()> {
    for _ in 0..8 {
        let mounts = mounts_under(dir)?;
        if mounts.is_empty() {
            return Ok(());
        }
        for m in mounts {
            if unmount(&m, UnmountFlags::NOFOLLOW).is_err() {
                unmount(&m, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)
                    .with_context(|| format!("unmounting {}", m.display()))?;
            }
        }
    }
    bail!("mounts keep appearing under {}", dir.display())
}

/// Whether the kernel refused overlayfs' `volatile` option once (before Linux 5.10).
static NO_VOLATILE: AtomicBool = AtomicBool::new(false);

/// Mounts an overlayfs at `target`: `lower` (top-most first) read-only under `upper`.
///
/// The mount is `volatile` where the kernel has it (Linux 5.10): `upper` is a run's writable
/// layer, thrown away when the run ends and never mounted again (not even after a crash), so
/// syncing it is wasted work, and a synced unmount costs milliseconds on the next start's path
/// (ext4: a journal commit and a disk flush, 7.6 ms measured after a small write, 0.1 ms
/// volatile). Never use this for an upper layer that must survive.
pub fn mount_overlay(lower: &[&Path], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    if lower.is_empty() {
        bail!("an image without layers cannot be a root filesystem");
    }
    for p in lower.iter().chain([&upper, &work]) {
        let s = p.to_string_lossy();
        if s.contains([',', ':']) {
            bail!("overlayfs cannot take a path containing ',' or ':': {s}");
        }
    }
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    let overlay = |options: &str| {
        let data = std::ffi::CString::new(options).context("overlayfs options")?;
        mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            Some(data.as_c_str()),
        )
        .with_context(|| format!("mounting overlayfs at {} ({options})", target.display()))
    };
    if !NO_VOLATILE.load(Ordering::Relaxed) {
        match overlay(&format!("{options},volatile")) {
            Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::INVAL) => {
                NO_VOLATILE.store(true, Ordering::Relaxed);
            }
            done => return done,
        }
    }
    overlay(&options)
}

/// Makes sure `dir` is on tmpfs (the runtime's records must never wear an SD card): when it is
/// on another filesystem, a private tmpfs is mounted on it. Returns whether it mounted one.
pub fn ensure_tmpfs(dir: &Path) -> Result<bool> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let st = rustix::fs::statfs(dir).with_context(|| format!("statfs {}", dir.display()))?;
    if st.f_type as i64 == TMPFS_MAGIC {
        return Ok(false);
    }
    let data = std::ffi::CString::new("mode=0700,size=64m").expect("no NUL");
    mount(
        "tmpfs",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(data.as_c_str()),
    )
    .with_context(|| format!("mounting a tmpfs on {}", dir.display()))?;
    Ok(true)
}

/// Removes `dir` and everything in it, without following symlinks (a link is removed, never
/// its target) and without entering another filesystem: a mount point below `dir` is an error
/// and nothing behind it is touched. Absent `dir` is fine.
pub fn remove_tree(dir: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
    };
    if !meta.is_dir() {
        return fs::remove_file(dir).with_context(|| format!("removing {}", dir.display()));
    }
    remove_dir_on(dir, meta.dev())
}

fn remove_dir_on(dir: &Path, dev: u64) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            if meta.dev() != dev {
                bail!(
                    "{} is a mount point: refusing to remove what is behind it",
                    path.display()
                );
            }
            remove_dir_on(&path, dev)?;
        } else {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_tree_removes_symlinks_not_their_targets() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("pod");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/f"), b"y").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("a/link")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(outside.path().join("keep").exists());
        remove_tree(&tree).unwrap();
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_octal(r"/a\040b"), "/a b");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }
}
