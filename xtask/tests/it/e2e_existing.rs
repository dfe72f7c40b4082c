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

use crate::common;
use crate::control_plane;

use std::time::Instant;

use xtask::cluster::local::{self, E2eOptions};

#[test]
fn dev_bootstrap_on_the_stand_in_verifies_signatures_and_refuses_the_rest() {
    let _one = control_plane::exclusive();
    if !control_plane::prerequisites() {
        return;
    }
    let started = Instant::now();
    let mut lines = Vec::new();
    let opts = E2eOptions {
        cluster: "dev".into(),
        build: false,
        ..E2eOptions::new(common::root())
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
        log.contains(
            "placeholders refused before anything is applied: clusters/dev still has 1 placeholder value(s) (REPLACE-ME-...); set each with `cargo xtask secrets edit <file>` before bootstrapping: Secret flux-system/variables-cluster (clusters/dev/variables/variables-cluster-secret.enc.yaml): hcloud_luks_passphrase"
        ),
        "{log}"
    );
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

/// The existing-cluster preflight against a real kube-apiserver: a node
/// that reports kubelet's "cni plugin not initialized" (as a Talos node with
/// `cni: none` does) is found and Cilium is planned from the rendered
/// HelmRelease; an age key for another recipient and a missing pull secret
/// are named, without printing the key; with the cluster's identity and
/// credentials the plan is complete. (The helm install itself needs the
/// chart repository, which is out of reach here.)
#[test]
fn preflight_on_a_real_api_server_finds_the_missing_cni_and_names_what_is_missing() {
    let _one = control_plane::exclusive();
    use xtask::cluster::existing::{self, Credentials, FluxMode, Options, PullPlan};
    let Some(bins) = crate::control_plane::api_server_binaries() else {
        return;
    };
    if common::tool("kubectl").is_none() || common::tool("helm").is_none() {
        return;
    }
    let cp = local::ControlPlane::start_api_server(&common::root(), &bins, |_| {}).unwrap();
    let kube = cp.kube.clone();
    // A Talos control-plane node before any CNI runs.
    kube.apply_yaml("apiVersion: v1\nkind: Node\nmetadata:\n  name: talos-cp-1\n")
        .unwrap();
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady","message":"container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized","lastHeartbeatTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let out = kube
        .cmd()
        .args([
            "patch",
            "node",
            "talos-cp-1",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ])
        .output()
        .unwrap();
    common::assert_success(&out);

    // The tree, with .sops.yaml's dev rule on a key made for this test.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    common::copy_manifests(&common::root(), root);
    let dev_recipient = xtask::cluster::age_key::recipients(&common::root(), "dev").unwrap();
    let (identity, recipient) = sops::generate_identity();
    let sops_yaml = std::fs::read_to_string(common::root().join(".sops.yaml")).unwrap();
    std::fs::write(
        root.join(".sops.yaml"),
        sops_yaml.replace(&dev_recipient[0], &recipient),
    )
    .unwrap();
    crate::bootstrap_existing::set_dev_secrets(root, &recipient);

    let (stranger, _) = sops::generate_identity();
    let mut o = Options {
        root: root.to_path_buf(),
        cluster: "dev".into(),
        kube: kube.clone(),
        timeout: std::time::Duration::from_secs(60),
        age_sources: vec![("SOPS_AGE_KEY".into(), stranger.clone())],
        credentials: Credentials::None,
        flux: FluxMode::LocalProcesses("test".into()),
        wait_helm_releases: false,
    };
    let problems = match existing::preflight(&o, &mut kube.clone()) {
        Ok(_) => panic!("a stranger's key and no pull secret pass preflight"),
        Err(p) => p,
    };
    let text = problems.join("\n");
    assert!(
        text.contains(&format!(
            "no age identity for the dev environment (recipient {recipient}) in SOPS_AGE_KEY"
        )),
        "{text}"
    );
    assert!(
        !text.contains("AGE-SECRET-KEY"),
        "a key was printed: {text}"
    );
    assert!(
        text.contains("secretRef flux-system/ghcr-auth, which does not exist, and no credentials for ghcr.io were given"),
        "{text}"
    );
    assert_eq!(problems.len(), 2, "{text}");

    o.age_sources = vec![("SOPS_AGE_KEY".into(), format!("{stranger}\n{identity}\n"))];
    o.credentials = Credentials::Given {
        username: "bot".into(),
        password: "token".into(),
        origin: "test".into(),
    };
    let mut k = kube.clone();
    let found = existing::preflight(&o, &mut k).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(
        k.context.as_deref(),
        Some(found.context.as_str()),
        "the current-context is used"
    );
    assert!(
        found.server_version.starts_with('v'),
        "{}",
        found.server_version
    );
    assert_eq!(found.nodes, 1);
    assert_eq!(found.cni_missing, vec!["talos-cp-1".to_string()]);
    let (_, cilium) = found.cilium.as_ref().expect("Cilium is planned");
    assert_eq!(cilium.release, "cilium");
    assert_eq!(cilium.namespace, "kube-system");
    assert_eq!(found.keys, vec![identity], "only the dev identity");
    match &found.pull {
        PullPlan::Apply { secret, origin } => {
            assert_eq!(secret["metadata"]["name"], "ghcr-auth");
            assert_eq!(origin, "test");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(found.root_sync.len(), 2);
}

/// `cargo xtask bootstrap --cluster dev` itself, against a real
/// kube-apiserver: the identity comes from SOPS_AGE_KEY, the credentials
/// from the environment, and preflight lists every problem with the seven
/// step lines' first one; nothing is created.
#[test]
fn the_bootstrap_verb_refuses_a_stranger_key_and_a_missing_pull_secret() {
    let _one = control_plane::exclusive();
    let Some(bins) = crate::control_plane::api_server_binaries() else {
        return;
    };
    if common::tool("kubectl").is_none() {
        return;
    }
    let cp = local::ControlPlane::start_api_server(&common::root(), &bins, |_| {}).unwrap();
    let (stranger, _) = sops::generate_identity();
    let out = assert_cmd::Command::cargo_bin("xtask")
        .unwrap()
        .args(["bootstrap", "--cluster", "dev", "--kubeconfig"])
        .arg(&cp.kubeconfig)
        .env("SOPS_AGE_KEY", &stranger)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let recipient = &xtask::cluster::age_key::recipients(&common::root(), "dev").unwrap()[0];
    assert!(err.contains("[1/7] Preflight"), "{err}");
    assert!(
        err.contains(&format!(
            "no age identity for the dev environment (recipient {recipient}) in SOPS_AGE_KEY"
        )),
        "{err}"
    );
    assert!(
        err.contains("secretRef flux-system/ghcr-auth, which does not exist"),
        "{err}"
    );
    assert!(!err.contains("AGE-SECRET-KEY"), "a key was printed: {err}");
    assert!(!err.contains("[2/7]"), "no step after preflight ran: {err}");
    let secret = cp
        .kube
        .get("secret", Some("flux-system"), "sops-age")
        .unwrap();
    assert!(secret.is_none(), "nothing is created");
}
