//! The image store: content-addressed blobs, layers unpacked once by diff ID, and a small
//! reference index. See the [module docs](super) for the layout.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::oci::{self, ConfigFile, Descriptor, ImageConfig, Index, Manifest, OciLayout, Platform};
use super::unpack::{decompress, unpack_layer, Budget, DecompressError, Guard, GuardCtl};
use super::{Digest, ImageError, UnpackError};

/// Largest JSON document (index, manifest, config) read into memory.
pub(super) const MAX_DOC: u64 = 4 << 20;
/// Largest `oci-layout` file.
const MAX_LAYOUT_FILE: u64 = 64 << 10;
/// Nested indexes followed before giving up.
pub(super) const MAX_INDEX_DEPTH: usize = 4;
/// Name of the reference index.
const REFS_FILE: &str = "refs.json";
/// Config media types of container images (anything else is an artifact, not an image).
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

type Result<T, E = ImageError> = std::result::Result<T, E>;

/// An image store rooted at a directory (for example `/var/lib/kelp/images`).
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    platform: Platform,
}

/// One layer of an image, bottom first in [`ImageRecord::layers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    /// Digest of the layer blob as distributed (usually compressed).
    pub digest: Digest,
    /// Digest of the uncompressed layer: the key of its unpacked directory.
    pub diff_id: Digest,
    /// The layer's media type.
    pub media_type: String,
    /// Size of the layer blob in bytes.
    pub size: u64,
    /// The unpacked layer (`layers/sha256/<diff-id>/rootfs`): an overlayfs lower directory,
    /// which must not be written to.
    pub rootfs: PathBuf,
}

/// An image of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The reference it is known by (from the tarball's annotations; the manifest digest when
    /// the tarball names none).
    pub reference: String,
    /// Digest of its manifest.
    pub manifest_digest: Digest,
    /// Digest of its config blob (the image ID).
    pub config_digest: Digest,
    /// Its platform, from its config.
    pub platform: Platform,
    /// Its layers, bottom (base) first, as in the manifest.
    pub layers: Vec<LayerRecord>,
    /// Its default process settings.
    pub config: ImageConfig,
}

impl ImageRecord {
    /// The layer directories in overlayfs `lowerdir=` order: top-most first.
    pub fn lower_dirs(&self) -> Vec<&Path> {
        self.layers
            .iter()
            .rev()
            .map(|l| l.rootfs.as_path())
            .collect()
    }
}

/// `refs.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RefsFile {
    version: u32,
    refs: BTreeMap<String, String>,
}

/// What the single pass over an image tarball (or a pull) found.
#[derive(Default)]
pub(super) struct Layout {
    oci_layout: Option<Vec<u8>>,
    index: Option<Vec<u8>>,
    /// Blobs present and verified: staged, or already in the store.
    pub(super) blobs: HashSet<Digest>,
}

/// A private directory under `tmp/`, removed on drop.
pub(super) struct Staging {
    path: PathBuf,
}

impl Staging {
    fn new(tmp: &Path) -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "import-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = tmp.join(name);
        fs::create_dir(&path)
            .map_err(|e| ImageError::io(format!("creating {}", path.display()), e))?;
        for sub in ["blobs", "layers"] {
            let p = path.join(sub);
            fs::create_dir(&p)
                .map_err(|e| ImageError::io(format!("creating {}", p.display()), e))?;
        }
        Ok(Self { path })
    }

    pub(super) fn blob(&self, digest: &Digest) -> PathBuf {
        self.path.join("blobs").join(digest.hex())
    }

    fn layer(&self, diff_id: &Digest) -> PathBuf {
        self.path.join("layers").join(diff_id.hex())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = remove_tree(&self.path);
    }
}

/// An exclusive `flock` on the store's `lock` file, released on drop.
pub(super) struct StoreLock {
    _file: File,
}

/// Work of one import or pull: the staging area and what it holds.
pub(super) struct Import {
    pub(super) staging: Staging,
    pub(super) layout: Layout,
    pub(super) budget: Budget,
    /// Layers unpacked in staging.
    layers: HashSet<Digest>,
    /// Blobs the imported images use.
    used_blobs: HashSet<Digest>,
}

impl Import {
    /// A new staging area under the store's `tmp/`, with a byte budget.
    pub(super) fn new(store: &ImageStore, budget: u64) -> Result<Self> {
        Ok(Self {
            staging: Staging::new(&store.root.join("tmp"))?,
            layout: Layout::default(),
            budget: Budget::new(budget),
            layers: HashSet::new(),
            used_blobs: HashSet::new(),
        })
    }
}

pub(super) fn json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: impl Into<String>,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.into(),
        source,
    })
}

/// Reads at most `max` bytes; more is an error naming `what`.
fn read_capped(r: impl Read, max: u64, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| ImageError::io(format!("reading {what}"), e))?;
    if out.len() as u64 > max {
        return Err(ImageError::InvalidLayout(format!(
            "{what} is larger than {max} bytes"
        )));
    }
    Ok(out)
}

/// Removes a directory tree without following symlinks, making read-only directories
/// writable first if needed (when not running as root).
fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fn unlock(p: &Path) -> io::Result<()> {
                if fs::symlink_metadata(p)?.is_dir() {
                    fs::set_permissions(p, fs::Permissions::from_mode(0o700))?;
                    for entry in fs::read_dir(p)? {
                        unlock(&entry?.path())?;
                    }
                }
                Ok(())
            }
            unlock(path)?;
            fs::remove_dir_all(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn fsync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io(format!("syncing {}", path.display()), e))
}

/// Writes `data` to `dir/name` atomically: temporary file, fsync, rename, fsync of `dir`.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, dir.join(name)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(ImageError::io(
            format!("writing {}", dir.join(name).display()),
            e,
        ));
    }
    fsync_dir(dir)
}

/// Maps a tar-level failure of the outer tarball.
fn tarball_error(ctl: &GuardCtl, path: &Path, after: &str, e: io::Error) -> ImageError {
    match ctl.error(after, e) {
        UnpackError::Truncated { after } => ImageError::Truncated { after },
        UnpackError::MetadataTooLarge { after } => {
            ImageError::InvalidLayout(format!("tar metadata too large after {after:?}"))
        }
        UnpackError::Archive { source, .. } => ImageError::io(
            format!("reading {} after {after:?}", path.display()),
            source,
        ),
        other => ImageError::InvalidLayout(other.to_string()),
    }
}

/// The descriptor of `descs` (an index's entries) that best fits `platform`; a lone entry
/// without a platform is taken as is.
pub(super) fn best_for_platform<'d>(
    platform: &Platform,
    descs: &'d [Descriptor],
) -> Result<&'d Descriptor> {
    let mut best: Option<(u8, &Descriptor)> = None;
    let mut available = Vec::new();
    if let [only] = descs {
        if only.platform.is_none() {
            best = Some((0, only));
        }
    }
    for d in descs {
        let Some(p) = &d.platform else { continue };
        let p = Platform::from(p);
        available.push(p.to_string());
        if let Some(score) = platform.score(&p) {
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, d));
            }
        }
    }
    match best {
        Some((_, chosen)) => Ok(chosen),
        None => {
            if available.is_empty() {
                available.push("unspecified".into());
            }
            Err(ImageError::NoMatchingPlatform {
                wanted: platform.to_string(),
                available: available.join(", "),
            })
        }
    }
}

/// Guesses whether a JSON document without a descriptor media type is an index or manifest.
pub(super) fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    match (p.media_type, p.manifests, p.layers) {
        (Some(mt), _, _) => Some(mt),
        (None, Some(_), None) => Some(oci::MT_OCI_INDEX.to_owned()),
        (None, None, Some(_)) => Some(oci::MT_OCI_MANIFEST.to_owned()),
        _ => None,
    }
}

impl ImageStore {
    /// Opens (creating it if needed) the store rooted at `dir`, for images of the host's
    /// platform. Staging directories left by an interrupted import are removed when no other
    /// process is importing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        for sub in ["blobs/sha256", "layers/sha256", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p)
                .map_err(|e| ImageError::io(format!("creating {}", p.display()), e))?;
        }
        let store = Self {
            root,
            platform: Platform::host(),
        };
        if let Some(_lock) = store.try_lock()? {
            let tmp = store.root.join("tmp");
            let entries = fs::read_dir(&tmp)
                .map_err(|e| ImageError::io(format!("listing {}", tmp.display()), e))?;
            for entry in entries.flatten() {
                let _ = remove_tree(&entry.path());
            }
        }
        Ok(store)
    }

    /// The same store, selecting images for `platform` instead of the host's.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// The platform images are selected for.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a blob in the store (it may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Path of an unpacked layer in the store (it may not exist).
    pub fn layer_rootfs(&self, diff_id: &Digest) -> PathBuf {
        self.layer_dir(diff_id).join("rootfs")
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    fn lock_file(&self) -> Result<File> {
        let path = self.root.join("lock");
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::io(format!("opening {}", path.display()), e))
    }

    pub(super) fn lock(&self) -> Result<StoreLock> {
        let file = self.lock_file()?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| ImageError::io("locking the image store", e))?;
        Ok(StoreLock { _file: file })
    }

    fn try_lock(&self) -> Result<Option<StoreLock>> {
        let file = self.lock_file()?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(StoreLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(ImageError::io("locking the image store", e)),
        }
    }

    /// Imports the one image of an OCI image-layout tarball (plain or gzip-compressed).
    ///
    /// The manifest is chosen for the store's [`platform`](Self::platform) from the
    /// tarball's `index.json` (and any nested index). The reference is the
    /// `io.containerd.image.name` annotation, else `org.opencontainers.image.ref.name`, else
    /// the manifest digest; importing a reference again repoints it.
    ///
    /// `budget` caps the bytes the import writes: every blob of the tarball that is not
    /// already in the store (blobs of other platforms included, as they are met before the
    /// index says which are needed) plus the content of the layers it unpacks. Layers already
    /// unpacked are reused, not charged. On any error the store is left as it was.
    pub fn import_oci_tar(&self, path: impl AsRef<Path>, budget: u64) -> Result<ImageRecord> {
        let mut images = self.import_inner(path.as_ref(), budget, false)?;
        Ok(images.remove(0))
    }

    /// Like [`import_oci_tar`](Self::import_oci_tar), for a tarball holding several images
    /// (`docker save a b`): imports them all, or none.
    pub fn import_oci_tar_all(
        &self,
        path: impl AsRef<Path>,
        budget: u64,
    ) -> Result<Vec<ImageRecord>> {
        self.import_inner(path.as_ref(), budget, true)
    }

    fn import_inner(&self, path: &Path, budget: u64, many: bool) -> Result<Vec<ImageRecord>> {
        let _lock = self.lock()?;
        let mut imp = Import::new(self, budget)?;
        self.read_tarball(&mut imp, path)?;
        let selected = self.select(&imp)?;
        if selected.is_empty() {
            return Err(ImageError::InvalidLayout(
                "index.json lists no image".into(),
            ));
        }
        if !many && selected.len() > 1 {
            return Err(ImageError::MultipleImages(
                selected.into_iter().map(|(r, _)| r).collect(),
            ));
        }
        for (_, manifest) in &selected {
            self.prepare(&mut imp, manifest)?;
        }
        self.commit(&imp, &selected)?;
        selected
            .iter()
            .map(|(reference, d)| self.record(reference, &Digest::parse(&d.digest)?))
            .collect()
    }

    /// Reads the tarball once: `oci-layout` and `index.json` into memory, every blob into
    /// staging (unless the store has it), each verified against its digest.
    fn read_tarball(&self, imp: &mut Import, path: &Path) -> Result<()> {
        let file = File::open(path)
            .map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
        let (stream, _) = decompress(file).map_err(|e| match e {
            DecompressError::Io(e) => ImageError::io(format!("reading {}", path.display()), e),
            DecompressError::Unsupported(what) => {
                ImageError::Unsupported(format!("tarball compression {what}"))
            }
        })?;
        let guard = Guard::new(stream);
        let ctl = guard.ctl();
        let mut archive = tar::Archive::new(guard);
        let mut last = String::new();
        let mut buf = vec![0u8; 64 * 1024];
        let entries = archive
            .entries()
            .map_err(|e| tarball_error(&ctl, path, &last, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| tarball_error(&ctl, path, &last, e))?;
            ctl.begin_data();
            last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            if kind.is_file() || kind == tar::EntryType::Continuous {
                let parts: Vec<&str> = last
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .collect();
                match parts.as_slice() {
                    ["oci-layout"] => {
                        imp.layout.oci_layout =
                            Some(read_capped(&mut entry, MAX_LAYOUT_FILE, "oci-layout")?);
                    }
                    ["index.json"] => {
                        imp.layout.index = Some(read_capped(&mut entry, MAX_DOC, "index.json")?);
                    }
                    ["blobs", "sha256", hex] => {
                        let digest = Digest::from_hex(hex).ok_or_else(|| {
                            ImageError::InvalidLayout(format!("bad blob name {last:?}"))
                        })?;
                        self.stage_blob(imp, path, &mut entry, &digest, &ctl, &last, &mut buf)?;
                    }
                    // Docker's legacy files, other algorithms: not needed.
                    _ => {}
                }
            }
            // Whatever was not read (ignored entries) still counts against the budget.
            loop {
                let n = entry
                    .read(&mut buf)
                    .map_err(|e| tarball_error(&ctl, path, &last, e))?;
                if n == 0 {
                    break;
                }
                imp.budget.charge(n as u64).map_err(|(needed, left)| {
                    ImageError::BudgetExceeded {
                        what: last.clone(),
                        needed,
                        left,
                    }
                })?;
            }
            ctl.end_data();
        }
        if ctl.eof.get() {
            return Err(ImageError::Truncated { after: last });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn stage_blob<R: Read>(
        &self,
        imp: &mut Import,
        source: &Path,
        entry: &mut tar::Entry<'_, R>,
        digest: &Digest,
        ctl: &GuardCtl,
        name: &str,
        buf: &mut [u8],
    ) -> Result<()> {
        if imp.layout.blobs.contains(digest) {
            return Ok(()); // A duplicate entry: the first copy was verified.
        }
        let size = entry.size();
        let mut out = if self.blob_path(digest).exists() {
            None // Only verify: the store has it.
        } else {
            if size > imp.budget.bytes_left() {
                return Err(ImageError::BudgetExceeded {
                    what: name.to_owned(),
                    needed: size,
                    left: imp.budget.bytes_left(),
                });
            }
            let p = imp.staging.blob(digest);
            Some(
                File::create_new(&p)
                    .map_err(|e| ImageError::io(format!("creating {}", p.display()), e))?,
            )
        };
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        loop {
            let n = entry
                .read(buf)
                .map_err(|e| tarball_error(ctl, source, name, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
            if let Some(f) = out.as_mut() {
                imp.budget.charge(n as u64).map_err(|(needed, left)| {
                    ImageError::BudgetExceeded {
                        what: name.to_owned(),
                        needed,
                        left,
                    }
                })?;
                f.write_all(&buf[..n])
                    .map_err(|e| ImageError::io(format!("writing blob {digest}"), e))?;
            }
        }
        if read != size {
            return Err(ImageError::Truncated {
                after: name.to_owned(),
            });
        }
        let actual = Digest::from_sha256(&hasher.finalize());
        if &actual != digest {
            return Err(ImageError::DigestMismatch {
                what: "blob",
                expected: digest.clone(),
                actual,
            });
        }
        imp.layout.blobs.insert(digest.clone());
        Ok(())
    }

    /// Where a verified blob of this import is: staged, or in the store.
    fn blob_file(&self, imp: &Import, digest: &Digest) -> Result<PathBuf> {
        let staged = imp.staging.blob(digest);
        if imp.layout.blobs.contains(digest) && staged.exists() {
            return Ok(staged);
        }
        let stored = self.blob_path(digest);
        if stored.exists() {
            return Ok(stored);
        }
        Err(ImageError::MissingBlob(digest.clone()))
    }

    /// Opens the blob a descriptor points to, checking its size.
    fn open_blob(&self, imp: &Import, desc: &Descriptor) -> Result<(Digest, File)> {
        let digest = Digest::parse(&desc.digest)?;
        let path = self.blob_file(imp, &digest)?;
        let file = File::open(&path)
            .map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
        let actual = file
            .metadata()
            .map_err(|e| ImageError::io(format!("stat {}", path.display()), e))?
            .len();
        if actual != desc.size {
            return Err(ImageError::SizeMismatch {
                digest,
                expected: desc.size,
                actual,
            });
        }
        Ok((digest, file))
    }

    fn read_doc(&self, imp: &Import, desc: &Descriptor) -> Result<(Digest, Vec<u8>)> {
        let (digest, file) = self.open_blob(imp, desc)?;
        let bytes = read_capped(file, MAX_DOC, &format!("blob {digest}"))?;
        Ok((digest, bytes))
    }

    /// Chooses one manifest per image named in `index.json`.
    fn select(&self, imp: &Import) -> Result<Vec<(String, Descriptor)>> {
        let layout = imp
            .layout
            .oci_layout
            .as_deref()
            .ok_or_else(|| ImageError::InvalidLayout("no oci-layout file".into()))?;
        let layout: OciLayout = json(layout, "oci-layout")?;
        if !layout.image_layout_version.starts_with("1.") {
            return Err(ImageError::Unsupported(format!(
                "image layout version {}",
                layout.image_layout_version
            )));
        }
        let index = imp
            .layout
            .index
            .as_deref()
            .ok_or_else(|| ImageError::InvalidLayout("no index.json".into()))?;
        let index: Index = json(index, "index.json")?;
        if index.schema_version != 2 {
            return Err(ImageError::Unsupported(format!(
                "index.json schemaVersion {}",
                index.schema_version
            )));
        }
        // Group the entries by the image they name, keeping the tarball's order.
        let mut groups: Vec<(Option<String>, Vec<Descriptor>)> = Vec::new();
        for d in index.manifests {
            let name = d
                .annotations
                .get(oci::ANN_CONTAINERD_NAME)
                .or_else(|| d.annotations.get(oci::ANN_REF_NAME))
                .cloned();
            match groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(d),
                None => groups.push((name, vec![d])),
            }
        }
        let mut out = Vec::new();
        for (name, descs) in groups {
            let manifest = self.choose(imp, &descs, 0)?;
            let reference = name.unwrap_or_else(|| manifest.digest.clone());
            if out.iter().any(|(r, _)| *r == reference) {
                continue;
            }
            out.push((reference, manifest));
        }
        Ok(out)
    }

    /// Picks the manifest for the store's platform among `descs`, following nested indexes.
    fn choose(&self, imp: &Import, descs: &[Descriptor], depth: usize) -> Result<Descriptor> {
        if depth > MAX_INDEX_DEPTH {
            return Err(ImageError::InvalidLayout(
                "indexes nested too deeply".into(),
            ));
        }
        let chosen = best_for_platform(&self.platform, descs)?;
        let media_type = match &chosen.media_type {
            Some(mt) => mt.clone(),
            None => {
                let (_, bytes) = self.read_doc(imp, chosen)?;
                sniff_media_type(&bytes).unwrap_or_default()
            }
        };
        if oci::is_manifest(&media_type) {
            return Ok(chosen.clone());
        }
        if oci::is_index(&media_type) {
            let (digest, bytes) = self.read_doc(imp, chosen)?;
            let nested: Index = json(&bytes, format!("index {digest}"))?;
            return self.choose(imp, &nested.manifests, depth + 1);
        }
        Err(ImageError::Unsupported(format!(
            "manifest media type {media_type:?} ({})",
            chosen.digest
        )))
    }

    /// Verifies a selected image and unpacks its layers into staging.
    pub(super) fn prepare(&self, imp: &mut Import, desc: &Descriptor) -> Result<()> {
        let (mdigest, bytes) = self.read_doc(imp, desc)?;
        let manifest: Manifest = json(&bytes, format!("manifest {mdigest}"))?;
        if manifest.schema_version != 2 {
            return Err(ImageError::Unsupported(format!(
                "manifest {mdigest} schemaVersion {}",
                manifest.schema_version
            )));
        }
        if let Some(mt) = &manifest.media_type {
            if !oci::is_manifest(mt) {
                return Err(ImageError::Unsupported(format!(
                    "manifest media type {mt:?}"
                )));
            }
        }
        let config_type = manifest.config.media_type.as_deref().unwrap_or_default();
        if !CONFIG_TYPES.contains(&config_type) {
            return Err(ImageError::Unsupported(format!(
                "config media type {config_type:?} (not a container image)"
            )));
        }
        let (cdigest, cbytes) = self.read_doc(imp, &manifest.config)?;
        let config: ConfigFile = json(&cbytes, format!("config {cdigest}"))?;
        if let (Some(os), Some(arch)) = (&config.os, &config.architecture) {
            let p = Platform::new(os, arch, config.variant.as_deref());
            if self.platform.score(&p).is_none() {
                return Err(ImageError::NoMatchingPlatform {
                    wanted: self.platform.to_string(),
                    available: p.to_string(),
                });
            }
        }
        if config.rootfs.kind != "layers" || config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::InvalidLayout(format!(
                "config {cdigest}: rootfs lists {} diff IDs for {} layers",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        imp.used_blobs.insert(mdigest);
        imp.used_blobs.insert(cdigest);
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let media_type = layer.media_type.as_deref().unwrap_or_default();
            oci::layer_supported(media_type).map_err(ImageError::Unsupported)?;
            let diff_id = Digest::parse(diff_id)?;
            let (digest, file) = self.open_blob(imp, layer)?;
            imp.used_blobs.insert(digest.clone());
            if self.layer_rootfs(&diff_id).is_dir() || imp.layers.contains(&diff_id) {
                continue;
            }
            let rootfs = imp.staging.layer(&diff_id).join("rootfs");
            fs::create_dir_all(&rootfs)
                .map_err(|e| ImageError::io(format!("creating {}", rootfs.display()), e))?;
            let stats = unpack_layer(file, &rootfs, &mut imp.budget).map_err(|source| {
                ImageError::Unpack {
                    layer: digest.clone(),
                    source,
                }
            })?;
            if stats.diff_id != diff_id {
                return Err(ImageError::DigestMismatch {
                    what: "layer diff ID",
                    expected: diff_id,
                    actual: stats.diff_id,
                });
            }
            imp.layers.insert(diff_id);
        }
        Ok(())
    }

    /// Moves the used blobs and new layers into the store and points the references at their
    /// manifests. Undoes the moves if a later step fails.
    pub(super) fn commit(&self, imp: &Import, selected: &[(String, Descriptor)]) -> Result<()> {
        let staging_dir = File::open(&imp.staging.path)
            .map_err(|e| ImageError::io("opening staging directory", e))?;
        // One flush of everything written, instead of an fsync per file.
        rustix::fs::syncfs(&staging_dir).map_err(|e| ImageError::io("syncfs", e))?;
        let mut moved: Vec<PathBuf> = Vec::new();
        let result = (|| {
            for digest in &imp.used_blobs {
                let from = imp.staging.blob(digest);
                let to = self.blob_path(digest);
                if from.exists() && !to.exists() {
                    fs::rename(&from, &to)
                        .map_err(|e| ImageError::io(format!("moving blob {digest}"), e))?;
                    moved.push(to);
                }
            }
            for diff_id in &imp.layers {
                let to = self.layer_dir(diff_id);
                if !to.exists() {
                    fs::rename(imp.staging.layer(diff_id), &to)
                        .map_err(|e| ImageError::io(format!("moving layer {diff_id}"), e))?;
                    moved.push(to);
                }
            }
            fsync_dir(&self.root.join("blobs/sha256"))?;
            fsync_dir(&self.root.join("layers/sha256"))?;
            let mut refs = self.load_refs()?;
            for (reference, desc) in selected {
                refs.refs.insert(reference.clone(), desc.digest.clone());
            }
            self.save_refs(&refs)
        })();
        if result.is_err() {
            for p in moved.iter().rev() {
                let _ = if p.is_dir() {
                    remove_tree(p)
                } else {
                    fs::remove_file(p)
                };
            }
        }
        result
    }

    fn load_refs(&self) -> Result<RefsFile> {
        let path = self.root.join(REFS_FILE);
        match fs::read(&path) {
            Ok(bytes) => json(&bytes, REFS_FILE),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RefsFile {
                version: 1,
                refs: BTreeMap::new(),
            }),
            Err(e) => Err(ImageError::io(format!("reading {}", path.display()), e)),
        }
    }

    fn save_refs(&self, refs: &RefsFile) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(refs).map_err(|source| ImageError::Json {
            what: REFS_FILE.into(),
            source,
        })?;
        write_atomic(&self.root, REFS_FILE, &bytes)
    }

    /// Finds the stored reference `reference` designates: itself, the same name normalized
    /// (`alpine` = `docker.io/library/alpine:latest`), or a manifest digest.
    fn find_ref(refs: &RefsFile, reference: &str) -> Option<(String, String)> {
        if let Some(d) = refs.refs.get(reference) {
            return Some((reference.to_owned(), d.clone()));
        }
        let wanted = oci::normalize_reference(reference);
        refs.refs
            .iter()
            .find(|(k, _)| oci::normalize_reference(k) == wanted)
            .or_else(|| refs.refs.iter().find(|(_, d)| d.as_str() == reference))
            .map(|(k, d)| (k.clone(), d.clone()))
    }

    fn read_stored_doc(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(f) => read_capped(f, MAX_DOC, &format!("blob {digest}")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ImageError::MissingBlob(digest.clone()))
            }
            Err(e) => Err(ImageError::io(format!("opening {}", path.display()), e)),
        }
    }

    /// Builds the record of a stored image from its manifest and config blobs.
    pub(super) fn record(&self, reference: &str, manifest_digest: &Digest) -> Result<ImageRecord> {
        let bytes = self.read_stored_doc(manifest_digest)?;
        let manifest: Manifest = json(&bytes, format!("manifest {manifest_digest}"))?;
        let config_digest = Digest::parse(&manifest.config.digest)?;
        let cbytes = self.read_stored_doc(&config_digest)?;
        let config: ConfigFile = json(&cbytes, format!("config {config_digest}"))?;
        let platform = match (&config.os, &config.architecture) {
            (Some(os), Some(arch)) => Platform::new(os, arch, config.variant.as_deref()),
            _ => self.platform.clone(),
        };
        let layers = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(l, diff_id)| {
                let diff_id = Digest::parse(diff_id)?;
                Ok(LayerRecord {
                    digest: Digest::parse(&l.digest)?,
                    rootfs: self.layer_rootfs(&diff_id),
                    diff_id,
                    media_type: l.media_type.clone().unwrap_or_default(),
                    size: l.size,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ImageRecord {
            reference: reference.to_owned(),
            manifest_digest: manifest_digest.clone(),
            config_digest,
            platform,
            layers,
            config: config.config.unwrap_or_default().into(),
        })
    }

    /// The image a reference designates: the exact reference, the same name normalized as
    /// Docker does (`alpine` finds `docker.io/library/alpine:latest`), or a manifest digest.
    pub fn get(&self, reference: &str) -> Result<Option<ImageRecord>> {
        let refs = self.load_refs()?;
        match Self::find_ref(&refs, reference) {
            Some((name, digest)) => Ok(Some(self.record(&name, &Digest::parse(&digest)?)?)),
            None => Ok(None),
        }
    }

    /// All images, ordered by reference.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let refs = self.load_refs()?;
        refs.refs
            .iter()
            .map(|(name, digest)| self.record(name, &Digest::parse(digest)?))
            .collect()
    }

    /// Removes a reference (looked up as by [`get`](Self::get)), then the blobs and layers no
    /// remaining reference uses. Returns whether the reference existed.
    ///
    /// The caller must not remove an image that running containers use: their overlay lower
    /// directories would be deleted under them.
    pub fn remove(&self, reference: &str) -> Result<bool> {
        let _lock = self.lock()?;
        let mut refs = self.load_refs()?;
        let Some((name, _)) = Self::find_ref(&refs, reference) else {
            return Ok(false);
        };
        refs.refs.remove(&name);
        self.save_refs(&refs)?;
        self.gc_locked()?;
        Ok(true)
    }

    /// Deletes the blobs and unpacked layers no reference uses; returns how many. The same
    /// caveat as [`remove`](Self::remove) applies to layers of running containers.
    pub fn gc(&self) -> Result<usize> {
        let _lock = self.lock()?;
        self.gc_locked()
    }

    fn gc_locked(&self) -> Result<usize> {
        let refs = self.load_refs()?;
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for digest in refs.refs.values() {
            // Any unreadable image aborts the collection: better keep garbage than lose data.
            let record = self.record("", &Digest::parse(digest)?)?;
            blobs.insert(record.manifest_digest.hex().to_owned());
            blobs.insert(record.config_digest.hex().to_owned());
            for l in record.layers {
                blobs.insert(l.digest.hex().to_owned());
                layers.insert(l.diff_id.hex().to_owned());
            }
        }
        let mut removed = 0;
        for (dir, keep, is_tree) in [
            ("blobs/sha256", &blobs, false),
            ("layers/sha256", &layers, true),
        ] {
            let dir = self.root.join(dir);
            let entries = fs::read_dir(&dir)
                .map_err(|e| ImageError::io(format!("listing {}", dir.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| ImageError::io(format!("listing {}", dir.display()), e))?;
                let name = entry.file_name();
                if keep.contains(name.to_string_lossy().as_ref()) {
                    continue;
                }
                let path = entry.path();
                let res = if is_tree {
                    remove_tree(&path)
                } else {
                    fs::remove_file(&path)
                };
                res.map_err(|e| ImageError::io(format!("removing {}", path.display()), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
