//! The cluster CA and the API's serving certificate, made at first start and kept in the
//! data dir (keys mode 0600).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Errors making or reading the TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate or key is unusable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The CA (for clients) and the server's rustls configuration.
pub struct TlsMaterial {
    /// The CA certificate, PEM: what clients trust.
    pub ca_pem: String,
    /// The rustls server configuration for the API.
    pub server_config: Arc<rustls::ServerConfig>,
}

fn write_private(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| TlsError::Io {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.into(),
        source,
    })
}

/// Loads the CA and serving certificate from `dir/tls/`, making them on first start. The
/// serving certificate names `localhost`, `127.0.0.1`, `::1`, the host name and `extra_sans`.
pub fn load_or_create(dir: &Path, extra_sans: &[String]) -> Result<TlsMaterial, TlsError> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).map_err(|source| TlsError::Io {
        path: tls.clone(),
        source,
    })?;
    let (ca_crt, ca_key) = (tls.join("ca.crt"), tls.join("ca.key"));
    let (srv_crt, srv_key) = (tls.join("server.crt"), tls.join("server.key"));

    if !ca_crt.exists() || !srv_crt.exists() || !srv_key.exists() {
        let ca_keypair = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kelp-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_keypair)?;

        let mut sans = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim();
            if !h.is_empty() {
                sans.push(h.to_string());
            }
        }
        sans.extend(extra_sans.iter().cloned());
        sans.dedup();
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kelp-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = Issuer::new(ca_params, &ca_keypair);
        let cert = params.signed_by(&key, &issuer)?;

        write_private(&ca_key, &ca_keypair.serialize_pem(), 0o600)?;
        write_private(&srv_key, &key.serialize_pem(), 0o600)?;
        write_private(&srv_crt, &cert.pem(), 0o644)?;
        write_private(&ca_crt, &ca_cert.pem(), 0o644)?;
    }

    let ca_pem = read(&ca_crt)?;
    let chain = pem_certs(&srv_crt)?;
    let key = pem_key(&srv_key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsMaterial {
        ca_pem,
        server_config: Arc::new(config),
    })
}

fn pem_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })
}

fn pem_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Invalid {
        path: path.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn material_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &["kelp.example".into()]).unwrap();
        let again = load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(first.ca_pem, again.ca_pem);
        assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let mode = std::fs::metadata(dir.path().join("tls/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
