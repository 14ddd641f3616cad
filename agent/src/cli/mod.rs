//! Subcommands of the `kelp-agent` binary.
pub mod image;
