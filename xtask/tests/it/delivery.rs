//! Delivery as the repository wires it: every tag a cluster's OCIRepository
//! follows in the shared registry is one a workflow produces, and the
//! clusters that verify signatures follow workflows that sign.

use crate::common;

use std::collections::BTreeSet;

use serde_json::Value;

/// Every `--tag X` of `cargo xtask publish` and `--to X` of `cargo xtask
/// promote` in the workflows' run scripts, with the workflow's file name.
fn produced_tags() -> Vec<(String, String)> {
    let dir = common::root().join(".github/workflows");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let workflow = path.file_name().unwrap().to_string_lossy().to_string();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        for job in doc["jobs"]
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.values())
        {
            for step in job["steps"].as_sequence().into_iter().flatten() {
                let Some(run) = step["run"].as_str() else {
                    continue;
                };
                // Continuation lines joined: one command per line.
                let run = run.replace("\\\n", " ");
                for line in run.lines() {
                    let flag = if line.contains("cargo xtask publish") {
                        "--tag"
                    } else if line.contains("cargo xtask promote") {
                        "--to"
                    } else {
                        continue;
                    };
                    let words: Vec<&str> = line.split_whitespace().collect();
                    for pair in words.windows(2) {
                        if pair[0] == flag {
                            let tag = pair[1].trim_matches('"').to_string();
                            out.push((workflow.clone(), tag));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Every OCIRepository of `clusters/<name>/flux-system`.
fn oci_repositories() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for cluster in flux_render::list_clusters(&common::root()) {
        let dir = common::root()
            .join("clusters")
            .join(&cluster)
            .join("flux-system");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let (docs, _) = xtask::validate::tree::parse_stream(&text);
            for doc in docs {
                if doc.value["kind"] == "OCIRepository" {
                    out.push((cluster.clone(), doc.value));
                }
            }
        }
    }
    out
}

#[test]
fn every_tag_a_cluster_follows_is_one_a_workflow_produces() {
    let produced = produced_tags();
    let literal: BTreeSet<&str> = produced
        .iter()
        .map(|(_, tag)| tag.as_str())
        .filter(|t| !t.contains("${{"))
        .collect();
    assert!(
        literal.contains("dev") && literal.contains("prod"),
        "the workflows produce {produced:?}"
    );
    let repositories = oci_repositories();
    assert!(repositories.len() >= 3, "{repositories:?}");
    let mut checked = 0;
    for (cluster, repo) in &repositories {
        let url = repo["spec"]["url"].as_str().unwrap_or_default();
        // The local cluster follows the local registry that reconcile and
        // bootstrap fill; the shared registry is the workflows' to fill.
        if !url.starts_with("oci://ghcr.io/") {
            continue;
        }
        let tag = repo["spec"]["ref"]["tag"]
            .as_str()
            .unwrap_or_else(|| panic!("{cluster}: the OCIRepository follows no tag: {repo}"));
        assert!(
            literal.contains(tag),
            "{cluster} follows the tag {tag:?}, which no workflow produces (they produce {literal:?})"
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "dev and prod follow the shared registry");
}

#[test]
fn clusters_that_verify_follow_workflows_that_sign() {
    for (cluster, repo) in oci_repositories() {
        let Some(verify) = repo["spec"].get("verify") else {
            continue;
        };
        assert_eq!(verify["provider"], "cosign", "{cluster}");
        let subject = verify["matchOIDCIdentity"][0]["subject"]
            .as_str()
            .unwrap_or_else(|| panic!("{cluster}: no identity to match"));
        // The workflow the identity names exists and signs with cosign.
        let workflow = ["publish.yaml", "release.yaml"]
            .into_iter()
            .find(|w| subject.contains(&w.replace('.', "\\.")))
            .unwrap_or_else(|| panic!("{cluster}: {subject} names no workflow of ours"));
        let text = std::fs::read_to_string(common::root().join(".github/workflows").join(workflow))
            .unwrap();
        assert!(
            text.contains("cosign sign") && text.contains("id-token: write"),
            "{workflow} does not sign keyless"
        );
        let regex = regex::Regex::new(subject).unwrap();
        let sample = match workflow {
            "publish.yaml" => {
                "https://github.com/devantler-tech/platform/.github/workflows/publish.yaml@refs/heads/main"
            }
            _ => {
                "https://github.com/devantler-tech/platform/.github/workflows/release.yaml@refs/tags/v1.2.3"
            }
        };
        assert!(
            regex.is_match(sample),
            "{cluster}: {subject} does not match {sample}"
        );
    }
}
