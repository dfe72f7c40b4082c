//! `cargo xtask e2e` as a test: the real Flux source- and kustomize-controller
//! reconcile our published artifact against a local kube-apiserver and etcd,
//! with a real registry. No Docker.
//!
//! Needs the four binaries built by `cargo xtask e2e --build-only` (or
//! `xtask::cluster::local::build_binaries`), kubectl and docker-registry.
//! Skips with a notice when they are missing, unless XTASK_REQUIRE_TOOLS=1.

use crate::common;
use crate::control_plane;

use xtask::cluster::local::{self, E2eOptions};

#[test]
fn flux_reconciles_our_artifact_on_a_local_control_plane() {
    let _one = control_plane::exclusive();
    if !control_plane::prerequisites() {
        return;
    }
    let opts = E2eOptions {
        build: false,
        ..E2eOptions::new(common::root())
    };
    let report =
        local::run_e2e(&opts, |line| eprintln!("{line}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.passed.len(), 8, "{:#?}", report.passed);
    // The policies' Kustomization applied them, and the API server enforced them.
    assert!(
        report.passed[7].contains("ValidatingPolicies") && report.passed[7].contains("refused"),
        "{}",
        report.passed[7]
    );
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
