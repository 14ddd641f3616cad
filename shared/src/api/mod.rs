//! Kubernetes API objects, as kelp stores and serves them.

pub mod quantity;
