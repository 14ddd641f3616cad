//! A blocking client of the OCI distribution API (`/v2/…`) over `ureq`: one endpoint, one
//! repository, with the registry's authentication (anonymous, Basic, or Bearer tokens from the
//! registry's token service) negotiated from its `401` challenges.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use ureq::http;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::reference::Reference;
use super::registries::{Credentials, Endpoint, RegistriesConfig};

/// Largest token-service or error response read.
const MAX_SMALL_BODY: u64 = 1 << 20;
/// Where the system's CA bundle is looked for (after `SSL_CERT_FILE`).
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// Why a registry request failed. Every variant names the registry (endpoint host) involved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the credentials, or asked for some and none were given.
    #[error("registry {registry}: unauthorized to {action} {repository}{}: {message}", if *.had_credentials { " with the credentials given" } else { " without credentials" })]
    Unauthorized {
        /// The endpoint host.
        registry: String,
        /// The repository.
        repository: String,
        /// `pull` or `push`.
        action: &'static str,
        /// Whether credentials were sent.
        had_credentials: bool,
        /// The registry's message.
        message: String,
    },
    /// The manifest or blob does not exist.
    #[error("registry {registry}: {what} not found")]
    NotFound {
        /// The endpoint host.
        registry: String,
        /// `manifest example/app:1.0`, `blob sha256:…`.
        what: String,
    },
    /// Any other HTTP error status.
    #[error("registry {registry}: {method} {url}: HTTP {status}: {message}")]
    Status {
        /// The endpoint host.
        registry: String,
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's error message.
        message: String,
    },
    /// The request did not complete (connection refused or reset, timeout, TLS failure).
    #[error("registry {registry}: {url}: {message}")]
    Transport {
        /// The endpoint host.
        registry: String,
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The registry answered something the client cannot use.
    #[error("registry {registry}: {message}")]
    Protocol {
        /// The endpoint host.
        registry: String,
        /// What is wrong.
        message: String,
    },
    /// The TLS settings of the endpoint are unusable (unreadable CA file, bad key).
    #[error("registry {registry}: TLS setup: {message}")]
    TlsSetup {
        /// The endpoint host.
        registry: String,
        /// What is wrong.
        message: String,
    },
}

impl RegistryError {
    /// Whether trying again later may succeed (transport failures, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// `basic` or `bearer` (lower case).
    pub scheme: String,
    /// Parameters, keys lower case.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the first challenge of a `WWW-Authenticate` header (RFC 7235: a scheme, then
/// `key=value` or `key="quoted, value"` parameters separated by commas).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = match header.find(char::is_whitespace) {
        Some(i) => (&header[..i], header[i..].trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &quoted[end? + 1..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        params.push((key, value));
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            // Another challenge follows: the first one is enough.
            None => break,
        }
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The system's CA certificates (empty if no bundle is found).
fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let env = std::env::var_os("SSL_CERT_FILE");
        let candidates = env
            .iter()
            .map(|p| Path::new(p).to_path_buf())
            .chain(CA_BUNDLES.iter().map(|p| Path::new(p).to_path_buf()));
        for path in candidates {
            if let Ok(pem) = std::fs::read(&path) {
                let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|i| match i {
                        Ok(PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if !certs.is_empty() {
                    return certs;
                }
            }
        }
        Vec::new()
    })
}

/// Settings shared by the requests of a client.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// A client for one repository on one endpoint.
pub(crate) struct Client {
    agent: ureq::Agent,
    endpoint: Endpoint,
    repository: String,
    action: &'static str,
    credentials: Option<Credentials>,
    /// The `Authorization` header value currently sent.
    authorization: Option<String>,
}

/// A successful response.
pub(crate) type Response = http::Response<ureq::Body>;

/// What a request sends.
pub(crate) enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl Client {
    /// A client for `reference`'s repository on `endpoint`; `push` asks for push access.
    pub fn new(
        endpoint: &Endpoint,
        reference: &Reference,
        registries: &RegistriesConfig,
        credentials: Option<Credentials>,
        push: bool,
        settings: &ClientSettings,
    ) -> Result<Self> {
        let registry = endpoint.host.clone();
        let tls_err = |message: String| RegistryError::TlsSetup {
            registry: registry.clone(),
            message,
        };
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_per_read(Some(settings.read_timeout))
            .timeout_recv_response(Some(settings.read_timeout))
            .user_agent(format!("kelp-agent/{}", env!("CARGO_PKG_VERSION")));
        if !endpoint.plain_http() {
            let host = registries.host_config(&endpoint.host, &reference.registry);
            let files = host.and_then(|h| h.tls.as_ref());
            let mut roots: Vec<Certificate<'static>> = system_roots().to_vec();
            let mut tls = TlsConfig::builder();
            if let Some(files) = files {
                if let Some(ca) = &files.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| tls_err(format!("reading {}: {e}", ca.display())))?;
                    let before = roots.len();
                    for item in ureq::tls::parse_pem(&pem) {
                        if let Ok(PemItem::Certificate(c)) = item {
                            roots.push(c);
                        }
                    }
                    if roots.len() == before {
                        return Err(tls_err(format!(
                            "{} holds no PEM certificate",
                            ca.display()
                        )));
                    }
                }
                match (&files.cert_file, &files.key_file) {
                    (Some(cert), Some(key)) => {
                        let cert_pem = std::fs::read(cert)
                            .map_err(|e| tls_err(format!("reading {}: {e}", cert.display())))?;
                        let key_pem = std::fs::read(key)
                            .map_err(|e| tls_err(format!("reading {}: {e}", key.display())))?;
                        let chain: Vec<_> = ureq::tls::parse_pem(&cert_pem)
                            .filter_map(|i| match i {
                                Ok(PemItem::Certificate(c)) => Some(c),
                                _ => None,
                            })
                            .collect();
                        let key = PrivateKey::from_pem(&key_pem)
                            .map_err(|e| tls_err(format!("{}: {e}", key.display())))?;
                        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
                    }
                    (None, None) => {}
                    _ => {
                        return Err(tls_err(
                            "cert_file and key_file must be given together".into(),
                        ))
                    }
                }
                tls = tls.disable_verification(files.insecure_skip_verify);
            }
            if roots.is_empty() {
                return Err(tls_err(
                    "no CA certificates: install ca-certificates or give tls.ca_file in the registries file".into(),
                ));
            }
            builder = builder.tls_config(tls.root_certs(RootCerts::new_with_certs(&roots)).build());
        }
        Ok(Self {
            agent: builder.build().new_agent(),
            endpoint: endpoint.clone(),
            repository: reference.repository.clone(),
            action: if push { "push" } else { "pull" },
            credentials,
            authorization: None,
        })
    }

    /// The endpoint host, as errors name it.
    pub fn registry(&self) -> &str {
        &self.endpoint.host
    }

    /// `<base>/v2/<repository>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{}", self.endpoint.base_url, self.repository, path)
    }

    fn transport(&self, url: &str, e: ureq::Error) -> RegistryError {
        RegistryError::Transport {
            registry: self.endpoint.host.clone(),
            url: url.to_owned(),
            message: e.to_string(),
        }
    }

    fn send_once(
        &self,
        method: &http::Method,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload<'_>,
    ) -> Result<Response> {
        let mut b = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(a) = &self.authorization {
            b = b.header("Authorization", a.as_str());
        }
        let bad = |e: http::Error| RegistryError::Protocol {
            registry: self.endpoint.host.clone(),
            message: format!("building request {url}: {e}"),
        };
        let result = match payload {
            Payload::None => self.agent.run(b.body(()).map_err(bad)?),
            Payload::Bytes(bytes) => self.agent.run(b.body(*bytes).map_err(bad)?),
            Payload::File(path) => {
                let file = File::open(path).map_err(|e| RegistryError::Protocol {
                    registry: self.endpoint.host.clone(),
                    message: format!("opening {}: {e}", path.display()),
                })?;
                self.agent.run(b.body(file).map_err(bad)?)
            }
        };
        result.map_err(|e| self.transport(url, e))
    }

    /// Sends a request, answering one authentication challenge; error statuses other than
    /// the ones in `accept` become errors (404 → [`RegistryError::NotFound`] naming `what`).
    pub fn send(
        &mut self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        what: &str,
    ) -> Result<Response> {
        let mut response = self.send_once(&method, url, headers, &payload)?;
        if response.status() == http::StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            let message = error_message(&mut response);
            let Some(challenge) = challenge else {
                return Err(self.unauthorized(message));
            };
            let had = self.authorization.is_some();
            self.authenticate(&challenge)?;
            if had && self.authorization.is_none() {
                return Err(self.unauthorized(message));
            }
            response = self.send_once(&method, url, headers, &payload)?;
            if response.status() == http::StatusCode::UNAUTHORIZED {
                let message = error_message(&mut response);
                return Err(self.unauthorized(message));
            }
        }
        let status = response.status();
        if status == http::StatusCode::FORBIDDEN {
            let message = error_message(&mut response);
            return Err(self.unauthorized(message));
        }
        if status == http::StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: self.endpoint.host.clone(),
                what: what.to_owned(),
            });
        }
        if status.is_client_error() || status.is_server_error() {
            let message = error_message(&mut response);
            return Err(RegistryError::Status {
                registry: self.endpoint.host.clone(),
                method: method.to_string(),
                url: url.to_owned(),
                status: status.as_u16(),
                message,
            });
        }
        Ok(response)
    }

    fn unauthorized(&self, message: String) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.endpoint.host.clone(),
            repository: self.repository.clone(),
            action: self.action,
            had_credentials: self.credentials.is_some(),
            message,
        }
    }

    /// Sets the `Authorization` header for a challenge: Basic with the credentials, or a
    /// token from the realm of a Bearer challenge.
    fn authenticate(&mut self, challenge: &Challenge) -> Result<()> {
        match challenge.scheme.as_str() {
            "basic" => {
                let Some(c) = &self.credentials else {
                    return Err(
                        self.unauthorized("the registry asks for a user name and password".into())
                    );
                };
                self.authorization = Some(basic(c));
                Ok(())
            }
            "bearer" => {
                let realm = challenge
                    .param("realm")
                    .ok_or_else(|| RegistryError::Protocol {
                        registry: self.endpoint.host.clone(),
                        message: "Bearer challenge without a realm".into(),
                    })?;
                let mut url = realm.to_owned();
                let mut sep = if url.contains('?') { '&' } else { '?' };
                if let Some(service) = challenge.param("service") {
                    url.push(sep);
                    url.push_str("service=");
                    url.push_str(&escape(service));
                    sep = '&';
                }
                let actions = if self.action == "push" {
                    "pull,push"
                } else {
                    "pull"
                };
                let scope = challenge
                    .param("scope")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("repository:{}:{actions}", self.repository));
                url.push(sep);
                url.push_str("scope=");
                url.push_str(&escape(&scope));
                let mut b = http::Request::builder().method("GET").uri(&url);
                if let Some(c) = &self.credentials {
                    b = b.header("Authorization", basic(c));
                }
                let request = b.body(()).map_err(|e| RegistryError::Protocol {
                    registry: self.endpoint.host.clone(),
                    message: format!("token request {url}: {e}"),
                })?;
                let mut response = self
                    .agent
                    .run(request)
                    .map_err(|e| self.transport(&url, e))?;
                let status = response.status();
                if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN
                {
                    let message = error_message(&mut response);
                    return Err(self.unauthorized(format!("token service: {message}")));
                }
                if !status.is_success() {
                    let message = error_message(&mut response);
                    return Err(RegistryError::Status {
                        registry: self.endpoint.host.clone(),
                        method: "GET".into(),
                        url,
                        status: status.as_u16(),
                        message,
                    });
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_SMALL_BODY)
                    .read_to_vec()
                    .map_err(|e| self.transport(&url, e))?;
                let t: Token =
                    serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                        registry: self.endpoint.host.clone(),
                        message: format!("token service {realm}: {e}"),
                    })?;
                let token = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| RegistryError::Protocol {
                        registry: self.endpoint.host.clone(),
                        message: format!("token service {realm} returned no token"),
                    })?;
                self.authorization = Some(format!("Bearer {token}"));
                Ok(())
            }
            other => Err(RegistryError::Protocol {
                registry: self.endpoint.host.clone(),
                message: format!("unsupported authentication scheme {other:?}"),
            }),
        }
    }
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Percent-encodes a query value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The message of a registry error response (`{"errors":[{"code","message"}]}`), or the
/// start of its body.
pub(crate) fn error_message(response: &mut Response) -> String {
    let mut body = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(64 << 10)
        .read_to_end(&mut body);
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        if !e.errors.is_empty() {
            return e
                .errors
                .iter()
                .map(|i| format!("{} ({})", i.message, i.code))
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        response
            .status()
            .canonical_reason()
            .unwrap_or("error")
            .to_owned()
    } else {
        text.chars().take(300).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(
            c.param("scope"),
            Some("repository:library/alpine:pull,push")
        );
        let c = parse_challenge(r#"Basic realm="basic-realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("basic-realm"));
        let c = parse_challenge("Basic").unwrap();
        assert!(c.params.is_empty());
        let c = parse_challenge(r#"Bearer realm="a\"b", error=invalid_token"#).unwrap();
        assert_eq!(c.param("realm"), Some("a\"b"));
        assert_eq!(c.param("error"), Some("invalid_token"));
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn transient_errors_are_told_apart() {
        let status = |status| RegistryError::Status {
            registry: "r".into(),
            method: "GET".into(),
            url: "u".into(),
            status,
            message: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient());
        assert!(!RegistryError::NotFound {
            registry: "r".into(),
            what: "x".into()
        }
        .is_transient());
    }
}
