//! The one error type of the wire codec.

use super::envelope::MessageKind;

/// Why bytes from the wire were refused (or a message could not be sealed).
///
/// Every decoder in [`crate::wire`] returns this; none of them panics on any input.
/// Each variant says what was being decoded (`what`: `"envelope"`, `"zstd body"` or a
/// message type name) and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A zero-length payload. On a retained topic this means "deleted"; it is never a
    /// message.
    #[error("empty payload (a deleted retained message?)")]
    Empty,

    /// The input is larger than the limit, refused before parsing.
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// What was being decoded or encoded.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },

    /// The envelope's wire version is not one this build speaks.
    #[error("unsupported wire version {got} (this build speaks {supported:?})")]
    UnsupportedVersion {
        /// The version found in the envelope.
        got: u16,
        /// The versions this build supports.
        supported: &'static [u16],
    },

    /// The input ended in the middle of a value.
    #[error("truncated {what}: input ended in the middle of a value")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
    },

    /// The input is not a valid encoding of the expected type.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's description of the problem.
        reason: String,
    },

    /// A complete value was decoded but bytes were left over after it.
    #[error("{count} trailing bytes after the {what}")]
    TrailingBytes {
        /// What was decoded.
        what: &'static str,
        /// How many bytes were left over.
        count: usize,
    },

    /// The (decompressed) body is larger than [`crate::wire::MAX_BODY`].
    #[error("body exceeds the {limit}-byte limit once decompressed")]
    BodyTooLarge {
        /// The limit it broke.
        limit: usize,
    },

    /// The zstd body could not be decompressed.
    #[error("cannot decompress zstd body: {reason}")]
    Decompress {
        /// The decompressor's description of the problem.
        reason: String,
    },

    /// The envelope holds another kind of message than the one asked for.
    #[error("envelope holds a {got:?} message, expected {expected:?}")]
    WrongKind {
        /// The kind asked for.
        expected: MessageKind,
        /// The kind in the envelope.
        got: MessageKind,
    },

    /// A value could not be serialized (only possible for types outside this module).
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's description of the problem.
        reason: String,
    },
}

impl WireError {
    /// Maps a postcard decoding error for `what`.
    pub(crate) fn from_postcard(what: &'static str, err: postcard::Error) -> Self {
        match err {
            postcard::Error::DeserializeUnexpectedEnd => WireError::Truncated { what },
            other => WireError::Malformed {
                what,
                reason: other.to_string(),
            },
        }
    }
}
