//! The `kelp` binary: `kelp server` and the kubectl-like commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kelp_controller::{cli, server};

#[derive(Parser)]
#[command(name = "kelp", version = kelp_shared::VERSION, about = "Kubernetes for edge hardware")]
struct Cli {
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: store, API, scheduler and controllers.
    Server(Box<server::ServerArgs>),
    #[command(flatten)]
    Kubectl(cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = matches!(cli.command, Command::Server(_));
    init_tracing(if server { "info" } else { "warn" });
    match cli.command {
        Command::Server(args) => match server::main(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Kubectl(command) => cli::run(cli.global, command),
    }
}

/// Logs go to stderr; `KELP_LOG` (an `EnvFilter` directive) overrides the default level.
fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KELP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
