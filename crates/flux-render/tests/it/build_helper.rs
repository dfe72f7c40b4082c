//! The long-lived build helper (`tools/kustomize-build`) against the
//! kustomize CLI it stands in for: every kustomization of this repository,
//! of the build-cache fixture and of Flux's example repositories, and
//! folders that fail, give the same bytes (or the same error) both ways.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flux_render::kustomize::Builder;

use crate::build_cache::{FLAGS, assert_stopped_at_the_memory_bound, bounded, fixture};
use crate::common;
use crate::flux_agreement::kustomize_available;

/// A builder whose misses go to the helper, or `None` (with a notice) when
/// it is not built; under the CI switch it must be.
fn with_helper() -> Option<Builder> {
    if !kustomize_available() {
        return None;
    }
    let b = Builder::find().unwrap().with_helper();
    if b.uses_helper() {
        return Some(b);
    }
    assert!(
        !common::tools_required(),
        "the kustomize-build helper is required (XTASK_REQUIRE_TOOLS=1) but not built beside kustomize: run `cargo xtask tools install kustomize`"
    );
    eprintln!("SKIP: the kustomize-build helper is not built");
    None
}

/// Every folder below `root` holding a kustomization file.
fn kustomizations(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            if path.is_dir() && !name.to_string_lossy().starts_with('.') {
                stack.push(path);
            } else if matches!(
                name.to_str(),
                Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
            ) {
                out.push(dir.clone());
            }
        }
    }
    out.sort();
    out
}

/// Builds each folder both ways; returns how many gave objects and how many
/// failed, and panics on the first difference or on a build the helper did
/// not answer itself (the CLI would then have given both sides).
fn compare(helper: &Builder, cli: &Builder, dirs: &[PathBuf]) -> (usize, usize) {
    let (mut built, mut failed) = (0, 0);
    for dir in dirs {
        let answered = helper.helper_builds();
        let ours = helper.build(dir, &FLAGS).map_err(|e| e.to_string());
        assert_eq!(
            helper.helper_builds(),
            answered + 1,
            "the helper answered {}",
            dir.display()
        );
        let theirs = cli.build(dir, &FLAGS).map_err(|e| e.to_string());
        assert_eq!(
            ours.as_ref().map(|b| String::from_utf8_lossy(b)),
            theirs.as_ref().map(|b| String::from_utf8_lossy(b)),
            "{}",
            dir.display()
        );
        match theirs {
            Ok(_) => built += 1,
            Err(_) => failed += 1,
        }
    }
    (built, failed)
}

#[test]
fn the_helper_builds_byte_for_byte_what_the_cli_builds() {
    let Some(helper) = with_helper() else {
        return;
    };
    let cli = Builder::find().unwrap();

    // This repository's manifests: every kustomization builds.
    let root = common::root();
    let mut ours = Vec::new();
    for dir in ["apps", "infrastructure", "platform", "clusters"] {
        ours.extend(kustomizations(&root.join(dir)));
    }
    let (built, failed) = compare(&helper, &cli, &ours);
    println!("this repository: {built} kustomizations built alike by the helper and the CLI");
    assert_eq!((built, failed), (ours.len(), 0));

    // The cache fixture (generators, components, ../ bases).
    let tree = fixture();
    let dirs = kustomizations(tree.path());
    assert_eq!(compare(&helper, &cli, &dirs), (5, 0));

    // Failures: the same message, in the CLI's words.
    let broken = tempfile::tempdir().unwrap();
    let b = broken.path();
    common::write_files(
        b,
        &[
            (
                "missing/kustomization.yaml",
                "resources:\n  - nothere.yaml\n",
            ),
            ("badyaml/kustomization.yaml", "resources:\n  - cm.yaml\n"),
            (
                "badyaml/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n",
            ),
            ("unknown/kustomization.yaml", "resourcez:\n  - cm.yaml\n"),
        ],
    );
    let dirs = kustomizations(b);
    assert_eq!(compare(&helper, &cli, &dirs), (0, 3));

    // Flux's example repositories, when the shared fixtures are beside us.
    match common::shared_fixtures("flux-repos") {
        Some(repos) => {
            let dirs = kustomizations(&repos);
            let (built, failed) = compare(&helper, &cli, &dirs);
            println!(
                "Flux example repositories: {} kustomizations, {built} built and {failed} failed alike",
                dirs.len()
            );
            assert_eq!((built, failed), (18, 0));
        }
        None => eprintln!("SKIP (part): ../shared/fixtures/flux-repos is absent"),
    }
}

#[test]
fn a_helper_past_its_bounds_is_stopped_or_leaves_the_build_to_the_cli() {
    let Some(_) = with_helper() else {
        return;
    };
    let tree = fixture();
    let dir = tree.path().join("standalone");
    // 64 MiB: the helper cannot start, so the CLI builds, and fails in its
    // own words.
    assert_stopped_at_the_memory_bound(&bounded(true, None, Some(64 << 20)), &dir);
    // No time at all: the helper is stopped, and that is said.
    let err = bounded(true, Some(Duration::ZERO), None)
        .build(&dir, &FLAGS)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "kustomize-build ran longer than 0 s and was stopped (raise the bound with KUSTOMIZE_BOUNDS)"
    );
    // One helper serves many builds, and the one that was stopped is gone.
    let b = bounded(true, Some(Duration::from_secs(60)), None);
    for _ in 0..3 {
        b.build(&dir, &FLAGS).unwrap();
    }
    assert_eq!(b.stats(), (0, 3));
    assert_eq!(b.helper_builds(), 3);
}
