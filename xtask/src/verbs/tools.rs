//! `cargo xtask tools`: install or list the pinned external CLIs.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use exec::tools::{self, Manifest};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ToolsCommand,
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// Build the pinned CLIs into .tools/bin with `go install module@version`.
    Install {
        /// Only these tools (default: all of xtask/tools.toml).
        names: Vec<String>,
    },
    /// Show each pinned tool, its version, and where it is found.
    List,
}

impl Args {
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let root = checkout.root()?;
        let manifest = Manifest::of_repo(root)?;
        match self.command {
            ToolsCommand::Install { names } => {
                let names = if names.is_empty() {
                    manifest.tools.keys().cloned().collect()
                } else {
                    names
                };
                install_all(root, &manifest, &names)?;
            }
            ToolsCommand::List => {
                for (name, tool) in &manifest.tools {
                    let found = tools::find(name)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| "not installed".into());
                    println!("{name:<12} {:<10} {found}", tool.version);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Installs the named tools, one line each; used by `tools install` and `test`.
pub fn install_all(root: &Path, manifest: &Manifest, names: &[String]) -> anyhow::Result<()> {
    let bin_dir = tools::bin_dir(root);
    for name in names {
        let tool = manifest.get(name)?;
        let started = std::time::Instant::now();
        let built = tools::install(manifest, name, &bin_dir)
            .with_context(|| format!("installing {name} {}", tool.version))?;
        if built {
            eprintln!(
                "installed {name} {} in {:.1}s",
                tool.version,
                started.elapsed().as_secs_f64()
            );
        } else {
            eprintln!("{name} {} already installed", tool.version);
        }
    }
    Ok(())
}
