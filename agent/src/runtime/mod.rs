//! The container runtime: pods through youki's libcontainer, driven by a per-pod monitor.
pub mod spec;
