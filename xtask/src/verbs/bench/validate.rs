//! `bench validate`: our validate on the whole tree against the pipeline
//! users run today (Flux's validate.sh): for each kustomization,
//! `kustomize build | kubeconform -strict`, with the same schemas (ours,
//! exported as JSON schemas in kubeconform's layout).

use std::path::{Path, PathBuf};

use anyhow::Context;
use exec::runner::Cmd;
use exec::tools;
use k8s_schema::{Gvk, Registry, RegistryOptions, jsonschema};

use super::{Report, Row, time};
use crate::validate::{self, Options, tree::Tree};

pub(super) fn run(root: &Path, runs: usize) -> anyhow::Result<Report> {
    let kubeconform = tools::find("kubeconform")?;
    let kustomize = tools::find("kustomize").context("the peer pipeline needs kustomize")?;
    let opts = Options::new(root);
    // Warm-up: fills the schema cache, as a second run of a user's would find it.
    let report = validate::run(&opts)?;
    let ours = time(
        runs,
        || Ok(()),
        || {
            validate::run(&opts)?;
            Ok(())
        },
    )?;

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
    let dirs: Vec<PathBuf> = tree
        .kustomize_dirs
        .iter()
        .map(|d| opts.root.join(d))
        .collect();
    let version = opts.kubernetes_version.trim_start_matches('v').to_string();
    let peer = time(
        runs,
        || Ok(()),
        || {
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
            Ok(())
        },
    )?;
    let mut rows = vec![Row::new("validate --all", ours, peer)];
    // Beside it, the exact path: the same run plus the real API server. No
    // peer does that; it is timed alone, when the binaries are built.
    if crate::cluster::local::api_server_binaries(root).is_ok() {
        let mut with_server = opts.clone();
        with_server.server = Some(root.to_path_buf());
        let server = time(
            runs.min(2),
            || Ok(()),
            || {
                validate::run(&with_server)?;
                Ok(())
            },
        )?;
        rows.push(Row::alone("validate --all --server", server));
    } else {
        eprintln!(
            "bench validate: --server not timed: {}",
            validate::server::HOW_TO_GET
        );
    }
    Ok(Report {
        title: format!(
            "bench validate: the real tree, {} kustomizations, {} objects, {runs} runs per side; peer = kustomize build | kubeconform -strict (same schemas)",
            dirs.len(),
            report.objects_checked
        ),
        rows,
    })
}
