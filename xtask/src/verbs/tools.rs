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
        if name == "kustomize" {
            install_kustomize_helper(root, &bin_dir)?;
        }
    }
    Ok(())
}

/// Builds `tools/kustomize-build` (many `kustomize build`s in one process)
/// beside the pinned kustomize, unless its stamp says it is built from
/// these sources for that kustomize. It is used only when the kustomize api
/// it holds is the one kustomize itself was built with; else it is removed
/// and every build runs the CLI.
fn install_kustomize_helper(root: &Path, bin_dir: &Path) -> anyhow::Result<()> {
    use flux_render::kustomize::HELPER;
    use sha2::{Digest, Sha256};
    let source = root.join("tools").join(HELPER);
    let bin = bin_dir.join(HELPER);
    let stamp = bin_dir.join(format!(".{HELPER}.version"));
    let cli_stamp = bin_dir.join(".kustomize.version");
    let cli = std::fs::read_to_string(&cli_stamp)
        .with_context(|| format!("reading {}", cli_stamp.display()))?;
    let mut digest = Sha256::new();
    for file in ["main.go", "go.mod", "go.sum"] {
        digest.update(
            std::fs::read(source.join(file))
                .with_context(|| format!("reading {}/{file}", source.display()))?,
        );
    }
    let wanted = format!("{}\n{}\n", cli.trim(), hex::encode(digest.finalize()));
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && bin.is_file() {
        eprintln!("{HELPER} already built");
        return Ok(());
    }
    let started = std::time::Instant::now();
    exec::Cmd::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&bin)
        .arg(".")
        .dir(&source)
        .env("GOFLAGS", "-buildvcs=false -mod=readonly")
        .read()
        .with_context(|| format!("building {}", source.display()))?;
    // The api version it holds must be kustomize's own.
    let holds = exec::Cmd::new(&bin).arg("--api-version").read()?;
    let modules = exec::Cmd::new("go")
        .args(["version", "-m"])
        .arg(bin_dir.join("kustomize"))
        .read()?;
    let wanted_api = format!("sigs.k8s.io/kustomize/api\t{}\t", holds.trim());
    if !modules
        .lines()
        .any(|l| l.trim_start().starts_with("dep\t") && l.contains(&wanted_api))
    {
        let _ = std::fs::remove_file(&bin);
        let _ = std::fs::remove_file(&stamp);
        eprintln!(
            "{HELPER}: not used: it holds kustomize api {}, which is not the api the installed kustomize was built with (update tools/{HELPER}/go.mod with kustomize's pin); builds run the kustomize CLI",
            holds.trim()
        );
        return Ok(());
    }
    exec::fsutil::write_atomic(&stamp, wanted.as_bytes())?;
    eprintln!(
        "built {HELPER} (kustomize api {}) in {:.1}s",
        holds.trim(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
