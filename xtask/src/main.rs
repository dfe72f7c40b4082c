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
    /// Validate the whole tree offline: YAML, kustomize, schemas, Flux graph, secrets.
    Validate(verbs::validate::Args),
    /// Show what a change does to every cluster, object by object, against a git ref.
    Diff(verbs::diff::Args),
    /// Encrypt, decrypt, edit, rotate and check SOPS secrets (native age + AES-GCM).
    Secrets(verbs::secrets::Args),
    /// Package the manifest tree as a reproducible Flux OCI artifact.
    Package(verbs::package::Args),
    /// Push the Flux OCI artifact to a registry.
    Publish(verbs::publish::Args),
    /// Point tags at a manifest the registry already has, by digest, without uploading; --verify-key checks its signature first.
    Promote(verbs::promote::Args),
    /// Bring up the local Kind cluster, registry, Cilium and Flux, publish, and wait until Ready.
    Bootstrap(verbs::bootstrap::Args),
    /// Publish the tree and make Flux reconcile it now, then wait until Ready.
    Reconcile(verbs::reconcile::Args),
    /// Show every Flux object's readiness and the registry's latest digest.
    Status(verbs::status::Args),
    /// Delete the local cluster and registry (--all: the mirror caches too).
    Down(verbs::down::Args),
    /// Time our verbs against their peer tools side by side and print the ratios.
    Bench(verbs::bench::Args),
    /// Reconcile our artifact with the real Flux controllers against a local kube-apiserver, no Docker.
    E2e(verbs::e2e::Args),
    /// Check an artifact's cosign signature against a public key.
    Verify(verbs::verify::Args),
    /// Install the pinned external CLIs (kustomize, ...) into .tools/bin.
    Tools(verbs::tools::Args),
    /// Install the test prerequisites, then run fmt, clippy and every test.
    Test(verbs::test::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exec::runner::set_verbose(cli.verbose);
    let checkout = xtask::Checkout::locate();
    if let Ok(root) = checkout.root() {
        // The checkout's pinned tools come first, for us and for what we run.
        let path = exec::tools::path_with(&exec::tools::bin_dir(root));
        // SAFETY: no other thread exists yet this early in main.
        unsafe { std::env::set_var("PATH", path) };
    }
    let result = match cli.command {
        Command::Build(args) => args.run(&checkout),
        Command::Validate(args) => args.run(&checkout),
        Command::Diff(args) => args.run(&checkout),
        Command::Secrets(args) => args.run(&checkout),
        Command::Package(args) => args.run(&checkout),
        Command::Publish(args) => args.run(&checkout),
        Command::Promote(args) => args.run(&checkout),
        Command::E2e(args) => args.run(&checkout),
        Command::Bootstrap(args) => args.run(&checkout),
        Command::Reconcile(args) => args.run(&checkout),
        Command::Status(args) => args.run(&checkout),
        Command::Down(args) => args.run(&checkout),
        Command::Verify(args) => args.run(&checkout),
        Command::Tools(args) => args.run(&checkout),
        Command::Bench(args) => args.run(&checkout),
        Command::Test(args) => args.run(&checkout),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
