//! `diff --all --helm` against `flux-local diff` (ks + hr) on the fixture git
//! repository, warm chart caches, side by side. Ignored by default (timings);
//! run with `cargo test -p xtask --test diff_bench -- --ignored --nocapture`.

mod common;
#[path = "fixtures/helm/support.rs"]
mod support;

use std::path::Path;

use xtask::diff::{self, DiffOptions, bench};
use xtask::runner::Cmd;

fn git(repo: &Path, args: &[&str]) {
    Cmd::new("git")
        .dir(repo)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .read()
        .unwrap();
}

#[test]
#[ignore = "timings: run on demand"]
fn diff_all_helm_against_flux_local_diff() {
    let (Some(flux_local), Some(flux)) = (support::flux_local(), support::flux()) else {
        return;
    };
    let Some(charts) = support::Charts::start() else {
        return;
    };
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    charts.write_tree(root);
    support::adapt_for_flux_local(root);
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "base"]);
    let values = root.join("apps/values.yaml");
    let text = std::fs::read_to_string(&values).unwrap();
    std::fs::write(
        &values,
        text.replace("greeting: from-configmap", "greeting: changed"),
    )
    .unwrap();
    let releases = root.join("apps/releases.yaml");
    let text = std::fs::read_to_string(&releases).unwrap();
    std::fs::write(
        &releases,
        text.replacen("version: 0.1.0", "version: 0.2.0", 1),
    )
    .unwrap();
    git(root, &["commit", "-q", "-am", "head"]);
    git(root, &["branch", "base", "HEAD~1"]);

    let runs = std::env::var("XTASK_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let opts = DiffOptions {
        root: root.to_path_buf(),
        base: Some("base".into()),
        clusters: Vec::new(),
        helm: Some(charts.options()),
        decryptor: None,
    };
    let ours = bench::time_ours(&opts, runs).unwrap();
    assert!(diff::run(&opts).unwrap().has_differences());
    let commands = bench::flux_local_commands(
        &flux_local,
        root,
        "base",
        &["test".to_string()],
        &[
            common::root().join(".tools/bin"),
            flux.parent().unwrap().to_path_buf(),
        ],
    );
    let theirs = bench::time_commands(&commands, runs).unwrap();
    let (a, b) = (bench::median(&ours), bench::median(&theirs));
    println!(
        "diff --all --helm (1 cluster, 3 releases, median of {runs}): ours {:.0} ms, flux-local diff ks+hr {:.0} ms, ratio {:.1}x",
        a.as_secs_f64() * 1000.0,
        b.as_secs_f64() * 1000.0,
        b.as_secs_f64() / a.as_secs_f64()
    );
}
