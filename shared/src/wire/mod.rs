//! The MQTT wire format: envelope, kelp's own messages, topics.
//!
//! Every MQTT payload kelp sends is an [`Envelope`] encoded with postcard: wire version,
//! [`MessageKind`], [`ClusterId`], [`Compression`] (none / zstd), an optional Ed25519
//! [`Signature`] and the body bytes. The body is one of kelp's own [`messages`], also
//! postcard; Kubernetes objects inside travel as JSON bytes.
//!
//! # Rules
//!
//! - **Postcard cannot evolve a struct.** Never add, remove or reorder a field of a wire
//!   type, nor reorder an enum's variants; append an enum variant at the end or bump
//!   [`WIRE_VERSION`]. The golden fixtures (`shared/tests/wire_golden.rs`,
//!   `shared/tests/golden/`) pin every byte; a failing golden test means the wire format
//!   changed.
//! - **Versions.** The envelope's version comes first and is decoded first; a receiver
//!   refuses versions outside [`SUPPORTED_WIRE_VERSIONS`]. A birth lists the agent's
//!   versions and the controller speaks the highest shared one ([`negotiate_version`]).
//! - **Untrusted input.** Every decoder takes untrusted bytes, refuses input over the
//!   limits before parsing ([`MAX_PACKET`] for an envelope, [`MAX_BODY`] for a
//!   decompressed body, so a zip bomb stops at 4 MiB), rejects trailing bytes (and, for
//!   the envelope, any non-canonical encoding, so each envelope has exactly one byte
//!   form), never panics, and says what was wrong in a [`WireError`]. Decoded values hold no
//!   recursion; their size in memory is bounded by a small multiple of [`MAX_BODY`].
//! - **Signatures.** Desired state and requests are signed by the controller
//!   ([`MessageKind::requires_signature`]); the signature covers
//!   [`Envelope::signing_bytes`] (everything but the signature, body as sent), so a
//!   receiver verifies before decompressing. [`sign()`] and [`verify()`] (Ed25519, ring) fill
//!   and check the slot.
//! - **Empty payloads** are deleted retained messages ([`WireError::Empty`]), never
//!   messages.
//! - **Topics** are built and parsed only by [`Topics`]; node names are DNS-1123
//!   subdomains ([`valid_node_name`]) so they can never contain `/`, `+` or `#`.
//!
//! # Example
//!
//! ```
//! use kelp_shared::wire::{ClusterId, Envelope, Generation, DesiredState};
//!
//! let cluster = ClusterId([7; 16]);
//! let desired = DesiredState {
//!     generation: Generation { cluster_id: cluster, revision: 42 },
//!     node: "pi-1".to_owned(),
//!     objects_json: vec![br#"{"kind":"Pod"}"#.to_vec()],
//! };
//! let payload = Envelope::seal_message(cluster, &desired, true)?.encode();
//!
//! let envelope = Envelope::decode(&payload)?;
//! assert_eq!(envelope.cluster, cluster);
//! assert_eq!(envelope.open::<DesiredState>()?, desired);
//! # Ok::<(), kelp_shared::wire::WireError>(())
//! ```

mod codec;
mod envelope;
mod error;
mod ids;
pub mod messages;
#[cfg(feature = "sign")]
pub mod sign;
pub mod topics;

#[cfg(test)]
mod tests;

pub use codec::{decode_message, encode_message};
pub use envelope::{Compression, Envelope, MessageKind, SIGNING_CONTEXT};
pub use error::WireError;
pub use ids::{BootId, ClusterId, IdParseError, Signature};
pub use messages::{
    AddressKind, Birth, Condition, ConditionStatus, ContainerReport, ContainerState, DesiredState,
    EventBatch, EventType, Generation, Heartbeat, Message, Metric, MetricsBatch, NodeAddress,
    NodeEvent, ObjectRef, Offline, PodPhase, PodReport, Reported, Request, RequestBody, Resources,
    Response, ResponseBody, Sample, SampleSeries, Samples, Series, StaticPods, Subject, SubjectKey,
};
#[cfg(feature = "sign")]
pub use sign::{sign, verify, PublicKey, SignError, SigningKey};
pub use topics::{
    check_command_name, check_node_name, valid_node_name, Qos, TopicError, TopicKind, Topics,
    DEFAULT_PREFIX,
};

/// The wire version this build sends.
pub const WIRE_VERSION: u16 = 1;

/// Every wire version this build can decode, ascending.
pub const SUPPORTED_WIRE_VERSIONS: &[u16] = &[1];

/// The MQTT packet limit, everywhere: an encoded envelope is at most this long. (The MQTT
/// packet also holds the topic; publishers check the whole packet.)
pub const MAX_PACKET: usize = 1024 * 1024;

/// The most output of one stream (stdout, stderr) of a `kelp exec` command that is kept;
/// the node sends one byte more when there was more, so the controller can say it was cut.
pub const EXEC_OUTPUT_LIMIT: usize = 1024 * 1024;

/// The largest message body, after decompression.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The wire version to speak with a peer that announced `theirs` (in its birth): the
/// highest version both sides support, or `None` when there is none.
pub fn negotiate_version(theirs: &[u16]) -> Option<u16> {
    SUPPORTED_WIRE_VERSIONS
        .iter()
        .rev()
        .find(|version| theirs.contains(version))
        .copied()
}
