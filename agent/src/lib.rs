//! kelp-agent: the node agent. Runs the pods of its node's desired state.
pub mod agent;
pub mod cgroup;
pub mod cli;
pub mod events;
pub mod image;
pub mod link;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod pod;
pub mod preflight;
pub mod probe;
pub mod requests;
pub mod runtime;
pub mod static_pods;
pub mod store;
pub mod volume;
