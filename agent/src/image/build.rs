//! Building a one-layer OCI image-layout tarball from a directory or a single binary.
//!
//! [`build_oci_tar`] packs a source into **one** layer and writes an OCI image-layout tarball
//! (`oci-layout`, `index.json`, `blobs/sha256/…` holding the layer, the config and the
//! manifest) that [`ImageStore::import_oci_tar`](super::ImageStore::import_oci_tar), `skopeo
//! copy oci-archive:…` and `podman load` accept. It is what `kelp-agent image build` runs: a
//! way to ship a static binary or a small root filesystem to an air-gapped node without a
//! container engine.
//!
//! The source is either
//!
//! - a **directory**, which becomes the image's root: regular files, directories and symlinks
//!   (kept as symlinks, their targets unchanged) with their permission bits, hard links among
//!   its files as hard links; sockets, FIFOs and device nodes are errors; or
//! - a **single file** (typically a static binary), which lands at `/<file name>` and becomes
//!   the entrypoint unless one is given. A symlink given as the source is followed.
//!
//! # Reproducibility
//!
//! The same source and options give the same digests: entries are sorted by name, every mtime
//! is [`BuildOptions::mtime`] (default: `SOURCE_DATE_EPOCH`, else 0), owners are numeric (user
//! and group names are left empty), extended attributes are not recorded, the gzip header has
//! no timestamp and the JSON documents are written from fixed structures. Owners are the ones
//! on disk unless [`Ownership::Root`] is chosen.
//!
//! # Failure atomicity
//!
//! The layer and then the tarball are written to temporary files next to the output, which is
//! replaced by a rename only when everything succeeded: a failed build leaves nothing behind,
//! and never a truncated tarball at the output path.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use super::oci::{self, ImageConfig, Platform};
use super::Digest;

/// Media type of an uncompressed layer.
const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a gzip-compressed layer.
const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of an image config.
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Copy buffer size.
const BUF_SIZE: usize = 64 * 1024;

/// Who owns the entries of the built layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ownership {
    /// The numeric uid and gid each file has on disk.
    #[default]
    AsOnDisk,
    /// uid 0, gid 0 for every entry (for sources built by an unprivileged user).
    Root,
}

/// What to build: the image's name, platform and default process settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// The reference the image is imported as (`org.opencontainers.image.ref.name` of
    /// `index.json`), such as `example.com/kelp/app:1.0`.
    pub reference: String,
    /// The platform written into the config and the index. Nothing checks that the source's
    /// binaries are for it.
    pub platform: Platform,
    /// `Entrypoint`. Empty with a single-file source: `["/<file name>"]`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value` strings. Nothing is added: no default `PATH`.
    pub env: Vec<String>,
    /// `WorkingDir` (an absolute path), if any.
    pub working_dir: Option<String>,
    /// `User` (`uid`, `uid:gid`, `name`, …), if any.
    pub user: Option<String>,
    /// Whether the layer is gzip-compressed (`…tar+gzip`) or stored as a plain tar.
    pub layer_gzip: bool,
    /// Owners of the layer's entries.
    pub ownership: Ownership,
    /// The mtime of every entry, in seconds since the epoch. `None`: the `SOURCE_DATE_EPOCH`
    /// environment variable when it is set and not empty, else 0.
    pub mtime: Option<u64>,
}

impl BuildOptions {
    /// Options for an image named `reference` for the host's platform: gzip-compressed layer,
    /// owners as on disk, no process settings.
    pub fn new(reference: impl Into<String>) -> Self {
        Self {
            reference: reference.into(),
            platform: Platform::host(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            user: None,
            layer_gzip: true,
            ownership: Ownership::AsOnDisk,
            mtime: None,
        }
    }
}

/// What [`build_oci_tar`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The reference the tarball names.
    pub reference: String,
    /// The platform of the image.
    pub platform: Platform,
    /// Digest of the manifest (what `index.json` points to).
    pub manifest_digest: Digest,
    /// Digest of the config: the image ID.
    pub config_digest: Digest,
    /// Digest of the layer blob as stored (compressed when gzip was asked for).
    pub layer_digest: Digest,
    /// Digest of the uncompressed layer.
    pub diff_id: Digest,
    /// Size of the layer blob in bytes.
    pub layer_size: u64,
    /// Entries (files, directories, links) in the layer.
    pub entries: u64,
    /// The default process settings written into the config.
    pub config: ImageConfig,
}

/// Why an image could not be built. Every variant names the file or option involved.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A filesystem operation on a source or output file failed.
    #[error("{op} {}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was being done (`reading`, `listing`, `writing`, …).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The source holds a file that cannot go into a layer.
    #[error("{}: {kind} cannot be packed into an image (only regular files, directories and symlinks)", path.display())]
    UnsupportedFile {
        /// The file.
        path: PathBuf,
        /// Its type (`socket`, `FIFO`, `device node`, …).
        kind: &'static str,
    },
    /// The output would be written inside the directory being packed.
    #[error("output {} is inside the source directory {}", output.display(), source_dir.display())]
    OutputInsideSource {
        /// The output path.
        output: PathBuf,
        /// The source directory.
        source_dir: PathBuf,
    },
    /// An option (or `SOURCE_DATE_EPOCH`) has an unusable value.
    #[error("invalid {option} {value:?}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

type Result<T, E = BuildError> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn invalid(option: &'static str, value: &str, reason: &'static str) -> BuildError {
    BuildError::InvalidOption {
        option,
        value: value.to_owned(),
        reason,
    }
}

/// Packs `source` (a directory or a single file) into a one-layer image and writes it as an
/// OCI image-layout tarball at `out`, replacing any file there. See the [module docs](self).
///
/// ```no_run
/// use kelp_agent::image::{build_oci_tar, BuildOptions};
/// use std::path::Path;
///
/// let mut opts = BuildOptions::new("example.com/kelp/hello:1.0");
/// opts.cmd = vec!["--port".into(), "8080".into()];
/// let built = build_oci_tar(Path::new("target/release/hello"), &opts, Path::new("hello.tar"))?;
/// println!("image ID {}", built.config_digest);
/// # Ok::<(), kelp_agent::image::BuildError>(())
/// ```
pub fn build_oci_tar(source: &Path, opts: &BuildOptions, out: &Path) -> Result<BuiltImage> {
    validate(opts)?;
    let mtime = match opts.mtime {
        Some(t) => t,
        None => source_date_epoch()?,
    };
    let (out_dir, out_name) = out_parts(out)?;
    let packed = pack(source, opts, mtime, out_dir, out_name, out)?;
    let tar_tmp = TempFile::create(out_dir, out_name, "tar")?;
    write_layout(
        &tar_tmp,
        mtime,
        &[(&packed.layer_tmp.path, &packed.layer.digest)],
        &[
            (&packed.docs.config_digest, &packed.docs.config),
            (&packed.docs.manifest_digest, &packed.docs.manifest),
        ],
        &packed.docs.index,
    )?;
    tar_tmp.persist(out)?;
    Ok(packed.built(opts))
}

/// What [`build_oci_index_tar`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltIndex {
    /// The reference the tarball names.
    pub reference: String,
    /// Digest of the image index (what `index.json` points to, and what a push tags).
    pub index_digest: Digest,
    /// One image per platform, in the order given.
    pub images: Vec<BuiltImage>,
}

/// Like [`build_oci_tar`] for several platforms: packs each `(platform, source)` into a
/// one-layer image and writes one tarball whose `index.json` points to an OCI image index
/// listing a manifest per platform (`opts.platform` is ignored). A source may serve several
/// platforms (a directory of scripts); a platform may appear only once.
pub fn build_oci_index_tar(
    sources: &[(Platform, PathBuf)],
    opts: &BuildOptions,
    out: &Path,
) -> Result<BuiltIndex> {
    validate(opts)?;
    if sources.is_empty() {
        return Err(invalid("platform", "", "at least one platform is needed"));
    }
    for (i, (p, _)) in sources.iter().enumerate() {
        if sources[..i].iter().any(|(q, _)| q == p) {
            return Err(invalid("platform", &p.to_string(), "given twice"));
        }
    }
    let mtime = match opts.mtime {
        Some(t) => t,
        None => source_date_epoch()?,
    };
    let (out_dir, out_name) = out_parts(out)?;
    let mut packed = Vec::new();
    let mut per_platform = Vec::new();
    for (platform, source) in sources {
        let mut o = opts.clone();
        o.platform = platform.clone();
        validate(&o)?;
        packed.push(pack(source, &o, mtime, out_dir, out_name, out)?);
        per_platform.push(o);
    }
    let entries: Vec<DescriptorJson<'_>> = packed
        .iter()
        .zip(&per_platform)
        .map(|(p, o)| {
            let mut d = DescriptorJson::new(
                oci::MT_OCI_MANIFEST,
                &p.docs.manifest_digest,
                p.docs.manifest.len() as u64,
            );
            d.platform = Some(PlatformJson {
                architecture: &o.platform.architecture,
                os: &o.platform.os,
                variant: o.platform.variant.as_deref(),
            });
            d
        })
        .collect();
    let image_index = to_json(&IndexJson {
        schema_version: 2,
        media_type: oci::MT_OCI_INDEX,
        manifests: entries,
    });
    let index_digest = sha256(&image_index);
    let mut top = DescriptorJson::new(oci::MT_OCI_INDEX, &index_digest, image_index.len() as u64);
    top.annotations = Some(AnnotationsJson {
        ref_name: &opts.reference,
    });
    let layout_index = to_json(&IndexJson {
        schema_version: 2,
        media_type: oci::MT_OCI_INDEX,
        manifests: vec![top],
    });
    let mut layers: Vec<(&Path, &Digest)> = Vec::new();
    let mut docs: Vec<(&Digest, &[u8])> = Vec::new();
    for p in &packed {
        if !layers.iter().any(|(_, d)| **d == p.layer.digest) {
            layers.push((&p.layer_tmp.path, &p.layer.digest));
        }
        for (d, b) in [
            (&p.docs.config_digest, &p.docs.config),
            (&p.docs.manifest_digest, &p.docs.manifest),
        ] {
            if !docs.iter().any(|(e, _)| *e == d) {
                docs.push((d, b));
            }
        }
    }
    docs.push((&index_digest, &image_index));
    let tar_tmp = TempFile::create(out_dir, out_name, "tar")?;
    write_layout(&tar_tmp, mtime, &layers, &docs, &layout_index)?;
    tar_tmp.persist(out)?;
    Ok(BuiltIndex {
        reference: opts.reference.clone(),
        index_digest,
        images: packed
            .iter()
            .zip(&per_platform)
            .map(|(p, o)| p.built(o))
            .collect(),
    })
}

/// The directory and file name of the output.
fn out_parts(out: &Path) -> Result<(&Path, &OsStr)> {
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let out_name = out
        .file_name()
        .ok_or_else(|| invalid("output", &out.display().to_string(), "not a file name"))?;
    Ok((out_dir, out_name))
}

/// One platform's image, packed: its layer in a temporary file and its documents.
struct Packed {
    layer_tmp: TempFile,
    layer: LayerBlob,
    docs: Documents,
    config: ImageConfig,
}

impl Packed {
    fn built(&self, opts: &BuildOptions) -> BuiltImage {
        BuiltImage {
            reference: opts.reference.clone(),
            platform: opts.platform.clone(),
            manifest_digest: self.docs.manifest_digest.clone(),
            config_digest: self.docs.config_digest.clone(),
            layer_digest: self.layer.digest.clone(),
            diff_id: self.layer.diff_id.clone(),
            layer_size: self.layer.size,
            entries: self.layer.entries,
            config: self.config.clone(),
        }
    }
}

/// Packs `source` into a layer next to the output and builds the image's documents.
fn pack(
    source: &Path,
    opts: &BuildOptions,
    mtime: u64,
    out_dir: &Path,
    out_name: &OsStr,
    out: &Path,
) -> Result<Packed> {
    let meta = fs::metadata(source).map_err(io_err("reading", source))?;
    if meta.is_dir() {
        let src = fs::canonicalize(source).map_err(io_err("resolving", source))?;
        let dir = fs::canonicalize(out_dir).map_err(io_err("resolving", out_dir))?;
        if dir.starts_with(&src) {
            return Err(BuildError::OutputInsideSource {
                output: out.to_path_buf(),
                source_dir: source.to_path_buf(),
            });
        }
    }

    let mut config = ImageConfig {
        entrypoint: opts.entrypoint.clone(),
        cmd: opts.cmd.clone(),
        env: opts.env.clone(),
        working_dir: opts.working_dir.clone(),
        user: opts.user.clone(),
    };
    let packer = Packer {
        mtime,
        ownership: opts.ownership,
        hard_links: HashMap::new(),
        entries: 0,
    };
    let layer_tmp = TempFile::create(out_dir, out_name, "layer")?;
    let layer = if meta.is_dir() {
        write_layer(&layer_tmp, opts.layer_gzip, packer, |p, b| {
            p.pack_dir(b, source, &mut Vec::new())
        })?
    } else if meta.is_file() {
        let name = source
            .file_name()
            .ok_or_else(|| invalid("source", &source.display().to_string(), "no file name"))?;
        if config.entrypoint.is_empty() {
            config.entrypoint = vec![format!("/{}", name.to_string_lossy())];
        }
        write_layer(&layer_tmp, opts.layer_gzip, packer, |p, b| {
            p.pack_file(b, source, name.as_bytes(), &meta, false)
        })?
    } else {
        return Err(BuildError::UnsupportedFile {
            path: source.to_path_buf(),
            kind: file_kind(&meta),
        });
    };
    let docs = Documents::new(opts, &config, &layer);
    Ok(Packed {
        layer_tmp,
        layer,
        docs,
        config,
    })
}

/// Checks the options that would make an image other tools reject or misread.
fn validate(opts: &BuildOptions) -> Result<()> {
    let r = &opts.reference;
    if r.is_empty() {
        return Err(invalid("reference", r, "empty"));
    }
    if r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "reference",
            r,
            "contains white space or control characters",
        ));
    }
    let p = &opts.platform;
    if p.os.is_empty() || p.architecture.is_empty() {
        return Err(invalid(
            "platform",
            &p.to_string(),
            "os and architecture must be set",
        ));
    }
    for e in &opts.env {
        match e.split_once('=') {
            Some((name, _)) if !name.is_empty() => {}
            _ => return Err(invalid("env", e, "expected NAME=value")),
        }
    }
    if let Some(w) = &opts.working_dir {
        if !w.starts_with('/') {
            return Err(invalid("working directory", w, "must be an absolute path"));
        }
    }
    if let Some(u) = &opts.user {
        if u.is_empty() || u.chars().any(char::is_whitespace) {
            return Err(invalid(
                "user",
                u,
                "expected uid, uid:gid, name or name:group",
            ));
        }
    }
    Ok(())
}

/// The mtime of reproducible builds: `SOURCE_DATE_EPOCH` if set and not empty, else 0.
fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.is_empty() => Ok(0),
        Ok(v) => v.parse().map_err(|_| {
            invalid(
                "SOURCE_DATE_EPOCH",
                &v,
                "expected a number of seconds since 1970-01-01",
            )
        }),
        Err(std::env::VarError::NotPresent) => Ok(0),
        Err(std::env::VarError::NotUnicode(v)) => Err(invalid(
            "SOURCE_DATE_EPOCH",
            &v.to_string_lossy(),
            "not UTF-8",
        )),
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing these fixed structures of strings cannot fail.
    serde_json::to_vec(value).expect("serializing an OCI document")
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(bytes))
}

fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_socket() {
        "a socket"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_block_device() || t.is_char_device() {
        "a device node"
    } else {
        "this file type"
    }
}

/// The config, manifest and `index.json` of a built image, serialized.
struct Documents {
    config: Vec<u8>,
    config_digest: Digest,
    manifest: Vec<u8>,
    manifest_digest: Digest,
    index: Vec<u8>,
}

impl Documents {
    fn new(opts: &BuildOptions, config: &ImageConfig, layer: &LayerBlob) -> Self {
        let config_json = ConfigJson {
            architecture: &opts.platform.architecture,
            os: &opts.platform.os,
            variant: opts.platform.variant.as_deref(),
            config: ContainerConfigJson {
                entrypoint: &config.entrypoint,
                cmd: &config.cmd,
                env: &config.env,
                working_dir: config.working_dir.as_deref(),
                user: config.user.as_deref(),
            },
            rootfs: RootFsJson {
                kind: "layers",
                diff_ids: [layer.diff_id.as_str()],
            },
            history: [HistoryJson {
                created_by: "kelp-agent image build",
            }],
        };
        let config_bytes = to_json(&config_json);
        let config_digest = sha256(&config_bytes);
        let layer_media_type = if layer.gzip {
            MT_LAYER_GZIP
        } else {
            MT_LAYER_TAR
        };
        let manifest = ManifestJson {
            schema_version: 2,
            media_type: oci::MT_OCI_MANIFEST,
            config: DescriptorJson::new(MT_CONFIG, &config_digest, config_bytes.len() as u64),
            layers: [DescriptorJson::new(
                layer_media_type,
                &layer.digest,
                layer.size,
            )],
        };
        let manifest_bytes = to_json(&manifest);
        let manifest_digest = sha256(&manifest_bytes);
        let mut top = DescriptorJson::new(
            oci::MT_OCI_MANIFEST,
            &manifest_digest,
            manifest_bytes.len() as u64,
        );
        top.platform = Some(PlatformJson {
            architecture: &opts.platform.architecture,
            os: &opts.platform.os,
            variant: opts.platform.variant.as_deref(),
        });
        top.annotations = Some(AnnotationsJson {
            ref_name: &opts.reference,
        });
        let index = IndexJson {
            schema_version: 2,
            media_type: oci::MT_OCI_INDEX,
            manifests: vec![top],
        };
        let index_bytes = to_json(&index);
        Self {
            config: config_bytes,
            config_digest,
            manifest: manifest_bytes,
            manifest_digest,
            index: index_bytes,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The layer

/// The layer blob as written to its temporary file.
struct LayerBlob {
    gzip: bool,
    digest: Digest,
    diff_id: Digest,
    size: u64,
    entries: u64,
}

/// A writer that hashes and counts what goes through it.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest::from_sha256(&self.hasher.finalize()),
            self.count,
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the layer archive `pack` produces into `tmp`, gzip-compressed or not, and returns
/// its digests.
fn write_layer(
    tmp: &TempFile,
    gzip: bool,
    mut packer: Packer,
    pack: impl FnOnce(&mut Packer, &mut tar::Builder<&mut dyn Write>) -> Result<()>,
) -> Result<LayerBlob> {
    let write_err = io_err("writing", &tmp.path);
    let file = tmp.file.try_clone().map_err(io_err("writing", &tmp.path))?;
    let mut blob = HashWriter::new(BufWriter::new(file));
    let (diff_id, blob) = if gzip {
        let gz = GzEncoder::new(&mut blob, flate2::Compression::default());
        let mut tar_stream = HashWriter::new(gz);
        tar_archive(&mut packer, &mut tar_stream, &tmp.path, pack)?;
        let (gz, diff_id, _) = tar_stream.finish();
        gz.finish().map_err(io_err("writing", &tmp.path))?;
        (Some(diff_id), blob)
    } else {
        tar_archive(&mut packer, &mut blob, &tmp.path, pack)?;
        (None, blob)
    };
    let (buffered, digest, size) = blob.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(io_err("writing", &tmp.path))?;
    Ok(LayerBlob {
        gzip,
        diff_id: diff_id.unwrap_or_else(|| digest.clone()),
        digest,
        size,
        entries: packer.entries,
    })
}

/// Runs `pack` over a tar builder writing into `w`, then writes the end-of-archive marker.
fn tar_archive(
    packer: &mut Packer,
    w: &mut dyn Write,
    path: &Path,
    pack: impl FnOnce(&mut Packer, &mut tar::Builder<&mut dyn Write>) -> Result<()>,
) -> Result<()> {
    let mut builder = tar::Builder::new(w);
    pack(packer, &mut builder)?;
    builder.finish().map_err(io_err("writing", path))
}

/// Walks the source and appends its entries to the layer archive.
struct Packer {
    mtime: u64,
    ownership: Ownership,
    /// Regular files with several links already archived: (dev, ino) → archive path.
    hard_links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
}

impl Packer {
    fn header(&self, kind: EntryType, meta: &fs::Metadata) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_mtime(self.mtime);
        let (uid, gid) = match self.ownership {
            Ownership::AsOnDisk => (meta.uid().into(), meta.gid().into()),
            Ownership::Root => (0, 0),
        };
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(0);
        h
    }

    /// Appends the entries below directory `dir` (not `dir` itself), `prefix` being its path
    /// in the archive, in name order.
    fn pack_dir(
        &mut self,
        b: &mut tar::Builder<&mut dyn Write>,
        dir: &Path,
        prefix: &mut Vec<u8>,
    ) -> Result<()> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("listing", dir))? {
            names.push(entry.map_err(io_err("listing", dir))?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
            let len = prefix.len();
            prefix.extend_from_slice(name.as_bytes());
            let t = meta.file_type();
            if t.is_dir() {
                prefix.push(b'/');
                let mut h = self.header(EntryType::Directory, &meta);
                append(b, &mut h, prefix, io::empty(), &path)?;
                self.entries += 1;
                self.pack_dir(b, &path, prefix)?;
            } else if t.is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("reading link", &path))?;
                let mut h = self.header(EntryType::Symlink, &meta);
                append_link(b, &mut h, prefix, target.as_os_str().as_bytes(), &path)?;
                self.entries += 1;
            } else if t.is_file() {
                self.pack_file(b, &path, prefix, &meta, true)?;
            } else {
                return Err(BuildError::UnsupportedFile {
                    path,
                    kind: file_kind(&meta),
                });
            }
            prefix.truncate(len);
        }
        Ok(())
    }

    /// Appends the regular file at `path` as `name`, or a hard link to an earlier entry of
    /// the same file. `nofollow` refuses a file replaced by a symlink since it was listed.
    fn pack_file(
        &mut self,
        b: &mut tar::Builder<&mut dyn Write>,
        path: &Path,
        name: &[u8],
        meta: &fs::Metadata,
        nofollow: bool,
    ) -> Result<()> {
        self.entries += 1;
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.hard_links.get(&key) {
                let mut h = self.header(EntryType::Link, meta);
                let first = first.clone();
                return append_link(b, &mut h, name, &first, path);
            }
            self.hard_links.insert(key, name.to_vec());
        }
        let mut flags = rustix::fs::OFlags::NONBLOCK;
        if nofollow {
            flags |= rustix::fs::OFlags::NOFOLLOW;
        }
        let file = File::options()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(path)
            .map_err(io_err("opening", path))?;
        let meta = file.metadata().map_err(io_err("reading", path))?;
        if !meta.is_file() {
            return Err(BuildError::UnsupportedFile {
                path: path.to_path_buf(),
                kind: file_kind(&meta),
            });
        }
        let mut h = self.header(EntryType::Regular, &meta);
        h.set_size(meta.len());
        let data = ExactReader {
            inner: file,
            left: meta.len(),
        };
        append(b, &mut h, name, data, path)
    }
}

/// Reads exactly `left` bytes: a file that shrinks while it is archived is an error rather
/// than a corrupt archive, and one that grows is cut at its size when it was opened.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Appends an entry named `name` (raw bytes; long names get a GNU long-name record).
fn append(
    b: &mut tar::Builder<&mut dyn Write>,
    h: &mut Header,
    name: &[u8],
    data: impl Read,
    source: &Path,
) -> Result<()> {
    b.append_data(h, Path::new(OsStr::from_bytes(name)), data)
        .map_err(io_err("archiving", source))
}

/// Appends a symlink or hard link entry; the target is stored byte for byte when it fits the
/// header, in a GNU long-link record otherwise.
fn append_link(
    b: &mut tar::Builder<&mut dyn Write>,
    h: &mut Header,
    name: &[u8],
    target: &[u8],
    source: &Path,
) -> Result<()> {
    let name_path = Path::new(OsStr::from_bytes(name));
    if target.len() <= h.as_old().linkname.len() {
        h.set_link_name_literal(target)
            .map_err(io_err("archiving", source))?;
        append(b, h, name, io::empty(), source)
    } else {
        b.append_link(h, name_path, OsStr::from_bytes(target))
            .map_err(io_err("archiving", source))
    }
}

// ---------------------------------------------------------------------------------------------
// The image layout tarball

/// Writes the OCI layout tarball: `oci-layout`, the blobs (layer first), `index.json`.
fn write_layout(
    tmp: &TempFile,
    mtime: u64,
    layers: &[(&Path, &Digest)],
    docs: &[(&Digest, &[u8])],
    index: &[u8],
) -> Result<()> {
    let file = tmp.file.try_clone().map_err(io_err("writing", &tmp.path))?;
    let mut b = tar::Builder::new(BufWriter::new(file));
    let mut add = |name: &str, kind: EntryType, size: u64, data: &mut dyn Read| {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(mtime);
        h.set_size(size);
        b.append_data(&mut h, name, data)
            .map_err(io_err("writing", &tmp.path))
    };
    add(
        "oci-layout",
        EntryType::Regular,
        OCI_LAYOUT.len() as u64,
        &mut &OCI_LAYOUT[..],
    )?;
    add("blobs/", EntryType::Directory, 0, &mut io::empty())?;
    add("blobs/sha256/", EntryType::Directory, 0, &mut io::empty())?;
    for (layer_path, layer_digest) in layers {
        let mut layer = File::open(layer_path).map_err(io_err("reading", layer_path))?;
        let layer_size = layer
            .seek(io::SeekFrom::End(0))
            .map_err(io_err("reading", layer_path))?;
        layer.rewind().map_err(io_err("reading", layer_path))?;
        let mut layer = ExactReader {
            inner: io::BufReader::with_capacity(BUF_SIZE, layer),
            left: layer_size,
        };
        add(
            &format!("blobs/sha256/{}", layer_digest.hex()),
            EntryType::Regular,
            layer_size,
            &mut layer,
        )?;
    }
    for (digest, bytes) in docs {
        add(
            &format!("blobs/sha256/{}", digest.hex()),
            EntryType::Regular,
            bytes.len() as u64,
            &mut &bytes[..],
        )?;
    }
    add(
        "index.json",
        EntryType::Regular,
        index.len() as u64,
        &mut &index[..],
    )?;
    let file = b
        .into_inner()
        .map_err(io_err("writing", &tmp.path))?
        .into_inner()
        .map_err(|e| BuildError::Io {
            path: tmp.path.clone(),
            op: "writing",
            source: e.into_error(),
        })?;
    file.sync_all().map_err(io_err("writing", &tmp.path))
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A temporary file next to the output, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl TempFile {
    fn create(dir: &Path, out_name: &OsStr, what: &str) -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            ".{}.{what}-{}-{}.tmp",
            out_name.to_string_lossy(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(io_err("creating", &path))?;
        Ok(Self {
            path,
            file,
            keep: false,
        })
    }

    /// Renames the file to `to`.
    fn persist(mut self, to: &Path) -> Result<()> {
        fs::rename(&self.path, to).map_err(io_err("writing", to))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

// The documents, serialized from fixed structures so that their bytes (and digests) never
// depend on map ordering.

#[derive(Serialize)]
struct ConfigJson<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    config: ContainerConfigJson<'a>,
    rootfs: RootFsJson<'a>,
    history: [HistoryJson<'a>; 1],
}

#[derive(Serialize)]
struct ContainerConfigJson<'a> {
    #[serde(rename = "Entrypoint", skip_serializing_if = "<[_]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(rename = "Cmd", skip_serializing_if = "<[_]>::is_empty")]
    cmd: &'a [String],
    #[serde(rename = "Env", skip_serializing_if = "<[_]>::is_empty")]
    env: &'a [String],
    #[serde(rename = "WorkingDir", skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(rename = "User", skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

#[derive(Serialize)]
struct RootFsJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: [&'a str; 1],
}

#[derive(Serialize)]
struct HistoryJson<'a> {
    created_by: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorJson<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<PlatformJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<AnnotationsJson<'a>>,
}

impl<'a> DescriptorJson<'a> {
    fn new(media_type: &'a str, digest: &'a Digest, size: u64) -> Self {
        Self {
            media_type,
            digest: digest.as_str(),
            size,
            platform: None,
            annotations: None,
        }
    }
}

#[derive(Serialize)]
struct PlatformJson<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

#[derive(Serialize)]
struct AnnotationsJson<'a> {
    #[serde(rename = "org.opencontainers.image.ref.name")]
    ref_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: DescriptorJson<'a>,
    layers: [DescriptorJson<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<DescriptorJson<'a>>,
}

// ---------------------------------------------------------------------------------------------
// Busybox root filesystem (tests and demos)

/// Where Debian's `busybox-static` package installs busybox (`/bin/busybox` on systems
/// without the merged `/usr`).
pub const BUSYBOX_PATH: &str = "/usr/bin/busybox";

/// Where busybox is looked for, in order.
const BUSYBOX_CANDIDATES: [&str; 2] = [BUSYBOX_PATH, "/bin/busybox"];

/// Applets linked in `bin/` by [`busybox_rootfs`].
#[rustfmt::skip]
pub const BUSYBOX_APPLETS: &[&str] = &[
    // What the brief and the runtime's end-to-end tests use…
    "sh", "sleep", "nc", "httpd", "wget", "cat", "echo", "id", "touch", "ls", "mkdir", "chmod",
    "printf", "head", "tail", "rm", "test", "[", "hostname",
    // … and the usual companions.
    "env", "true", "false", "ps", "kill", "grep", "sed", "awk", "cp", "mv", "ln", "chown", "wc",
    "tee", "date", "uname", "pwd", "find", "xargs", "sort", "uniq", "seq", "stat", "readlink",
    "basename", "dirname", "dd", "df", "du", "free", "mount", "umount", "nslookup", "ping",
    "ip", "whoami", "sha256sum", "tr", "cut", "expr", "timeout", "yes", "sync",
];

/// Fills `dir` (created if needed) with a tiny root filesystem around the host's static
/// busybox: `bin/busybox`, symlinks to it for [`BUSYBOX_APPLETS`] (`sh`, `sleep`, `nc`,
/// `httpd`, `wget`, …), `etc/passwd` and `etc/group` with `root` (0), `app` (1000) and
/// `nobody` (65534), and `tmp` (mode 1777).
///
/// **A test and demo helper**: the runtime's end-to-end tests build their images with it (then
/// [`build_oci_tar`]). It needs Debian's `busybox-static` package at [`BUSYBOX_PATH`] (or
/// `/bin/busybox`); when it is missing or dynamically linked the error says to `apt-get
/// install busybox-static`.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    let (path, busybox) = BUSYBOX_CANDIDATES
        .iter()
        .find_map(|p| fs::read(p).ok().map(|bytes| (*p, bytes)))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{BUSYBOX_PATH} not found (apt-get install busybox-static)"),
            )
        })?;
    busybox_rootfs_with(dir, path, busybox)
}

/// [`busybox_rootfs`] around the static busybox at `binary`, of any architecture (such as
/// the one of `busybox-static:arm64` unpacked with `dpkg-deb -x`).
pub fn busybox_rootfs_from(dir: &Path, binary: &Path) -> io::Result<()> {
    let busybox = fs::read(binary)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", binary.display())))?;
    busybox_rootfs_with(dir, &binary.display().to_string(), busybox)
}

fn busybox_rootfs_with(dir: &Path, path: &str, busybox: Vec<u8>) -> io::Result<()> {
    if has_interpreter(&busybox) != Some(false) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{path} is not a statically linked ELF binary (apt-get install busybox-static)"
            ),
        ));
    }
    let bin = dir.join("bin");
    let etc = dir.join("etc");
    let tmp = dir.join("tmp");
    for d in [&bin, &etc, &tmp] {
        fs::create_dir_all(d)?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))?;
    let target = bin.join("busybox");
    replace(&target)?;
    fs::write(&target, &busybox)?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
    for applet in BUSYBOX_APPLETS {
        let link = bin.join(applet);
        replace(&link)?;
        std::os::unix::fs::symlink("busybox", &link)?;
    }
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         app:x:1000:1000:app:/tmp:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(
        etc.join("group"),
        "root:x:0:\napp:x:1000:\nnobody:x:65534:\n",
    )?;
    Ok(())
}

/// Removes `path` if it exists (without following a symlink there).
fn replace(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether an ELF executable asks for a program interpreter (is dynamically linked); `None`
/// if the bytes are not a well-formed ELF file.
pub(crate) fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match elf.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big_endian = match elf.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let uint = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at.checked_add(len)?)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Some(if big_endian {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        })
    };
    let (phoff, phentsize, phnum) = if wide {
        (uint(32, 8)?, uint(54, 2)?, uint(56, 2)?)
    } else {
        (uint(28, 4)?, uint(42, 2)?, uint(44, 2)?)
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if uint(at, 4)? == u64::from(PT_INTERP) {
            return Some(true);
        }
    }
    Some(false)
}
