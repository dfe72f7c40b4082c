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

/// The dev and prod sources on ghcr.io name a pull secret (packages there
/// start private), and it is the one `bootstrap --cluster` writes: a
/// dockerconfigjson Secret of that name, in the source's namespace, for
/// the source's host.
#[test]
fn shared_registry_sources_name_the_pull_secret_bootstrap_writes() {
    use base64::Engine as _;
    let mut checked = 0;
    for (cluster, repo) in oci_repositories() {
        let url = repo["spec"]["url"].as_str().unwrap_or_default();
        if !url.starts_with("oci://ghcr.io/") {
            continue;
        }
        let name = repo["spec"]["secretRef"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{cluster}: {url} is pulled without a secretRef"));
        let ns = repo["metadata"]["namespace"].as_str().unwrap();
        let host = xtask::cluster::existing::registry_host(url).unwrap();
        let secret = xtask::cluster::existing::pull_secret(name, ns, &host, "u", "t");
        assert_eq!(secret["metadata"]["name"], name);
        assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
        let config: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(config["auths"]["ghcr.io"].is_object(), "{config}");
        checked += 1;
    }
    assert_eq!(checked, 2, "dev and prod");
}

/// `cd.yaml` bootstraps dev from repository secrets, and skips the job
/// cleanly when the kubeconfig secret is absent (a job-level `if` on an
/// output, since `secrets` cannot appear in a job's `if`).
#[test]
fn cd_bootstraps_dev_only_when_its_kubeconfig_secret_is_set() {
    let text = std::fs::read_to_string(common::root().join(".github/workflows/cd.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let jobs = doc["jobs"].as_mapping().unwrap();
    let (name, job) = jobs
        .iter()
        .find(|(_, j)| {
            j["steps"].as_sequence().into_iter().flatten().any(|s| {
                s["run"]
                    .as_str()
                    .is_some_and(|r| r.contains("cargo xtask bootstrap --cluster dev"))
            })
        })
        .expect("a job runs `cargo xtask bootstrap --cluster dev`");
    let step = job["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("cargo xtask bootstrap"))
        })
        .unwrap();
    let env = &step["env"];
    assert!(
        env["KUBECONFIG"].as_str().is_some(),
        "{name:?}: no KUBECONFIG"
    );
    assert!(
        env["SOPS_AGE_KEY"]
            .as_str()
            .is_some_and(|v| v.contains("secrets.")),
        "{name:?}: SOPS_AGE_KEY must come from a secret"
    );
    // The kubeconfig comes from a repository secret.
    assert!(
        text.contains("secrets.DEV_KUBECONFIG"),
        "no DEV_KUBECONFIG secret"
    );
    // Skipped cleanly: the job's `if` reads another job's output, and that
    // job checks the secret.
    let cond = job["if"].as_str().expect("a job-level if");
    let needs = job["needs"].as_str().expect("needs the check job");
    assert!(cond.contains(&format!("needs.{needs}.outputs.")), "{cond}");
    let check = &jobs[&serde_yaml::Value::from(needs)];
    let checks_secret = check["steps"].as_sequence().into_iter().flatten().any(|s| {
        s["env"]
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.values())
            .any(|v| v.as_str() == Some("${{ secrets.DEV_KUBECONFIG }}"))
            && s["run"]
                .as_str()
                .is_some_and(|r| r.contains("GITHUB_OUTPUT"))
    });
    assert!(checks_secret, "{needs} does not check DEV_KUBECONFIG");
}
