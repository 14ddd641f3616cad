//! kelp-agent: the node agent. Runs the pods of its node's desired state.
pub mod cgroup;
pub mod image;
pub mod logs;
pub mod preflight;
pub mod runtime;
