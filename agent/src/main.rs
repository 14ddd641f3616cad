//! The `kelp-agent` binary.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kelp-agent", version = kelp_shared::VERSION, about = "kelp node agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the agent version.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Version => println!("kelp-agent version {}", kelp_shared::VERSION),
    }
    Ok(())
}
