//! Pushing an OCI image-layout tarball to a registry (`kelp-agent image push OCI.tar REF`).
//!
//! The tarball's `index.json` must name one image: a manifest, or an index of per-platform
//! manifests (what `kelp-agent image build --platform A=… --platform B=…` writes). Its blobs
//! are verified against their digests while they are read, then uploaded bottom-up (layers and
//! configs, each manifest by digest, the top manifest or index by the reference's tag), each
//! blob only if the registry does not have it yet (`HEAD` first). Pushes go to the registry
//! itself, never a mirror; its `http://` entry in the registries file makes it plain HTTP.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};
use ureq::http;

use super::client::{Client, Payload, RegistryError};
use super::oci::{self, Descriptor, Index, Manifest};
use super::pull::RegistryOptions;
use super::reference::Reference;
use super::store::{json, sniff_media_type, MAX_DOC};
use super::unpack::{decompress, DecompressError};
use super::{Digest, ImageError};

type Result<T, E = ImageError> = std::result::Result<T, E>;

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The reference pushed to, in full.
    pub reference: String,
    /// Digest of the top manifest or index: pull `REPO@DIGEST` to get exactly this.
    pub digest: Digest,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_present: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Manifests (and indexes) put.
    pub manifests: usize,
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "kelp-push-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&p).map_err(|e| ImageError::io(format!("creating {}", p.display()), e))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The blobs of a tarball, extracted and verified.
struct Extracted {
    dir: TempDir,
    index: Vec<u8>,
    blobs: HashMap<Digest, u64>,
}

impl Extracted {
    fn path(&self, d: &Digest) -> PathBuf {
        self.dir.0.join(d.hex())
    }

    fn doc(&self, desc: &Descriptor) -> Result<(Digest, Vec<u8>)> {
        let d = Digest::parse(&desc.digest)?;
        let size = *self
            .blobs
            .get(&d)
            .ok_or_else(|| ImageError::MissingBlob(d.clone()))?;
        if size != desc.size {
            return Err(ImageError::SizeMismatch {
                digest: d,
                expected: desc.size,
                actual: size,
            });
        }
        if size > MAX_DOC {
            return Err(ImageError::InvalidLayout(format!(
                "blob {d} is too large for a document"
            )));
        }
        let bytes =
            fs::read(self.path(&d)).map_err(|e| ImageError::io(format!("reading blob {d}"), e))?;
        Ok((d, bytes))
    }
}

fn extract(path: &Path) -> Result<Extracted> {
    let dir = TempDir::new()?;
    let file =
        File::open(path).map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
    let (stream, _) = decompress(file).map_err(|e| match e {
        DecompressError::Io(e) => ImageError::io(format!("reading {}", path.display()), e),
        DecompressError::Unsupported(what) => {
            ImageError::Unsupported(format!("tarball compression {what}"))
        }
    })?;
    let mut archive = tar::Archive::new(stream);
    let mut index = None;
    let mut blobs = HashMap::new();
    let read_err = |e: std::io::Error| ImageError::io(format!("reading {}", path.display()), e);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let parts: Vec<&str> = name
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        match parts.as_slice() {
            ["index.json"] => {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_DOC + 1)
                    .read_to_end(&mut bytes)
                    .map_err(read_err)?;
                if bytes.len() as u64 > MAX_DOC {
                    return Err(ImageError::InvalidLayout("index.json is too large".into()));
                }
                index = Some(bytes);
            }
            ["blobs", "sha256", hex] => {
                let digest = Digest::from_hex(hex)
                    .ok_or_else(|| ImageError::InvalidLayout(format!("bad blob name {name:?}")))?;
                let target = dir.0.join(hex);
                let mut out = File::create(&target)
                    .map_err(|e| ImageError::io(format!("creating {}", target.display()), e))?;
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut size = 0u64;
                loop {
                    let n = entry.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    size += n as u64;
                    out.write_all(&buf[..n])
                        .map_err(|e| ImageError::io(format!("writing {}", target.display()), e))?;
                }
                let actual = Digest::from_sha256(&hasher.finalize());
                if actual != digest {
                    return Err(ImageError::DigestMismatch {
                        what: "blob",
                        expected: digest,
                        actual,
                    });
                }
                blobs.insert(digest, size);
            }
            _ => {}
        }
    }
    let index = index.ok_or_else(|| ImageError::InvalidLayout("no index.json".into()))?;
    Ok(Extracted { dir, index, blobs })
}

/// Pushes the image of an OCI image-layout tarball to `reference`.
pub fn push_oci_tar(path: &Path, reference: &str, opts: &RegistryOptions) -> Result<PushReport> {
    let r = Reference::parse(reference)?;
    let ex = extract(path)?;
    let index: Index = json(&ex.index, "index.json")?;
    let top = match index.manifests.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(ImageError::InvalidLayout(
                "index.json lists no image".into(),
            ))
        }
        many => {
            return Err(ImageError::MultipleImages(
                many.iter().map(|d| d.digest.clone()).collect(),
            ))
        }
    };
    let endpoint = opts
        .registries
        .endpoints(&r.registry)
        .into_iter()
        .rfind(|e| !e.mirror)
        .ok_or_else(|| ImageError::InvalidLayout(format!("no endpoint for {}", r.registry)))?;
    let mut client = opts.client(&endpoint, &r, true)?;
    let mut report = PushReport {
        reference: r.to_string(),
        digest: Digest::parse(&top.digest)?,
        blobs_uploaded: 0,
        blobs_present: 0,
        bytes_uploaded: 0,
        manifests: 0,
    };
    let tag = match (&r.tag, &r.digest) {
        (_, Some(d)) if d != &report.digest => {
            return Err(ImageError::DigestMismatch {
                what: "manifest",
                expected: d.clone(),
                actual: report.digest.clone(),
            })
        }
        (Some(t), _) => t.clone(),
        (None, _) => report.digest.to_string(),
    };
    push_desc(&mut client, opts, &ex, &top, &tag, &mut report, 0)?;
    Ok(report)
}

fn push_desc(
    client: &mut Client,
    opts: &RegistryOptions,
    ex: &Extracted,
    desc: &Descriptor,
    tag: &str,
    report: &mut PushReport,
    depth: usize,
) -> Result<()> {
    if depth > 4 {
        return Err(ImageError::InvalidLayout(
            "indexes nested too deeply".into(),
        ));
    }
    let (digest, bytes) = ex.doc(desc)?;
    let media_type = desc
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| sniff_media_type(&bytes))
        .unwrap_or_default();
    if oci::is_index(&media_type) {
        let index: Index = json(&bytes, format!("index {digest}"))?;
        for child in &index.manifests {
            let child_digest = child.digest.clone();
            push_desc(client, opts, ex, child, &child_digest, report, depth + 1)?;
        }
    } else if oci::is_manifest(&media_type) {
        let manifest: Manifest = json(&bytes, format!("manifest {digest}"))?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let d = Digest::parse(&blob.digest)?;
            opts.retry("blob upload", || push_blob(client, ex, &d, report))?;
        }
    } else {
        return Err(ImageError::Unsupported(format!(
            "manifest media type {media_type:?} ({digest})"
        )));
    }
    let url = client.url(&format!("manifests/{tag}"));
    opts.retry("manifest upload", || {
        client
            .send(
                http::Method::PUT,
                &url,
                &[("Content-Type", media_type.as_str())],
                Payload::Bytes(&bytes),
                &format!("repository {tag}"),
            )
            .map(drop)
            .map_err(ImageError::from)
    })?;
    report.manifests += 1;
    Ok(())
}

fn push_blob(
    client: &mut Client,
    ex: &Extracted,
    digest: &Digest,
    report: &mut PushReport,
) -> Result<()> {
    let size = *ex
        .blobs
        .get(digest)
        .ok_or_else(|| ImageError::MissingBlob(digest.clone()))?;
    let url = client.url(&format!("blobs/{digest}"));
    match client.send(http::Method::HEAD, &url, &[], Payload::None, "blob") {
        Ok(_) => {
            report.blobs_present += 1;
            return Ok(());
        }
        Err(RegistryError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let start = client.url("blobs/uploads/");
    let response = client.send(
        http::Method::POST,
        &start,
        &[],
        Payload::Bytes(&[]),
        "upload",
    )?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            registry: client.registry().to_owned(),
            message: format!("upload of blob {digest} started without a Location"),
        })?
        .to_owned();
    let location = absolute(&start, &location);
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = format!(
        "{location}{sep}digest={}",
        digest.as_str().replace(':', "%3A")
    );
    client.send(
        http::Method::PUT,
        &put,
        &[("Content-Type", "application/octet-stream")],
        Payload::File(&ex.path(digest)),
        &format!("upload of blob {digest}"),
    )?;
    report.blobs_uploaded += 1;
    report.bytes_uploaded += size;
    Ok(())
}

/// Resolves a `Location` header against the URL of the request that returned it.
fn absolute(request_url: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = request_url.find("://").map_or(0, |i| i + 3);
    let host_end = request_url[scheme_end..]
        .find('/')
        .map_or(request_url.len(), |i| scheme_end + i);
    if location.starts_with('/') {
        format!("{}{location}", &request_url[..host_end])
    } else {
        let dir_end = request_url.rfind('/').map_or(request_url.len(), |i| i + 1);
        format!("{}{location}", &request_url[..dir_end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_request() {
        let base = "http://127.0.0.1:5000/v2/kelp/app/blobs/uploads/";
        assert_eq!(
            absolute(base, "/v2/kelp/app/blobs/uploads/abc?_state=x"),
            "http://127.0.0.1:5000/v2/kelp/app/blobs/uploads/abc?_state=x"
        );
        assert_eq!(absolute(base, "https://s3/x"), "https://s3/x");
        assert_eq!(absolute(base, "abc"), format!("{base}abc"));
    }
}
