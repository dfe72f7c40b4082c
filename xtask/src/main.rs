//! `cargo xtask`: the DevantlerTech platform's build, validate, secrets and delivery tooling.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::verbs;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about,
    propagate_version = true
)]
struct Cli {
    /// Log every external command before it runs.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render every Flux Kustomization of a cluster, as `flux build kustomization` does.
    Build(verbs::build::Args),
    /// Encrypt, decrypt, edit, rotate and check SOPS secrets (native age + AES-GCM).
    Secrets(verbs::secrets::Args),
    /// Package the manifest tree as a reproducible Flux OCI artifact.
    Package(verbs::package::Args),
    /// Push the Flux OCI artifact to a registry.
    Publish(verbs::publish::Args),
    /// Install the pinned external CLIs (kustomize, ...) into .tools/bin.
    Tools(verbs::tools::Args),
    /// Install the test prerequisites, then run fmt, clippy and every test.
    Test(verbs::test::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    xtask::runner::set_verbose(cli.verbose);
    let result = match cli.command {
        Command::Build(args) => args.run(),
        Command::Secrets(args) => args.run(),
        Command::Package(args) => args.run(),
        Command::Publish(args) => args.run(),
        Command::Tools(args) => args.run(),
        Command::Test(args) => args.run(),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
