//! `cargo xtask validate`: YAML, kustomize, schemas, Flux graph and secrets
//! hygiene of the whole tree, offline, with every finding reported.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::ValueEnum;

use crate::validate::{self, Options};
use k8s_schema::fetch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Validate only this cluster (`clusters/<NAME>`); repeatable.
    #[arg(long = "cluster", value_name = "NAME", conflicts_with = "all")]
    clusters: Vec<String>,
    /// Validate every cluster (the default).
    #[arg(long)]
    all: bool,
    /// Kubernetes version of the core schemas.
    #[arg(long, value_name = "X.Y.Z", default_value = k8s_schema::DEFAULT_KUBERNETES_VERSION)]
    kubernetes_version: String,
    /// Schema folder, or a kubeconform-style URL/path template with
    /// `{{ .ResourceKind }}` etc.; repeatable. Default: `.schemas/`.
    #[arg(long = "schema-location", value_name = "DIR|TEMPLATE")]
    schema_locations: Vec<String>,
    /// Report objects without a schema as warnings, not errors.
    #[arg(long)]
    skip_missing_schemas: bool,
    /// Also render every HelmRelease with `helm template` and validate the
    /// chart output; a release whose chart cannot be fetched is an error.
    #[arg(long)]
    helm: bool,
    /// Also send every rendered object to a real kube-apiserver (the control
    /// plane's, started on loopback in a temporary folder) with server-side
    /// dry-run and strict field validation, and report its verdicts.
    #[arg(long)]
    server: bool,
    /// Accept fields that the schemas do not list (strict is the default).
    #[arg(long)]
    no_strict: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Fill `.schemas/` from the Go modules pinned in xtask/schemas.toml
    /// (cached), then exit; validation runs offline afterwards.
    #[arg(long)]
    fetch_schemas: bool,
    /// The tree to validate [default: the repository].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> Result<ExitCode> {
        let root = checkout.tree(self.root.clone())?;
        if self.fetch_schemas {
            let manifest = fetch::SchemaManifest::of_repo(checkout.root()?)?;
            let dir = root.join(".schemas");
            let explicit = self.kubernetes_version != k8s_schema::DEFAULT_KUBERNETES_VERSION;
            let fetched = fetch::fetch_all(
                &manifest,
                &dir,
                explicit.then_some(self.kubernetes_version.as_str()),
            )?;
            for f in &fetched {
                eprintln!(
                    "schemas: {:<24} {} ({} files{})",
                    f.name,
                    f.pin,
                    f.files,
                    if f.cached { ", cached" } else { "" }
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut opts = Options::new(&root);
        opts.clusters = self.clusters;
        opts.kubernetes_version = self.kubernetes_version;
        if !self.schema_locations.is_empty() {
            opts.schema_locations = self.schema_locations;
        }
        opts.skip_missing_schemas = self.skip_missing_schemas;
        opts.helm = self.helm.then(crate::helm_options);
        opts.strict = !self.no_strict;
        if self.server {
            opts.server = Some(checkout.root()?.to_path_buf());
        }
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        opts.progress = std::io::stderr().is_terminal() && !ci;
        let report = validate::run(&opts)?;
        match self.output {
            Output::Text => print!("{}", report.render_text()),
            Output::Json => print!("{}", report.render_json()),
        }
        if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
            print!("{}", report.github_annotations());
        }
        Ok(if report.errors() > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}
