//! `build`, `validate` and `diff` on the Flux example repositories of
//! `../shared/fixtures/flux-repos/` (trees this project did not write): they
//! find every cluster, render what Flux would, and report findings rather
//! than fail. Also `build` on a tree where one Kustomization cannot build:
//! the rest is written and the exit code says something failed.

use crate::common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use testkit::flux_layouts::{cm, ks};
use xtask::diff::{self, DiffOptions};
use xtask::validate::{self, Check, Options, Severity};

fn repos() -> Option<Vec<PathBuf>> {
    let dir = common::shared_fixtures("flux-repos")?;
    common::tool("kustomize")?;
    let mut repos: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    repos.sort();
    Some(repos)
}

fn name(repo: &Path) -> String {
    repo.file_name().unwrap().to_string_lossy().into_owned()
}

fn build(root: &Path, out: &Path) -> std::process::Output {
    Command::cargo_bin("xtask")
        .unwrap()
        .args(["build", "--root"])
        .arg(root)
        .arg("--out")
        .arg(out)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .output()
        .unwrap()
}

/// Files written per cluster, by repository.
#[test]
fn build_writes_every_cluster_of_the_example_repositories() {
    let Some(repos) = repos() else { return };
    let mut summary = Vec::new();
    for repo in &repos {
        let out = tempfile::tempdir().unwrap();
        let result = build(repo, out.path());
        let stdout = String::from_utf8_lossy(&result.stdout);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(
            result.status.success(),
            "{}: build failed:\n{stdout}\n{stderr}",
            name(repo)
        );
        for cluster in flux_render::list_clusters(repo) {
            let mut files: Vec<String> = std::fs::read_dir(out.path().join(&cluster))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            summary.push(format!("{}/{cluster}: {}", name(repo), files.join(" ")));
        }
        if name(repo).ends_with("multi-tenancy") {
            assert!(
                stdout.contains("apps/dev-team") && stdout.contains("skipped: its source"),
                "the tenant from another repository is named and skipped:\n{stdout}"
            );
        }
    }
    assert_eq!(
        summary,
        [
            "fluxcd+flux2-kustomize-helm-example/production: apps.yaml flux-system.yaml infra-configs.yaml infra-controllers.yaml",
            "fluxcd+flux2-kustomize-helm-example/staging: apps.yaml flux-system.yaml infra-configs.yaml infra-controllers.yaml",
            "fluxcd+flux2-monitoring-example/test: flux-system.yaml monitoring-configs.yaml monitoring-controllers.yaml",
            "fluxcd+flux2-multi-tenancy/production: flux-system.yaml kyverno-policies.yaml kyverno.yaml tenants.yaml",
            "fluxcd+flux2-multi-tenancy/staging: flux-system.yaml kyverno-policies.yaml kyverno.yaml tenants.yaml",
        ]
    );
}

#[test]
fn build_writes_the_rest_when_one_kustomization_cannot_build() {
    if common::tool("kustomize").is_none() {
        return;
    }
    let files = [
        ("clusters/demo/good.yaml", ks("good", "./good", "")),
        ("clusters/demo/broken.yaml", ks("broken", "./broken", "")),
        (
            "clusters/demo/after.yaml",
            ks("after", "./good", "  dependsOn:\n    - name: broken\n"),
        ),
        (
            "good/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\n".into(),
        ),
        (
            "broken/kustomization.yaml",
            "resources:\n  - missing.yaml\n".into(),
        ),
    ];
    let tree = write_tree(&files);
    let out = tempfile::tempdir().unwrap();
    let result = build(tree.path(), out.path());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success(),
        "a failure must show in the exit code"
    );
    assert!(
        stderr.contains("Kustomization broken") && stderr.contains("missing.yaml"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Kustomization after")
            && stderr.contains("depends on Kustomization broken"),
        "{stderr}"
    );
    let demo = out.path().join("demo");
    assert!(demo.join("good.yaml").is_file());
    assert!(demo.join("flux-system.yaml").is_file());
    assert!(!demo.join("broken.yaml").exists());
    assert!(!demo.join("after.yaml").exists());
}

#[test]
fn validate_reports_findings_on_the_example_repositories() {
    let Some(repos) = repos() else { return };
    let Some(schemas) = crate::validate_checks::schemas() else {
        return;
    };
    let mut counts = Vec::new();
    for repo in &repos {
        let mut opts = Options::new(repo);
        opts.schema_locations = vec![schemas.display().to_string()];
        opts.cache_dir = None;
        let report = validate::run(&opts)
            .unwrap_or_else(|e| panic!("{}: validate failed: {e:#}", name(repo)));
        eprintln!("{}:\n{}", name(repo), report.render_text());
        // The graph is whole: every source and path resolves, the
        // ExternalArtifacts included; what the Flux check says is about the
        // charts these examples leave unpinned, which this project refuses.
        let graph: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.check == Check::Flux && f.severity == Severity::Error)
            .filter(|f| !f.message.contains("is not pinned"))
            .collect();
        assert!(graph.is_empty(), "{}: {graph:#?}", name(repo));
        counts.push(format!(
            "{}: {} cluster(s), {} Flux Kustomizations",
            name(repo),
            report.clusters.len(),
            report.flux_kustomizations
        ));
    }
    assert_eq!(
        counts,
        [
            "fluxcd+flux2-kustomize-helm-example: 2 cluster(s), 6 Flux Kustomizations",
            "fluxcd+flux2-monitoring-example: 1 cluster(s), 2 Flux Kustomizations",
            "fluxcd+flux2-multi-tenancy: 2 cluster(s), 10 Flux Kustomizations",
        ]
    );
}

#[test]
fn diff_compares_the_example_repositories() {
    let Some(repos) = repos() else { return };
    for repo in &repos {
        let head = tempfile::tempdir().unwrap();
        common::copy_tree(repo, head.path());
        // One change in a folder every cluster renders from.
        let changed = if name(repo).ends_with("kustomize-helm-example") {
            "apps/base/podinfo/namespace.yaml"
        } else if name(repo).ends_with("multi-tenancy") {
            "tenants/base/dev-team/rbac.yaml"
        } else {
            "monitoring/configs/podmonitor.yaml"
        };
        let file = head.path().join(changed);
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replacen(
                "metadata:\n",
                "metadata:\n  annotations:\n    changed: \"yes\"\n",
                1,
            ),
        )
        .unwrap();
        let opts = DiffOptions {
            root: head.path().to_path_buf(),
            base: None,
            clusters: Vec::new(),
            helm: None,
            decryptor: None,
        };
        let report = diff::compare_trees(repo, head.path(), &opts)
            .unwrap_or_else(|e| panic!("{}: diff failed: {e:#}", name(repo)));
        assert_eq!(report.errors(), 0, "{}", name(repo));
        assert_eq!(
            report.clusters.len(),
            flux_render::list_clusters(repo).len(),
            "{}",
            name(repo)
        );
        for cluster in &report.clusters {
            assert!(
                cluster.groups.iter().any(|g| !g.changes.is_empty()),
                "{}/{}: the change shows",
                name(repo),
                cluster.cluster
            );
        }
    }
}

/// Writes `files` under a new folder.
fn write_tree(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testkit::write_files(dir.path(), files);
    dir
}

/// `validate`'s Flux findings and Kustomization count on a tree of `files`;
/// `None` (skip) without kustomize or schemas.
fn validate_flux(files: &[(&str, String)]) -> Option<(Vec<validate::Finding>, usize)> {
    common::tool("kustomize")?;
    let schemas = crate::validate_checks::schemas()?;
    let tree = write_tree(files);
    let mut opts = Options::new(tree.path());
    opts.schema_locations = vec![schemas.display().to_string()];
    opts.cache_dir = None;
    let report = validate::run(&opts).unwrap();
    let flux = report
        .findings
        .iter()
        .filter(|f| f.check == Check::Flux)
        .cloned()
        .collect();
    Some((flux, report.flux_kustomizations))
}

#[test]
fn validate_says_a_suspended_kustomization_is_not_validated() {
    let paused = ks("paused", "./not-there", "").replace("spec:\n", "spec:\n  suspend: true\n");
    let Some((flux, _)) = validate_flux(&[("clusters/demo/paused.yaml", paused)]) else {
        return;
    };
    assert_eq!(flux.len(), 1, "{flux:#?}");
    assert_eq!(flux[0].severity, Severity::Warning);
    assert!(
        flux[0].message.contains("spec.suspend is true"),
        "{}",
        flux[0].message
    );
}

/// The Flux Kustomizations one cluster reaches, as `validate` walks them and
/// as `build` renders them (rendered, skipped and failed alike), root
/// excluded; sorted.
fn reached_both_ways(root: &Path, cluster: &str) -> (Vec<String>, Vec<String>) {
    let (tree, _) = validate::tree::Tree::load(root);
    let builder = xtask::kustomize_builder(None).unwrap();
    let builds = validate::kustomize::Builds::new(root.to_path_buf(), builder.clone());
    let allow = validate::AllowList::load(root).unwrap();
    let sync = flux_render::discover::sync_root(root, cluster).unwrap();
    let check = validate::flux::check_cluster(&tree, &builds, &allow, cluster);
    let mut by_validate: Vec<String> = check
        .kustomizations
        .iter()
        .filter(|k| !flux_render::closure::is_root(&sync, &k.object))
        .map(|k| format!("{}/{}", k.namespace, k.name))
        .collect();
    let opts = flux_render::RenderOptions {
        kustomize: Some(builder),
        ..Default::default()
    };
    let rendered = flux_render::render_closure(root, cluster, &opts).unwrap();
    let mut by_build: Vec<String> = rendered
        .kustomizations
        .iter()
        .map(|k| &k.flux)
        .chain(rendered.skipped.iter().map(|s| &s.flux))
        .chain(rendered.failures.iter().map(|f| &f.flux))
        .map(|k| format!("{}/{}", k.namespace, k.name))
        .collect();
    by_validate.sort();
    by_build.sort();
    (by_validate, by_build)
}

/// `validate` and `build` walk one closure: on the layout corpus and the
/// three example repositories they reach the same Kustomizations.
#[test]
fn validate_and_build_reach_the_same_kustomizations() {
    if common::tool("kustomize").is_none() {
        return;
    }
    let mut trees: Vec<(String, tempfile::TempDir, String, usize)> = Vec::new();
    for layout in testkit::flux_layouts::layouts() {
        let files: Vec<(&str, String)> =
            layout.files.iter().map(|(p, t)| (*p, t.clone())).collect();
        let dir = write_tree(&files);
        // What the corpus says each layout reaches.
        let expected = layout.rendered.len() + layout.skipped.len() + layout.failed.len();
        trees.push((
            layout.name.to_string(),
            dir,
            layout.cluster.to_string(),
            expected,
        ));
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    let check = |counts: &mut Vec<(String, usize)>, label: String, root: &Path, cluster: &str| {
        let (by_validate, by_build) = reached_both_ways(root, cluster);
        assert_eq!(
            by_validate, by_build,
            "{label}: validate and build disagree"
        );
        eprintln!(
            "  {label}: {} Kustomization(s) reached by both: {}",
            by_build.len(),
            by_build.join(", ")
        );
        counts.push((label, by_build.len()));
    };
    for (name, dir, cluster, expected) in &trees {
        check(&mut counts, format!("layout {name}"), dir.path(), cluster);
        assert_eq!(counts.last().unwrap().1, *expected, "layout {name}");
    }
    // A spec that edits the build renames what the folder declares: both
    // reach the renamed child.
    let edited = write_tree(&[
        (
            "clusters/p/team.yaml",
            ks("team", "./team", "  namePrefix: blue-\n"),
        ),
        ("team/ks.yaml", ks("web", "./web", "")),
        ("web/cm.yaml", cm("web")),
    ]);
    let (by_validate, _) = reached_both_ways(edited.path(), "p");
    assert_eq!(by_validate, ["flux-system/blue-web", "flux-system/team"]);
    check(&mut counts, "edited name-prefix".into(), edited.path(), "p");
    let repos = repos();
    if let Some(repos) = &repos {
        for repo in repos {
            for cluster in flux_render::list_clusters(repo) {
                check(
                    &mut counts,
                    format!("{}/{cluster}", name(repo)),
                    repo,
                    &cluster,
                );
            }
        }
    }
    let layouts: usize = counts
        .iter()
        .filter(|(l, _)| l.starts_with("layout "))
        .map(|(_, n)| n)
        .sum();
    let examples: usize = counts
        .iter()
        .filter(|(l, _)| !l.starts_with("layout ") && !l.starts_with("edited "))
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "reached by validate and build alike: {layouts} in the layout corpus, {examples} in the example repositories"
    );
    assert_eq!(layouts, 17, "{counts:#?}");
    if repos.is_some() {
        assert_eq!(examples, 18, "{counts:#?}");
    }
}

/// A Kustomization that depends on one it declares itself (two levels down)
/// waits forever: `validate` says so at its dependsOn, as `build` does.
#[test]
fn validate_reports_a_dependency_on_a_kustomization_it_declares() {
    let files = [
        (
            "clusters/demo/apps.yaml",
            ks("apps", "./team", "  dependsOn:\n    - name: web\n"),
        ),
        ("team/ks.yaml", ks("team-web", "./web", "")),
        ("web/ks.yaml", ks("web", "./site", "")),
        ("site/cm.yaml", cm("site")),
    ];
    let Some((flux, count)) = validate_flux(&files) else {
        return;
    };
    let tree = write_tree(&files);
    assert_eq!(flux.len(), 1, "{flux:#?}");
    assert_eq!(flux[0].severity, Severity::Error);
    assert_eq!(flux[0].file, "clusters/demo/apps.yaml");
    assert_eq!(flux[0].line, Some(14), "{:?}", flux[0]);
    assert_eq!(
        flux[0].message,
        "dependsOn web, which only exists once this Kustomization is applied (it declares web, directly or below): Flux waits forever"
    );
    assert_eq!(count, 3);
    let rendered = flux_render::render_closure(tree.path(), "demo", &Default::default()).unwrap();
    let failed: Vec<String> = rendered
        .failures
        .iter()
        .map(|f| f.error.to_string())
        .collect();
    assert_eq!(failed.len(), 3, "{failed:#?}");
    assert!(failed[0].contains("dependsOn web, which only exists once it is applied itself"));
}
