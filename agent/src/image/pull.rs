//! Pulling images from OCI / Docker registries into the store.
//!
//! [`ImageStore::pull`] asks the registry (its mirrors first, see
//! [`registries`]) for the reference's manifest with the Accept headers of
//! OCI indexes and manifests and Docker manifest lists and manifests, resolves an index to the
//! store's platform **including the variant** (`linux/arm/v7` is not `linux/arm/v6`), then
//! downloads the config and the layer blobs the store does not have yet. Every blob is hashed
//! while it streams into the pull's staging directory and refused on a digest or size
//! mismatch; layers are unpacked once by diff ID exactly as an imported tarball's are; blobs and
//! layers are renamed into the store and the reference written last. A pull that fails or is
//! killed midway leaves no record and no blob behind (an interrupted pull's staging directory
//! is removed by the next [`ImageStore::open`]).
//!
//! Transport failures, `5xx` and `429` answers are retried with exponential back-off
//! ([`RetryPolicy`]); a blob download cut midway resumes where it stopped (a `Range` request,
//! the hash carried over) when the registry honours ranges, which matters on slow links; authentication follows the registry's `401` challenge: Basic, or Bearer
//! tokens from its token service, with credentials from the pod's `imagePullSecrets` or the
//! node's registries file.
//!
//! The whole pull holds the store's lock: imports, removals and collections wait for it.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use ureq::http;

use super::client::{Client, ClientSettings, Payload, RegistryError};
use super::oci::{self, Descriptor, Index, Manifest};
use super::reference::Reference;
use super::registries::{self, DockerConfigJson, Endpoint, RegistriesConfig};
use super::store::{best_for_platform, json, sniff_media_type, Import, MAX_DOC, MAX_INDEX_DEPTH};
use super::{Digest, ImageError, ImageRecord, ImageStore};

type Result<T, E = ImageError> = std::result::Result<T, E>;

/// What a manifest request accepts, most wanted first.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Copy buffer size.
const BUF_SIZE: usize = 64 * 1024;

/// Retries of failed requests: `attempts` tries in all, waiting `base`, `2·base`, `4·base`, …
/// (at most `max`) between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// First wait.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 4 tries, waiting 0.5 s, 1 s, 2 s.
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.base
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// How to reach registries: the node's registries file, the pod's pull secrets, retries and
/// timeouts. Shared by pulls and pushes.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Mirrors, plain-HTTP registries, credentials and CAs of the node
    /// ([`REGISTRIES_FILE`](super::REGISTRIES_FILE)).
    pub registries: RegistriesConfig,
    /// The `.dockerconfigjson` of the pod's `imagePullSecrets`, tried first, in order.
    pub secrets: Vec<DockerConfigJson>,
    /// Retries of transport failures and `5xx` answers.
    pub retry: RetryPolicy,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for or reading a response.
    pub read_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            registries: RegistriesConfig::default(),
            secrets: Vec::new(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl RegistryOptions {
    pub(crate) fn settings(&self) -> ClientSettings {
        ClientSettings {
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
        }
    }

    /// A client for `reference` on `endpoint`, with the credentials that apply.
    pub(crate) fn client(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        push: bool,
    ) -> Result<Client, RegistryError> {
        let credentials =
            registries::credentials_for(&self.secrets, &self.registries, reference, endpoint);
        Client::new(
            endpoint,
            reference,
            &self.registries,
            credentials,
            push,
            &self.settings(),
        )
    }

    /// Runs `op` until it succeeds, fails for good, or the tries are used up.
    pub(crate) fn retry<T>(&self, what: &str, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match op() {
                Err(ImageError::Registry(e))
                    if e.is_transient() && attempt + 1 < self.retry.attempts.max(1) =>
                {
                    let wait = self.retry.delay(attempt);
                    tracing::warn!(%what, error = %e, retry_in = ?wait, "registry request failed");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Progress of a pull's downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// The reference being pulled.
    pub reference: String,
    /// Blob bytes downloaded so far.
    pub done: u64,
    /// Blob bytes the pull has to download (known once the manifest is read).
    pub total: u64,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&PullProgress) + Send + Sync>;

/// Options of a pull.
#[derive(Clone)]
pub struct PullOptions {
    /// Registries, credentials, retries.
    pub registry: RegistryOptions,
    /// Most bytes the pull may write: downloaded blobs plus unpacked layers.
    pub budget: u64,
    /// Called as blob bytes arrive.
    pub progress: Option<ProgressFn>,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            registry: RegistryOptions::default(),
            budget: u64::MAX,
            progress: None,
        }
    }
}

impl fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullOptions")
            .field("registry", &self.registry)
            .field("budget", &self.budget)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// The image, as stored.
    pub image: ImageRecord,
    /// Blob bytes downloaded (0 when the store had every blob).
    pub downloaded: u64,
    /// Blobs downloaded.
    pub blobs_fetched: usize,
    /// Total size of the image's layer blobs.
    pub image_size: u64,
    /// How long the pull took.
    pub elapsed: Duration,
    /// The endpoint it came from (`https://host`, a mirror's URL).
    pub endpoint: String,
}

impl PullReport {
    /// The message of a `Pulled` event, as the kubelet words it: `Successfully pulled image
    /// "busybox" in 1.2s (3.4 MB downloaded)`.
    pub fn message(&self) -> String {
        format!(
            "Successfully pulled image {:?} in {:.1}s ({} downloaded)",
            self.image.reference,
            self.elapsed.as_secs_f64(),
            decimal_size(self.downloaded)
        )
    }
}

/// `3_400_000` → `3.4 MB` (decimal units, as the kubelet prints image sizes).
pub fn decimal_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Ask the registry every time a container starts (a known manifest downloads nothing).
    Always,
    /// Pull only when the image is not in the store.
    IfNotPresent,
    /// Never pull; a missing image is `ErrImageNeverPull`.
    Never,
}

impl PullPolicy {
    /// The policy of a container spec, defaulted as the API server does: `Always` for a
    /// `:latest` or untagged image (not pinned by digest), else `IfNotPresent`. Unknown values
    /// are read as the default.
    pub fn from_spec(policy: Option<&str>, image: &str) -> Self {
        match policy {
            Some("Always") => Self::Always,
            Some("IfNotPresent") => Self::IfNotPresent,
            Some("Never") => Self::Never,
            _ => match Reference::parse(image) {
                Ok(r) if r.digest.is_none() && r.tag.as_deref() == Some("latest") => Self::Always,
                Ok(_) => Self::IfNotPresent,
                Err(_) => Self::IfNotPresent,
            },
        }
    }
}

/// What to do about a container's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// Pull it (then use what the store holds).
    Pull,
    /// Use the stored image.
    UsePresent,
    /// Fail the container with `ErrImageNeverPull`.
    NeverPull,
}

/// Whether to pull, given the policy and whether the store has the image.
pub fn pull_decision(policy: PullPolicy, present: bool) -> PullDecision {
    match (policy, present) {
        (PullPolicy::Always, _) => PullDecision::Pull,
        (_, true) => PullDecision::UsePresent,
        (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (PullPolicy::Never, false) => PullDecision::NeverPull,
    }
}

/// Counts a pull's downloads and reports progress.
struct Meter<'a> {
    reference: String,
    progress: Option<&'a ProgressFn>,
    done: u64,
    total: u64,
    blobs: usize,
}

impl Meter<'_> {
    fn report(&self) {
        if let Some(p) = self.progress {
            p(&PullProgress {
                reference: self.reference.clone(),
                done: self.done,
                total: self.total,
            });
        }
    }
}

impl ImageStore {
    /// Pulls `reference` for the store's platform; see the [module docs](self).
    pub fn pull(&self, reference: &str, opts: &PullOptions) -> Result<ImageRecord> {
        self.pull_report(reference, opts).map(|r| r.image)
    }

    /// [`pull`](Self::pull), returning what was downloaded and how long it took.
    pub fn pull_report(&self, reference: &str, opts: &PullOptions) -> Result<PullReport> {
        let start = Instant::now();
        let r = Reference::parse(reference)?;
        let _lock = self.lock()?;
        let endpoints = opts.registry.registries.endpoints(&r.registry);
        let mut last = None;
        for (i, endpoint) in endpoints.iter().enumerate() {
            let mut meter = Meter {
                reference: r.to_string(),
                progress: opts.progress.as_ref(),
                done: 0,
                total: 0,
                blobs: 0,
            };
            match self.pull_from(endpoint, &r, opts, &mut meter) {
                Ok(image) => {
                    let image_size = image.layers.iter().map(|l| l.size).sum();
                    return Ok(PullReport {
                        image,
                        downloaded: meter.done,
                        blobs_fetched: meter.blobs,
                        image_size,
                        elapsed: start.elapsed(),
                        endpoint: endpoint.base_url.clone(),
                    });
                }
                Err(ImageError::Registry(e)) if i + 1 < endpoints.len() => {
                    tracing::warn!(endpoint = %endpoint.base_url, error = %e, "pull from endpoint failed, trying the next one");
                    last = Some(ImageError::Registry(e));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ImageError::InvalidLayout("no endpoint to pull from".into())))
    }

    fn pull_from(
        &self,
        endpoint: &Endpoint,
        r: &Reference,
        opts: &PullOptions,
        meter: &mut Meter<'_>,
    ) -> Result<ImageRecord> {
        let ropts = &opts.registry;
        let mut client = ropts.client(endpoint, r, false)?;
        let mut imp = Import::new(self, opts.budget)?;
        let (mut digest, mut media_type, mut bytes) = ropts.retry("manifest", || {
            fetch_manifest(&mut client, r.manifest_ref(), &r.to_string())
        })?;
        if let Some(pinned) = &r.digest {
            if &digest != pinned {
                return Err(ImageError::DigestMismatch {
                    what: "manifest",
                    expected: pinned.clone(),
                    actual: digest,
                });
            }
        }
        let mut depth = 0;
        while oci::is_index(&media_type) {
            depth += 1;
            if depth > MAX_INDEX_DEPTH {
                return Err(ImageError::InvalidLayout(
                    "indexes nested too deeply".into(),
                ));
            }
            let index: Index = json(&bytes, format!("index {digest}"))?;
            let chosen = best_for_platform(self.platform(), &index.manifests)?.clone();
            let want = Digest::parse(&chosen.digest)?;
            let (d, mt, b) = ropts.retry("manifest", || {
                fetch_manifest(&mut client, want.as_str(), &format!("{r} ({want})"))
            })?;
            if d != want {
                return Err(ImageError::DigestMismatch {
                    what: "manifest",
                    expected: want,
                    actual: d,
                });
            }
            if b.len() as u64 != chosen.size {
                return Err(ImageError::SizeMismatch {
                    digest: d,
                    expected: chosen.size,
                    actual: b.len() as u64,
                });
            }
            digest = d;
            media_type = chosen
                .media_type
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or(mt);
            bytes = b;
        }
        if !oci::is_manifest(&media_type) {
            return Err(ImageError::Unsupported(format!(
                "manifest media type {media_type:?} ({digest})"
            )));
        }
        let manifest: Manifest = json(&bytes, format!("manifest {digest}"))?;
        // Stage the manifest; its digest was just verified.
        if !self.blob_path(&digest).exists() {
            write_new(&imp.staging.blob(&digest), &bytes)?;
        }
        imp.layout.blobs.insert(digest.clone());

        let mut wanted = vec![manifest.config.clone()];
        wanted.extend(manifest.layers.iter().cloned());
        let mut missing = Vec::new();
        for d in &wanted {
            let dg = Digest::parse(&d.digest)?;
            if self.blob_path(&dg).exists() {
                imp.layout.blobs.insert(dg);
            } else if !missing.iter().any(|(m, _): &(Digest, u64)| *m == dg) {
                missing.push((dg, d.size));
            }
        }
        meter.total = missing.iter().map(|(_, s)| s).sum();
        meter.report();
        for (dg, size) in &missing {
            if *size > imp.budget.bytes_left() {
                return Err(ImageError::BudgetExceeded {
                    what: format!("blob {dg}"),
                    needed: *size,
                    left: imp.budget.bytes_left(),
                });
            }
            let mut partial = Partial::default();
            let fetched = ropts.retry("blob", || {
                self.fetch_blob(&mut client, &mut imp, dg, *size, meter, &mut partial)
            });
            if fetched.is_err() {
                let _ = fs::remove_file(imp.staging.blob(dg));
            }
            fetched?;
            meter.blobs += 1;
            imp.layout.blobs.insert(dg.clone());
        }
        let desc = Descriptor {
            media_type: Some(media_type),
            digest: digest.to_string(),
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        self.prepare(&mut imp, &desc)?;
        let name = r.to_string();
        self.commit(&imp, &[(name.clone(), desc)])?;
        self.record(&name, &digest)
    }

    /// Downloads one blob into staging, hashing it on the way, resuming what an earlier
    /// attempt (`partial`) received with a `Range` request when the registry honours it. The
    /// caller removes the file if the download fails for good.
    fn fetch_blob(
        &self,
        client: &mut Client,
        imp: &mut Import,
        digest: &Digest,
        size: u64,
        meter: &mut Meter<'_>,
        partial: &mut Partial,
    ) -> Result<()> {
        let path = imp.staging.blob(digest);
        let url = client.url(&format!("blobs/{digest}"));
        let range = format!("bytes={}-", partial.read);
        let mut headers = Vec::new();
        if partial.read > 0 {
            headers.push(("Range", range.as_str()));
        }
        let response = client.send(
            http::Method::GET,
            &url,
            &headers,
            Payload::None,
            &format!("blob {digest}"),
        )?;
        let resumed = partial.read > 0
            && response.status() == http::StatusCode::PARTIAL_CONTENT
            && response
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {}-", partial.read)));
        if !resumed {
            // From the start: forget what an earlier attempt received.
            meter.done -= partial.read;
            imp.budget.refund(partial.read);
            *partial = Partial::default();
            let file = File::create(&path)
                .map_err(|e| ImageError::io(format!("creating {}", path.display()), e))?;
            partial.out = Some(file);
        } else {
            tracing::debug!(%digest, from = partial.read, "resuming blob download");
        }
        let Some(out) = partial.out.as_mut() else {
            return Err(ImageError::io(
                format!("writing blob {digest}"),
                std::io::Error::other("no staging file"),
            ));
        };
        let mut body = response
            .into_body()
            .into_reader()
            .take(size - partial.read + 1);
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            let n = body.read(&mut buf).map_err(|e| {
                ImageError::Registry(RegistryError::Transport {
                    registry: client.registry().to_owned(),
                    url: url.clone(),
                    message: format!(
                        "reading blob {digest} after {} of {size} bytes: {e}",
                        partial.read
                    ),
                })
            })?;
            if n == 0 {
                break;
            }
            if partial.read + n as u64 > size {
                return Err(ImageError::SizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual: partial.read + n as u64,
                });
            }
            imp.budget
                .charge(n as u64)
                .map_err(|(needed, left)| ImageError::BudgetExceeded {
                    what: format!("blob {digest}"),
                    needed,
                    left,
                })?;
            out.write_all(&buf[..n])
                .map_err(|e| ImageError::io(format!("writing blob {digest}"), e))?;
            partial.hasher.update(&buf[..n]);
            partial.read += n as u64;
            meter.done += n as u64;
            meter.report();
        }
        if partial.read < size {
            return Err(ImageError::Registry(RegistryError::Transport {
                registry: client.registry().to_owned(),
                url,
                message: format!(
                    "blob {digest}: connection closed after {} of {size} bytes",
                    partial.read
                ),
            }));
        }
        let actual = Digest::from_sha256(&partial.hasher.clone().finalize());
        if &actual != digest {
            return Err(ImageError::DigestMismatch {
                what: "blob",
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// What earlier attempts of a blob download received.
#[derive(Default)]
struct Partial {
    out: Option<File>,
    hasher: Sha256,
    read: u64,
}

/// GETs a manifest (by tag or digest): its digest (computed), media type and bytes. A
/// `Docker-Content-Digest` header that disagrees with the content is an error.
pub(crate) fn fetch_manifest(
    client: &mut Client,
    reference: &str,
    what: &str,
) -> Result<(Digest, String, Vec<u8>)> {
    let url = client.url(&format!("manifests/{reference}"));
    let mut response = client.send(
        http::Method::GET,
        &url,
        &[("Accept", MANIFEST_ACCEPT)],
        Payload::None,
        &format!("manifest {what}"),
    )?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let claimed = header("docker-content-digest");
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_DOC)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => ImageError::Registry(RegistryError::Protocol {
                registry: client.registry().to_owned(),
                message: format!("manifest {what} is larger than {MAX_DOC} bytes"),
            }),
            e => ImageError::Registry(RegistryError::Transport {
                registry: client.registry().to_owned(),
                url: url.clone(),
                message: format!("reading manifest: {e}"),
            }),
        })?;
    let digest = Digest::from_sha256(&Sha256::digest(&bytes));
    if let Some(claimed) = claimed.as_deref().and_then(|c| Digest::parse(c).ok()) {
        if claimed != digest {
            return Err(ImageError::DigestMismatch {
                what: "manifest",
                expected: claimed,
                actual: digest,
            });
        }
    }
    let media_type = content_type
        .map(|c| c.split(';').next().unwrap_or_default().trim().to_owned())
        .filter(|c| oci::is_index(c) || oci::is_manifest(c))
        .or_else(|| sniff_media_type(&bytes))
        .unwrap_or_default();
    Ok((digest, media_type, bytes))
}

fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    File::create_new(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| ImageError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_default_like_the_api_server() {
        assert_eq!(PullPolicy::from_spec(None, "busybox"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::from_spec(None, "busybox:latest"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::from_spec(None, "busybox:1.36"),
            PullPolicy::IfNotPresent
        );
        let pinned = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(
            PullPolicy::from_spec(None, &pinned),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::from_spec(Some("Never"), "busybox"),
            PullPolicy::Never
        );
        assert_eq!(
            PullPolicy::from_spec(Some("Always"), "x:1"),
            PullPolicy::Always
        );
    }

    #[test]
    fn decisions_follow_policy_and_presence() {
        use PullDecision::*;
        use PullPolicy::*;
        assert_eq!(pull_decision(Always, true), Pull);
        assert_eq!(pull_decision(Always, false), Pull);
        assert_eq!(pull_decision(IfNotPresent, true), UsePresent);
        assert_eq!(pull_decision(IfNotPresent, false), Pull);
        assert_eq!(pull_decision(Never, true), UsePresent);
        assert_eq!(pull_decision(Never, false), NeverPull);
    }

    #[test]
    fn back_off_doubles_up_to_its_cap() {
        let p = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let waits: Vec<_> = (0..6).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn pulled_messages_read_like_the_kubelet() {
        assert_eq!(decimal_size(3_400_000), "3.4 MB");
        assert_eq!(decimal_size(0), "0 B");
        assert_eq!(decimal_size(1_234), "1.2 kB");
    }
}
