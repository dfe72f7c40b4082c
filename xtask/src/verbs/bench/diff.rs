//! `bench diff`: our `diff --all --helm` against `flux-local diff ks` and
//! `diff hr` on a fixture git repository (two commits: a values change and a
//! chart bump) whose charts are served from a loopback OCI registry and chart
//! repository ([`crate::testbed`]). Each side runs once before it is timed,
//! so both find warm chart caches.

use std::path::{Path, PathBuf};

use anyhow::Context;
use exec::runner::Cmd;
use exec::tools;

use super::{Report, Row, time};
use crate::diff::{self, DiffOptions};
use crate::testbed::{self, Charts};

pub(super) fn run(root: &Path, runs: usize) -> anyhow::Result<Report> {
    let flux_local = peer(
        root,
        "flux-local",
        "XTASK_FLUX_LOCAL",
        "target/flux-local-venv/bin/flux-local",
    )?;
    let flux = peer(root, "flux", "XTASK_FLUX", ".tools/bin/flux")?;
    let helm = tools::find("helm")?;
    let charts = Charts::start(root, &helm)?;
    let repo = tempfile::tempdir()?;
    let tree = repo.path();
    fixture_repository(&charts, tree)?;

    let opts = DiffOptions {
        root: tree.to_path_buf(),
        base: Some("base".into()),
        clusters: Vec::new(),
        helm: Some(charts.options()),
        decryptor: None,
    };
    anyhow::ensure!(
        diff::run(&opts)?.has_differences(),
        "the fixture's two commits differ, but diff found nothing"
    );
    let ours = time(
        runs,
        || Ok(()),
        || {
            diff::run(&opts)?;
            Ok(())
        },
    )?;

    // flux-local runs kustomize, helm and flux: ours first on its PATH.
    let mut path = vec![tools::bin_dir(root)];
    path.extend(flux.parent().map(Path::to_path_buf));
    if let Some(existing) = std::env::var_os("PATH") {
        path.extend(std::env::split_paths(&existing));
    }
    let path = std::env::join_paths(path)?;
    let commands: Vec<Cmd> = ["ks", "hr"]
        .map(|what| {
            Cmd::new(&flux_local)
                .dir(tree)
                .env("PATH", &path)
                .env("HELM_CACHE_HOME", charts.cache.path().join("flux-local"))
                .args(["diff", what, "--path", "clusters/test"])
                .args(["--branch-orig", "base", "--sources", "flux-system=./", "-A"])
        })
        .to_vec();
    let flux_local_diff = || -> anyhow::Result<()> {
        for cmd in &commands {
            let out = cmd.output()?;
            anyhow::ensure!(
                out.status.success(),
                "{} failed: {}",
                cmd.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    flux_local_diff()?;
    let peer = time(runs, || Ok(()), flux_local_diff)?;
    Ok(Report {
        title: format!(
            "bench diff: the fixture repository (1 cluster, 3 releases, 2 commits), {runs} runs per side, warm chart caches; peer = flux-local diff ks + diff hr"
        ),
        rows: vec![Row::new("diff --all --helm", ours, peer)],
    })
}

/// The fixture tree in a git repository: `base` is the first commit, HEAD
/// changes a value and bumps one chart.
fn fixture_repository(charts: &Charts, tree: &Path) -> anyhow::Result<()> {
    charts.write_tree(tree)?;
    testbed::adapt_for_flux_local(tree)?;
    let git = |args: &[&str]| {
        Cmd::new("git")
            .dir(tree)
            .args([
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.com",
            ])
            .args(args)
            .read()
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "base"])?;
    let edit = |file: &str, from: &str, to: &str| -> std::io::Result<()> {
        let path = tree.join(file);
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(&path, text.replacen(from, to, 1))
    };
    edit(
        "apps/values.yaml",
        "greeting: from-configmap",
        "greeting: changed",
    )?;
    edit("apps/releases.yaml", "version: 0.1.0", "version: 0.2.0")?;
    git(&["commit", "-q", "-am", "head"])?;
    git(&["branch", "base", "HEAD~1"])?;
    Ok(())
}

/// A peer tool: `$<env>`, the copy `cargo xtask test` builds under the
/// checkout, or PATH.
fn peer(root: &Path, name: &str, env: &str, built: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let candidate = root.join(built);
    if candidate.is_file() {
        return Ok(candidate);
    }
    tools::find(name).with_context(|| {
        format!("the peer is {name}: `cargo xtask test --install-only` builds it, or set {env}")
    })
}
