//! kelp-shared: the types both sides of kelp agree on.
//!
//! - [`api`]: Kubernetes API objects (serde-compatible with real YAML/JSON), quantities,
//!   the kind table, defaulting, validation and legacy-version conversion.
//! - [`manifest`]: loading manifests from files, directories and stdin.
//! - [`wire`]: the MQTT envelope, kelp's own postcard messages and topic names.
//! - [`join`]: the join file `kelp node add` writes and the agent reads.
//!
//! No async runtime, no MQTT client and no database live here: the agent cross-compiles
//! this crate for small ARM boards.

#[cfg(feature = "api")]
pub mod api;
#[cfg(feature = "join")]
pub mod join;
#[cfg(feature = "api")]
pub mod manifest;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

/// kelp's own version, as every binary reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
