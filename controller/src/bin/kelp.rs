//! The `kelp` binary: server, kubectl-like commands and `kelp mqtt`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kelp", version = kelp_shared::VERSION, about = "Kubernetes for edge hardware")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the client version.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Version => println!("kelp version {}", kelp_shared::VERSION),
    }
    Ok(())
}
