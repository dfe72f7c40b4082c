//! `cargo xtask e2e --cluster dev` as a test: the local control plane stands
//! in for the existing dev cluster, the existing-cluster bootstrap runs
//! against it, source-controller verifies the artifact's cosign signature
//! (a key pair made for the run), the Kustomization chain reaches Ready with
//! an age key made for the run, a re-run converges, and an unsigned artifact
//! and one signed with another key are refused.
//!
//! Needs what `e2e_reconcile` needs (the four control-plane binaries,
//! kubectl, docker-registry); skips with a notice when they are missing,
//! unless XTASK_REQUIRE_TOOLS=1.

mod common;

use std::time::Instant;

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
fn dev_bootstrap_on_the_stand_in_verifies_signatures_and_refuses_the_rest() {
    if !prerequisites() {
        return;
    }
    let started = Instant::now();
    let mut lines = Vec::new();
    let opts = E2eOptions {
        cluster: "dev".into(),
        build: false,
    };
    let report = local::run_e2e(&opts, |line| {
        eprintln!("{line}");
        lines.push(line.to_string());
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let passed = &report.passed;
    assert_eq!(passed.len(), 6, "{passed:#?}");
    for (i, line) in passed.iter().enumerate() {
        assert!(line.starts_with(&format!("{}. ", i + 1)), "{line}");
    }
    // The same bootstrap code ran, with its seven step lines, and said that
    // the Flux controllers are local processes here.
    let log = lines.join("\n");
    for step in xtask::cluster::existing::STEPS {
        assert!(
            log.contains(&format!("bootstrap step {step}: ")),
            "no step line for {step}"
        );
    }
    assert!(
        log.contains("run as local processes") && log.contains("instead of install.yaml"),
        "{log}"
    );
    assert!(log.contains("none NotReady for lack of a CNI"), "{log}");
    assert!(
        log.contains("flux-system/ghcr-auth (dockerconfigjson)"),
        "the pull secret the tree names was written: {log}"
    );
    // Verified, Ready, refused.
    assert!(
        passed[1].contains("SourceVerified=True") && passed[1].contains("verified signature"),
        "{}",
        passed[1]
    );
    assert!(
        passed[2].contains("variables -> infrastructure-controllers -> infrastructure -> apps"),
        "{}",
        passed[2]
    );
    for refused in &passed[4..] {
        assert!(
            refused.contains("Ready=False, SourceVerified=False (VerificationError"),
            "{refused}"
        );
        assert!(refused.contains("e2e-probe keeps \"initial\""), "{refused}");
    }
    eprintln!(
        "e2e --cluster dev: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
