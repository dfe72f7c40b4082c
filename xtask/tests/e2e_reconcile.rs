//! `cargo xtask e2e` as a test: the real Flux source- and kustomize-controller
//! reconcile our published artifact against a local kube-apiserver and etcd,
//! with a real registry. No Docker.
//!
//! Needs the four binaries built by `cargo xtask e2e --build-only` (or
//! `xtask::cluster::local::build_binaries`), kubectl and docker-registry.
//! Skips with a notice when they are missing, unless XTASK_REQUIRE_TOOLS=1.

mod common;

use xtask::cluster::local::{self, E2eOptions};

fn prerequisites() -> bool {
    if !local::all_cached() {
        if common::tools_required() {
            panic!(
                "the control-plane binaries are required (XTASK_REQUIRE_TOOLS=1) but not built; run `cargo xtask e2e --build-only`"
            );
        }
        eprintln!(
            "SKIP: etcd, kube-apiserver and the Flux controllers are not built; `cargo xtask e2e --build-only` builds them"
        );
        return false;
    }
    common::tool("kubectl").is_some() && common::tool("docker-registry").is_some()
}

#[test]
fn flux_reconciles_our_artifact_on_a_local_control_plane() {
    if !prerequisites() {
        return;
    }
    let opts = E2eOptions {
        build: false,
        ..E2eOptions::default()
    };
    let report =
        local::run_e2e(&opts, |line| eprintln!("{line}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.passed.len(), 7, "{:#?}", report.passed);
    for (i, line) in report.passed.iter().enumerate() {
        assert!(line.starts_with(&format!("{}. ", i + 1)), "{line}");
    }
    eprintln!(
        "e2e: {:.1} s total; edit→applied {:.2} s; edit→Ready {:.2} s",
        report.total.as_secs_f64(),
        report.edit_to_applied.as_secs_f64(),
        report.edit_to_ready.as_secs_f64()
    );
}

/// `cargo test -p xtask --test e2e_reconcile -- --ignored`: the edit→Ready
/// loop behind `cargo xtask bench reconcile`, 5 cycles.
#[test]
#[ignore = "a benchmark: run with --ignored"]
fn bench_edit_to_ready() {
    if !prerequisites() {
        return;
    }
    let report = local::bench_reconcile(5, false, |line| eprintln!("{line}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (min, median, max) = local::e2e::summary(&report.edit_to_ready).unwrap();
    let (amin, amedian, amax) = local::e2e::summary(&report.edit_to_applied).unwrap();
    eprintln!(
        "edit→Ready over {} cycles: min {:.2} s, median {:.2} s, max {:.2} s (edit→applied min {:.2} / median {:.2} / max {:.2} s; setup {:.1} s)",
        report.edit_to_ready.len(),
        min.as_secs_f64(),
        median.as_secs_f64(),
        max.as_secs_f64(),
        amin.as_secs_f64(),
        amedian.as_secs_f64(),
        amax.as_secs_f64(),
        report.setup.as_secs_f64()
    );
    assert!(
        median.as_secs() <= 10,
        "median edit→Ready {median:?} exceeds the 10 s goal"
    );
}
