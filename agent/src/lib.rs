//! kelp-agent: the node agent. Runs the pods of its node's desired state.
pub mod image;
