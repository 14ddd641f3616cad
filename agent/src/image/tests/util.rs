//! Archive builders and filesystem helpers for the tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

/// Builds a tar archive entry by entry, writing paths and link names as raw bytes so that
/// `..`, absolute paths and other hostile names get through.
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl TarBuilder {
    pub fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends an entry with full control over its header.
    #[allow(clippy::too_many_arguments)]
    pub fn raw(
        &mut self,
        path: &str,
        kind: EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        link: &str,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        let name = path.as_bytes();
        assert!(name.len() <= 100, "test paths must fit the old header");
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name_literal(link).unwrap();
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(path, EntryType::Regular, mode, 0, 0, "", data)
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.raw(path, EntryType::Directory, mode, 0, 0, "", b"")
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(path, EntryType::Symlink, 0o777, 0, 0, target, b"")
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(path, EntryType::Link, 0o644, 0, 0, target, b"")
    }

    /// Appends a PAX extended header (type `x`) with the given records for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            // "<len> <key>=<value>\n", where len counts itself.
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len.to_string().len() + body != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw("PaxHeader", EntryType::XHeader, 0o644, 0, 0, "", &data)
    }

    /// The archive, with its end-of-archive marker.
    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sha256(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Every path below `dir` (relative), with its type, size and inode, for before/after
/// comparisons.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, u64, i64)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, u64, u64, i64)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            out.insert(
                p.strip_prefix(base).unwrap().to_path_buf(),
                (md.mode(), md.size(), md.ino(), md.mtime()),
            );
            if md.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A layout tarball under construction: blobs plus an `index.json`.
pub struct Oci {
    pub blobs: Vec<(String, Vec<u8>)>,
    /// Diff IDs to write into the next config instead of the true ones.
    pub override_diff_ids: Option<Vec<String>>,
}

/// What [`Oci::image`] produced.
pub struct BuiltImage {
    /// Descriptor of the manifest (JSON object).
    pub descriptor: serde_json::Value,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    pub diff_ids: Vec<String>,
}

impl Oci {
    pub fn new() -> Self {
        Self {
            blobs: Vec::new(),
            override_diff_ids: None,
        }
    }

    pub fn add_blob(&mut self, bytes: Vec<u8>) -> (String, u64) {
        let d = sha256(&bytes);
        let len = bytes.len() as u64;
        if !self.blobs.iter().any(|(x, _)| *x == d) {
            self.blobs.push((d.clone(), bytes));
        }
        (d, len)
    }

    /// Adds an image for `arch` whose layers are the given tar archives (gzipped when
    /// `gzip`), and returns its manifest descriptor carrying a platform.
    pub fn image(&mut self, arch: &str, layers: &[Vec<u8>], gzip_layers: bool) -> BuiltImage {
        let mut layer_descs = Vec::new();
        let mut layer_digests = Vec::new();
        let mut diff_ids = Vec::new();
        for l in layers {
            diff_ids.push(sha256(l));
            let (bytes, mt) = if gzip_layers {
                (gzip(l), "application/vnd.oci.image.layer.v1.tar+gzip")
            } else {
                (l.clone(), "application/vnd.oci.image.layer.v1.tar")
            };
            let (d, size) = self.add_blob(bytes);
            layer_digests.push(d.clone());
            layer_descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": size}));
        }
        if let Some(fake) = self.override_diff_ids.take() {
            diff_ids = fake;
        }
        let (variant, arch_name) = match arch {
            "arm64" => (Some("v8"), "arm64"),
            "arm" => (Some("v7"), "arm"),
            other => (None, other),
        };
        let mut config = serde_json::json!({
            "architecture": arch_name,
            "os": "linux",
            "config": {
                "Entrypoint": ["/bin/app"],
                "Cmd": ["--arch", arch],
                "Env": ["PATH=/usr/bin:/bin", format!("ARCH={arch}")],
                "WorkingDir": "/srv",
                "User": "1000:1000"
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        if let Some(v) = variant {
            config["variant"] = v.into();
        }
        let (config_digest, config_size) = self.add_blob(serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size
            },
            "layers": layer_descs,
        });
        let (manifest_digest, msize) = self.add_blob(serde_json::to_vec(&manifest).unwrap());
        let mut platform = serde_json::json!({"architecture": arch_name, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        BuiltImage {
            descriptor: serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": msize,
                "platform": platform,
            }),
            manifest_digest,
            config_digest,
            layer_digests,
            diff_ids,
        }
    }

    /// Adds a nested image index over `manifests` and returns its descriptor, named `name`.
    pub fn index(
        &mut self,
        manifests: &[serde_json::Value],
        name: Option<&str>,
    ) -> serde_json::Value {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let (d, size) = self.add_blob(serde_json::to_vec(&index).unwrap());
        let mut desc = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d,
            "size": size,
        });
        if let Some(n) = name {
            desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": n});
        }
        desc
    }

    /// Writes the layout tarball with `index.json` listing `top`, returning its bytes.
    /// `tamper` may rewrite a blob's bytes after its name was computed.
    pub fn tarball(
        &self,
        top: &[serde_json::Value],
        tamper: impl Fn(&str, &mut Vec<u8>),
    ) -> Vec<u8> {
        let index = serde_json::json!({"schemaVersion": 2, "manifests": top});
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(EntryType::Regular);
            b.append_data(&mut h, path, data).unwrap();
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        for (d, bytes) in &self.blobs {
            let mut bytes = bytes.clone();
            tamper(d, &mut bytes);
            add(&format!("blobs/sha256/{}", &d["sha256:".len()..]), &bytes);
        }
        add("index.json", &serde_json::to_vec(&index).unwrap());
        b.into_inner().unwrap()
    }
}

/// Adds a ref-name annotation to a descriptor.
pub fn named(mut desc: serde_json::Value, name: &str) -> serde_json::Value {
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
    desc
}
