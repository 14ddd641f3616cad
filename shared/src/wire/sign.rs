//! Ed25519 signatures over envelopes: the controller signs desired state and requests, the
//! agent verifies them with the key it pinned when it joined.
//!
//! The signature covers [`Envelope::signing_bytes`] (a context string, then every field but
//! the signature, with the body as sent), so a receiver verifies before it decompresses.

use std::fmt;
use std::str::FromStr;

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::envelope::Envelope;
use super::ids::Signature;

/// Why a signature or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The envelope carries no signature.
    #[error("envelope is not signed")]
    Unsigned,
    /// The signature does not match the envelope and key.
    #[error("bad signature: not made by the pinned controller key, or the envelope was altered")]
    BadSignature,
    /// The private key bytes are not an Ed25519 PKCS#8 document.
    #[error("invalid Ed25519 private key: {0}")]
    InvalidPrivateKey(String),
    /// A public key string that is neither 64 hex digits nor base64 of 32 bytes.
    #[error("invalid Ed25519 public key {input:?}: expected 64 hex digits or base64 of 32 bytes")]
    InvalidPublicKey {
        /// The rejected input.
        input: String,
    },
    /// The system random number generator failed.
    #[error("cannot generate a key: the system random number generator failed")]
    Random,
}

/// The controller's Ed25519 key pair.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private half.
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

impl SigningKey {
    /// A new key, as a PKCS#8 v2 document (keep it, then [`SigningKey::from_pkcs8`]).
    pub fn generate_pkcs8() -> Result<Vec<u8>, SignError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| SignError::Random)
    }

    /// The key from a PKCS#8 document (as [`SigningKey::generate_pkcs8`] makes).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, SignError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(|pair| SigningKey { pair })
            .map_err(|err| SignError::InvalidPrivateKey(err.to_string()))
    }

    /// The public half, which agents pin.
    pub fn public_key(&self) -> PublicKey {
        let mut bytes = [0u8; PublicKey::LEN];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(bytes)
    }
}

/// An Ed25519 public key. Text form: 64 lowercase hex digits (base64 is accepted too).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Length in bytes.
    pub const LEN: usize = 32;
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = SignError;

    /// 64 hex digits (either case), or standard base64 (padded or not) of 32 bytes.
    fn from_str(s: &str) -> Result<PublicKey, SignError> {
        let err = || SignError::InvalidPublicKey {
            input: s.to_owned(),
        };
        let s = s.trim();
        let bytes = if s.len() == 2 * PublicKey::LEN {
            decode_hex(s)
        } else {
            decode_base64(s)
        }
        .ok_or_else(err)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(PublicKey)
            .map_err(|_| err())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits = s.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Standard base64 (RFC 4648 alphabet), `=` padding optional.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    // Leftover bits must be zero padding of less than a byte.
    if bits >= 6 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

/// Signs `envelope` in place: fills its signature slot with the Ed25519 signature over
/// [`Envelope::signing_bytes`].
pub fn sign(envelope: &mut Envelope, key: &SigningKey) {
    let signature = key.pair.sign(&envelope.signing_bytes());
    let mut bytes = [0u8; Signature::LEN];
    bytes.copy_from_slice(signature.as_ref());
    envelope.signature = Some(Signature(bytes));
}

/// Checks that `envelope` carries a valid signature by `key`.
pub fn verify(envelope: &Envelope, key: &PublicKey) -> Result<(), SignError> {
    let signature = envelope.signature.as_ref().ok_or(SignError::Unsigned)?;
    UnparsedPublicKey::new(&ED25519, key.0)
        .verify(&envelope.signing_bytes(), signature.as_bytes())
        .map_err(|_| SignError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ClusterId, Compression, DesiredState, Generation, MessageKind};

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
    }

    fn desired() -> Envelope {
        let cluster = ClusterId([3; 16]);
        let state = DesiredState {
            generation: Generation {
                cluster_id: cluster,
                revision: 9,
            },
            node: "pi-1".into(),
            objects_json: vec![br#"{"kind":"Pod"}"#.to_vec(); 50],
        };
        Envelope::seal_message(cluster, &state, true).unwrap()
    }

    #[test]
    fn signed_envelope_verifies_after_a_round_trip() {
        let key = key();
        let mut env = desired();
        assert_eq!(verify(&env, &key.public_key()), Err(SignError::Unsigned));
        sign(&mut env, &key);
        let decoded = Envelope::decode(&env.encode()).unwrap();
        assert_eq!(verify(&decoded, &key.public_key()), Ok(()));
        assert_eq!(decoded.open::<DesiredState>().unwrap().node, "pi-1");
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let key = key();
        let mut env = desired();
        sign(&mut env, &key);
        let public = key.public_key();
        let mut body = env.clone();
        let last = body.body.len() - 1;
        body.body[last] ^= 1;
        assert_eq!(verify(&body, &public), Err(SignError::BadSignature));
        let cluster = Envelope {
            cluster: ClusterId([4; 16]),
            ..env.clone()
        };
        assert_eq!(verify(&cluster, &public), Err(SignError::BadSignature));
        let kind = Envelope {
            kind: MessageKind::Request,
            ..env.clone()
        };
        assert_eq!(verify(&kind, &public), Err(SignError::BadSignature));
        let compression = Envelope {
            compression: Compression::None,
            ..env.clone()
        };
        assert_eq!(verify(&compression, &public), Err(SignError::BadSignature));
        let mut signature = env.clone();
        signature.signature.as_mut().unwrap().0[0] ^= 0x80;
        assert_eq!(verify(&signature, &public), Err(SignError::BadSignature));
    }

    #[test]
    fn another_key_is_refused() {
        let mut env = desired();
        sign(&mut env, &key());
        assert_eq!(
            verify(&env, &key().public_key()),
            Err(SignError::BadSignature)
        );
    }

    #[test]
    fn public_key_text_forms() {
        let public = key().public_key();
        let hex = public.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<PublicKey>().unwrap(), public);
        assert_eq!(hex.to_uppercase().parse::<PublicKey>().unwrap(), public);
        // RFC 4648 test vector "foobar", and a 32-byte key in base64.
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
                .parse::<PublicKey>()
                .unwrap()
                .0,
            std::array::from_fn::<u8, 32, _>(|i| i as u8)
        );
        for bad in ["", "xyz", &"g".repeat(64), "Zm9vYmFy", "Zm9vY="] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&public).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), public);
    }

    #[test]
    fn private_key_errors_are_clear() {
        assert!(matches!(
            SigningKey::from_pkcs8(b"not a key"),
            Err(SignError::InvalidPrivateKey(_))
        ));
        let key = key();
        assert!(!format!("{key:?}").contains("private"));
    }
}
