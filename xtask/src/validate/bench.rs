//! Bench data for `cargo xtask bench validate`: our validate on the whole
//! tree against the peer pipeline users run today (Flux's validate.sh): for
//! each kustomization, `kustomize build | kubeconform -strict`, with the same
//! schemas (ours, exported as JSON schemas in kubeconform's layout).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Options, tree::Tree};
use crate::runner::Cmd;
use crate::schema::{Gvk, Registry, RegistryOptions, jsonschema};

/// Timings of one side-by-side run.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Our whole validate (warm schema cache), best of `runs`.
    pub ours: Duration,
    /// kustomize | kubeconform over every kustomization, best of `runs`.
    pub peer: Duration,
    pub kustomizations: usize,
    pub objects: usize,
}

impl BenchResult {
    pub fn ratio(&self) -> f64 {
        self.peer.as_secs_f64() / self.ours.as_secs_f64().max(1e-9)
    }
}

/// Runs both sides `runs` times on the tree of `opts.root` and keeps the best.
pub fn bench_peer(opts: &Options, kubeconform: &Path, runs: usize) -> Result<BenchResult> {
    let runs = runs.max(1);
    // Warm-up: fills the schema cache, as a second run of a user's would find it.
    let report = super::run(opts)?;
    let mut ours = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        super::run(opts)?;
        ours = ours.min(t.elapsed());
    }

    // The peer's schemas: every kind the tree uses, exported once (untimed).
    let (tree, _) = Tree::load(&opts.root);
    let registry = Registry::load(RegistryOptions {
        locations: opts.schema_locations.clone(),
        base: opts.root.clone(),
        kubernetes_version: opts.kubernetes_version.clone(),
        cache_dir: opts.cache_dir.clone(),
    })?;
    let gvks: Vec<Gvk> = registry
        .kinds()
        .filter(|g| !g.kind.ends_with("List"))
        .cloned()
        .collect();
    let dir = tempfile::tempdir()?;
    let location =
        jsonschema::write_kubeconform_dir(&registry, &gvks, &dir.path().join("schemas"), true)?;
    let kustomize =
        crate::tools::find("kustomize").context("the peer pipeline needs the kustomize binary")?;

    let dirs: Vec<PathBuf> = tree
        .kustomize_dirs
        .iter()
        .map(|d| opts.root.join(d))
        .collect();
    let version = opts.kubernetes_version.trim_start_matches('v').to_string();
    let mut peer = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        for d in &dirs {
            let script = format!(
                "{} build --load-restrictor LoadRestrictionsNone '{}' | {} -strict -summary -kubernetes-version {} -schema-location '{}'",
                kustomize.display(),
                d.display(),
                kubeconform.display(),
                version,
                location
            );
            // Findings are expected on a broken tree; only the time matters here.
            let _ = Cmd::new("sh").args(["-c", &script]).output()?;
        }
        peer = peer.min(t.elapsed());
    }
    Ok(BenchResult {
        ours,
        peer,
        kustomizations: dirs.len(),
        objects: report.objects_checked,
    })
}
