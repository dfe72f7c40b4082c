//! `cargo xtask down`: delete the kind cluster and the local registry; with
//! `--all`, also the pull-through caches. Absent pieces are fine.

use std::process::ExitCode;

use crate::cluster::{self, Toolbox, kind, registry};

#[derive(clap::Args)]
pub struct Args {
    /// The kind cluster to delete.
    #[arg(long, default_value = "local")]
    cluster: String,
    /// Also delete the mirror caches (the next bootstrap pulls everything again).
    #[arg(long)]
    all: bool,
}

impl Args {
    pub fn run(self, _checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let t = Toolbox::resolve_for_down()?;
        t.require_engine()?;
        if kind::exists(&t, &self.cluster)? {
            kind::delete(&t, &self.cluster)?;
            eprintln!("deleted cluster {}", self.cluster);
        } else {
            eprintln!("cluster {} does not exist", self.cluster);
        }
        let _ = std::fs::remove_file(cluster::kubeconfig_path(&self.cluster));
        let mut names = vec![registry::REGISTRY_NAME.to_string()];
        if self.all {
            names.extend(registry::mirrors().into_iter().map(|m| m.name));
        }
        for n in names {
            if registry::remove(&t, &n)? {
                eprintln!("removed {n}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
