//! Fixed-size byte identifiers: [`ClusterId`], [`BootId`] and [`Signature`].
//!
//! On the wire (postcard) each is its raw bytes with no length prefix. In human-readable
//! formats (JSON, YAML, logs) each is lowercase hex.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

/// A string that is not the hex form of an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: expected {digits} hex digits")]
pub struct IdParseError {
    /// Which identifier was being parsed.
    pub what: &'static str,
    /// The rejected input.
    pub input: String,
    /// How many hex digits were expected.
    pub digits: usize,
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn parse_hex<const N: usize>(what: &'static str, input: &str) -> Result<[u8; N], IdParseError> {
    let err = || IdParseError {
        what,
        input: input.to_owned(),
        digits: 2 * N,
    };
    let digits = input.as_bytes();
    if digits.len() != 2 * N {
        return Err(err());
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16).ok_or_else(err)?;
        let lo = (pair[1] as char).to_digit(16).ok_or_else(err)?;
        // Both digits are < 16, so this always fits in a u8.
        *byte = u8::try_from(hi * 16 + lo).map_err(|_| err())?;
    }
    Ok(out)
}

/// Serde visitor for `[u8; N]` as an N-tuple (postcard: N raw bytes) or as hex.
struct ByteArrayVisitor<const N: usize> {
    what: &'static str,
    marker: PhantomData<[u8; N]>,
}

impl<'de, const N: usize> Visitor<'de> for ByteArrayVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} ({N} bytes or {} hex digits)", self.what, 2 * N)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = [0u8; N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        Ok(out)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_hex::<N>(self.what, v).map_err(E::custom)
    }
}

fn serialize_array<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    let mut tuple = serializer.serialize_tuple(bytes.len())?;
    for b in bytes {
        tuple.serialize_element(b)?;
    }
    tuple.end()
}

macro_rules! byte_id {
    ($(#[$meta:meta])* $name:ident, $len:literal, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl fmt::Display for $name {
            /// Lowercase hex.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            /// Parses hex (either case).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>($what, s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    serialize_array(&self.0, serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let visitor = ByteArrayVisitor::<$len> {
                    what: $what,
                    marker: PhantomData,
                };
                if deserializer.is_human_readable() {
                    deserializer.deserialize_str(visitor).map(Self)
                } else {
                    deserializer.deserialize_tuple($len, visitor).map(Self)
                }
            }
        }
    };
}

byte_id!(
    /// A cluster's identity: 16 random bytes made when a controller's store is created.
    ///
    /// Agents refuse messages from any other cluster than the one they joined, so a
    /// controller restarted on an empty data dir cannot stop a fleet's containers.
    ClusterId,
    16,
    "cluster id"
);

byte_id!(
    /// One run of an agent: 16 random bytes made at agent start (with the start time and a
    /// sequence number it orders and de-duplicates births, reports and events).
    BootId,
    16,
    "boot id"
);

byte_id!(
    /// An Ed25519 signature (64 bytes) over [`crate::wire::Envelope::signing_bytes`].
    Signature,
    64,
    "signature"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ClusterId([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        let text = id.to_string();
        assert_eq!(text, "00112233445566778899aabbccddeeff");
        assert_eq!(text.parse::<ClusterId>(), Ok(id));
        assert_eq!(
            "00112233445566778899AABBCCDDEEFF".parse::<ClusterId>(),
            Ok(id)
        );
        assert_eq!(
            format!("{id:?}"),
            "ClusterId(00112233445566778899aabbccddeeff)"
        );
    }

    #[test]
    fn hex_rejects_bad_input() {
        for bad in [
            "",
            "00",
            "zz112233445566778899aabbccddeeff",
            "é0112233445566778899aabbccddeef",
        ] {
            let err = bad.parse::<BootId>().unwrap_err();
            assert_eq!(err.what, "boot id");
            assert_eq!(err.digits, 32);
        }
    }

    #[test]
    fn postcard_is_raw_bytes_and_json_is_hex() {
        let sig = Signature([7; 64]);
        let bytes = postcard::to_stdvec(&sig).unwrap();
        assert_eq!(bytes, vec![7; 64]);
        assert_eq!(postcard::from_bytes::<Signature>(&bytes).unwrap(), sig);
        assert!(postcard::from_bytes::<Signature>(&bytes[..63]).is_err());

        let id = BootId([0xab; 16]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(16)));
        assert_eq!(serde_json::from_str::<BootId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<BootId>("\"abc\"").is_err());
    }
}
