//! kelp-controller: store, API, scheduler, controllers, node hub and the `kelp` CLI.
//!
//! - [`store`]: the object store (redb), one revision counter, list-watch.
//! - [`api`]: the Kubernetes-shaped HTTPS API, admission, access control.
//! - [`cli`]: the kubectl-like commands.
//! - [`hub`]: the MQTT side: embedded broker, desired state out, births and reports in.
//! - [`events`]: the events nodes and components report, kept in memory for an hour.
//! - [`metrics`]: node, pod and container metrics, kept in memory; `/metrics`, Summary, top.
//! - [`config`]: the client config the server writes and the CLI reads.
//! - [`server`]: `kelp server`: wires it all together.

pub mod api;
pub mod cli;
pub mod config;
pub mod controllers;
pub mod events;
pub mod hub;
pub mod local_agent;
pub mod metrics;
pub mod scheduler;
pub mod server;
pub mod store;
