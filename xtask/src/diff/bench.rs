//! Timings for `cargo xtask bench diff`: our `diff --all --helm` against
//! `flux-local diff` (kustomizations and helmreleases, every cluster) on the
//! same tree and base, each after one warm-up run (warm chart caches).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::DiffOptions;
use crate::runner::Cmd;

/// The median of some timings.
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Times [`super::run`] `runs` times after one warm-up run.
pub fn time_ours(opts: &DiffOptions, runs: usize) -> anyhow::Result<Vec<Duration>> {
    super::run(opts)?;
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            super::run(opts)?;
            Ok(started.elapsed())
        })
        .collect()
}

/// The flux-local command lines that cover what our `diff --all --helm`
/// covers: `diff ks` and `diff hr` for each cluster folder, against `base`.
/// `path` is put first on PATH (flux-local runs kustomize, helm and flux).
pub fn flux_local_commands(
    flux_local: &Path,
    root: &Path,
    base: &str,
    clusters: &[String],
    path: &[PathBuf],
) -> Vec<Cmd> {
    let mut search: Vec<PathBuf> = path.to_vec();
    if let Some(existing) = std::env::var_os("PATH") {
        search.extend(std::env::split_paths(&existing));
    }
    let joined = std::env::join_paths(search).unwrap_or_default();
    clusters
        .iter()
        .flat_map(|cluster| {
            ["ks", "hr"].map(|what| {
                Cmd::new(flux_local)
                    .dir(root)
                    .env("PATH", &joined)
                    .args(["diff", what, "--path"])
                    .arg(format!("clusters/{cluster}"))
                    .args(["--branch-orig", base, "--sources", "flux-system=./", "-A"])
            })
        })
        .collect()
}

/// Times the flux-local commands (all of them, one after the other, counts as
/// one run) `runs` times after one warm-up run.
pub fn time_commands(commands: &[Cmd], runs: usize) -> Result<Vec<Duration>, String> {
    let once = || -> Result<Duration, String> {
        let started = Instant::now();
        for cmd in commands {
            let out = cmd.output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "{} failed: {}",
                    cmd.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(started.elapsed())
    };
    once()?;
    (0..runs).map(|_| once()).collect()
}
