//! Trees this project did not write, against the flux CLI: the three Flux
//! example repositories in `../shared/fixtures/flux-repos/` (the layout that
//! `flux bootstrap` writes, tenants, ExternalArtifacts) and corpus trees of
//! the layouts that discovery and the closure must handle (a sync root in a
//! subfolder, a FluxInstance, `ks.yaml` three levels deep, a cycle, a
//! suspended and an unbuildable Kustomization).
//!
//! Every Kustomization that we render is built by
//! `flux build kustomization NAME --path DIR --kustomization-file FILE
//! --dry-run` too and compared object by object. Like for like: with
//! `--dry-run` flux reads no ConfigMap or Secret, so these trees use no
//! `substituteFrom` (the test asserts it), and inline `substitute` goes to
//! flux as written. An ExternalArtifact is given to flux as this test
//! assembles it with plain folder copies (what the generator's copy
//! operations say), not as the render assembled it. What we do not render
//! (another repository's source, `spec.suspend`, a failure that flux shares)
//! is printed by name with the reason and counted exactly.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use flux_render::{RenderOptions, RenderedCluster};
use rayon::prelude::*;
use serde_json::Value;

use crate::common;
use crate::flux_agreement::{check_written, compare, flux_build, flux_cli, kustomize_available};
use testkit::flux_layouts::layouts;

/// What one cluster came to: compared with flux, excluded, differences.
#[derive(Default)]
struct Tally {
    compared: Vec<String>,
    excluded: Vec<String>,
    failures: Vec<String>,
}

/// One Kustomization to give flux: label, object, source root, folder,
/// our objects.
type Job<'a> = (String, &'a Value, PathBuf, PathBuf, &'a [Value]);

/// Compares every rendered Kustomization of a cluster (the root included)
/// with flux. `artifact_dir` gives the folder flux builds an
/// ExternalArtifact-sourced Kustomization from.
fn check_cluster(
    flux: &Path,
    repo: &Path,
    label: &str,
    rendered: &RenderedCluster,
    artifact_dir: &dyn Fn(&str) -> Option<PathBuf>,
) -> Tally {
    let mut tally = Tally::default();
    let sync = rendered
        .sync
        .as_ref()
        .expect("a rendered cluster has a sync root");
    let mut jobs: Vec<Job> = vec![(
        format!("{label}/{}", rendered.root.name),
        &rendered.root.object,
        repo.to_path_buf(),
        repo.join(&sync.path),
        &rendered.root_objects,
    )];
    for k in &rendered.kustomizations {
        let name = format!("{label}/{}/{}", k.flux.namespace, k.flux.name);
        let dir = match &k.flux.source_ref {
            Some((kind, artifact)) if kind == "ExternalArtifact" => match artifact_dir(artifact) {
                Some(dir) => dir,
                None => {
                    tally
                        .failures
                        .push(format!("{name}: no independent assembly of {artifact}"));
                    continue;
                }
            },
            _ => repo.to_path_buf(),
        };
        let path = dir.join(&k.flux.path);
        jobs.push((name, &k.flux.object, dir, path, &k.objects));
    }
    for (name, object, ..) in &jobs {
        assert!(
            object.pointer("/spec/postBuild/substituteFrom").is_none(),
            "{name}: substituteFrom would not compare like for like with --dry-run"
        );
    }
    let results: Vec<(String, Vec<String>)> = jobs
        .par_iter()
        .map(|(name, object, source, dir, objects)| {
            let vars = inline_variables(object);
            // flux builds only below its working directory.
            let diffs = match flux_build(flux, source, object, &vars, dir) {
                Ok(theirs) => {
                    let mut d = compare(objects, &theirs);
                    d.extend(check_written(name, objects));
                    d
                }
                Err(e) => vec![format!("flux failed: {}", e.trim())],
            };
            (name.clone(), diffs)
        })
        .collect();
    for (name, diffs) in results {
        if diffs.is_empty() {
            tally.compared.push(name);
        } else {
            tally
                .failures
                .push(format!("{name}:\n  {}", diffs.join("\n  ")));
        }
    }
    for s in &rendered.skipped {
        tally.excluded.push(format!(
            "{label}/{}/{}: {}",
            s.flux.namespace, s.flux.name, s.reason
        ));
    }
    for f in &rendered.failures {
        tally
            .failures
            .push(format!("{label}: ours failed: {}", f.error));
    }
    tally
}

fn inline_variables(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/spec/postBuild/substitute")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), v.replace('\n', ""))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Copies folders of `repo` into a new folder: `(from, to)` pairs, as the
/// flux2-kustomize-helm-example generator's copy operations read
/// (`@monorepo/<from>/**` to `@artifact/<to>/`).
fn assemble_by_hand(repo: &Path, copies: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in copies {
        common::copy_tree(&repo.join(from), &dir.path().join(to));
    }
    dir
}

fn report(what: &str, tally: &Tally) {
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "{what}: {} Flux Kustomizations rendered equal to flux build, {} excluded:",
        tally.compared.len(),
        tally.excluded.len()
    );
    for e in &tally.excluded {
        let _ = writeln!(err, "  excluded {e}");
    }
}

fn absorb(total: &mut Tally, part: Tally) {
    total.compared.extend(part.compared);
    total.excluded.extend(part.excluded);
    total.failures.extend(part.failures);
}

#[test]
fn flux_example_repositories_render_as_flux_builds_them() {
    let Some(repos) = common::shared_fixtures("flux-repos") else {
        return;
    };
    if !kustomize_available() {
        return;
    }
    let Some(flux) = flux_cli() else {
        return;
    };
    let mut total = Tally::default();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&repos)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    for original in &names {
        let repo_name = original.file_name().unwrap().to_string_lossy().into_owned();
        // flux refuses a folder named like `fluxcd+flux2-...`: a copy named
        // without the `+` goes to both.
        let copy = tempfile::tempdir().unwrap();
        let repo = &copy.path().join(repo_name.replace('+', "-"));
        common::copy_tree(original, repo);
        let clusters = flux_render::list_clusters(repo);
        assert!(!clusters.is_empty(), "{repo_name}: no cluster found");
        for cluster in clusters {
            let label = format!("{repo_name}/{cluster}");
            let rendered = flux_render::render_closure(repo, &cluster, &RenderOptions::default())
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            // The ExternalArtifacts of flux2-kustomize-helm-example, as its
            // ArtifactGenerator describes them.
            let by_hand = repo_name.ends_with("kustomize-helm-example").then(|| {
                (
                    assemble_by_hand(
                        repo,
                        &[
                            ("apps/base", "base"),
                            (&format!("apps/{cluster}"), &cluster),
                        ],
                    ),
                    assemble_by_hand(repo, &[("infrastructure", "")]),
                )
            });
            let artifact_dir = |name: &str| {
                let (apps, infrastructure) = by_hand.as_ref()?;
                match name {
                    "apps" => Some(apps.path().to_path_buf()),
                    "infrastructure" => Some(infrastructure.path().to_path_buf()),
                    _ => None,
                }
            };
            let tally = check_cluster(&flux, repo, &label, &rendered, &artifact_dir);
            absorb(&mut total, tally);
        }
    }
    report("flux example repositories", &total);
    assert!(
        total.failures.is_empty(),
        "{} difference(s) with flux:\n\n{}",
        total.failures.len(),
        total.failures.join("\n\n")
    );
    // helm-example: 2 clusters x (root, infra-controllers, infra-configs,
    // apps); multi-tenancy: 2 x (root, kyverno, kyverno-policies, tenants);
    // monitoring: root, monitoring-controllers, monitoring-configs.
    assert_eq!(total.compared.len(), 19, "{:#?}", total.compared);
    // multi-tenancy, per cluster: kyverno-controller (an OCIRepository of
    // kyverno's) and the tenant apps/dev-team (its own Git repository).
    assert_eq!(total.excluded.len(), 4, "{:#?}", total.excluded);
}

/// Writes `files` under a new folder.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testkit::write_files(dir.path(), files);
    dir
}

#[test]
fn layouts_render_their_closure_as_flux_builds_it() {
    if !kustomize_available() {
        return;
    }
    let Some(flux) = flux_cli() else {
        return;
    };
    let mut total = Tally::default();
    for layout in layouts() {
        let files: Vec<(&str, &str)> = layout.files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        let dir = tree(&files);
        let label = layout.name;
        assert_eq!(flux_render::list_clusters(dir.path()), [layout.cluster]);
        let rendered =
            flux_render::render_closure(dir.path(), layout.cluster, &RenderOptions::default())
                .unwrap_or_else(|e| panic!("{label}: {e}"));
        let names = |it: &mut dyn Iterator<Item = &flux_render::FluxKustomization>| {
            it.map(|k| k.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            names(&mut rendered.kustomizations.iter().map(|k| &k.flux)),
            layout.rendered,
            "{label}: rendered"
        );
        assert_eq!(
            names(&mut rendered.skipped.iter().map(|s| &s.flux)),
            layout.skipped,
            "{label}: skipped"
        );
        assert_eq!(
            names(&mut rendered.failures.iter().map(|f| &f.flux)),
            layout.failed,
            "{label}: failed"
        );
        // Every object carries its owner's labels, the root's included.
        for o in &rendered.root_objects {
            assert_eq!(
                o.pointer("/metadata/labels/kustomize.toolkit.fluxcd.io~1name")
                    .and_then(Value::as_str),
                Some(rendered.root.name.as_str()),
                "{label}: {o}"
            );
        }
        let assembled: Vec<(&str, tempfile::TempDir)> = layout
            .artifacts
            .iter()
            .map(|(name, copies)| (*name, assemble_by_hand(dir.path(), copies)))
            .collect();
        let artifact_dir = |name: &str| {
            assembled
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| d.path().to_path_buf())
        };
        let mut tally = check_cluster(&flux, dir.path(), label, &rendered, &artifact_dir);
        // Our failures, each said; flux must refuse the unbuildable one too.
        let failures: Vec<String> = rendered
            .failures
            .iter()
            .map(|f| format!("{label}/{}: {}", f.flux.name, f.error))
            .collect();
        tally.failures.retain(|f| !f.contains(": ours failed: "));
        for f in &rendered.failures {
            if f.flux.name == "broken" {
                let refused = flux_build(
                    &flux,
                    dir.path(),
                    &f.flux.object,
                    &BTreeMap::new(),
                    &dir.path().join("broken"),
                );
                assert!(refused.is_err(), "{label}: flux builds what we could not");
            }
        }
        for f in &failures {
            eprintln!("  failed as expected {f}");
        }
        absorb(&mut total, tally);
    }
    report("layout corpus", &total);
    assert!(
        total.failures.is_empty(),
        "{} difference(s) with flux:\n\n{}",
        total.failures.len(),
        total.failures.join("\n\n")
    );
    // Each layout's root plus what it renders: 2 + 2 + 5 + 3 + 3.
    assert_eq!(total.compared.len(), 15, "{:#?}", total.compared);
    assert_eq!(total.excluded.len(), 2, "{:#?}", total.excluded);
}
