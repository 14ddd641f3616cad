//! Where and how to reach registries: the node's registries file (k3s's
//! `registries.yaml` shape) and the credentials of `imagePullSecrets`
//! (`kubernetes.io/dockerconfigjson`, i.e. Docker's `config.json`).
//!
//! ```yaml
//! # /etc/kelp/registries.yaml
//! mirrors:
//!   docker.io:                      # pulls of docker.io images try these first, in order
//!     endpoint: ["https://mirror.site.lan:5000"]
//!   registry.site.lan:5000:         # an http:// endpoint makes a registry plain HTTP
//!     endpoint: ["http://registry.site.lan:5000"]
//! configs:
//!   mirror.site.lan:5000:           # keyed by the endpoint's (or registry's) host
//!     auth: { username: pi, password: secret }   # or `auth: <base64 user:pass>`
//!     tls:  { ca_file: /etc/kelp/site-ca.pem }   # cert_file/key_file, insecure_skip_verify
//! ```
//!
//! As in containerd, the registry's own `https://` endpoint is always tried after its
//! mirrors (`docker.io` answers on `registry-1.docker.io`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::reference::{Reference, DOCKER_HUB};

/// The default location of the node's registries file.
pub const REGISTRIES_FILE: &str = "/etc/kelp/registries.yaml";

/// Why a registries file or a docker config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON of the expected shape.
    #[error("parsing {what}: {message}")]
    Parse {
        /// The file or document.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// An endpoint is not an `http://` or `https://` URL.
    #[error("{what}: endpoint {endpoint:?} of {registry} is not an http:// or https:// URL")]
    BadEndpoint {
        /// The file.
        what: String,
        /// The mirrored registry.
        registry: String,
        /// The endpoint.
        endpoint: String,
    },
}

/// The node's registries file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Registry host (or `*` for all) → endpoints to try, in order.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Endpoint or registry host → credentials and TLS settings.
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

/// The endpoints of one mirrored registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// `https://host[:port]` or `http://host[:port]` URLs (a path prefix is allowed).
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Settings of one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

/// Credentials of a registries file or docker config entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AuthConfig {
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// `base64(username:password)`, as Docker writes it.
    #[serde(default)]
    pub auth: Option<String>,
    /// A refresh token for the registry's token service.
    #[serde(default, alias = "identitytoken")]
    pub identity_token: Option<String>,
}

/// TLS files of a registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Extra CA certificates (PEM) trusted for this host, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Do not verify the server's certificate (for tests only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// User name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name (`<token>` for an identity token).
    pub username: String,
    /// Password or identity token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl AuthConfig {
    /// The credentials this entry holds, if any.
    pub fn credentials(&self) -> Option<Credentials> {
        if let Some(token) = self.identity_token.as_deref().filter(|t| !t.is_empty()) {
            return Some(Credentials {
                username: "<token>".into(),
                password: token.to_owned(),
            });
        }
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            if !u.is_empty() {
                return Some(Credentials {
                    username: u.clone(),
                    password: p.clone(),
                });
            }
        }
        let raw = self.auth.as_deref().filter(|a| !a.is_empty())?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (u, p) = decoded.split_once(':')?;
        Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        })
    }
}

/// One place to send registry API requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host:port[/prefix]`, without a trailing slash.
    pub base_url: String,
    /// `host[:port]` of the URL: the key of its [`HostConfig`].
    pub host: String,
    /// Whether this is a mirror (else the registry itself).
    pub mirror: bool,
}

impl Endpoint {
    fn from_url(url: &str, mirror: bool) -> Option<Self> {
        let url = url.trim_end_matches('/');
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return None;
        }
        // containerd accepts a `/v2` suffix on mirror URLs; requests add it themselves.
        let base_url = url.strip_suffix("/v2").unwrap_or(url).to_owned();
        Some(Self {
            base_url,
            host: host.to_owned(),
            mirror,
        })
    }

    /// Whether requests go over plain HTTP.
    pub fn plain_http(&self) -> bool {
        self.base_url.starts_with("http://")
    }
}

impl RegistriesConfig {
    /// Reads a registries file.
    pub fn load(path: &Path) -> Result<Self, RegistriesError> {
        let text = fs::read_to_string(path).map_err(|source| RegistriesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Reads the registries file at `path` if it exists; an empty configuration if not.
    pub fn load_if_present(path: &Path) -> Result<Self, RegistriesError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::default())
        }
    }

    /// Parses the YAML of a registries file; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, RegistriesError> {
        let config: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| RegistriesError::Parse {
                what: what.to_owned(),
                message: e.to_string(),
            })?
        };
        for (registry, m) in &config.mirrors {
            for e in &m.endpoint {
                if Endpoint::from_url(e, true).is_none() {
                    return Err(RegistriesError::BadEndpoint {
                        what: what.to_owned(),
                        registry: registry.clone(),
                        endpoint: e.clone(),
                    });
                }
            }
        }
        Ok(config)
    }

    /// The endpoints to try for a registry, in order: its mirrors, the `*` mirrors, then the
    /// registry itself over HTTPS (unless a mirror entry already is the registry's own host).
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = Vec::new();
        for key in [registry, "*"] {
            if let Some(m) = self.mirrors.get(key) {
                for url in &m.endpoint {
                    if let Some(mut e) = Endpoint::from_url(url, true) {
                        e.mirror = e.host != registry;
                        if !out.contains(&e) {
                            out.push(e);
                        }
                    }
                }
            }
        }
        let api_host = if registry == DOCKER_HUB {
            super::reference::DOCKER_HUB_API
        } else {
            registry
        };
        if !out.iter().any(|e| e.host == registry || e.host == api_host) {
            out.push(Endpoint {
                base_url: format!("https://{api_host}"),
                host: api_host.to_owned(),
                mirror: false,
            });
        }
        out
    }

    /// The settings of an endpoint host (falling back to the registry's name).
    pub fn host_config(&self, endpoint_host: &str, registry: &str) -> Option<&HostConfig> {
        self.configs
            .get(endpoint_host)
            .or_else(|| self.configs.get(registry))
    }
}

/// The content of a `kubernetes.io/dockerconfigjson` Secret (`.dockerconfigjson`), or of a
/// Docker `config.json`: credentials by registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DockerConfigJson {
    /// Registry (`host`, `https://host`, `https://index.docker.io/v1/`) → credentials.
    #[serde(default)]
    pub auths: BTreeMap<String, AuthConfig>,
}

impl DockerConfigJson {
    /// Parses a `.dockerconfigjson` document.
    pub fn parse(bytes: &[u8]) -> Result<Self, RegistriesError> {
        serde_json::from_slice(bytes).map_err(|e| RegistriesError::Parse {
            what: ".dockerconfigjson".into(),
            message: e.to_string(),
        })
    }

    /// The credentials for `registry` (a reference's registry, such as `docker.io` or
    /// `host:5000`), matching keys the way the kubelet does: scheme and path ignored, Docker
    /// Hub's aliases equal.
    pub fn credentials(&self, registry: &str) -> Option<Credentials> {
        let canon = |h: &str| -> String {
            let h = h
                .strip_prefix("https://")
                .or_else(|| h.strip_prefix("http://"))
                .unwrap_or(h);
            let h = h.split('/').next().unwrap_or_default();
            match h {
                "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_owned(),
                other => other.to_owned(),
            }
        };
        let wanted = canon(registry);
        self.auths
            .iter()
            .filter(|(k, _)| canon(k) == wanted)
            .find_map(|(_, a)| a.credentials())
    }
}

/// The credentials to use for an endpoint of `reference`'s registry: the pull secrets first
/// (in order), then the registries file.
pub(crate) fn credentials_for(
    secrets: &[DockerConfigJson],
    registries: &RegistriesConfig,
    reference: &Reference,
    endpoint: &Endpoint,
) -> Option<Credentials> {
    let from_secret = if endpoint.mirror {
        secrets.iter().find_map(|s| s.credentials(&endpoint.host))
    } else {
        secrets
            .iter()
            .find_map(|s| s.credentials(&reference.registry))
    };
    from_secret.or_else(|| {
        registries
            .host_config(&endpoint.host, &reference.registry)
            .and_then(|c| c.auth.as_ref())
            .and_then(AuthConfig::credentials)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3s_shaped_files_parse() {
        let c = RegistriesConfig::parse(
            r#"
mirrors:
  docker.io:
    endpoint: ["https://mirror.lan:5000/v2", "http://plain.lan"]
  "registry.lan:5000":
    endpoint:
      - http://registry.lan:5000
configs:
  "mirror.lan:5000":
    auth: { username: pi, password: secret }
    tls: { ca_file: /etc/kelp/ca.pem }
  registry.lan:5000:
    auth: { auth: cGk6cmFzcGJlcnJ5 }
"#,
            "registries.yaml",
        )
        .unwrap();
        let e = c.endpoints("docker.io");
        let urls: Vec<_> = e.iter().map(|e| e.base_url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://mirror.lan:5000",
                "http://plain.lan",
                "https://registry-1.docker.io"
            ]
        );
        assert!(e[0].mirror && !e[2].mirror && e[1].plain_http());
        let e = c.endpoints("registry.lan:5000");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].plain_http() && !e[0].mirror);
        let cfg = c.host_config("mirror.lan:5000", "docker.io").unwrap();
        assert_eq!(
            cfg.tls.as_ref().unwrap().ca_file.as_deref(),
            Some(Path::new("/etc/kelp/ca.pem"))
        );
        let creds = c
            .host_config("registry.lan:5000", "registry.lan:5000")
            .unwrap()
            .auth
            .as_ref()
            .unwrap()
            .credentials()
            .unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("pi", "raspberry")
        );
        assert!(!format!("{creds:?}").contains("raspberry"));
    }

    #[test]
    fn bad_files_are_refused_naming_the_problem() {
        let e = RegistriesConfig::parse("mirrors:\n  x:\n    endpoint: [ftp://x]\n", "f.yaml")
            .unwrap_err();
        assert!(e.to_string().contains("ftp://x"), "{e}");
        let e = RegistriesConfig::parse("mirors: {}\n", "f.yaml").unwrap_err();
        assert!(e.to_string().contains("f.yaml"), "{e}");
        assert_eq!(
            RegistriesConfig::parse("", "f").unwrap(),
            RegistriesConfig::default()
        );
    }

    #[test]
    fn pull_secret_keys_match_like_the_kubelet() {
        let secret = DockerConfigJson::parse(
            br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},
                 "http://127.0.0.1:5000":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        assert_eq!(secret.credentials("docker.io").unwrap().username, "u");
        assert_eq!(secret.credentials("127.0.0.1:5000").unwrap().password, "b");
        assert!(secret.credentials("ghcr.io").is_none());
        let reference = Reference::parse("127.0.0.1:5000/app").unwrap();
        let registries = RegistriesConfig::default();
        let endpoint = &registries.endpoints("127.0.0.1:5000")[0];
        assert_eq!(
            credentials_for(&[secret], &registries, &reference, endpoint)
                .unwrap()
                .username,
            "a"
        );
    }
}
