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

/// A workflow file of `.github/workflows`, parsed.
fn workflow(name: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(common::root().join(".github/workflows").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_yaml::from_str(&text).unwrap()
}

/// Every workflow file name.
fn workflow_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::root().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

/// The steps of the one job of `doc` whose steps run `needle`.
fn job_running<'a>(doc: &'a serde_yaml::Value, needle: &str) -> &'a serde_yaml::Value {
    let jobs: Vec<&serde_yaml::Value> = doc["jobs"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|j| {
            steps(j)
                .iter()
                .any(|s| s["run"].as_str().is_some_and(|r| r.contains(needle)))
        })
        .collect();
    assert_eq!(jobs.len(), 1, "one job runs {needle:?}");
    jobs[0]
}

fn steps(job: &serde_yaml::Value) -> Vec<&serde_yaml::Value> {
    job["steps"].as_sequence().into_iter().flatten().collect()
}

/// The checkout step.
fn checkout<'a>(steps: &[&'a serde_yaml::Value]) -> &'a serde_yaml::Value {
    steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
        })
        .expect("a checkout")
}

/// The index of the only step whose script holds every one of `needles`.
fn step_index(steps: &[&serde_yaml::Value], needles: &[&str]) -> usize {
    let found: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s["run"]
                .as_str()
                .is_some_and(|r| needles.iter().all(|n| r.contains(n)))
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "one step runs {needles:?}: {found:?}");
    found[0]
}

/// `cd.yaml` bootstraps dev from the `dev` environment's secrets, and
/// skips the bootstrap cleanly when the kubeconfig secret is absent: a
/// first step checks it (a step's `if` cannot read `secrets`) and every
/// step that touches the cluster is conditioned on its answer.
#[test]
fn cd_bootstraps_dev_only_when_its_kubeconfig_secret_is_set() {
    let text = std::fs::read_to_string(common::root().join(".github/workflows/cd.yaml")).unwrap();
    let doc = workflow("cd.yaml");
    let job = job_running(&doc, "cargo xtask bootstrap --cluster dev");
    let steps = steps(job);
    let bootstrap = step_index(&steps, &["cargo xtask bootstrap --cluster dev"]);
    let env = &steps[bootstrap]["env"];
    assert!(env["KUBECONFIG"].as_str().is_some(), "no KUBECONFIG");
    assert!(
        env["SOPS_AGE_KEY"]
            .as_str()
            .is_some_and(|v| v.contains("secrets.")),
        "SOPS_AGE_KEY must come from a secret"
    );
    assert!(
        text.contains("secrets.DEV_KUBECONFIG"),
        "no DEV_KUBECONFIG secret"
    );
    // The first step checks the secret and says so in an output.
    let check = steps[0];
    let id = check["id"].as_str().expect("the check step has an id");
    assert_eq!(
        check["env"]["DEV_KUBECONFIG"].as_str(),
        Some("${{ secrets.DEV_KUBECONFIG }}")
    );
    assert!(
        check["run"]
            .as_str()
            .is_some_and(|r| r.contains("GITHUB_OUTPUT")),
        "{check:?}"
    );
    // Every later step but the cleanup waits for its answer.
    let gate = format!("steps.{id}.outputs.dev == 'true'");
    for step in &steps[1..] {
        let cond = step["if"].as_str().unwrap_or_default();
        if step["run"].as_str() == Some("rm -f \"$RUNNER_TEMP/kubeconfig\"") {
            assert_eq!(cond, "always()");
            continue;
        }
        assert_eq!(cond, gate, "{step:?}");
    }
}

/// The release promotes only what publish signed on main for the tagged
/// commit: the digest comes from publish's keyless signature for that
/// commit, the commit must be on main, the digest is verified with
/// publish's identity, and only then is it (the digest, never the tag)
/// promoted and signed.
#[test]
fn release_verifies_the_publish_signature_before_it_promotes() {
    let doc = workflow("release.yaml");
    let env = &doc["env"];
    assert_eq!(
        env["PUBLISH_IDENTITY"].as_str(),
        Some(
            "https://github.com/${{ github.repository }}/.github/workflows/publish.yaml@refs/heads/main"
        )
    );
    assert_eq!(
        env["ISSUER"].as_str(),
        Some("https://token.actions.githubusercontent.com")
    );
    assert_eq!(env["SHA"].as_str(), Some("${{ github.sha }}"));
    let job = job_running(&doc, "cargo xtask promote");
    let steps = steps(job);
    let checkout = checkout(&steps);
    assert_eq!(
        checkout["with"]["fetch-depth"].as_u64(),
        Some(0),
        "the ancestry check needs origin/main"
    );
    let verify_args = [
        "cosign verify",
        "--certificate-identity \"$PUBLISH_IDENTITY\"",
        "--certificate-oidc-issuer \"$ISSUER\"",
        "--certificate-github-workflow-sha \"$SHA\"",
    ];
    let find = step_index(&steps, &[&verify_args[..], &["\"$image:$SHA\""]].concat());
    assert!(
        steps[find]["run"]
            .as_str()
            .unwrap()
            .contains("digest=$digest"),
        "the digest comes from the verified signature"
    );
    let ancestry = step_index(
        &steps,
        &["git merge-base --is-ancestor \"$SHA\" origin/main"],
    );
    let verify = step_index(
        &steps,
        &[&verify_args[..], &["\"$IMAGE@$DIGEST\""]].concat(),
    );
    let promote = step_index(&steps, &["cargo xtask promote", "--from \"$DIGEST\""]);
    let sign = step_index(&steps, &["cosign sign \"$IMAGE@$DIGEST\""]);
    assert!(
        find < ancestry && ancestry < verify && verify < promote && promote < sign,
        "find {find}, ancestry {ancestry}, verify {verify}, promote {promote}, sign {sign}"
    );
    // The digest the promotion and the signature use is the one found.
    for i in [verify, promote, sign] {
        assert_eq!(
            steps[i]["env"]["DIGEST"].as_str(),
            Some("${{ steps.find.outputs.digest }}"),
            "{:?}",
            steps[i]
        );
    }
    assert_eq!(steps[find]["id"].as_str(), Some("find"));
}

/// `cd.yaml` deploys to the `dev` environment only from main, and checks
/// out the commit the publish run published, not main as it is later.
#[test]
fn cd_is_restricted_to_main_and_deploys_the_published_sha() {
    let doc = workflow("cd.yaml");
    let job = job_running(&doc, "cargo xtask bootstrap --cluster dev");
    assert_eq!(job["environment"].as_str(), Some("dev"));
    let cond: String = job["if"]
        .as_str()
        .expect("a job-level if")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // Each trigger is tied to main on its own: a publish run of main that
    // succeeded after a push in this repository, or a manual run on main.
    let run = "(github.event_name == 'workflow_run' && github.event.workflow_run.conclusion == 'success' && github.event.workflow_run.event == 'push' && github.event.workflow_run.head_branch == 'main' && github.event.workflow_run.head_repository.full_name == github.repository)";
    let dispatch = "(github.event_name == 'workflow_dispatch' && github.ref == 'refs/heads/main')";
    assert_eq!(cond, format!("{run} || {dispatch}"));
    let on = &doc["on"];
    let triggers: Vec<&str> = on
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    assert_eq!(triggers, ["workflow_run", "workflow_dispatch"]);
    assert_eq!(
        on["workflow_run"]["workflows"],
        serde_yaml::from_str::<serde_yaml::Value>("[publish]").unwrap()
    );
    let checkout = checkout(&steps(job));
    assert_eq!(
        checkout["with"]["ref"].as_str(),
        Some("${{ github.event.workflow_run.head_sha || github.sha }}")
    );
}

/// No workflow pastes an expression into a script: untrusted values reach
/// scripts through `env:` only (zizmor's template-injection, by hand).
#[test]
fn no_expression_is_expanded_inside_a_script() {
    let mut scripts = 0;
    for name in workflow_names() {
        let doc = workflow(&name);
        for (job_name, job) in doc["jobs"].as_mapping().unwrap() {
            for step in steps(job) {
                for script in [step["run"].as_str(), step["with"]["script"].as_str()]
                    .into_iter()
                    .flatten()
                {
                    scripts += 1;
                    assert!(
                        !script.contains("${{"),
                        "{name} {job_name:?}: an expression inside a script:\n{script}"
                    );
                }
            }
        }
    }
    // Every script key in the text was read as a script (none hides
    // where the parse above did not look).
    let script_keys = regex::Regex::new(r"^\s*(- )?(run|script):").unwrap();
    let in_text: usize = workflow_names()
        .iter()
        .map(|name| {
            std::fs::read_to_string(common::root().join(".github/workflows").join(name))
                .unwrap()
                .lines()
                .filter(|l| script_keys.is_match(l))
                .count()
        })
        .sum();
    assert_eq!(scripts, in_text, "the scripts of every workflow were read");
}

/// Every action is pinned by a full commit sha with its version in a
/// trailing comment (what Renovate's pinDigests keeps current), and the
/// workflows that write signatures share one concurrency group that never
/// cancels a run.
#[test]
fn actions_are_pinned_by_sha_and_signers_share_one_group() {
    let pin = regex::Regex::new(r"^\s*(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
        .unwrap();
    let mut uses = 0;
    let mut signers = Vec::new();
    for name in workflow_names() {
        let text =
            std::fs::read_to_string(common::root().join(".github/workflows").join(&name)).unwrap();
        for line in text.lines().filter(|l| l.trim_start().contains("uses: ")) {
            uses += 1;
            assert!(pin.is_match(line), "{name}: not pinned by sha: {line}");
        }
        if text.contains("cosign sign") || text.contains("--sign-key") {
            let doc = workflow(&name);
            signers.push((
                name.clone(),
                doc["concurrency"]["group"].as_str().map(str::to_string),
                doc["concurrency"]["cancel-in-progress"].as_bool(),
            ));
        }
    }
    // The parse agrees: every step that uses an action was on such a line.
    let parsed: usize = workflow_names()
        .iter()
        .map(|name| {
            let doc = workflow(name);
            doc["jobs"]
                .as_mapping()
                .unwrap()
                .values()
                .flat_map(|job| steps(job))
                .filter(|step| step["uses"].as_str().is_some())
                .count()
        })
        .sum();
    assert_eq!(uses, parsed, "every uses: line was read");
    let names: Vec<&str> = signers.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["publish.yaml", "release.yaml"]);
    for (name, group, cancel) in &signers {
        assert_eq!(group.as_deref(), Some("signatures"), "{name}");
        assert_eq!(*cancel, Some(false), "{name}");
    }
}

/// zizmor (pinned in xtask/tools.toml, run by `cargo xtask test`) finds
/// nothing in our workflows at its default persona, and the same run flags
/// an expression pasted into a script, so the clean answer means something.
#[test]
fn zizmor_is_clean_on_our_workflows_and_flags_an_injected_expression() {
    let Some(bin) = common::tool("zizmor") else {
        return;
    };
    let zizmor = |path: &std::path::Path| {
        std::process::Command::new(&bin)
            .args(["--offline", "--no-progress"])
            .arg(path)
            .output()
            .unwrap()
    };
    let workflows = common::root().join(".github/workflows");
    let out = zizmor(&workflows);
    common::assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No findings to report"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(workflows.join("release.yaml")).unwrap();
    let injected = text.replace("--to \"$VERSION\"", "--to \"${{ github.ref_name }}\"");
    assert_ne!(injected, text);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("release.yaml");
    std::fs::write(&copy, injected).unwrap();
    let out = zizmor(&copy);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("error[template-injection]"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
