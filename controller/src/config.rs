//! The client config: where the API is, the CA that signs it, and the bearer token.
//!
//! `kelp server` writes it (mode 0600) at first start; the CLI reads it from `$KELP_CONFIG`,
//! else `/etc/kelp/kelp.yaml`, else `~/.kelp/config`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable that names the client config file.
pub const CONFIG_ENV: &str = "KELP_CONFIG";

/// Where `kelp server` writes the admin config by default, and the CLI looks first.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kelp/kelp.yaml";

/// The client config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// `https://127.0.0.1:6443`.
    pub server: String,
    /// The cluster CA certificate, PEM.
    pub certificate_authority: String,
    /// The bearer token.
    pub token: String,
}

/// Errors reading or writing the client config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No config file was found.
    #[error("no kelp config found: set {CONFIG_ENV}, or run `kelp server`, which writes {DEFAULT_CONFIG_PATH}")]
    NotFound,
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("{path}: not a kelp config: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ClientConfig {
    /// The path the CLI reads: `$KELP_CONFIG`, else the first existing default.
    pub fn locate() -> Result<PathBuf, ConfigError> {
        if let Some(p) = std::env::var_os(CONFIG_ENV) {
            return Ok(PathBuf::from(p));
        }
        let mut candidates = vec![PathBuf::from(DEFAULT_CONFIG_PATH)];
        if let Some(home) = std::env::var_os("HOME") {
            candidates.push(Path::new(&home).join(".kelp/config"));
        }
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .ok_or(ConfigError::NotFound)
    }

    /// Reads the config the CLI should use.
    pub fn load() -> Result<ClientConfig, ConfigError> {
        Self::read(&Self::locate()?)
    }

    /// Reads a config file.
    pub fn read(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Writes the config with mode 0600, creating parent directories.
    pub fn write(&self, path: &Path) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_yaml_ng::to_string(self).expect("config serializes");
        write_private_atomic(path, text.as_bytes()).map_err(io)
    }
}

/// Writes `bytes` to `path` with mode 0600, atomically: a synced temporary file renamed over
/// it, so a crash leaves the old file or the new one, never half of either.
pub(crate) fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_config_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kelp.yaml");
        let cfg = ClientConfig {
            server: "https://127.0.0.1:6443".into(),
            certificate_authority: "-----BEGIN CERTIFICATE-----\n...".into(),
            token: "abc".into(),
        };
        cfg.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ClientConfig::read(&path).unwrap(), cfg);
        std::fs::write(&path, "server: [").unwrap();
        let err = ClientConfig::read(&path).unwrap_err().to_string();
        assert!(err.contains("not a kelp config"), "{err}");
    }
}
