//! `cargo xtask e2e`: reconcile our artifact with the real Flux controllers
//! against a local kube-apiserver, no Docker. See [`crate::cluster::local`];
//! `--cluster dev|prod` runs the existing-cluster bootstrap against it, with
//! signature verification (see [`crate::cluster::local::e2e::existing`]).

use std::process::ExitCode;

use crate::cluster::local::{self, E2eOptions};

#[derive(clap::Args)]
pub struct Args {
    /// The cluster folder whose e2e profile is reconciled. dev and prod (no
    /// kind.yaml) run the existing-cluster bootstrap against the control
    /// plane, with signature verification on.
    #[arg(long, default_value = "local")]
    cluster: String,
    /// Only build (or find cached) etcd, kube-apiserver and the Flux controllers.
    #[arg(long)]
    build_only: bool,
    /// Fail instead of building a binary that is missing from .tools/bin.
    #[arg(long)]
    no_build: bool,
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        if self.build_only {
            let started = std::time::Instant::now();
            let built = local::build_binaries(checkout.root()?, |e| eprintln!("{}", describe(e)))?;
            for (name, path) in &built {
                println!("{name}: {}", path.display());
            }
            eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
            return Ok(ExitCode::SUCCESS);
        }
        let opts = E2eOptions {
            root: checkout.root()?.to_path_buf(),
            cluster: self.cluster,
            build: !self.no_build,
        };
        let report = local::run_e2e(&opts, |line| eprintln!("{line}"))?;
        if report.edit_to_ready.is_zero() {
            // dev and prod: no edit loop is measured.
            println!(
                "e2e passed: {} assertions in {:.1} s",
                report.passed.len(),
                report.total.as_secs_f64()
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "e2e passed: {} assertions in {:.1} s; edit→applied {:.2} s, edit→Ready {:.2} s",
            report.passed.len(),
            report.total.as_secs_f64(),
            report.edit_to_applied.as_secs_f64(),
            report.edit_to_ready.as_secs_f64()
        );
        Ok(ExitCode::SUCCESS)
    }
}

pub(crate) fn describe(e: &local::BuildEvent) -> String {
    match e {
        local::BuildEvent::Cached { name, path } => format!("{name}: cached ({})", path.display()),
        local::BuildEvent::Started { name, log } => {
            format!("{name}: building (log {})", log.display())
        }
        local::BuildEvent::Built { name, took, .. } => {
            format!("{name}: built in {:.0} s", took.as_secs_f64())
        }
    }
}
