//! The gate's verdict on what Flux would apply, kept with the trace of the
//! render it came from: after an edit, a cluster whose folder is as it was
//! and whose builds give the same output again (a comment) keeps its
//! verdict without a render; an edit that changes what a build gives (a
//! plaintext Secret added) or the cluster folder renders again. And the
//! gate's verdicts on single files: kept by content, the same as judged.

use std::path::Path;

use crate::common;

use xtask::leaks::rendered::{Verdict, check_cached};
use xtask::validate::AllowList;

/// The validate fixture, with a kustomization in the cluster folder (a
/// folder without one is built from a generated copy, whose render cannot
/// be replayed from builds).
fn tree() -> Option<tempfile::TempDir> {
    common::tool("kustomize")?;
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(
        &common::root().join("xtask/tests/fixtures/validate/base"),
        dir.path(),
    );
    std::fs::write(
        dir.path().join("clusters/test/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - apps.yaml\n  - infra.yaml\n  - vars.yaml\n",
    )
    .unwrap();
    Some(dir)
}

/// Every file of `root` by its name, as the gate keys them.
fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = oci_artifact::tree::collect(root).unwrap();
    entries
        .iter()
        .filter(|e| e.path.is_file())
        .map(|e| (e.name.clone(), std::fs::read(&e.path).unwrap()))
        .collect()
}

fn judge(root: &Path, cache: &Path, kustomize_cache: &Path) -> Verdict {
    let files = files(root);
    check_cached(
        root,
        &["test".to_string()],
        &AllowList::default(),
        files.iter().map(|(n, b)| (n.as_str(), b.as_slice())),
        Some(cache),
        Some(xtask::kustomize_builder(Some(kustomize_cache.to_path_buf())).unwrap()),
    )
}

/// Marks the one kept trace's verdict, so that a verdict read from it can
/// be told from a render's.
fn mark_the_trace(cache: &Path) {
    let traces: Vec<_> = std::fs::read_dir(cache.join("traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(traces.len(), 1, "one cluster, one trace: {traces:?}");
    let mut kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&traces[0]).unwrap()).unwrap();
    kept["refusals"] = serde_json::json!([{
        "file": "marker", "line": null, "reason": "from the trace", "object": null
    }]);
    std::fs::write(&traces[0], serde_json::to_vec(&kept).unwrap()).unwrap();
}

fn from_trace(verdict: &Verdict) -> bool {
    verdict.refusals.iter().any(|r| r.file == "marker")
}

fn append(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    let mut old = std::fs::read_to_string(&path).unwrap();
    old.push_str(text);
    std::fs::write(path, old).unwrap();
}

#[test]
fn a_kept_render_verdict_holds_only_while_its_builds_give_the_same_output() {
    let Some(tree) = tree() else {
        return;
    };
    let root = tree.path();
    let cache = tempfile::tempdir().unwrap();
    let kustomize_cache = tempfile::tempdir().unwrap();
    let first = judge(root, cache.path(), kustomize_cache.path());
    assert!(first.unrendered.is_empty(), "{first:?}");
    assert!(first.refusals.is_empty(), "{first:?}");
    mark_the_trace(cache.path());

    // A comment in a file a build reaches: the bytes changed (the verdict
    // kept by them misses), the build's output did not.
    append(root, "apps/demo/deployment.yaml", "# a comment\n");
    assert!(from_trace(&judge(
        root,
        cache.path(),
        kustomize_cache.path()
    )));

    // The same build gives another output: rendered again, and judged.
    append(
        root,
        "apps/demo/deployment.yaml",
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\nstringData:\n  password: hunter2\n",
    );
    let leaked = judge(root, cache.path(), kustomize_cache.path());
    assert!(!from_trace(&leaked), "{leaked:?}");
    assert_eq!(leaked.refusals.len(), 1, "{leaked:?}");
    assert!(
        leaked.refusals[0].reason.starts_with(
            "Flux would apply Secret demo/leaked with plaintext values (stringData.password)"
        ),
        "{leaked:?}"
    );

    // The cluster folder is where the sync root is found: any change there
    // renders again, even one no build would show.
    mark_the_trace(cache.path());
    append(root, "clusters/test/apps.yaml", "# a comment\n");
    let again = judge(root, cache.path(), kustomize_cache.path());
    assert!(!from_trace(&again), "{again:?}");
    assert_eq!(again.refusals, leaked.refusals);
}

#[test]
fn a_render_from_a_generated_copy_keeps_no_trace() {
    let Some(tree) = tree() else {
        return;
    };
    let root = tree.path();
    // Without its kustomization, Flux generates one for the cluster folder.
    std::fs::remove_file(root.join("clusters/test/kustomization.yaml")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let kustomize_cache = tempfile::tempdir().unwrap();
    let verdict = judge(root, cache.path(), kustomize_cache.path());
    assert!(verdict.unrendered.is_empty(), "{verdict:?}");
    assert!(!cache.path().join("traces").exists());
}

#[test]
fn kept_file_verdicts_are_the_verdicts_judged_and_follow_sops_yaml() {
    use xtask::ship::gate::check_tree;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (_, recipient) = sops::generate_identity();
    let write = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let rule =
        |regex: &str| format!("creation_rules:\n  - path_regex: {regex}\n    age: {recipient}\n");
    write(".sops.yaml", &rule(r"secrets/.*\.yaml$"));
    write(
        "app/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\n",
    );
    write(
        "app/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n",
    );
    write(
        "app/kustomization.yaml",
        "resources:\n  - secret.yaml\n  - config.yaml\nsecretGenerator:\n  - name: g\n    files:\n      - creds.txt\n",
    );
    write("app/creds.txt", "hunter2\n");
    let cache = tempfile::tempdir().unwrap();
    let judged = |cache: Option<&Path>| {
        let mut all = check_tree(root, None, None, cache).unwrap().all();
        all.sort();
        all
    };
    let fresh = judged(None);
    let files: Vec<&str> = fresh.iter().map(|r| r.file.as_str()).collect();
    assert_eq!(
        files,
        ["app/kustomization.yaml", "app/secret.yaml"],
        "{fresh:?}"
    );
    assert_eq!(judged(Some(cache.path())), fresh, "judged, then kept");
    let kept = std::fs::read_dir(cache.path().join("files"))
        .unwrap()
        .count();
    assert_eq!(kept, 1, "one store of file verdicts");
    assert_eq!(judged(Some(cache.path())), fresh, "read back");

    // A rule that now governs the ConfigMap's file: the kept verdict on
    // those same bytes no longer holds.
    write(".sops.yaml", &rule(r"app/config\.yaml$"));
    let governed = judged(Some(cache.path()));
    assert_eq!(governed, judged(None));
    assert!(
        governed.iter().any(|r| r.file == "app/config.yaml"
            && r.reason.starts_with("a .sops.yaml rule governs this file")),
        "{governed:?}"
    );
}
