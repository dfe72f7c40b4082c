//! `cargo xtask test`: the one test command, locally and in CI. It installs
//! every test prerequisite (apt, pip, npm, `go install`) idempotently, then
//! runs fmt, clippy, actionlint, zizmor and the whole test suite with the real tools
//! required (a missing tool fails instead of skipping).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use exec::runner::Cmd;
use exec::tools::{self, Manifest};

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
    pub fn run(self, checkout: &crate::Checkout) -> anyhow::Result<ExitCode> {
        let root = checkout.root()?.to_path_buf();
        let manifest = Manifest::of_repo(&root)?;
        let started = Instant::now();
        if !self.skip_install {
            step("apt packages", || apt(&manifest.test.apt))?;
            step("pip packages", || pip(&manifest.test.pip))?;
            step("npm packages", || npm(&root, &manifest.test.npm))?;
            step("go tools", || {
                super::tools::install_all(&root, &manifest, &manifest.test.tools)
            })?;
            step("schemas (.schemas/ from Go modules)", || {
                let schemas = k8s_schema::fetch::SchemaManifest::of_repo(&root)?;
                for f in k8s_schema::fetch::fetch_all(&schemas, &root.join(".schemas"), None)? {
                    eprintln!("schemas: {}", f.name);
                }
                Ok(())
            })?;
            step("peers: the flux CLI and flux-local", || {
                flux_cli(&root)?;
                flux_local(&root)
            })?;
            step(
                "e2e control plane (etcd, kube-apiserver, Flux controllers)",
                || {
                    crate::cluster::local::build_binaries(&root, |e| {
                        eprintln!("{}", super::e2e::describe(e))
                    })?;
                    Ok(())
                },
            )?;
        }
        if self.install_only {
            return Ok(ExitCode::SUCCESS);
        }
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
        step("zizmor", || zizmor(&root))?;
        step("cargo test", || {
            Ok(cargo(&root)
                .args(["test", "--workspace"])
                .args(&self.cargo_test_args)
                .env("XTASK_REQUIRE_TOOLS", "1")
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
        .filter(|p| flux_render::is_yaml(p))
        .collect();
    if workflows.is_empty() {
        bail!("no workflows found under .github/workflows");
    }
    let bin = tools::find("actionlint")?;
    Cmd::new(bin).args(&workflows).dir(root).run()?;
    eprintln!("{} workflow(s) clean", workflows.len());
    Ok(())
}

/// zizmor's security audits of the workflows at its default persona,
/// offline (no GitHub API: the online audits need a token). A finding fails
/// the step unless the workflow waives it inline with a reason.
fn zizmor(root: &Path) -> anyhow::Result<()> {
    let bin = tools::find("zizmor")
        .context("zizmor is installed by the pip step (xtask/tools.toml [test] pip)")?;
    Cmd::new(bin)
        .args(["--offline", "--no-progress", ".github/workflows"])
        .dir(root)
        .run()?;
    Ok(())
}

/// The flux CLI at the Flux release pinned in xtask/tools.toml, for flux-local
/// (`flux build ks`). `go install` refuses it (replace directives) and its
/// module lacks the generated install manifests it embeds, so it is built from
/// a copy of the module with a placeholder manifest; `flux build` and
/// `flux diff` do not use the embedded manifests.
fn flux_cli(root: &Path) -> anyhow::Result<()> {
    let version = crate::cluster::flux_install::FluxPin::of_repo(root)?.version;
    let module = format!("github.com/fluxcd/flux2/v2@{version}");
    let bin_dir = tools::bin_dir(root);
    let stamp = bin_dir.join(".flux.version");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == module)
        && bin_dir.join("flux").is_file()
    {
        eprintln!("flux {version} already built");
        return Ok(());
    }
    let info: serde_json::Value = serde_json::from_str(
        &Cmd::new("go")
            .args(["mod", "download", "-json", &module])
            .read()?,
    )?;
    let source = info["Dir"]
        .as_str()
        .with_context(|| format!("go mod download {module} gave no Dir"))?;
    let build = root.join(".tools/build/flux");
    if build.exists() {
        std::fs::remove_dir_all(&build)?;
    }
    std::fs::create_dir_all(root.join(".tools/build"))?;
    // The module cache is read-only: copy, then make the copy writable.
    Cmd::new("cp").args(["-R", source]).arg(&build).read()?;
    Cmd::new("chmod").args(["-R", "u+w"]).arg(&build).read()?;
    let manifests = build.join("cmd/flux/manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(
        manifests.join("placeholder.yaml"),
        "# Placeholder: release builds embed the generated install manifests here.\n",
    )?;
    let started = Instant::now();
    Cmd::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(bin_dir.join("flux"))
        .arg("./cmd/flux")
        .dir(&build)
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .read()?;
    std::fs::write(&stamp, format!("{module}\n"))?;
    std::fs::remove_dir_all(&build)?;
    eprintln!(
        "built flux {version} in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// flux-local (the peer of `diff` and `build --helm`) in its own venv under
/// target/: it needs Python 3.12 or newer.
fn flux_local(root: &Path) -> anyhow::Result<()> {
    const PIN: &str = "flux-local==7.11.0";
    let venv = root.join("target/flux-local-venv");
    let pip = venv.join("bin/pip");
    let installed = Cmd::new(&pip)
        .args(["show", "flux-local"])
        .read()
        .ok()
        .and_then(|out| {
            out.lines()
                .find_map(|l| l.strip_prefix("Version: ").map(str::to_string))
        });
    if installed.as_deref() == PIN.split_once("==").map(|(_, v)| v) {
        eprintln!("already installed: {PIN}");
        return Ok(());
    }
    let python = python_312()
        .context("flux-local needs Python 3.12 or newer (python3.12 on PATH or in pyenv)")?;
    Cmd::new(&python).args(["-m", "venv"]).arg(&venv).read()?;
    Cmd::new(&pip)
        .args(["install", "--disable-pip-version-check", "-q", PIN])
        .read()?;
    eprintln!("installed {PIN} into {}", venv.display());
    Ok(())
}

fn python_312() -> Option<std::path::PathBuf> {
    // pyenv puts shims for every version on PATH, working or not: each
    // candidate must actually run and be 3.12 or newer.
    let works = |python: &std::path::Path| {
        Cmd::new(python)
            .args(["-c", "import sys; print(sys.version_info >= (3, 12))"])
            .read()
            .is_ok_and(|out| out.trim() == "True")
    };
    let on_path = ["python3.13", "python3.12", "python3"]
        .into_iter()
        .filter_map(|name| tools::find(name).ok());
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(std::path::PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".pyenv")));
    let mut from_pyenv: Vec<std::path::PathBuf> = pyenv_root
        .and_then(|root| std::fs::read_dir(root.join("versions")).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/python3"))
        .filter(|p| p.is_file())
        .collect();
    from_pyenv.sort();
    from_pyenv.reverse();
    on_path.chain(from_pyenv).find(|p| works(p))
}
