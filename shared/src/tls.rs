//! The TLS client side of an MQTT link (`mqtts://`): rustls with ring, trusting only the CA
//! certificates given (a join file's `caPem`, the server's `--mqtt-ca`), never the system's.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A rustls client configuration trusting the PEM certificates in `ca_pem`; the error says
/// what is wrong with them.
pub fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig, String> {
    client_config_with_identity(ca_pem, None)
}

/// [`client_config`], presenting the client certificate `(cert_pem, key_pem)` when given.
pub fn client_config_with_identity(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let Some((cert_pem, key_pem)) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("client certificate: not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("client certificate: holds no PEM certificate".into());
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("client key: not a PEM private key: {e}"))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate and key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_ca() {
        assert!(client_config("")
            .unwrap_err()
            .contains("no PEM certificate"));
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(client_config(junk).is_err());
    }
}
