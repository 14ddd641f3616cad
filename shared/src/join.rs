//! The join file: what a node needs to join a cluster, written by `kelp node add NAME`
//! (mode 0600) and read by the agent.
//!
//! ```yaml
//! brokerUrl: mqtt://192.168.1.10:1883
//! username: pi-1
//! password: 0f3c…
//! caPem: null            # PEM of the broker's CA, for mqtts:// (optional)
//! clusterId: 7a1f…       # 32 hex digits
//! controllerPublicKey: 9be2…   # Ed25519, 64 hex digits (base64 accepted)
//! nodeName: pi-1
//! topicPrefix: kelp/v1
//! ```
//!
//! The node connects with user name `username`, password `password` and MQTT client id
//! `nodeName` (the embedded broker refuses any other client id for the user). The agent
//! pins `controllerPublicKey` and `clusterId`: it applies only desired state signed
//! by that key for that cluster.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::wire::{check_node_name, ClusterId, PublicKey, Topics, DEFAULT_PREFIX};

/// A node's join file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinFile {
    /// `mqtt://host:port` (or `mqtts://host:port` with `caPem`).
    pub broker_url: String,
    /// The node's MQTT user name.
    pub username: String,
    /// The node's MQTT password.
    pub password: String,
    /// PEM of the CA that signs the broker's certificate, for `mqtts://`.
    pub ca_pem: Option<String>,
    /// The cluster the node joins.
    pub cluster_id: ClusterId,
    /// The controller's Ed25519 public key, which signs the node's desired state.
    pub controller_public_key: PublicKey,
    /// The node's name (a DNS-1123 subdomain).
    pub node_name: String,
    /// The MQTT topic prefix (`kelp/v1`).
    pub topic_prefix: String,
    /// A client certificate the node logs in with instead of a password (Mosquitto's
    /// `use_identity_as_username`: its common name is the node's name); needs `mqtts://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientIdentity {
    /// The certificate (chain), PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_pem", &"<pem>")
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for JoinFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinFile")
            .field("broker_url", &self.broker_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("cluster_id", &self.cluster_id)
            .field("controller_public_key", &self.controller_public_key)
            .field("node_name", &self.node_name)
            .field("topic_prefix", &self.topic_prefix)
            .field("client_identity", &self.client_identity)
            .finish()
    }
}

/// Why a join file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// Not YAML of the expected shape.
    #[error("not a kelp join file: {0}")]
    Syntax(String),
    /// A required field is absent or empty.
    #[error("join file: field `{field}` is missing")]
    Missing {
        /// The field's name as written in the file.
        field: &'static str,
    },
    /// A field holds a value that cannot be used.
    #[error("join file: field `{field}`: {reason}")]
    Invalid {
        /// The field's name as written in the file.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The file as written, before any field is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    broker_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    ca_pem: Option<String>,
    cluster_id: Option<String>,
    controller_public_key: Option<String>,
    node_name: Option<String>,
    topic_prefix: Option<String>,
    client_identity: Option<ClientIdentity>,
}

fn required(field: &'static str, value: Option<String>) -> Result<String, JoinError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(JoinError::Missing { field }),
    }
}

fn invalid(field: &'static str, reason: impl fmt::Display) -> JoinError {
    JoinError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

impl JoinFile {
    /// Parses and checks a join file's text.
    pub fn parse(text: &str) -> Result<JoinFile, JoinError> {
        let raw: Raw =
            serde_yaml_ng::from_str(text).map_err(|e| JoinError::Syntax(e.to_string()))?;
        let file = JoinFile {
            broker_url: required("brokerUrl", raw.broker_url)?,
            username: required("username", raw.username)?,
            // A node with a client certificate has no password.
            password: match &raw.client_identity {
                Some(_) => raw.password.unwrap_or_default(),
                None => required("password", raw.password)?,
            },
            ca_pem: raw.ca_pem.filter(|pem| !pem.trim().is_empty()),
            cluster_id: required("clusterId", raw.cluster_id)?
                .parse()
                .map_err(|e| invalid("clusterId", e))?,
            controller_public_key: required("controllerPublicKey", raw.controller_public_key)?
                .parse()
                .map_err(|e| invalid("controllerPublicKey", e))?,
            node_name: required("nodeName", raw.node_name)?,
            topic_prefix: raw
                .topic_prefix
                .filter(|p| !p.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            client_identity: raw.client_identity,
        };
        file.check()?;
        Ok(file)
    }

    /// Checks every field (what [`JoinFile::parse`] does after reading them).
    pub fn check(&self) -> Result<(), JoinError> {
        let (scheme, rest) = self.broker_url.split_once("://").ok_or_else(|| {
            invalid(
                "brokerUrl",
                "expected mqtt://HOST:PORT or mqtts://HOST:PORT",
            )
        })?;
        if scheme != "mqtt" && scheme != "mqtts" {
            return Err(invalid(
                "brokerUrl",
                format!("unsupported scheme {scheme:?}: use mqtt:// or mqtts://"),
            ));
        }
        if rest.is_empty() || rest.contains('@') || rest.contains('/') {
            return Err(invalid(
                "brokerUrl",
                "expected HOST[:PORT] after the scheme, without credentials or a path",
            ));
        }
        if let Some(pem) = &self.ca_pem {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(invalid("caPem", "not a PEM certificate"));
            }
        }
        if let Some(identity) = &self.client_identity {
            if scheme != "mqtts" {
                return Err(invalid(
                    "clientIdentity",
                    "a client certificate needs a TLS broker (mqtts://)",
                ));
            }
            if !identity.cert_pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(invalid("clientIdentity.certPem", "not a PEM certificate"));
            }
            if !identity.key_pem.contains("PRIVATE KEY-----") {
                return Err(invalid("clientIdentity.keyPem", "not a PEM private key"));
            }
        } else if self.password.is_empty() {
            return Err(JoinError::Missing { field: "password" });
        }
        check_node_name(&self.node_name).map_err(|e| invalid("nodeName", e))?;
        Topics::new(&self.topic_prefix).map_err(|e| invalid("topicPrefix", e))?;
        Ok(())
    }

    /// The file's YAML text.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a join file always serializes")
    }

    /// The broker's host and port (default 1883, or 8883 for `mqtts://`), and whether it
    /// is TLS.
    pub fn broker_address(&self) -> Result<(String, u16, bool), JoinError> {
        broker_address(&self.broker_url)
    }
}

/// Host, port and TLS of a broker URL (`mqtt://host[:port]`, `mqtts://host[:port]`,
/// `[v6]` hosts), as join and observer files give it.
pub fn broker_address(broker_url: &str) -> Result<(String, u16, bool), JoinError> {
    let (scheme, rest) = broker_url
        .split_once("://")
        .ok_or_else(|| invalid("brokerUrl", "no scheme"))?;
    let tls = scheme == "mqtts";
    let default = if tls { 8883 } else { 1883 };
    let bad_port = |port: &str| invalid("brokerUrl", format!("bad port {port:?}"));
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("brokerUrl", "unclosed `[` in the host"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, port.parse().map_err(|_| bad_port(port))?),
            None if after.is_empty() => (host, default),
            None => return Err(bad_port(after)),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad_port(port))?),
            None => (rest, default),
        }
    };
    if host.is_empty() {
        return Err(invalid("brokerUrl", "no host"));
    }
    Ok((host.to_owned(), port, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JoinFile {
        JoinFile {
            broker_url: "mqtt://10.0.0.1:1883".into(),
            username: "pi-1".into(),
            password: "secret".into(),
            ca_pem: None,
            cluster_id: ClusterId([0xab; 16]),
            controller_public_key: PublicKey([7; 32]),
            node_name: "pi-1".into(),
            topic_prefix: DEFAULT_PREFIX.into(),
            client_identity: None,
        }
    }

    #[test]
    fn a_client_certificate_replaces_the_password_and_needs_tls() {
        let mut file = sample();
        file.password = String::new();
        file.client_identity = Some(ClientIdentity {
            cert_pem: "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n".into(),
        });
        let err = JoinFile::parse(&file.to_yaml()).unwrap_err();
        assert!(err.to_string().contains("needs a TLS broker"), "{err}");
        file.broker_url = "mqtts://10.0.0.1:8883".into();
        file.ca_pem = file.client_identity.as_ref().map(|i| i.cert_pem.clone());
        let text = file.to_yaml();
        assert!(text.contains("clientIdentity:"), "{text}");
        assert_eq!(JoinFile::parse(&text).unwrap(), file);
        assert!(
            !format!("{file:?}").contains("PRIVATE"),
            "the key is redacted"
        );
        // Without one, the password is required.
        let mut plain = sample();
        plain.password = String::new();
        assert_eq!(
            JoinFile::parse(&plain.to_yaml()).unwrap_err(),
            JoinError::Missing { field: "password" }
        );
    }

    #[test]
    fn round_trips_through_yaml() {
        let file = sample();
        let text = file.to_yaml();
        assert!(text.contains("clusterId: abababab"), "{text}");
        assert!(text.contains(&"07".repeat(32)), "{text}");
        assert_eq!(JoinFile::parse(&text).unwrap(), file);
        assert!(!format!("{file:?}").contains("secret"));
    }

    #[test]
    fn errors_name_the_field() {
        let text = sample().to_yaml();
        let cases = [
            (
                text.replace("password: secret\n", ""),
                "`password` is missing",
            ),
            (
                text.replace("username: pi-1", "username: ''"),
                "`username` is missing",
            ),
            (
                text.replace("clusterId: ", "clusterId: zz"),
                "field `clusterId`: invalid cluster id",
            ),
            (
                text.replace("controllerPublicKey: ", "controllerPublicKey: x"),
                "field `controllerPublicKey`",
            ),
            (
                text.replace("nodeName: pi-1", "nodeName: Pi_1"),
                "field `nodeName`",
            ),
            (
                text.replace("mqtt://10.0.0.1:1883", "http://10.0.0.1"),
                "field `brokerUrl`: unsupported scheme",
            ),
            (
                text.replace("mqtt://10.0.0.1:1883", "mqtt://u:p@10.0.0.1"),
                "field `brokerUrl`",
            ),
            (
                text.replace("topicPrefix: kelp/v1", "topicPrefix: a/#"),
                "field `topicPrefix`",
            ),
            (format!("{text}extra: 1\n"), "unknown field `extra`"),
            ("[1, 2]".to_owned(), "not a kelp join file"),
        ];
        for (input, want) in cases {
            let err = JoinFile::parse(&input).unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}\n{input}");
        }
    }

    #[test]
    fn defaults_and_base64_key() {
        let mut text = sample().to_yaml().replace("topicPrefix: kelp/v1\n", "");
        text = text.replace(
            &"07".repeat(32),
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
        );
        let file = JoinFile::parse(&text).unwrap();
        assert_eq!(file.topic_prefix, DEFAULT_PREFIX);
        assert_eq!(file.controller_public_key, PublicKey([7; 32]));
    }

    #[test]
    fn broker_addresses() {
        let mut file = sample();
        assert_eq!(
            file.broker_address().unwrap(),
            ("10.0.0.1".to_owned(), 1883, false)
        );
        file.broker_url = "mqtts://broker.example".into();
        assert_eq!(
            file.broker_address().unwrap(),
            ("broker.example".to_owned(), 8883, true)
        );
        file.broker_url = "mqtt://[::1]:1999".into();
        assert_eq!(
            file.broker_address().unwrap(),
            ("::1".to_owned(), 1999, false)
        );
        file.broker_url = "mqtt://[::1]".into();
        assert_eq!(
            file.broker_address().unwrap(),
            ("::1".to_owned(), 1883, false)
        );
        file.broker_url = "mqtt://h:port".into();
        assert!(file.broker_address().is_err());
    }
}
