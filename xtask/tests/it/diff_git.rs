//! `cargo xtask diff` on a fixture git repository with two commits, with
//! HelmReleases rendered from charts served on loopback.

use crate::support;

use std::path::Path;

use assert_cmd::Command;
use exec::runner::Cmd;
use serde_json::Value;

fn git(repo: &Path, args: &[&str]) {
    Cmd::new("git")
        .dir(repo)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .read()
        .unwrap();
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn xtask_diff(charts: &support::Charts, repo: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("xtask")
        .unwrap()
        .arg("diff")
        .arg("--root")
        .arg(repo)
        .args(args)
        .env("XTASK_CHART_CACHE", charts.cache.path())
        .env("SOPS_AGE_KEY_FILE", "/nonexistent")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A git repository with the fixture tree in one commit, and a second commit
/// that adds, removes and changes objects, bumps a chart version and changes
/// a Secret value.
fn two_commits(charts: &support::Charts) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    charts.write_tree(root).unwrap();
    std::fs::write(
        root.join("apps/doomed.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: doomed\n  namespace: demo\ndata:\n  a: b\n",
    )
    .unwrap();
    edit(
        &root.join("apps/kustomization.yaml"),
        "  - releases.yaml\n",
        "  - releases.yaml\n  - doomed.yaml\n",
    );
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "base"]);

    // Removed.
    std::fs::remove_file(root.join("apps/doomed.yaml")).unwrap();
    // Added.
    std::fs::write(
        root.join("apps/fresh.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fresh\n  namespace: demo\ndata:\n  a: b\n",
    )
    .unwrap();
    edit(
        &root.join("apps/kustomization.yaml"),
        "  - doomed.yaml\n",
        "  - fresh.yaml\n",
    );
    // A changed field (in a values source: the rendered release changes too).
    edit(
        &root.join("apps/values.yaml"),
        "greeting: from-configmap",
        "greeting: changed",
    );
    // A changed chart version.
    edit(
        &root.join("apps/releases.yaml"),
        "version: 0.1.0",
        "version: 0.2.0",
    );
    // A changed Secret value.
    edit(
        &root.join("apps/values.yaml"),
        "password: hunter2",
        "password: correct-horse",
    );
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "head"]);
    repo
}

fn change<'a>(report: &'a Value, group: &str, kind: &str, name: &str) -> Option<&'a Value> {
    report["clusters"][0]["groups"]
        .as_array()?
        .iter()
        .find(|g| g["group"] == group)?["changes"]
        .as_array()?
        .iter()
        .find(|c| c["kind"] == kind && c["name"] == name)
}

#[test]
fn diff_shows_every_kind_of_change_object_by_object() {
    let Some(charts) = support::charts() else {
        return;
    };
    let repo = two_commits(&charts);
    let (code, stdout, stderr) = xtask_diff(
        &charts,
        repo.path(),
        &["--base", "HEAD~1", "--all", "--helm", "--output", "json"],
    );
    assert_eq!(code, 1, "{stderr}\n{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["clusters"][0]["cluster"], "test");
    let apps = "Kustomization apps";
    assert_eq!(
        change(&report, apps, "ConfigMap", "fresh").unwrap()["change"],
        "added"
    );
    assert_eq!(
        change(&report, apps, "ConfigMap", "doomed").unwrap()["change"],
        "removed"
    );
    let values = change(&report, apps, "ConfigMap", "demo-values").unwrap();
    assert_eq!(values["change"], "changed");
    let diff = values["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    greeting: from-configmap") && diff.contains("+    greeting: changed"),
        "{diff}"
    );

    // The chart version, in the HelmRelease and in what the chart renders.
    let release = change(&report, apps, "HelmRelease", "inline").unwrap();
    assert!(
        release["diff"]
            .as_str()
            .unwrap()
            .contains("+      version: 0.2.0"),
        "{release}"
    );
    let deployment = change(&report, "HelmRelease demo/inline", "Deployment", "inline").unwrap();
    assert!(
        deployment["diff"]
            .as_str()
            .unwrap()
            .contains("+    helm.sh/chart: demo-0.2.0"),
        "{deployment}"
    );

    // The Secret: the fact of a change, never a value, nowhere.
    let secret = change(&report, apps, "Secret", "demo-secret").unwrap();
    assert!(
        secret["diff"]
            .as_str()
            .unwrap()
            .contains("<masked: changed>"),
        "{secret}"
    );
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("correct-horse"),
        "{stdout}"
    );

    // The release whose chart cannot be fetched is a note, not an error.
    let notes = report["clusters"][0]["notes"].to_string();
    assert!(
        notes.contains("HelmRelease demo/broken not rendered"),
        "{notes}"
    );

    // The same, as text and as markdown.
    let (code, text, _) = xtask_diff(
        &charts,
        repo.path(),
        &["--base", "HEAD~1", "--all", "--helm"],
    );
    assert_eq!(code, 1);
    assert!(text.contains("+ ConfigMap demo/fresh (added)"), "{text}");
    assert!(text.contains("- ConfigMap demo/doomed (removed)"), "{text}");
    let (code, md, _) = xtask_diff(
        &charts,
        repo.path(),
        &["--base", "HEAD~1", "--all", "--output", "markdown"],
    );
    assert_eq!(code, 1);
    assert!(md.contains("<details><summary>cluster <b>test</b>"), "{md}");
    assert!(!md.contains("hunter2"));
}

#[test]
fn no_change_exits_zero_and_a_bad_base_exits_two() {
    let Some(charts) = support::charts() else {
        return;
    };
    let repo = two_commits(&charts);
    let (code, stdout, stderr) =
        xtask_diff(&charts, repo.path(), &["--base", "HEAD", "--all", "--helm"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    assert!(stdout.contains("0 object(s) differ"), "{stdout}");

    let (code, _, stderr) = xtask_diff(&charts, repo.path(), &["--base", "no-such-ref", "--all"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("base no-such-ref is not a commit"),
        "{stderr}"
    );
}

#[test]
fn default_base_is_the_merge_base_with_origin_main() {
    let Some(charts) = support::charts() else {
        return;
    };
    let repo = two_commits(&charts);
    // origin/main at the first commit; a working-tree change on top of HEAD.
    git(
        repo.path(),
        &["update-ref", "refs/remotes/origin/main", "HEAD~1"],
    );
    let (code, stdout, stderr) = xtask_diff(&charts, repo.path(), &["--all"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("merge-base with origin/main"), "{stdout}");
    assert!(stdout.contains("ConfigMap demo/fresh (added)"), "{stdout}");
}
