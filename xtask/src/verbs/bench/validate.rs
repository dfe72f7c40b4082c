//! `bench validate`: our validate on the whole tree against the pipeline
//! users run today (Flux's validate.sh): for each kustomization,
//! `kustomize build | kubeconform -strict`, with the same schemas (ours,
//! exported as JSON schemas in kubeconform's layout). Three cases for ours:
//! a warm kustomize build cache (a run after a run), a cold one (emptied
//! before each run; the schema cache stays warm, as after any first run),
//! and a run after editing one file (a copy of the tree; a different comment
//! appended to one HelmRelease each time). The peer has no cache: its full
//! run is the one figure it has for all three.

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
    let kustomize_cache = tempfile::tempdir()?;
    let mut opts = Options::new(root);
    opts.kustomize_cache = Some(kustomize_cache.path().to_path_buf());
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
    let cold = time(
        runs,
        || {
            std::fs::remove_dir_all(kustomize_cache.path())?;
            Ok(())
        },
        || {
            validate::run(&opts)?;
            Ok(())
        },
    )?;
    let (copy, edited) = edit_copy(root)?;
    let mut copy_opts = opts.clone();
    copy_opts.root = copy.path().to_path_buf();
    copy_opts.schema_locations = opts
        .schema_locations
        .iter()
        .map(|l| root.join(l).display().to_string())
        .collect();
    validate::run(&copy_opts)?;
    let original = std::fs::read_to_string(&edited)?;
    // Each edit is new to every cache, this run's and those of runs before.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let mut edits = 0;
    let after_edit = time(
        runs,
        || {
            edits += 1;
            std::fs::write(&edited, format!("{original}# bench edit {nonce}-{edits}\n"))?;
            Ok(())
        },
        || {
            validate::run(&copy_opts)?;
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
    let mut rows = vec![
        Row::new("validate --all (warm cache)", ours, peer.clone()),
        Row::new("validate --all (cold cache)", cold, peer.clone()),
        Row::new(
            format!("one file edited ({})", rel(copy.path(), &edited)),
            after_edit,
            peer,
        ),
    ];
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

/// The one file the edit case changes: a HelmRelease of an app.
const EDITED: &str = "apps/whoami/helm-release.yaml";

/// A copy of the manifest folders and root files of `root`, and the file
/// to edit in it.
fn edit_copy(root: &Path) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let copy = tempfile::tempdir()?;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_manifests = crate::MANIFEST_DIRS
            .iter()
            .any(|d| name.to_str() == Some(*d));
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), copy.path().join(&name))?;
        } else if is_manifests {
            copy_dir(&entry.path(), &copy.path().join(&name))?;
        }
    }
    let edited = copy.path().join(EDITED);
    anyhow::ensure!(edited.is_file(), "{EDITED} is not in the tree");
    Ok((copy, edited))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
