//! Local OCI image store: pulls from registries, import of OCI image-layout tarballs, safe
//! layer unpacking; and building and pushing images without a container engine.
//!
//! Connected nodes pull: [`ImageStore::pull`] speaks the OCI distribution API to the
//! registry or its mirrors (plain HTTP for registries the node's registries file names with
//! an `http://` endpoint, HTTPS with extra CAs, basic and bearer-token auth from
//! `imagePullSecrets` or that file), resolves a multi-arch index to the node's platform
//! including the ARM variant, and verifies every blob while it streams in (see [`pull`] and
//! [`registries`]). [`pull_decision`] applies a container's `imagePullPolicy`.
//!
//! Air-gapped nodes get their images as OCI image-layout tarballs (`oci-layout`, `index.json`,
//! `blobs/sha256/…`, as written by `skopeo copy … oci-archive:`, `podman save --format
//! oci-archive` or `docker save` ≥ 25). [`ImageStore::import_oci_tar`] reads such a tarball,
//! verifies every blob against its sha256 digest, picks the manifest for the node's
//! [`Platform`] and unpacks each layer **once**, keyed by its diff ID (the digest of the
//! uncompressed layer, which is verified too). Containers then share the unpacked layers
//! read-only as overlayfs lower directories, each with an upper directory of its own.
//!
//! [`build_oci_tar`] goes the other way: it packs a directory or a single static binary into a
//! one-layer image tarball, reproducibly (`kelp-agent image build`; see [`build`]);
//! [`build_oci_index_tar`] packs one per platform under an image index, and [`push_oci_tar`]
//! sends a tarball's image or index to a registry (`kelp-agent image push`).
//!
//! On-disk layout of a store rooted at `/var/lib/kelp/images`:
//!
//! ```text
//! blobs/sha256/<hex>              content-addressed blobs (manifests, configs, layer archives)
//! layers/sha256/<diff-id>/rootfs  unpacked layers, read-only by convention
//! refs.json                       reference -> manifest digest, replaced atomically
//! tmp/                            staging of imports and pulls in progress
//! lock                            flock(2) serializing imports, pulls, removals and collection
//! ```
//!
//! # Safety of unpacking
//!
//! Layer unpacking ([`unpack_layer`]) is the classic attack surface of container runtimes, and
//! the `tar` crate's own `unpack` resolves paths on the host. Here every path is resolved
//! component by component *inside* the layer root with `openat(O_NOFOLLOW)`, symlinks being
//! resolved by the unpacker with chroot semantics (an absolute target or a `..` can never climb
//! above the root), so no entry creates or writes anything outside the root, whatever its
//! absolute path, symlinks or hard links. Entry names containing a `..` component are errors.
//! See [`unpack`] for the full rules.
//!
//! # Failure atomicity
//!
//! An import or a pull works in a private staging directory under `tmp/`; blobs and layers
//! are renamed into place only once everything has been verified, and the reference index is
//! written last (temporary file, fsync, rename). A failed import or pull (bad digest, escape
//! attempt, over budget, truncated archive or connection, wrong platform) removes its staging
//! directory and leaves the store as it was; the staging directory of a process killed midway
//! is removed by the next [`ImageStore::open`].

pub mod build;
mod client;
mod inroot;
pub mod oci;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registries;
pub mod store;
pub mod unpack;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;

pub use build::{
    build_oci_index_tar, build_oci_tar, busybox_rootfs, busybox_rootfs_from, BuildError,
    BuildOptions, BuiltImage, BuiltIndex, Ownership,
};
pub use client::RegistryError;
pub use oci::{ImageConfig, ParsePlatformError, Platform};
pub use pull::{
    pull_decision, PullDecision, PullOptions, PullPolicy, PullProgress, PullReport,
    RegistryOptions, RetryPolicy,
};
pub use push::{push_oci_tar, PushReport};
pub use reference::{ParseReferenceError, Reference};
pub use registries::{
    Credentials, DockerConfigJson, RegistriesConfig, RegistriesError, REGISTRIES_FILE,
};
pub use store::{ImageRecord, ImageStore, LayerRecord};
pub use unpack::{unpack_layer, Budget, UnpackStats};

/// A content digest, `sha256:<64 lowercase hex digits>` (the only algorithm supported).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; anything else (other algorithms, upper-case or short hex) is
    /// rejected, so a digest can always be used as a file name.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| ImageError::InvalidDigest(s.to_owned()))?;
        Self::from_hex(hex).ok_or_else(|| ImageError::InvalidDigest(s.to_owned()))
    }

    /// Builds a digest from the 64 lowercase hex digits of a sha256.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Self(format!("sha256:{hex}")))
    }

    /// Builds the digest of a finished sha256 computation.
    pub(crate) fn from_sha256(hash: &[u8]) -> Self {
        use fmt::Write;
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in hash {
            let _ = write!(s, "{b:02x}");
        }
        Self(s)
    }

    /// The hex part, used as a file name in the store.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a layer could not be unpacked. Every variant names the offending archive entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The entry's path has a `..` component (never accepted, whatever it would resolve to).
    #[error("layer entry {entry:?}: path contains a `..` component")]
    DotDot {
        /// The entry's path as written in the archive.
        entry: String,
    },
    /// The entry's path or link target is unusable (NUL byte, too long, empty, …).
    #[error("layer entry {entry:?}: {reason}")]
    InvalidEntry {
        /// The entry's path as written in the archive.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A hard link whose target is missing, outside this layer or not a regular file.
    #[error("layer entry {entry:?}: hard link to {target:?} refused: {reason}")]
    BadHardLink {
        /// The entry's path.
        entry: String,
        /// The link target as written in the archive.
        target: String,
        /// Why it is refused.
        reason: String,
    },
    /// A component of the entry's parent path exists and is not a directory.
    #[error("layer entry {entry:?}: {component:?} is not a directory")]
    NotADirectory {
        /// The entry's path.
        entry: String,
        /// The component (after symlink resolution) that is not a directory.
        component: String,
    },
    /// Resolving the entry's parent went through more than 40 symlinks.
    #[error("layer entry {entry:?}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The entry's path.
        entry: String,
    },
    /// Writing the entry would exceed the size budget (nothing of it was written).
    #[error("layer entry {entry:?}: size budget exceeded ({needed} bytes needed, {left} left)")]
    BudgetExceeded {
        /// The entry's path.
        entry: String,
        /// Bytes the entry needs.
        needed: u64,
        /// Bytes left in the budget.
        left: u64,
    },
    /// The archive has more entries than the budget allows.
    #[error("layer entry {entry:?}: too many entries (limit {limit})")]
    TooManyEntries {
        /// The first entry over the limit.
        entry: String,
        /// The entry limit.
        limit: u64,
    },
    /// Headers, long names or PAX records between two entries are implausibly large.
    #[error("layer archive metadata too large after entry {after:?}")]
    MetadataTooLarge {
        /// The last entry read before the oversized metadata (empty at the start).
        after: String,
    },
    /// The archive ends in the middle of an entry or without its end-of-archive marker.
    #[error("layer archive truncated after entry {after:?}")]
    Truncated {
        /// The last entry read (empty if none).
        after: String,
    },
    /// The layer is compressed in a format this build does not read.
    #[error("unsupported layer compression: {0}")]
    UnsupportedCompression(&'static str),
    /// Reading or decoding the archive failed.
    #[error("reading layer archive after entry {after:?}: {source}")]
    Archive {
        /// The last entry read (empty if none).
        after: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation for the entry failed.
    #[error("layer entry {entry:?}: {op}: {source}")]
    Io {
        /// The entry's path (or the unpack root for setup failures).
        entry: String,
        /// The operation that failed.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A digest string is not `sha256:<64 lowercase hex>`.
    #[error("invalid or unsupported digest {0:?}")]
    InvalidDigest(String),
    /// A blob's content does not match its digest (or a layer's content its diff ID).
    #[error("{what} {expected}: content digest is {actual}")]
    DigestMismatch {
        /// What was checked (`blob`, `layer diff ID`).
        what: &'static str,
        /// The digest the content should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A blob's size does not match the size its descriptor declares.
    #[error("blob {digest}: descriptor says {expected} bytes, blob has {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Declared size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// A blob referenced by the image is not in the tarball (nor already in the store).
    #[error("blob {0} is referenced but missing")]
    MissingBlob(Digest),
    /// The tarball or one of its documents does not follow the OCI image layout.
    #[error("invalid OCI image layout: {0}")]
    InvalidLayout(String),
    /// A JSON document could not be parsed.
    #[error("invalid {what}: {source}")]
    Json {
        /// Which document (`index.json`, `manifest sha256:…`, …).
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Nothing in the tarball is for the node's platform.
    #[error("no image for platform {wanted} (available: {available})")]
    NoMatchingPlatform {
        /// The node's platform.
        wanted: String,
        /// The platforms found, comma-separated.
        available: String,
    },
    /// A media type (or a feature such as zstd layers) this store does not handle.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// The tarball holds several images; [`ImageStore::import_oci_tar`] imports exactly one.
    #[error("the tarball holds {} images ({}); import them with import_oci_tar_all", .0.len(), .0.join(", "))]
    MultipleImages(Vec<String>),
    /// The import would write more bytes than its budget.
    #[error("import size budget exceeded at {what} ({needed} bytes needed, {left} left)")]
    BudgetExceeded {
        /// What was being written.
        what: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        left: u64,
    },
    /// The outer tarball is truncated.
    #[error("image tarball truncated after {after:?}")]
    Truncated {
        /// The last entry read.
        after: String,
    },
    /// A layer failed to unpack.
    #[error("layer {layer}: {source}")]
    Unpack {
        /// The layer blob digest.
        layer: Digest,
        /// What went wrong.
        #[source]
        source: UnpackError,
    },
    /// An image reference could not be parsed.
    #[error(transparent)]
    InvalidReference(#[from] ParseReferenceError),
    /// A registry refused a request or could not be reached.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registries file or a pull secret is unusable.
    #[error(transparent)]
    Registries(#[from] RegistriesError),
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Self::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}
