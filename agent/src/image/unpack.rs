//! Safe unpacking of one image layer (tar, or tar+gzip) into its own directory.
//!
//! Rules, in the order they are applied to each archive entry:
//!
//! - **Paths.** Leading `/` and `.` components are dropped: an absolute `/etc/passwd` lands in
//!   `<root>/etc/passwd` (chroot semantics, as Docker does). A path with a `..` component is
//!   an error naming the entry, whatever it would resolve to. NUL bytes, paths over 4096 bytes
//!   and components over 255 bytes are errors too.
//! - **Resolution.** The parent directories of an entry are resolved inside the root (see the
//!   private `inroot` module): symlinks already unpacked are followed with chroot semantics,
//!   so `link -> /tmp/x` then `link/f` writes `<root>/tmp/x/f`, never `/tmp/x/f`. Missing
//!   parents are created (0755). The last component is never followed: an existing file,
//!   symlink or (for non-directories) directory there is removed first and the new one
//!   created with `O_EXCL | O_NOFOLLOW`, so nothing is ever written *through* a link.
//! - **Regular files** are written with their mode (setuid/setgid bits are kept: they are the
//!   image's content, and the overlay is mounted by the runtime with the options it chooses),
//!   their owner when running as root (`chown` before `chmod`, so the bits survive), their
//!   mtime, and the `security.capability` and `user.*` extended attributes of PAX headers
//!   (others, notably `trusted.overlay.*`, are dropped and counted). Holes of sparse files are
//!   written as zeros.
//! - **Directories** are created at once and get their mode, owner and mtime after the last
//!   entry, so a read-only directory in the image does not block its own content.
//! - **Symlinks** are created with their target unchanged: a target is only dangerous when a
//!   later entry writes through it, which the resolution above prevents.
//! - **Hard links** must name a regular file already unpacked in this layer (resolved inside
//!   the root like any path, `..` refused); `linkat` without `AT_SYMLINK_FOLLOW`.
//! - **Whiteouts** are converted to the overlayfs format, because each layer is a separate
//!   lower directory: `.wh.<name>` becomes a character device 0/0 named `<name>`, and
//!   `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory. Both need root
//!   (`CAP_MKNOD`, `CAP_SYS_ADMIN`). Other `.wh..wh.` names (AUFS bookkeeping) are skipped.
//! - **Device nodes and FIFOs** are not created (the runtime provides `/dev`); they are
//!   counted in [`UnpackStats::skipped_special`].
//!
//! The [`Budget`] caps the bytes written (checked against an entry's declared size *before*
//! anything of it is written, then against the bytes actually read) and the number of
//! entries. Data of entries that are not written (hard links or device nodes carrying data)
//! counts against it too, and the headers, long names and PAX records between two entries may
//! not exceed 1 MiB, so neither a compression bomb nor an oversized PAX header can make the
//! unpacker spin or allocate without bound.
//!
//! The uncompressed stream is hashed while it is read; [`UnpackStats::diff_id`] is the layer's
//! diff ID, which the store compares with the image config. A stream that stops before the
//! end-of-archive marker is reported as truncated.
//!
//! On error the root is left partially written: callers unpack into a staging directory and
//! remove it (the store does).

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::inroot::{self, ResolveError, Root};
use super::{Digest, UnpackError};

/// Longest entry path accepted, as Linux's `PATH_MAX`.
const MAX_PATH: usize = 4096;
/// Longest path component accepted, as Linux's `NAME_MAX`.
const MAX_NAME: usize = 255;
/// Most archive bytes (headers, long names, PAX records, padding) read between two entries.
pub(crate) const MAX_METADATA: u64 = 1 << 20;
/// Size of the copy buffer.
const BUF_SIZE: usize = 64 * 1024;

/// Limits for one unpack (or a whole import, when shared across layers).
#[derive(Debug, Clone)]
pub struct Budget {
    bytes_left: u64,
    entries_left: u64,
    max_entries: u64,
}

impl Budget {
    /// Entry limit of [`Budget::new`]: far above real images (a full Debian is ~10⁴ files),
    /// far below what exhausts inodes.
    pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

    /// A budget of `bytes` bytes of content and [`Budget::DEFAULT_MAX_ENTRIES`] entries.
    pub fn new(bytes: u64) -> Self {
        Self {
            bytes_left: bytes,
            entries_left: Self::DEFAULT_MAX_ENTRIES,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }

    /// Sets the maximum number of archive entries.
    pub fn with_max_entries(mut self, entries: u64) -> Self {
        self.entries_left = entries;
        self.max_entries = entries;
        self
    }

    /// Bytes still allowed.
    pub fn bytes_left(&self) -> u64 {
        self.bytes_left
    }

    /// Takes `n` bytes from the budget, or returns `(needed, left)` and takes nothing.
    pub(crate) fn charge(&mut self, n: u64) -> Result<(), (u64, u64)> {
        if n > self.bytes_left {
            return Err((n, self.bytes_left));
        }
        self.bytes_left -= n;
        Ok(())
    }

    /// Gives back `n` bytes charged for something that was thrown away (a download restarted
    /// from its beginning).
    pub(crate) fn refund(&mut self, n: u64) {
        self.bytes_left = self.bytes_left.saturating_add(n);
    }

    fn charge_entry(&mut self, entry: &str) -> Result<(), UnpackError> {
        if self.entries_left == 0 {
            return Err(UnpackError::TooManyEntries {
                entry: entry.to_owned(),
                limit: self.max_entries,
            });
        }
        self.entries_left -= 1;
        Ok(())
    }
}

/// What an unpack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// sha256 of the uncompressed archive: the layer's diff ID.
    pub diff_id: Digest,
    /// Whether the layer was gzip-compressed.
    pub compressed: bool,
    /// Archive entries read (PAX and long-name headers not counted).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// `.wh.<name>` whiteouts converted to overlayfs character devices.
    pub whiteouts: u64,
    /// `.wh..wh..opq` markers converted to `trusted.overlay.opaque`.
    pub opaque_dirs: u64,
    /// Device nodes and FIFOs not created.
    pub skipped_special: u64,
    /// Other entries ignored (global PAX headers, AUFS bookkeeping, the root itself, …).
    pub skipped_other: u64,
    /// Extended attributes not applied (not allowed, or refused by the filesystem).
    pub xattrs_skipped: u64,
    /// Bytes of file content written.
    pub bytes_written: u64,
}

/// Unpacks one layer read from `reader` (tar, or tar+gzip, detected by its magic) into the
/// existing directory `dest_root`, which no entry can escape. See the [module
/// docs](self) for the rules.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest_root: &Path,
    budget: &mut Budget,
) -> Result<UnpackStats, UnpackError> {
    let root = Root::open(dest_root).map_err(|source| UnpackError::Io {
        entry: dest_root.display().to_string(),
        op: "open unpack root",
        source,
    })?;
    let (stream, compressed) = decompress(reader).map_err(|e| match e {
        DecompressError::Io(source) => UnpackError::Archive {
            after: String::new(),
            source,
        },
        DecompressError::Unsupported(what) => UnpackError::UnsupportedCompression(what),
    })?;
    let guard = Guard::new(stream);
    let ctl = guard.ctl();
    let mut archive = tar::Archive::new(guard);
    let mut u = Unpacker {
        root,
        budget,
        stats: UnpackStats {
            diff_id: Digest::from_sha256(&[0; 32]),
            compressed,
            entries: 0,
            files: 0,
            dirs: 0,
            symlinks: 0,
            hardlinks: 0,
            whiteouts: 0,
            opaque_dirs: 0,
            skipped_special: 0,
            skipped_other: 0,
            xattrs_skipped: 0,
            bytes_written: 0,
        },
        dirs: Vec::new(),
        chown: rustix::process::geteuid().is_root(),
        buf: vec![0; BUF_SIZE],
        last: String::new(),
    };
    let entries = archive.entries().map_err(|e| ctl.error(&u.last, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ctl.error(&u.last, e))?;
        ctl.begin_data();
        u.entry(&mut entry, &ctl)?;
        u.drain(&mut entry, &ctl)?;
        ctl.end_data();
    }
    if ctl.eof.get() {
        // The archive ran out before its end-of-archive marker.
        return Err(UnpackError::Truncated { after: u.last });
    }
    // Hash what follows the marker (padding) too: the diff ID covers the whole stream.
    let mut guard = archive.into_inner();
    io::copy(&mut guard, &mut io::sink()).map_err(|e| ctl.error(&u.last, e))?;
    u.apply_dir_metadata()?;
    u.stats.diff_id = Digest::from_sha256(&guard.hasher.finalize());
    Ok(u.stats)
}

/// The reader under the tar parser: hashes and counts the uncompressed stream, notices EOF,
/// and caps the bytes the parser reads outside entry data.
pub(crate) struct Guard<R> {
    inner: R,
    pub(crate) hasher: Sha256,
    ctl: Rc<GuardCtl>,
}

/// Shared switches of a [`Guard`], kept by the code driving the tar parser.
#[derive(Default)]
pub(crate) struct GuardCtl {
    /// Reading entry data (counted by the caller) rather than archive metadata.
    in_data: Cell<bool>,
    /// Metadata bytes read since the last entry.
    meta: Cell<u64>,
    /// The metadata cap was hit.
    meta_exceeded: Cell<bool>,
    /// The underlying stream reached its end.
    pub(crate) eof: Cell<bool>,
}

impl<R: Read> Guard<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            ctl: Rc::new(GuardCtl::default()),
        }
    }

    pub(crate) fn ctl(&self) -> Rc<GuardCtl> {
        Rc::clone(&self.ctl)
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ctl.eof.set(true);
        }
        self.hasher.update(&buf[..n]);
        if !self.ctl.in_data.get() {
            let meta = self.ctl.meta.get() + n as u64;
            self.ctl.meta.set(meta);
            if meta > MAX_METADATA {
                self.ctl.meta_exceeded.set(true);
                return Err(io::Error::other("archive metadata too large"));
            }
        }
        Ok(n)
    }
}

impl GuardCtl {
    /// The parser handed out an entry: what follows is its data.
    pub(crate) fn begin_data(&self) {
        self.in_data.set(true);
    }

    /// The entry's data is consumed: what follows is metadata again.
    pub(crate) fn end_data(&self) {
        self.in_data.set(false);
        self.meta.set(0);
    }

    /// Classifies an error of the tar parser.
    pub(crate) fn error(&self, after: &str, source: io::Error) -> UnpackError {
        let after = after.to_owned();
        if self.meta_exceeded.get() {
            UnpackError::MetadataTooLarge { after }
        } else if self.eof.get() || source.kind() == io::ErrorKind::UnexpectedEof {
            UnpackError::Truncated { after }
        } else {
            UnpackError::Archive { after, source }
        }
    }
}

/// A possibly gzip-compressed stream.
pub(crate) enum Decompressed<R: BufRead> {
    /// Not compressed.
    Plain(R),
    /// gzip (one member or several, as `pigz` writes).
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
}

impl<R: BufRead> Read for Decompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(r) => r.read(buf),
            Self::Gzip(r) => r.read(buf),
        }
    }
}

/// Why [`decompress`] failed.
pub(crate) enum DecompressError {
    Io(io::Error),
    Unsupported(&'static str),
}

/// Wraps `reader` in a gzip decoder if it starts with the gzip magic. Formats a layer may be
/// in but this build does not read (zstd, xz, bzip2) are refused by their magic.
pub(crate) fn decompress<R: Read>(
    reader: R,
) -> Result<(Decompressed<BufReader<R>>, bool), DecompressError> {
    let mut reader = BufReader::with_capacity(BUF_SIZE, reader);
    let head = reader.fill_buf().map_err(DecompressError::Io)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(reader);
        return Ok((Decompressed::Gzip(Box::new(gz)), true));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(DecompressError::Unsupported("zstd"));
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(DecompressError::Unsupported("xz"));
    }
    if head.starts_with(b"BZh") {
        return Err(DecompressError::Unsupported("bzip2"));
    }
    Ok((Decompressed::Plain(reader), false))
}

/// Splits an archive path into its normal components (chroot semantics for a leading `/`).
pub(crate) fn split_path<'a>(raw: &'a [u8], entry: &str) -> Result<Vec<&'a [u8]>, UnpackError> {
    let invalid = |reason: &str| UnpackError::InvalidEntry {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    if raw.contains(&0) {
        return Err(invalid("path contains a NUL byte"));
    }
    if raw.len() > MAX_PATH {
        return Err(invalid("path longer than 4096 bytes"));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(UnpackError::DotDot {
                    entry: entry.to_owned(),
                })
            }
            _ if c.len() > MAX_NAME => return Err(invalid("path component longer than 255 bytes")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Mode, owner and mtime of an entry.
#[derive(Clone, Copy)]
struct Meta {
    mode: u32,
    owner: Option<(Uid, Gid)>,
    mtime: Option<i64>,
}

struct Unpacker<'b> {
    root: Root,
    budget: &'b mut Budget,
    stats: UnpackStats,
    /// Directories whose metadata is applied at the end.
    dirs: Vec<(Vec<Vec<u8>>, Meta, String)>,
    /// Whether to chown (running as root).
    chown: bool,
    buf: Vec<u8>,
    /// The last entry read, for error messages.
    last: String,
}

fn io_err<'a>(entry: &'a str, op: &'static str) -> impl FnOnce(Errno) -> UnpackError + 'a {
    move |e| UnpackError::Io {
        entry: entry.to_owned(),
        op,
        source: e.into(),
    }
}

fn resolve_err(entry: &str, e: ResolveError) -> UnpackError {
    let entry = entry.to_owned();
    match e {
        ResolveError::NotADirectory(component) => UnpackError::NotADirectory { entry, component },
        ResolveError::NotFound(component) => UnpackError::Io {
            entry,
            op: "resolve parent",
            source: io::Error::new(io::ErrorKind::NotFound, component),
        },
        ResolveError::Loop => UnpackError::SymlinkLoop { entry },
        ResolveError::Io(op, source) => UnpackError::Io { entry, op, source },
    }
}

impl Unpacker<'_> {
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        ctl: &GuardCtl,
    ) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        self.last.clone_from(&name);
        self.budget.charge_entry(&name)?;
        self.stats.entries += 1;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            self.stats.skipped_other += 1;
            return Ok(());
        }
        let comps = split_path(&raw, &name)?;
        if let Some(leaf) = comps.last() {
            if leaf.starts_with(b".wh.") {
                return self.whiteout(&comps, &name);
            }
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let meta = self.meta(entry.header(), &name)?;
                self.file(entry, &comps, &name, meta, ctl)
            }
            EntryType::Directory => {
                let meta = self.meta(entry.header(), &name)?;
                self.dir(&comps, &name, meta)
            }
            EntryType::Symlink => {
                let meta = self.meta(entry.header(), &name)?;
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.symlink(&comps, &name, target, meta)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.hardlink(&comps, &name, target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.stats.skipped_special += 1;
                Ok(())
            }
            _ => {
                self.stats.skipped_other += 1;
                Ok(())
            }
        }
    }

    /// Reads what is left of the entry's data, against the budget.
    fn drain<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        ctl: &GuardCtl,
    ) -> Result<(), UnpackError> {
        loop {
            let n = entry
                .read(&mut self.buf)
                .map_err(|e| ctl.error(&self.last, e))?;
            if n == 0 {
                return Ok(());
            }
            self.budget
                .charge(n as u64)
                .map_err(|(needed, left)| UnpackError::BudgetExceeded {
                    entry: self.last.clone(),
                    needed,
                    left,
                })?;
        }
    }

    fn meta(&self, header: &tar::Header, name: &str) -> Result<Meta, UnpackError> {
        let invalid = |what: &str, e: io::Error| UnpackError::InvalidEntry {
            entry: name.to_owned(),
            reason: format!("bad {what} in header: {e}"),
        };
        let mode = header.mode().map_err(|e| invalid("mode", e))? & 0o7777;
        let owner = if self.chown {
            let uid = header.uid().map_err(|e| invalid("uid", e))?;
            let gid = header.gid().map_err(|e| invalid("gid", e))?;
            let id = |v: u64, what: &str| {
                u32::try_from(v)
                    .ok()
                    .filter(|v| *v != u32::MAX)
                    .ok_or_else(|| UnpackError::InvalidEntry {
                        entry: name.to_owned(),
                        reason: format!("{what} {v} out of range"),
                    })
            };
            Some((
                Uid::from_raw(id(uid, "uid")?),
                Gid::from_raw(id(gid, "gid")?),
            ))
        } else {
            None
        };
        let mtime = header.mtime().ok().and_then(|t| i64::try_from(t).ok());
        Ok(Meta { mode, owner, mtime })
    }

    /// Resolves (creating) the parent of `comps` and returns it with the last component.
    fn parent<'c>(
        &self,
        comps: &[&'c [u8]],
        name: &str,
    ) -> Result<(OwnedFd, &'c [u8]), UnpackError> {
        let (leaf, dirs) = comps
            .split_last()
            .ok_or_else(|| UnpackError::InvalidEntry {
                entry: name.to_owned(),
                reason: "path names the layer root".to_owned(),
            })?;
        let fd = self
            .root
            .resolve_dir(dirs, true)
            .map_err(|e| resolve_err(name, e))?;
        Ok((fd, leaf))
    }

    /// Makes room for a new `leaf` in `dir`: removes what is there, except a directory when
    /// `keep_dir` is set. Returns whether a directory was kept.
    fn clear(
        &self,
        dir: BorrowedFd<'_>,
        leaf: &[u8],
        keep_dir: bool,
        name: &str,
    ) -> Result<bool, UnpackError> {
        let Some(st) = inroot::lstat_at(dir, leaf).map_err(|source| UnpackError::Io {
            entry: name.to_owned(),
            op: "fstatat",
            source,
        })?
        else {
            return Ok(false);
        };
        let is_dir = inroot::file_type(&st) == FileType::Directory;
        if is_dir && keep_dir {
            return Ok(true);
        }
        inroot::remove_all_at(dir, leaf).map_err(|source| UnpackError::Io {
            entry: name.to_owned(),
            op: "remove existing",
            source,
        })?;
        Ok(false)
    }

    fn set_owner_mode_time(
        &self,
        fd: BorrowedFd<'_>,
        meta: Meta,
        name: &str,
    ) -> Result<(), UnpackError> {
        if let Some((uid, gid)) = meta.owner {
            rustix::fs::fchown(fd, Some(uid), Some(gid)).map_err(io_err(name, "fchown"))?;
        }
        // After chown, which clears setuid/setgid.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(io_err(name, "fchmod"))?;
        if let Some(t) = meta.mtime {
            rustix::fs::futimens(fd, &timestamps(t)).map_err(io_err(name, "futimens"))?;
        }
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        comps: &[&[u8]],
        name: &str,
        meta: Meta,
        ctl: &GuardCtl,
    ) -> Result<(), UnpackError> {
        let xattrs = pax_xattrs(entry);
        let size = entry.size();
        if size > self.budget.bytes_left() {
            return Err(UnpackError::BudgetExceeded {
                entry: name.to_owned(),
                needed: size,
                left: self.budget.bytes_left(),
            });
        }
        let (dir, leaf) = self.parent(comps, name)?;
        self.clear(dir.as_fd(), leaf, false, name)?;
        let fd = rustix::fs::openat(
            &dir,
            leaf,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from(0o600),
        )
        .map_err(io_err(name, "create file"))?;
        let mut file = File::from(fd);
        let mut written = 0u64;
        loop {
            let n = entry.read(&mut self.buf).map_err(|e| ctl.error(name, e))?;
            if n == 0 {
                break;
            }
            self.budget
                .charge(n as u64)
                .map_err(|(needed, left)| UnpackError::BudgetExceeded {
                    entry: name.to_owned(),
                    needed,
                    left,
                })?;
            file.write_all(&self.buf[..n])
                .map_err(|source| UnpackError::Io {
                    entry: name.to_owned(),
                    op: "write",
                    source,
                })?;
            written += n as u64;
        }
        if written != size {
            return Err(UnpackError::Truncated {
                after: name.to_owned(),
            });
        }
        self.set_owner_mode_time(file.as_fd(), meta, name)?;
        for (key, value) in xattrs {
            let allowed = key == "security.capability" || key.starts_with("user.");
            if !allowed
                || rustix::fs::fsetxattr(&file, key.as_str(), &value, XattrFlags::empty()).is_err()
            {
                self.stats.xattrs_skipped += 1;
            }
        }
        self.stats.files += 1;
        self.stats.bytes_written += written;
        Ok(())
    }

    fn dir(&mut self, comps: &[&[u8]], name: &str, meta: Meta) -> Result<(), UnpackError> {
        if comps.is_empty() {
            // The layer root itself (`./`): its metadata is the store's business.
            self.stats.skipped_other += 1;
            return Ok(());
        }
        let (dir, leaf) = self.parent(comps, name)?;
        if !self.clear(dir.as_fd(), leaf, true, name)? {
            rustix::fs::mkdirat(&dir, leaf, Mode::from(0o755)).map_err(io_err(name, "mkdirat"))?;
        }
        let owned = comps.iter().map(|c| c.to_vec()).collect();
        self.dirs.push((owned, meta, name.to_owned()));
        self.stats.dirs += 1;
        Ok(())
    }

    fn symlink(
        &mut self,
        comps: &[&[u8]],
        name: &str,
        target: Option<Vec<u8>>,
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let invalid = |reason: &str| UnpackError::InvalidEntry {
            entry: name.to_owned(),
            reason: reason.to_owned(),
        };
        let target = target.ok_or_else(|| invalid("symlink without a target"))?;
        if target.is_empty() || target.contains(&0) || target.len() >= MAX_PATH {
            return Err(invalid("symlink target empty, too long or with a NUL byte"));
        }
        let (dir, leaf) = self.parent(comps, name)?;
        self.clear(dir.as_fd(), leaf, false, name)?;
        rustix::fs::symlinkat(target.as_slice(), &dir, leaf).map_err(io_err(name, "symlinkat"))?;
        if let Some((uid, gid)) = meta.owner {
            rustix::fs::chownat(&dir, leaf, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(name, "chown symlink"))?;
        }
        if let Some(t) = meta.mtime {
            rustix::fs::utimensat(&dir, leaf, &timestamps(t), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(name, "utimensat"))?;
        }
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink(
        &mut self,
        comps: &[&[u8]],
        name: &str,
        target: Option<Vec<u8>>,
    ) -> Result<(), UnpackError> {
        let target = target.unwrap_or_default();
        let shown = String::from_utf8_lossy(&target).into_owned();
        let refuse = |reason: &str| UnpackError::BadHardLink {
            entry: name.to_owned(),
            target: shown.clone(),
            reason: reason.to_owned(),
        };
        let tcomps = match split_path(&target, &shown) {
            Ok(c) => c,
            Err(UnpackError::DotDot { .. }) => return Err(refuse("target has a `..` component")),
            Err(_) => return Err(refuse("invalid target path")),
        };
        let Some((tleaf, tdirs)) = tcomps.split_last() else {
            return Err(refuse("target is the layer root"));
        };
        let tdir = match self.root.resolve_dir(tdirs, false) {
            Ok(fd) => fd,
            Err(ResolveError::NotFound(_) | ResolveError::NotADirectory(_)) => {
                return Err(refuse("target not found in this layer"))
            }
            Err(e) => return Err(resolve_err(name, e)),
        };
        let tst = inroot::lstat_at(tdir.as_fd(), tleaf).map_err(|source| UnpackError::Io {
            entry: name.to_owned(),
            op: "fstatat link target",
            source,
        })?;
        let tst = tst.ok_or_else(|| refuse("target not found in this layer"))?;
        if inroot::file_type(&tst) != FileType::RegularFile {
            return Err(refuse("target is not a regular file"));
        }
        let (dir, leaf) = self.parent(comps, name)?;
        if let Some(st) = inroot::lstat_at(dir.as_fd(), leaf).map_err(|source| UnpackError::Io {
            entry: name.to_owned(),
            op: "fstatat",
            source,
        })? {
            if st.st_dev == tst.st_dev && st.st_ino == tst.st_ino {
                // Already that file (a link to itself, or a repeated entry).
                self.stats.hardlinks += 1;
                return Ok(());
            }
        }
        self.clear(dir.as_fd(), leaf, false, name)?;
        rustix::fs::linkat(&tdir, *tleaf, &dir, leaf, AtFlags::empty())
            .map_err(io_err(name, "linkat"))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    fn whiteout(&mut self, comps: &[&[u8]], name: &str) -> Result<(), UnpackError> {
        let Some((leaf, dirs)) = comps.split_last() else {
            return Ok(());
        };
        if *leaf == b".wh..wh..opq" {
            let dir = self
                .root
                .resolve_dir(dirs, true)
                .map_err(|e| resolve_err(name, e))?;
            rustix::fs::fsetxattr(&dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(io_err(name, "set trusted.overlay.opaque"))?;
            self.stats.opaque_dirs += 1;
            return Ok(());
        }
        let hidden = &leaf[b".wh.".len()..];
        if hidden.starts_with(b".wh.") {
            self.stats.skipped_other += 1;
            return Ok(());
        }
        match hidden {
            b"" | b"." => {
                return Err(UnpackError::InvalidEntry {
                    entry: name.to_owned(),
                    reason: "whiteout of nothing".to_owned(),
                })
            }
            b".." => {
                return Err(UnpackError::DotDot {
                    entry: name.to_owned(),
                })
            }
            _ => {}
        }
        let mut target = dirs.to_vec();
        target.push(hidden);
        let (dir, hidden) = self.parent(&target, name)?;
        self.clear(dir.as_fd(), hidden, false, name)?;
        rustix::fs::mknodat(
            &dir,
            hidden,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(io_err(name, "mknod whiteout"))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Gives directories their mode, owner and mtime, deepest and latest first.
    fn apply_dir_metadata(&mut self) -> Result<(), UnpackError> {
        let dirs = std::mem::take(&mut self.dirs);
        let mut done = HashSet::new();
        for (comps, meta, name) in dirs.into_iter().rev() {
            if !done.insert(comps.clone()) {
                continue;
            }
            let refs: Vec<&[u8]> = comps.iter().map(Vec::as_slice).collect();
            let Some((leaf, parents)) = refs.split_last() else {
                continue;
            };
            let parent = match self.root.resolve_dir(parents, false) {
                Ok(fd) => fd,
                Err(ResolveError::NotFound(_) | ResolveError::NotADirectory(_)) => continue,
                Err(e) => return Err(resolve_err(&name, e)),
            };
            let fd = match inroot::open_dir_nofollow(parent.as_fd(), leaf) {
                Ok(fd) => fd,
                // Replaced by a later entry: nothing to apply.
                Err(e)
                    if matches!(
                        Errno::from_io_error(&e),
                        Some(Errno::LOOP | Errno::NOTDIR | Errno::NOENT)
                    ) =>
                {
                    continue
                }
                Err(source) => {
                    return Err(UnpackError::Io {
                        entry: name,
                        op: "open directory",
                        source,
                    })
                }
            };
            self.set_owner_mode_time(fd.as_fd(), meta, &name)?;
        }
        Ok(())
    }
}

fn timestamps(secs: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// The `SCHILY.xattr.*` records of an entry's PAX header.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Vec::new();
    };
    exts.filter_map(Result::ok)
        .filter_map(|e| {
            let key = e.key().ok()?.strip_prefix("SCHILY.xattr.")?;
            Some((key.to_owned(), e.value_bytes().to_vec()))
        })
        .collect()
}
