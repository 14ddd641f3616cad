//! The OCI image documents the store reads (index, manifest, config) and platform matching.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// OCI image index (also `index.json` of an image layout).
pub(crate) const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list (schema 2), the Docker equivalent of an index.
pub(crate) const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub(crate) const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker image manifest (schema 2).
pub(crate) const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Annotation naming an image in an OCI layout (often just the tag).
pub(crate) const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and `docker save` put the full image name in.
pub(crate) const ANN_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The `platform` of an index entry.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PlatformJson {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// `oci-layout`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OciLayout {
    pub image_layout_version: String,
}

/// An image index or Docker manifest list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    pub schema_version: u32,
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image configuration (only what the agent uses).
#[derive(Debug, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

/// `config` of an image configuration.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ContainerConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

/// `rootfs` of an image configuration.
#[derive(Debug, Deserialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// How a container of an image runs by default (the image config's `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint` (empty when unset).
    pub entrypoint: Vec<String>,
    /// `Cmd` (empty when unset).
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value` strings.
    pub env: Vec<String>,
    /// `WorkingDir`, if set and not empty.
    pub working_dir: Option<String>,
    /// `User` (`uid`, `uid:gid`, `name`, …), if set and not empty.
    pub user: Option<String>,
}

impl From<ContainerConfig> for ImageConfig {
    fn from(c: ContainerConfig) -> Self {
        Self {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.filter(|s| !s.is_empty()),
            user: c.user.filter(|s| !s.is_empty()),
        }
    }
}

/// An OCI platform: `os/architecture[/variant]`, with OCI's (Go's) architecture names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v8` for arm64, `v7`/`v6` for arm, none elsewhere.
    pub variant: Option<String>,
}

impl Platform {
    /// Builds a platform from its parts (architecture names are normalized: `aarch64` →
    /// `arm64`, `x86_64` → `amd64`, `armhf` → `arm`; the variant `v8` of arm64 is implied).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let (architecture, default_variant) = match architecture {
            "x86_64" | "x86-64" | "amd64" => ("amd64", None),
            "aarch64" | "arm64" => ("arm64", Some("v8")),
            "armhf" | "armv7" | "armv7l" => ("arm", Some("v7")),
            "arm" => ("arm", None),
            "i386" | "i686" | "386" => ("386", None),
            other => (other, None),
        };
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.or(default_variant).map(str::to_owned),
        }
    }

    /// The platform this binary runs on (`linux/arm/v7` for every 32-bit ARM build: the
    /// targets kelp ships are armv7).
    pub fn host() -> Self {
        let arch = std::env::consts::ARCH;
        let variant = (arch == "arm").then_some("v7");
        Self::new(std::env::consts::OS, arch, variant)
    }

    /// How well an image for `other` fits this (node) platform: `None` if it cannot run,
    /// higher is better (exact variant, then unspecified variant, then an older ARM variant).
    pub(crate) fn score(&self, other: &Platform) -> Option<u8> {
        if self.os != other.os || self.architecture != other.architecture {
            return None;
        }
        match (&self.variant, &other.variant) {
            (a, b) if a == b => Some(3),
            (_, None) => Some(2),
            // A v8 CPU runs arm64 images however they spell their variant.
            (Some(_), Some(_)) if self.architecture == "arm64" => Some(2),
            (Some(mine), Some(theirs)) if self.architecture == "arm" => {
                let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u8>().ok());
                match (level(mine), level(theirs)) {
                    (Some(m), Some(t)) if t < m => Some(1),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl From<&PlatformJson> for Platform {
    fn from(p: &PlatformJson) -> Self {
        Self::new(&p.os, &p.architecture, p.variant.as_deref())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Why a string is not an `os/architecture[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/architecture[/variant], such as linux/arm64 or linux/arm/v7")]
pub struct ParsePlatformError(pub String);

impl FromStr for Platform {
    type Err = ParsePlatformError;

    /// Parses `os/architecture[/variant]` (`linux/amd64`, `linux/arm/v7`), normalizing the
    /// architecture as [`Platform::new`] does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Self::new(os, arch, None)),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => {
                Ok(Self::new(os, arch, Some(variant)))
            }
            _ => Err(ParsePlatformError(s.to_owned())),
        }
    }
}

/// Whether a media type is an image index / manifest list.
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == MT_OCI_INDEX || media_type == MT_DOCKER_LIST
}

/// Whether a media type is an image manifest.
pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == MT_OCI_MANIFEST || media_type == MT_DOCKER_MANIFEST
}

/// Whether a layer media type is one the unpacker reads (tar, tar+gzip; zstd is refused).
pub(crate) fn layer_supported(media_type: &str) -> Result<(), String> {
    const OK: &[&str] = &[
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ];
    if OK.contains(&media_type) {
        Ok(())
    } else {
        Err(format!("layer media type {media_type:?}"))
    }
}

/// Normalizes an image reference the way Docker does (`alpine` →
/// `docker.io/library/alpine:latest`), for lookups that tolerate short names.
pub(crate) fn normalize_reference(reference: &str) -> String {
    let (name, suffix) = match reference.find('@') {
        Some(at) => (&reference[..at], &reference[at..]),
        None => {
            // A tag is a `:` after the last `/` (a `:` before it is a registry port).
            let slash = reference.rfind('/').map_or(0, |i| i + 1);
            match reference[slash..].rfind(':') {
                Some(colon) => reference.split_at(slash + colon),
                None => (reference, ""),
            }
        }
    };
    let suffix = if suffix.is_empty() { ":latest" } else { suffix };
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_owned())
        }
        _ => ("docker.io", name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    format!("{domain}/{path}{suffix}")
}
