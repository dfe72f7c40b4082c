//! `cargo xtask test`: the one test command, locally and in CI. It installs
//! every test prerequisite (apt, pip, npm, `go install`) idempotently, then
//! runs fmt, clippy, actionlint and the whole test suite with the real tools
//! required (a missing tool fails instead of skipping).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::runner::Cmd;
use crate::tools::{self, Manifest};

#[derive(clap::Args)]
pub struct Args {
    /// Do not install prerequisites; use what is there.
    #[arg(long)]
    skip_install: bool,
    /// Only install the prerequisites.
    #[arg(long, conflicts_with = "skip_install")]
    install_only: bool,
    /// Extra arguments for `cargo test` (e.g. a test name filter).
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let root = crate::project_root();
        let manifest = Manifest::project()?;
        let started = Instant::now();
        if !self.skip_install {
            step("apt packages", || apt(&manifest.test.apt))?;
            step("pip packages", || pip(&manifest.test.pip))?;
            step("npm packages", || npm(&root, &manifest.test.npm))?;
            step("go tools", || {
                super::tools::install_all(&manifest, &manifest.test.tools)
            })?;
            step("schemas (.schemas/ from Go modules)", || {
                let schemas = crate::schema::fetch::SchemaManifest::project()?;
                for f in crate::schema::fetch::fetch_all(&schemas, &root.join(".schemas"), None)? {
                    eprintln!("schemas: {}", f.name);
                }
                Ok(())
            })?;
            step(
                "e2e control plane (etcd, kube-apiserver, Flux controllers)",
                || {
                    crate::cluster::local::build_binaries(|e| {
                        eprintln!("{}", super::e2e::describe(e))
                    })?;
                    Ok(())
                },
            )?;
        }
        if self.install_only {
            return Ok(ExitCode::SUCCESS);
        }
        let path = path_with_tools();
        step("cargo fmt --check", || {
            Ok(cargo(&root).args(["fmt", "--all", "--check"]).run()?)
        })?;
        step("cargo clippy", || {
            Ok(cargo(&root)
                .args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])
                .run()?)
        })?;
        step("actionlint", || actionlint(&root))?;
        step("cargo test", || {
            Ok(cargo(&root)
                .args(["test", "--workspace"])
                .args(&self.cargo_test_args)
                .env("XTASK_REQUIRE_TOOLS", "1")
                .env("PATH", &path)
                .run()?)
        })?;
        eprintln!(
            "all checks passed in {:.0}s",
            started.elapsed().as_secs_f64()
        );
        Ok(ExitCode::SUCCESS)
    }
}

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    eprintln!("==> {name}");
    let started = Instant::now();
    f().with_context(|| format!("step `{name}` failed"))?;
    eprintln!("<== {name} ({:.1}s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn cargo(root: &Path) -> Cmd {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Cmd::new(cargo).dir(root)
}

/// PATH with `.tools/bin` first, so tests find the pinned tools.
fn path_with_tools() -> std::ffi::OsString {
    let mut dirs = vec![tools::bin_dir()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Runs a command as root: directly when we are root, else through sudo.
fn as_root(args: &[&str]) -> Cmd {
    let is_root = Cmd::new("id")
        .arg("-u")
        .read()
        .is_ok_and(|uid| uid.trim() == "0");
    if is_root {
        Cmd::new(args[0]).args(&args[1..])
    } else {
        Cmd::new("sudo").args(args)
    }
}

fn apt(packages: &[String]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .map(String::as_str)
        .filter(|p| {
            !Cmd::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .read()
                .is_ok_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        eprintln!("already installed: {}", packages.join(", "));
        return Ok(());
    }
    eprintln!("installing {}", missing.join(", "));
    as_root(&["apt-get", "update", "-qq"]).read()?;
    let mut install = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&missing);
    as_root(&install)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .read()?;
    Ok(())
}

fn pip(requirements: &[String]) -> anyhow::Result<()> {
    for requirement in requirements {
        let (name, version) = requirement
            .split_once("==")
            .with_context(|| format!("pip requirement {requirement} must pin a version with =="))?;
        let installed = Cmd::new("python3")
            .args(["-m", "pip", "show", name])
            .read()
            .ok()
            .and_then(|out| {
                out.lines()
                    .find_map(|l| l.strip_prefix("Version: ").map(str::to_string))
            });
        if installed.as_deref() == Some(version) {
            eprintln!("already installed: {requirement}");
            continue;
        }
        eprintln!("installing {requirement}");
        Cmd::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                requirement,
            ])
            .read()?;
    }
    Ok(())
}

fn npm(root: &Path, packages: &[String]) -> anyhow::Result<()> {
    let prefix = root.join("target/npm");
    for package in packages {
        let (name, version) = package
            .rsplit_once('@')
            .filter(|(n, _)| !n.is_empty())
            .with_context(|| format!("npm package {package} must pin a version with @"))?;
        let manifest = prefix.join("node_modules").join(name).join("package.json");
        let installed = std::fs::read_to_string(&manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| {
                v.get("version")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            });
        if installed.as_deref() == Some(version) {
            eprintln!("already installed: {package}");
            continue;
        }
        eprintln!("installing {package} into {}", prefix.display());
        std::fs::create_dir_all(&prefix)?;
        Cmd::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(package)
            .read()?;
    }
    Ok(())
}

fn actionlint(root: &Path) -> anyhow::Result<()> {
    let workflows: Vec<_> = std::fs::read_dir(root.join(".github/workflows"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| crate::render::is_yaml(p))
        .collect();
    if workflows.is_empty() {
        bail!("no workflows found under .github/workflows");
    }
    let bin = tools::find("actionlint")?;
    Cmd::new(bin).args(&workflows).dir(root).run()?;
    eprintln!("{} workflow(s) clean", workflows.len());
    Ok(())
}
