//! The controller's identity on the link: the cluster id, the Ed25519 key that signs desired
//! state, and the controller's own MQTT password. Made at first start, kept in the data dir
//! (mode 0600), never rotated by a restart: a controller restarted on the same data dir must
//! stay the cluster its nodes joined.

use std::path::Path;

use kelp_shared::wire::{ClusterId, SigningKey};

use super::HubError;

/// The file holding the cluster id (32 hex digits).
pub const CLUSTER_ID_FILE: &str = "cluster.id";
/// The file holding the controller's Ed25519 key (PKCS#8, binary).
pub const KEY_FILE: &str = "controller.key";
/// The file holding the controller's MQTT password (embedded broker).
pub const MQTT_PASSWORD_FILE: &str = "mqtt-controller.password";

/// The controller's identity.
#[derive(Debug)]
pub struct Identity {
    /// The cluster id every envelope carries.
    pub cluster_id: ClusterId,
    /// The key that signs desired state.
    pub key: SigningKey,
    /// The controller's password on the embedded broker.
    pub mqtt_password: String,
}

/// 32 random bytes as 64 hex digits (passwords).
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HubError> {
    crate::config::write_private_atomic(path, bytes).map_err(|source| HubError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_existing(path: &Path) -> Result<Option<Vec<u8>>, HubError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HubError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Identity {
    /// Reads the identity from `dir`, making whatever part is missing.
    pub fn load_or_create(dir: &Path) -> Result<Identity, HubError> {
        let id_path = dir.join(CLUSTER_ID_FILE);
        let cluster_id = match read_existing(&id_path)? {
            Some(bytes) => String::from_utf8_lossy(&bytes)
                .trim()
                .parse()
                .map_err(|e| HubError::Invalid {
                    path: id_path.clone(),
                    reason: format!("{e}"),
                })?,
            None => {
                let id = ClusterId(rand::random());
                write_private(&id_path, format!("{id}\n").as_bytes())?;
                id
            }
        };
        let key_path = dir.join(KEY_FILE);
        let pkcs8 = match read_existing(&key_path)? {
            Some(bytes) => bytes,
            None => {
                let pkcs8 = SigningKey::generate_pkcs8().map_err(|e| HubError::Invalid {
                    path: key_path.clone(),
                    reason: e.to_string(),
                })?;
                write_private(&key_path, &pkcs8)?;
                pkcs8
            }
        };
        let key = SigningKey::from_pkcs8(&pkcs8).map_err(|e| HubError::Invalid {
            path: key_path,
            reason: e.to_string(),
        })?;
        let pw_path = dir.join(MQTT_PASSWORD_FILE);
        let mqtt_password = match read_existing(&pw_path)? {
            Some(bytes) if !String::from_utf8_lossy(&bytes).trim().is_empty() => {
                String::from_utf8_lossy(&bytes).trim().to_owned()
            }
            _ => {
                let password = random_secret();
                write_private(&pw_path, password.as_bytes())?;
                password
            }
        };
        Ok(Identity {
            cluster_id,
            key,
            mqtt_password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path()).unwrap();
        for file in [CLUSTER_ID_FILE, KEY_FILE, MQTT_PASSWORD_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(first.cluster_id, again.cluster_id);
        assert_eq!(first.key.public_key(), again.key.public_key());
        assert_eq!(first.mqtt_password, again.mqtt_password);

        let other = tempfile::tempdir().unwrap();
        let other = Identity::load_or_create(other.path()).unwrap();
        assert_ne!(first.cluster_id, other.cluster_id);
        assert_ne!(first.key.public_key(), other.key.public_key());
    }

    #[test]
    fn a_damaged_key_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        let err = Identity::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(KEY_FILE), "{err}");
    }
}
