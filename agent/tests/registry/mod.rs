//! Helpers of the registry end-to-end tests: Debian's real `docker-registry` (the CNCF
//! Distribution registry) on a loopback port with its own config in a temporary directory,
//! killed on drop; a TCP proxy that cuts or stalls connections; busybox images for several
//! platforms from Debian's `busybox-static` packages; store inspection.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kelp_agent::image::{
    Credentials, DockerConfigJson, ImageStore, PullOptions, RegistriesConfig, RegistryOptions,
    RetryPolicy,
};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const AGENT: &str = env!("CARGO_BIN_EXE_kelp-agent");

/// User and password of the registries started with [`Auth::Htpasswd`].
pub const USER: &str = "kelp";
pub const PASSWORD: &str = "pi-secret";
/// `htpasswd -Bbn kelp pi-secret` (bcrypt), computed once so the tests need no tool for it.
const HTPASSWD: &str = "kelp:$2y$05$XVjq158DDoU2xV7YVFOQ8.MzWlJbreovbv0Zy.zlxRSmXoEBhBw5m\n";

/// How a test registry authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Htpasswd,
    /// Bearer tokens from this token service.
    Token(&'a TokenServer),
}

/// A running `docker-registry`.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub tls: bool,
    child: Child,
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a plain-HTTP registry.
    pub fn start(auth: Auth<'_>) -> Self {
        Self::start_with(auth, None)
    }

    /// Starts a registry; with `tls`, HTTPS with that certificate chain and key (PEM).
    pub fn start_with(auth: Auth<'_>, tls: Option<(&str, &str)>) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install docker-registry"
        );
        let dir = tempfile::Builder::new()
            .prefix("kelp-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: kelp-test-secret\n",
            storage = dir.path().join("storage").display(),
        );
        if let Some((cert, key)) = tls {
            let c = dir.path().join("cert.pem");
            let k = dir.path().join("key.pem");
            fs::write(&c, cert).unwrap();
            fs::write(&k, key).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c.display(),
                k.display()
            ));
        }
        match auth {
            Auth::None => {}
            Auth::Htpasswd => {
                let h = dir.path().join("htpasswd");
                fs::write(&h, HTPASSWD).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: kelp-test\n    path: {}\n",
                    h.display()
                ));
            }
            Auth::Token(server) => config.push_str(&server.registry_auth(dir.path())),
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {REGISTRY_BIN}: {e}"));
        let mut reg = Self {
            host: format!("127.0.0.1:{port}"),
            dir,
            port,
            tls: tls.is_some(),
            child,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited at start ({status}): {}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {} within 20 s: {}",
                self.host,
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT/<path>`.
    pub fn reference(&self, path: &str) -> String {
        format!("{}/{path}", self.host)
    }

    /// A registries file making this registry plain HTTP (k3s: an `http://` endpoint).
    pub fn registries(&self) -> RegistriesConfig {
        plain_http(&self.host)
    }

    /// The file holding a blob in the registry's storage.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registries file with `host` as a plain-HTTP registry.
pub fn plain_http(host: &str) -> RegistriesConfig {
    RegistriesConfig::parse(
        &format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\n"),
        "test registries.yaml",
    )
    .unwrap()
}

/// A pull secret (`.dockerconfigjson`) for `host`.
pub fn pull_secret(host: &str, user: &str, password: &str) -> DockerConfigJson {
    let json =
        format!(r#"{{"auths":{{"{host}":{{"username":"{user}","password":"{password}"}}}}}}"#);
    let secret = DockerConfigJson::parse(json.as_bytes()).unwrap();
    assert_eq!(
        secret.credentials(host),
        Some(Credentials {
            username: user.into(),
            password: password.into()
        })
    );
    secret
}

/// Registry options for tests: quick retries.
pub fn options(registries: RegistriesConfig, secrets: Vec<DockerConfigJson>) -> RegistryOptions {
    RegistryOptions {
        registries,
        secrets,
        retry: RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    }
}

pub fn pull_options(registry: RegistryOptions) -> PullOptions {
    PullOptions {
        registry,
        ..PullOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Stores

/// A fresh store in its own temporary directory.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("kelp-registry-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn store(&self) -> ImageStore {
        ImageStore::open(self.path("store")).unwrap()
    }
}

/// Names of the entries of a directory.
pub fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// What a store holds on disk: references, blobs, layers, staging entries.
#[derive(Debug, PartialEq, Eq)]
pub struct StoreState {
    pub refs: Vec<String>,
    pub blobs: BTreeSet<String>,
    pub layers: BTreeSet<String>,
    pub tmp: BTreeSet<String>,
}

pub fn state(store: &ImageStore) -> StoreState {
    StoreState {
        refs: store
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.reference)
            .collect(),
        blobs: names(&store.root().join("blobs/sha256")),
        layers: names(&store.root().join("layers/sha256")),
        tmp: names(&store.root().join("tmp")),
    }
}

// ---------------------------------------------------------------------------------------------
// Busybox for several platforms

/// Where `.ci/run` puts Debian's `busybox-static` packages of other architectures.
pub const DEBS_DEFAULT: &str = "/var/cache/kelp-test-debs";

/// The static busybox binary of Debian architecture `arch` (`amd64` is the host's; `arm64`
/// and `armhf` come from `busybox-static_*_<arch>.deb` in `$KELP_TEST_DEBS` or
/// [`DEBS_DEFAULT`], unpacked into `work`).
pub fn busybox_binary(arch: &str, work: &Path) -> PathBuf {
    if arch == "amd64" {
        let p = Path::new("/usr/bin/busybox");
        assert!(
            p.exists(),
            "/usr/bin/busybox is missing: apt-get install busybox-static"
        );
        return p.to_path_buf();
    }
    let dir = std::env::var_os("KELP_TEST_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBS_DEFAULT));
    let deb = fs::read_dir(&dir)
        .ok()
        .and_then(|rd| {
            rd.flatten().map(|e| e.path()).find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("busybox-static_") && n.ends_with(&format!("_{arch}.deb"))
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "busybox-static for {arch} is missing from {}: run `dpkg --add-architecture {arch} && \
                 apt-get update && mkdir -p {0} && cd {0} && apt-get download busybox-static:{arch}` \
                 (or point KELP_TEST_DEBS at a directory holding it)",
                dir.display()
            )
        });
    let out = work.join(format!("deb-{arch}"));
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&out)
        .status()
        .expect("dpkg-deb (dpkg) is needed to unpack the busybox-static packages");
    assert!(status.success(), "dpkg-deb -x {}", deb.display());
    let bin = out.join("bin/busybox");
    assert!(bin.exists(), "{} has no bin/busybox", deb.display());
    bin
}

/// ELF `e_machine` of a file: 62 x86-64, 183 AArch64, 40 ARM.
pub fn elf_machine(path: &Path) -> u16 {
    let mut head = [0u8; 20];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(&head[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(head[5], 1, "{} is not little-endian", path.display());
    u16::from_le_bytes([head[18], head[19]])
}

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_ARM: u16 = 40;

// ---------------------------------------------------------------------------------------------
// A TCP proxy that breaks connections

/// What the proxy does once a connection has carried `limit` bytes towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// Close both directions.
    Cut,
    /// Stop forwarding and keep the connection open.
    Stall,
}

/// A loopback proxy in front of `upstream` that lets at most `limit` bytes per connection
/// reach the client, then breaks the connection.
pub struct Proxy {
    pub port: u16,
    pub host: String,
    /// Bytes sent to clients, all connections.
    pub forwarded: Arc<AtomicU64>,
    /// Set once a connection was broken.
    pub broke: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: u16, limit: u64, mode: Break) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let forwarded = Arc::new(AtomicU64::new(0));
        let broke = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, b, s) = (forwarded.clone(), broke.clone(), stop.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (f, b, s) = (f.clone(), b.clone(), s.clone());
                thread::spawn(move || relay(client, server, limit, mode, f, b, s));
            }
        });
        Self {
            port,
            host: format!("127.0.0.1:{port}"),
            forwarded,
            broke,
            stop,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    limit: u64,
    mode: Break,
    forwarded: Arc<AtomicU64>,
    broke: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut sent = 0u64;
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = s_read.read(&mut buf) {
        if n == 0 {
            break;
        }
        let n = n.min((limit - sent) as usize);
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        forwarded.fetch_add(n as u64, Ordering::SeqCst);
        if sent >= limit {
            broke.store(true, Ordering::SeqCst);
            match mode {
                Break::Cut => {}
                Break::Stall => {
                    while !stop.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------------------
// A token service for `auth: token` registries

/// Service name and issuer the token registries are configured with.
pub const TOKEN_SERVICE: &str = "kelp-test-registry";
pub const TOKEN_ISSUER: &str = "kelp-test-issuer";

/// A minimal Docker token service (the `realm` of Bearer challenges): checks Basic
/// credentials ([`USER`], [`PASSWORD`]) and issues ES256 JWTs granting the scope asked for,
/// signed by a key whose self-signed certificate the registry trusts (`rootcertbundle`).
pub struct TokenServer {
    pub port: u16,
    /// PEM certificate of the signing key.
    pub cert_pem: String,
    /// Tokens issued.
    pub issued: Arc<AtomicU64>,
    /// Requests refused (no or wrong credentials).
    pub refused: Arc<AtomicU64>,
}

impl TokenServer {
    pub fn start() -> Self {
        use base64::Engine as _;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["kelp-token".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kelp token signer");
        let cert = params.self_signed(&key).unwrap();
        let cert_der = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let issued = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let (i, r) = (issued.clone(), refused.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let request = read_head(&mut conn);
                let expected = format!(
                    "basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
                );
                let authorized = request.lines().any(|l| {
                    l.to_ascii_lowercase()
                        == format!("authorization: {}", expected.to_ascii_lowercase())
                });
                if !authorized {
                    r.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"details":"invalid credentials"}"#;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let target = request.split_whitespace().nth(1).unwrap_or_default();
                let scope = query_param(target, "scope").unwrap_or_default();
                let token = jwt(&key, &cert_der, &scope);
                i.fetch_add(1, Ordering::SeqCst);
                let body = format!(r#"{{"token":"{token}","expires_in":300}}"#);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            port,
            cert_pem: cert.pem(),
            issued,
            refused,
        }
    }

    /// The `auth:` section of a registry config using this service.
    pub fn registry_auth(&self, dir: &Path) -> String {
        let bundle = dir.join("token-signer.pem");
        fs::write(&bundle, &self.cert_pem).unwrap();
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            bundle.display()
        )
    }
}

/// Reads an HTTP request head.
fn read_head(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn query_param(target: &str, key: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An ES256 JWT granting `scope` (`repository:NAME:ACTIONS`), with the signer's certificate
/// in `x5c`.
fn jwt(key: &rcgen::KeyPair, cert_der_b64: &str, scope: &str) -> String {
    use base64::Engine as _;
    use rcgen::SigningKey as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access = match scope.splitn(3, ':').collect::<Vec<_>>().as_slice() {
        [kind, name, actions] => format!(
            r#"[{{"type":"{kind}","name":"{name}","actions":[{}]}}]"#,
            actions
                .split(',')
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => "[]".to_owned(),
    };
    let header = format!(r#"{{"typ":"JWT","alg":"ES256","x5c":["{cert_der_b64}"]}}"#);
    let claims = format!(
        r#"{{"iss":"{TOKEN_ISSUER}","sub":"{USER}","aud":"{TOKEN_SERVICE}","exp":{},"nbf":{},"iat":{now},"jti":"kelp-{now}-{}","access":{access}}}"#,
        now + 300,
        now - 10,
        rand_suffix()
    );
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let der = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&ecdsa_der_to_raw(&der)))
}

fn rand_suffix() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// An ECDSA P-256 signature from ASN.1 DER (`SEQUENCE { r, s }`) to JWS's fixed `r || s`.
fn ecdsa_der_to_raw(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30, "not a DER sequence");
    let mut at = if der[1] & 0x80 != 0 {
        2 + (der[1] & 0x7f) as usize
    } else {
        2
    };
    let mut out = Vec::with_capacity(64);
    for _ in 0..2 {
        assert_eq!(der[at], 0x02, "not a DER integer");
        let len = der[at + 1] as usize;
        let int = &der[at + 2..at + 2 + len];
        let int = &int[int.iter().take_while(|b| **b == 0).count()..];
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        at += 2 + len;
    }
    out
}
