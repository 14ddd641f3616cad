//! Path resolution confined to a root directory (chroot semantics), without `openat2`.
//!
//! Every component is looked up with `fstatat(AT_SYMLINK_NOFOLLOW)` and opened with
//! `openat(O_DIRECTORY | O_NOFOLLOW)` relative to the directory fd of the previous one, so the
//! kernel never follows a symlink on our behalf. Symlinks met in the middle of a path are
//! expanded here: an absolute target restarts at the root, `..` pops one real directory and is
//! clamped at the root. This is what `openat2(RESOLVE_IN_ROOT)` does in the kernel (the tests
//! compare both), but it also works on the pre-5.6 kernels still common on edge boards and
//! under seccomp profiles that reject `openat2`.
//!
//! Concurrent modification of the tree by another process is out of scope: the tree is a
//! private staging directory. Even then, `O_NOFOLLOW` on every step means a swapped-in symlink
//! makes the walk fail instead of escaping.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: u32 = 40;

/// Why an in-root resolution failed.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// A component (shown after symlink expansion) exists and is not a directory.
    NotADirectory(String),
    /// A component does not exist and creation was not asked for.
    NotFound(String),
    /// More than [`MAX_SYMLINKS`] symlinks.
    Loop,
    /// A system call failed.
    Io(&'static str, io::Error),
}

/// A directory fd that all resolution is confined to.
pub(crate) struct Root {
    fd: OwnedFd,
}

/// Opens directory `name` in `dir` without following a symlink in `name`.
pub(crate) fn open_dir_nofollow(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `Ok(None)` when `name` does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The file type of a `stat` result.
pub(crate) fn file_type(st: &rustix::fs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn show(parts: &[Vec<u8>], last: &[u8]) -> String {
    let mut s = String::new();
    for p in parts.iter().map(Vec::as_slice).chain([last]) {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(p));
    }
    s
}

impl Root {
    /// Opens `path` (trusted: symlinks in it are followed) as the confinement root.
    pub(crate) fn open(path: &std::path::Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { fd })
    }

    /// The root's own directory fd.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the root directory again (an owned fd for callers that resolve to the root).
    fn reopen(&self) -> io::Result<OwnedFd> {
        open_dir_nofollow(self.fd(), b".")
    }

    /// Opens the directory reached by descending the real (symlink-free) directories `parts`.
    fn walk_real(&self, parts: &[Vec<u8>]) -> Result<OwnedFd, ResolveError> {
        let mut cur = self
            .reopen()
            .map_err(|e| ResolveError::Io("open root", e))?;
        for p in parts {
            cur = open_dir_nofollow(cur.as_fd(), p).map_err(|e| ResolveError::Io("openat", e))?;
        }
        Ok(cur)
    }

    /// Resolves `components` as a directory inside the root with chroot semantics and returns
    /// an fd on it. Missing directories are created (mode 0755) when `create` is set.
    ///
    /// `components` come from archive paths: the caller has already removed empty and `.`
    /// components and rejected `..`. Symlink targets met on the way may contain anything.
    pub(crate) fn resolve_dir(
        &self,
        components: &[&[u8]],
        create: bool,
    ) -> Result<OwnedFd, ResolveError> {
        let mut pending: VecDeque<Vec<u8>> = components.iter().map(|c| c.to_vec()).collect();
        // Real directories from the root to `cur`; never contains a symlink or `..`.
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut cur = self
            .reopen()
            .map_err(|e| ResolveError::Io("open root", e))?;
        let mut links = 0;
        while let Some(comp) = pending.pop_front() {
            if comp.is_empty() || comp == b"." {
                continue;
            }
            if comp == b".." {
                // Clamped at the root: popping an empty stack stays at the root.
                resolved.pop();
                cur = self.walk_real(&resolved)?;
                continue;
            }
            let st = lstat_at(cur.as_fd(), &comp).map_err(|e| ResolveError::Io("fstatat", e))?;
            match st.as_ref().map(file_type) {
                Some(FileType::Directory) => {
                    cur = open_dir_nofollow(cur.as_fd(), &comp)
                        .map_err(|e| ResolveError::Io("openat", e))?;
                    resolved.push(comp);
                }
                Some(FileType::Symlink) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ResolveError::Loop);
                    }
                    let target = rustix::fs::readlinkat(cur.as_fd(), comp.as_slice(), Vec::new())
                        .map_err(|e| ResolveError::Io("readlinkat", e.into()))?;
                    let target = target.into_bytes();
                    if target.is_empty() {
                        // As the kernel: an empty symlink target resolves to nothing.
                        return Err(ResolveError::NotFound(show(&resolved, &comp)));
                    }
                    if target.first() == Some(&b'/') {
                        resolved.clear();
                        cur = self
                            .reopen()
                            .map_err(|e| ResolveError::Io("open root", e))?;
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        pending.push_front(part.to_vec());
                    }
                }
                Some(_) => return Err(ResolveError::NotADirectory(show(&resolved, &comp))),
                None if create => {
                    match rustix::fs::mkdirat(cur.as_fd(), comp.as_slice(), Mode::from(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(ResolveError::Io("mkdirat", e.into())),
                    }
                    cur = open_dir_nofollow(cur.as_fd(), &comp)
                        .map_err(|e| ResolveError::Io("openat", e))?;
                    resolved.push(comp);
                }
                None => return Err(ResolveError::NotFound(show(&resolved, &comp))),
            }
        }
        Ok(cur)
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything below it, never following
/// symlinks (they are unlinked, not traversed).
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if file_type(&st) != FileType::Directory {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let sub = open_dir_nofollow(dir, name)?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&sub)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in names {
        remove_all_at(sub.as_fd(), &n)?;
    }
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}
