//! The envelope around every MQTT payload.
//!
//! Layout (postcard, in this order; every field is pinned by the golden fixtures):
//!
//! | field | postcard encoding |
//! |---|---|
//! | `version: u16` | varint; decoded first, so a future version may change everything after it |
//! | `kind: MessageKind` | varint variant index |
//! | `cluster: ClusterId` | 16 raw bytes |
//! | `compression: Compression` | varint variant index |
//! | `signature: Option<Signature>` | `0`, or `1` and 64 raw bytes |
//! | `body: bytes` | varint length, then the bytes (compressed when `compression` says so) |
//!
//! The signature covers [`Envelope::signing_bytes`]: a fixed context string, then every
//! field above except the signature, with the body *as sent* (compressed). A receiver
//! therefore checks the signature before it decompresses anything.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::codec::{decode_message, encode_message, zstd_compress, zstd_decompress};
use super::error::WireError;
use super::ids::{ClusterId, Signature};
use super::messages::Message;
use super::{MAX_BODY, MAX_PACKET, SUPPORTED_WIRE_VERSIONS, WIRE_VERSION};

/// What an envelope's body holds. **Append-only**: the variant index is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    /// [`crate::wire::DesiredState`], controller → node, signed.
    Desired,
    /// [`crate::wire::Birth`], node → controller on `status`.
    Birth,
    /// [`crate::wire::Offline`], the last will on `status`.
    Offline,
    /// [`crate::wire::Reported`], node → controller.
    Reported,
    /// [`crate::wire::EventBatch`], node → controller.
    Events,
    /// [`crate::wire::MetricsBatch`]: reserved, never sent (see [`MessageKind::Samples`]).
    Metrics,
    /// [`crate::wire::Request`], controller → node, signed.
    Request,
    /// [`crate::wire::Response`], node → controller.
    Response,
    /// [`crate::wire::StaticPods`], node → controller on `static`.
    StaticPods,
    /// [`crate::wire::Heartbeat`], node → controller on `status` (not retained).
    Heartbeat,
    /// [`crate::wire::Samples`], node → controller on `metrics` (QoS 0, not retained).
    Samples,
}

impl MessageKind {
    /// Every kind, in wire order.
    pub const ALL: [MessageKind; 11] = [
        MessageKind::Desired,
        MessageKind::Birth,
        MessageKind::Offline,
        MessageKind::Reported,
        MessageKind::Events,
        MessageKind::Metrics,
        MessageKind::Request,
        MessageKind::Response,
        MessageKind::StaticPods,
        MessageKind::Heartbeat,
        MessageKind::Samples,
    ];

    /// Whether an agent must drop this kind unless it carries a valid signature by the
    /// pinned controller key (desired state and requests).
    pub const fn requires_signature(self) -> bool {
        matches!(self, MessageKind::Desired | MessageKind::Request)
    }
}

/// How an envelope's body is compressed. **Append-only**: the variant index is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Compression {
    /// The body is the message bytes.
    None,
    /// The body is one zstd frame holding the message bytes.
    Zstd,
}

/// Context string prepended to the signed bytes, so a kelp signature can never be
/// mistaken for a signature over anything else made with the same key.
pub const SIGNING_CONTEXT: &[u8] = b"kelp envelope signature\0";

/// Bytes an Ed25519 signature takes on the wire (`Some` tag + 64 bytes) — reserved by
/// [`Envelope::seal`] so signing a sealed envelope never pushes it over [`MAX_PACKET`].
const SIGNATURE_RESERVE: usize = 1 + Signature::LEN;

/// The envelope around every kelp payload: version, kind, cluster, compression,
/// signature slot and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Wire version the envelope and its body are encoded in.
    pub version: u16,
    /// What the body holds.
    pub kind: MessageKind,
    /// The cluster the message belongs to.
    pub cluster: ClusterId,
    /// How the body is compressed.
    pub compression: Compression,
    /// Ed25519 signature over [`Envelope::signing_bytes`], when signed.
    pub signature: Option<Signature>,
    /// The body as sent (compressed when `compression` says so).
    pub body: Vec<u8>,
}

/// The envelope's encoding, borrowed.
#[derive(Serialize)]
struct WireRef<'a> {
    version: u16,
    kind: MessageKind,
    cluster: &'a ClusterId,
    compression: Compression,
    signature: Option<&'a Signature>,
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

/// What the signature covers: everything but the signature.
#[derive(Serialize)]
struct SignedRef<'a> {
    version: u16,
    kind: MessageKind,
    cluster: &'a ClusterId,
    compression: Compression,
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

/// Everything after the version, in wire version 1.
#[derive(Deserialize)]
struct RestV1 {
    kind: MessageKind,
    cluster: ClusterId,
    compression: Compression,
    signature: Option<Signature>,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

/// Length of `n` as a postcard varint.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

impl Envelope {
    /// Seals a message body into an unsigned envelope of the current [`WIRE_VERSION`].
    ///
    /// With `compress`, the body is zstd-compressed — unless that does not make it
    /// smaller, in which case it goes uncompressed. Fails with
    /// [`WireError::BodyTooLarge`] when the body is over [`MAX_BODY`] (the receiver would
    /// refuse it), and with [`WireError::TooLarge`] when the envelope, once signed, would
    /// not fit in [`MAX_PACKET`].
    pub fn seal(
        kind: MessageKind,
        cluster: ClusterId,
        body: Vec<u8>,
        compress: bool,
    ) -> Result<Envelope, WireError> {
        if body.len() > MAX_BODY {
            return Err(WireError::BodyTooLarge { limit: MAX_BODY });
        }
        let (compression, body) = if compress {
            let packed = zstd_compress(&body);
            if packed.len() < body.len() {
                (Compression::Zstd, packed)
            } else {
                (Compression::None, body)
            }
        } else {
            (Compression::None, body)
        };
        let envelope = Envelope {
            version: WIRE_VERSION,
            kind,
            cluster,
            compression,
            signature: None,
            body,
        };
        let size = envelope.encoded_len() + SIGNATURE_RESERVE;
        if size > MAX_PACKET {
            return Err(WireError::TooLarge {
                what: "envelope",
                size,
                limit: MAX_PACKET,
            });
        }
        Ok(envelope)
    }

    /// Encodes `message` and seals it (see [`Envelope::seal`]) with the message's kind.
    pub fn seal_message<M: Message>(
        cluster: ClusterId,
        message: &M,
        compress: bool,
    ) -> Result<Envelope, WireError> {
        Envelope::seal(M::KIND, cluster, encode_message(message)?, compress)
    }

    fn wire_ref(&self) -> WireRef<'_> {
        WireRef {
            version: self.version,
            kind: self.kind,
            cluster: &self.cluster,
            compression: self.compression,
            signature: self.signature.as_ref(),
            body: &self.body,
        }
    }

    /// The envelope's postcard bytes, ready to publish.
    pub fn encode(&self) -> Vec<u8> {
        // Every field is an integer, a fixed-size array, an option or a byte string:
        // postcard cannot fail to serialize any of them into a Vec.
        postcard::to_extend(&self.wire_ref(), Vec::with_capacity(self.encoded_len()))
            .expect("postcard cannot fail to encode an envelope into a Vec")
    }

    /// Length of [`Envelope::encode`]'s output, without encoding the body.
    pub fn encoded_len(&self) -> usize {
        let head = WireRef {
            body: &[],
            ..self.wire_ref()
        };
        let head_len = postcard::to_stdvec(&head)
            .map(|bytes| bytes.len())
            .unwrap_or(0);
        // `head` ends with the one-byte length of its empty body.
        head_len.saturating_sub(1) + varint_len(self.body.len()) + self.body.len()
    }

    /// The exact bytes an Ed25519 signature covers: [`SIGNING_CONTEXT`], then the postcard
    /// encoding of version, kind, cluster, compression and body (everything but the
    /// signature), with the body as sent.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let signed = SignedRef {
            version: self.version,
            kind: self.kind,
            cluster: &self.cluster,
            compression: self.compression,
            body: &self.body,
        };
        let out = SIGNING_CONTEXT.to_vec();
        postcard::to_extend(&signed, out)
            .expect("postcard cannot fail to encode signed fields into a Vec")
    }

    /// Decodes an envelope from untrusted bytes.
    ///
    /// Refuses empty input ([`WireError::Empty`], a deleted retained message) and input
    /// over [`MAX_PACKET`] before parsing, reads the version first and refuses unsupported
    /// ones, and rejects trailing bytes. Never panics. The body is not decompressed here:
    /// check the signature first, then call [`Envelope::open_body`].
    pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
        const WHAT: &str = "envelope";
        if bytes.is_empty() {
            return Err(WireError::Empty);
        }
        if bytes.len() > MAX_PACKET {
            return Err(WireError::TooLarge {
                what: WHAT,
                size: bytes.len(),
                limit: MAX_PACKET,
            });
        }
        let (version, rest) = postcard::take_from_bytes::<u16>(bytes)
            .map_err(|err| WireError::from_postcard(WHAT, err))?;
        if !SUPPORTED_WIRE_VERSIONS.contains(&version) {
            return Err(WireError::UnsupportedVersion {
                got: version,
                supported: SUPPORTED_WIRE_VERSIONS,
            });
        }
        let (fields, rest) = postcard::take_from_bytes::<RestV1>(rest)
            .map_err(|err| WireError::from_postcard(WHAT, err))?;
        if !rest.is_empty() {
            return Err(WireError::TrailingBytes {
                what: WHAT,
                count: rest.len(),
            });
        }
        let envelope = Envelope {
            version,
            kind: fields.kind,
            cluster: fields.cluster,
            compression: fields.compression,
            signature: fields.signature,
            body: fields.body,
        };
        // postcard accepts overlong varints; only the shortest (canonical) form is kelp's,
        // so every envelope has exactly one encoding. Each varint is at least as long as
        // its canonical form, so equal lengths mean equal bytes.
        if envelope.encoded_len() != bytes.len() {
            return Err(WireError::Malformed {
                what: WHAT,
                reason: "non-canonical encoding (overlong varint)".to_owned(),
            });
        }
        Ok(envelope)
    }

    /// Whether the signature slot is filled (not whether the signature is valid).
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// The message bytes: the body, decompressed when needed, at most [`MAX_BODY`] bytes
    /// (a zip bomb stops at the limit with [`WireError::BodyTooLarge`]).
    pub fn open_body(&self) -> Result<Cow<'_, [u8]>, WireError> {
        match self.compression {
            Compression::None if self.body.len() > MAX_BODY => {
                Err(WireError::BodyTooLarge { limit: MAX_BODY })
            }
            Compression::None => Ok(Cow::Borrowed(&self.body)),
            Compression::Zstd => zstd_decompress(&self.body, MAX_BODY).map(Cow::Owned),
        }
    }

    /// Checks the kind, opens the body and decodes the message in it.
    pub fn open<M: Message>(&self) -> Result<M, WireError> {
        if self.kind != M::KIND {
            return Err(WireError::WrongKind {
                expected: M::KIND,
                got: self.kind,
            });
        }
        decode_message(&self.open_body()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::{DesiredState, Offline};
    use crate::wire::BootId;

    fn sample(compression: Compression, body: Vec<u8>) -> Envelope {
        Envelope {
            version: WIRE_VERSION,
            kind: MessageKind::Reported,
            cluster: ClusterId([0x42; 16]),
            compression,
            signature: Some(Signature([0x5a; 64])),
            body,
        }
    }

    #[test]
    fn round_trip_and_encoded_len() {
        for body_len in [0, 1, 127, 128, 16_383, 16_384, 100_000] {
            let mut env = sample(Compression::None, vec![3; body_len]);
            let bytes = env.encode();
            assert_eq!(bytes.len(), env.encoded_len(), "body {body_len}");
            assert_eq!(Envelope::decode(&bytes).unwrap(), env);
            env.signature = None;
            let bytes = env.encode();
            assert_eq!(bytes.len(), env.encoded_len(), "body {body_len}");
            assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        }
    }

    #[test]
    fn empty_and_too_large_are_refused_before_parsing() {
        assert_eq!(Envelope::decode(&[]), Err(WireError::Empty));
        let big = vec![0xff; MAX_PACKET + 1];
        assert_eq!(
            Envelope::decode(&big),
            Err(WireError::TooLarge {
                what: "envelope",
                size: MAX_PACKET + 1,
                limit: MAX_PACKET
            })
        );
    }

    #[test]
    fn a_full_size_packet_is_accepted() {
        let mut env = sample(Compression::None, Vec::new());
        let overhead = env.encoded_len() + 2; // the body length becomes 3 varint bytes
        env.body = vec![1; MAX_PACKET - overhead];
        let bytes = env.encode();
        assert_eq!(bytes.len(), MAX_PACKET);
        assert_eq!(Envelope::decode(&bytes).unwrap(), env);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for env in [
            sample(Compression::None, b"hello".to_vec()),
            sample(Compression::Zstd, vec![9; 300]),
            Envelope {
                signature: None,
                ..sample(Compression::None, Vec::new())
            },
        ] {
            let bytes = env.encode();
            for len in 0..bytes.len() {
                let err = Envelope::decode(&bytes[..len]).unwrap_err();
                if len == 0 {
                    assert_eq!(err, WireError::Empty);
                } else {
                    assert_eq!(err, WireError::Truncated { what: "envelope" }, "len {len}");
                }
            }
        }
    }

    #[test]
    fn unsupported_versions() {
        for version in [0u16, 2, 300, u16::MAX] {
            let mut env = sample(Compression::None, b"x".to_vec());
            env.version = version;
            assert_eq!(
                Envelope::decode(&env.encode()),
                Err(WireError::UnsupportedVersion {
                    got: version,
                    supported: SUPPORTED_WIRE_VERSIONS
                })
            );
        }
        // A version varint longer than a u16 is malformed, not a panic.
        assert!(matches!(
            Envelope::decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn overlong_varints_are_refused() {
        let env = sample(Compression::None, b"x".to_vec());
        let bytes = env.encode();
        // Version 1 as the two-byte varint 0x81 0x00.
        let mut overlong = vec![0x81, 0x00];
        overlong.extend_from_slice(&bytes[1..]);
        assert!(matches!(
            Envelope::decode(&overlong),
            Err(WireError::Malformed { what: "envelope", reason }) if reason.contains("non-canonical")
        ));
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = sample(Compression::None, b"x".to_vec()).encode();
        bytes.extend_from_slice(b"!!");
        assert_eq!(
            Envelope::decode(&bytes),
            Err(WireError::TrailingBytes {
                what: "envelope",
                count: 2
            })
        );
    }

    #[test]
    fn unknown_enum_values_are_malformed() {
        let bytes = sample(Compression::None, b"x".to_vec()).encode();
        // Byte 1 is the kind, byte 18 the compression.
        let mut bad_kind = bytes.clone();
        bad_kind[1] = MessageKind::ALL.len() as u8;
        assert!(matches!(
            Envelope::decode(&bad_kind),
            Err(WireError::Malformed {
                what: "envelope",
                ..
            })
        ));
        let mut bad_compression = bytes.clone();
        bad_compression[18] = 2;
        assert!(matches!(
            Envelope::decode(&bad_compression),
            Err(WireError::Malformed {
                what: "envelope",
                ..
            })
        ));
        let mut bad_option = bytes;
        bad_option[19] = 2;
        assert!(matches!(
            Envelope::decode(&bad_option),
            Err(WireError::Malformed {
                what: "envelope",
                ..
            })
        ));
    }

    #[test]
    fn seal_compresses_only_when_it_helps() {
        let cluster = ClusterId([1; 16]);
        let env = Envelope::seal(MessageKind::Events, cluster, vec![0; 10_000], true).unwrap();
        assert_eq!(env.compression, Compression::Zstd);
        assert!(env.body.len() < 100);
        assert_eq!(env.open_body().unwrap().as_ref(), &[0; 10_000][..]);

        let env = Envelope::seal(MessageKind::Events, cluster, b"tiny".to_vec(), true).unwrap();
        assert_eq!(env.compression, Compression::None);
        assert_eq!(env.open_body().unwrap().as_ref(), b"tiny");

        let env = Envelope::seal(MessageKind::Events, cluster, vec![0; 1000], false).unwrap();
        assert_eq!(env.compression, Compression::None);
    }

    #[test]
    fn seal_refuses_what_would_not_fit() {
        let cluster = ClusterId([1; 16]);
        assert_eq!(
            Envelope::seal(MessageKind::Desired, cluster, vec![0; MAX_BODY + 1], true),
            Err(WireError::BodyTooLarge { limit: MAX_BODY })
        );
        // Compressible: a big body fits once compressed.
        assert!(Envelope::seal(MessageKind::Desired, cluster, vec![0; MAX_BODY], true).is_ok());
        // Not compressed: the packet limit applies, with room for a signature.
        let err =
            Envelope::seal(MessageKind::Desired, cluster, vec![0; MAX_PACKET], false).unwrap_err();
        assert!(matches!(
            err,
            WireError::TooLarge {
                what: "envelope",
                limit: MAX_PACKET,
                ..
            }
        ));
        let mut body_len = MAX_PACKET - 50;
        let env = loop {
            match Envelope::seal(MessageKind::Desired, cluster, vec![0; body_len], false) {
                Ok(env) => break env,
                Err(_) => body_len -= 1,
            }
        };
        let signed = Envelope {
            signature: Some(Signature([0xee; 64])),
            ..env
        };
        assert!(signed.encode().len() <= MAX_PACKET);
        assert!(signed.encode().len() > MAX_PACKET - 4);
    }

    #[test]
    fn zip_bomb_is_stopped_at_the_limit() {
        // 8 MiB of zeros compresses to a few KiB; the decoder must stop at MAX_BODY.
        let bomb_body = zstd_compress(&vec![0u8; 8 * 1024 * 1024]);
        assert!(bomb_body.len() < MAX_PACKET);
        let env = Envelope {
            compression: Compression::Zstd,
            body: bomb_body,
            ..sample(Compression::None, Vec::new())
        };
        let decoded = Envelope::decode(&env.encode()).unwrap();
        assert_eq!(
            decoded.open_body(),
            Err(WireError::BodyTooLarge { limit: MAX_BODY })
        );
        // Exactly at the limit is fine.
        let env = Envelope {
            body: zstd_compress(&vec![0u8; MAX_BODY]),
            ..env
        };
        assert_eq!(env.open_body().unwrap().len(), MAX_BODY);
    }

    #[test]
    fn garbage_zstd_body_is_an_error() {
        let env = sample(Compression::Zstd, b"definitely not zstd".to_vec());
        assert!(matches!(env.open_body(), Err(WireError::Decompress { .. })));
        let env = sample(Compression::Zstd, Vec::new());
        assert!(matches!(env.open_body(), Err(WireError::Decompress { .. })));
    }

    #[test]
    fn signing_bytes_cover_everything_but_the_signature() {
        let env = sample(Compression::None, b"body".to_vec());
        let signed = env.signing_bytes();
        assert!(signed.starts_with(SIGNING_CONTEXT));
        let unsigned = Envelope {
            signature: None,
            ..env.clone()
        };
        assert_eq!(unsigned.signing_bytes(), signed);
        // The unsigned wire bytes, minus the `None` tag, are what is signed.
        let mut wire = unsigned.encode();
        wire.remove(19);
        assert_eq!(&signed[SIGNING_CONTEXT.len()..], &wire[..]);
        // Any other field changes them.
        for changed in [
            Envelope {
                version: 2,
                ..env.clone()
            },
            Envelope {
                kind: MessageKind::Desired,
                ..env.clone()
            },
            Envelope {
                cluster: ClusterId([0x43; 16]),
                ..env.clone()
            },
            Envelope {
                compression: Compression::Zstd,
                ..env.clone()
            },
            Envelope {
                body: b"bodz".to_vec(),
                ..env.clone()
            },
        ] {
            assert_ne!(changed.signing_bytes(), signed);
        }
    }

    #[test]
    fn open_checks_the_kind() {
        let cluster = ClusterId([1; 16]);
        let offline = Offline {
            node: "pi-1".into(),
            boot_id: BootId([2; 16]),
        };
        let env = Envelope::seal_message(cluster, &offline, false).unwrap();
        assert_eq!(env.kind, MessageKind::Offline);
        assert_eq!(env.open::<Offline>().unwrap(), offline);
        assert_eq!(
            env.open::<DesiredState>(),
            Err(WireError::WrongKind {
                expected: MessageKind::Desired,
                got: MessageKind::Offline
            })
        );
    }

    #[test]
    fn requires_signature() {
        let signed: Vec<_> = MessageKind::ALL
            .into_iter()
            .filter(|kind| kind.requires_signature())
            .collect();
        assert_eq!(signed, [MessageKind::Desired, MessageKind::Request]);
    }
}
