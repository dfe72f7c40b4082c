//! `cargo xtask diff`: what a change does to every cluster, object by object,
//! against a git ref. Exit status as `flux diff`: 0 no differences, 1
//! differences, 2 an error.

use std::path::PathBuf;
use std::process::ExitCode;

use super::build;
use crate::diff::{self, DiffOptions, output};
use flux_render::helm::HelmOptions;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Output {
    Text,
    Markdown,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// The git ref to compare against (default: the merge-base with origin/main).
    #[arg(long)]
    base: Option<String>,
    /// The cluster to compare (a folder under clusters/); repeatable
    /// [default: every cluster, of either side].
    #[arg(long, short, value_name = "NAME", conflicts_with = "all")]
    cluster: Vec<String>,
    /// Compare every cluster, of either side (the default).
    #[arg(long)]
    all: bool,
    /// Render HelmReleases too (fetches charts into the user's cache).
    #[arg(long)]
    helm: bool,
    /// How to print the differences.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// The git working tree to compare [default: this repository].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let root = checkout.tree(self.root.clone())?;
        let ids = build::user_identities();
        // The working tree's SOPS files must be sound; a file no key opens is fine.
        let every = self.all || self.cluster.is_empty();
        let clusters = if every {
            flux_render::list_clusters(&root)
        } else {
            self.cluster.clone()
        };
        for cluster in &clusters {
            let broken = build::broken_sops(&root, cluster, ids.as_deref());
            if !broken.is_empty() {
                eprintln!(
                    "error: cluster {cluster}: {}",
                    build::describe_broken(&root, &broken)
                );
                return Ok(ExitCode::from(2));
            }
        }
        let decryptor = build::flux_decryptor(ids);
        let helm = self.helm.then(|| HelmOptions {
            decryptor: decryptor.clone(),
            ..crate::helm_options()
        });
        let opts = DiffOptions {
            root,
            base: self.base.clone(),
            clusters: if every {
                Vec::new()
            } else {
                self.cluster.clone()
            },
            helm,
            decryptor,
        };
        let report = match diff::run(&opts) {
            Ok(report) => report,
            Err(err) => {
                eprintln!("error: {err:#}");
                return Ok(ExitCode::from(2));
            }
        };
        let text = match self.output {
            Output::Text => output::text(&report),
            Output::Markdown => output::markdown(&report),
            Output::Json => output::json(&report),
        };
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
        eprintln!(
            "compared {} cluster(s) in {:.2}s",
            report.clusters.len(),
            report.elapsed.as_secs_f64()
        );
        for error in report.clusters.iter().flat_map(|c| &c.errors) {
            eprintln!("error: {error}");
        }
        Ok(if report.errors() > 0 {
            ExitCode::from(2)
        } else if report.has_differences() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}
