//! `cargo xtask build` on fixture trees and on the real tree.

use crate::common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use flux_render::{RenderError, RenderOptions};

fn kustomize_available() -> bool {
    if exec::tools::kustomize().is_ok() {
        return true;
    }
    if common::tools_required() {
        panic!(
            "kustomize is required (XTASK_REQUIRE_TOOLS=1) but neither kustomize nor kubectl is installed"
        );
    }
    eprintln!("SKIP: neither kustomize nor kubectl is installed");
    false
}

fn fixture(name: &str) -> PathBuf {
    common::root().join("xtask/tests/fixtures/build").join(name)
}

/// A writable copy of a fixture tree, for the broken variants.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(&fixture(name), dir.path());
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn renders_the_basic_fixture_in_dependency_order() {
    if !kustomize_available() {
        return;
    }
    let rendered =
        flux_render::render_cluster(&fixture("basic"), "demo", &RenderOptions::default()).unwrap();
    let names: Vec<_> = rendered
        .kustomizations
        .iter()
        .map(|k| k.flux.name.as_str())
        .collect();
    assert_eq!(names, ["variables", "apps"]);
    assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
    let apps = flux_render::to_yaml_stream(&rendered.kustomizations[1].objects);
    insta::assert_snapshot!("basic_apps", apps);
}

#[test]
fn substitution_follows_flux_precedence_and_typing() {
    if !kustomize_available() {
        return;
    }
    let rendered =
        flux_render::render_cluster(&fixture("basic"), "demo", &RenderOptions::default()).unwrap();
    let deployment = &rendered.kustomizations[1].objects[1];
    // Later substituteFrom entries win over earlier ones; inline substitute wins over all.
    assert_eq!(deployment["metadata"]["labels"]["tier"], "inline");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"][1],
        "web.demo.example"
    );
    // A substituted number is a number, as in Flux (YAML re-parsed after substitution).
    assert_eq!(deployment["spec"]["replicas"], 3);
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0]["value"], "demo-token",
        "Secret data is base64-decoded"
    );
    assert_eq!(env[1]["value"], "${not_substituted}", "$${{}} is an escape");
    let script = &rendered.kustomizations[1].objects[0];
    assert_eq!(script["data"]["run.sh"], "echo ${HOME} $USER");
}

#[test]
fn undefined_variable_names_the_kustomization_object_and_file() {
    if !kustomize_available() {
        return;
    }
    let tree = copy_of("basic");
    edit(
        &tree.path().join("apps/web/deployment.yaml"),
        "web.${domain}",
        "web.${domian}",
    );
    let err =
        flux_render::render_cluster(tree.path(), "demo", &RenderOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Kustomization apps: Deployment web/web: variable ${domian} is not defined and has no default (used in apps/web/deployment.yaml)"
    );
}

#[test]
fn missing_path_names_the_declaring_file() {
    if !kustomize_available() {
        return;
    }
    let tree = copy_of("basic");
    edit(
        &tree.path().join("clusters/demo/apps.yaml"),
        "path: ./apps",
        "path: ./apps-gone",
    );
    let err =
        flux_render::render_cluster(tree.path(), "demo", &RenderOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Kustomization apps (clusters/demo/apps.yaml): path apps-gone does not exist"
    );
}

#[test]
fn kustomize_error_names_the_folder_and_carries_stderr() {
    if !kustomize_available() {
        return;
    }
    let tree = copy_of("basic");
    edit(
        &tree.path().join("apps/web/kustomization.yaml"),
        "- script.yaml",
        "- missing.yaml",
    );
    let err =
        flux_render::render_cluster(tree.path(), "demo", &RenderOptions::default()).unwrap_err();
    match &err {
        RenderError::Kustomize { dir, message } => {
            assert_eq!(dir, &tree.path().join("apps"));
            assert!(message.contains("missing.yaml"), "{message}");
        }
        other => panic!("expected a kustomize error, got {other}"),
    }
}

#[test]
fn depends_on_cycle_is_reported() {
    if !kustomize_available() {
        return;
    }
    let tree = copy_of("basic");
    edit(
        &tree.path().join("clusters/demo/variables.yaml"),
        "  prune: true",
        "  prune: true\n  dependsOn:\n    - name: apps",
    );
    let err =
        flux_render::render_cluster(tree.path(), "demo", &RenderOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "dependsOn cycle in cluster demo: apps -> variables -> apps"
    );
}

#[test]
fn missing_required_substitute_source_is_an_error() {
    if !kustomize_available() {
        return;
    }
    let tree = copy_of("basic");
    edit(
        &tree.path().join("clusters/demo/apps.yaml"),
        "name: creds",
        "name: credz",
    );
    let err =
        flux_render::render_cluster(tree.path(), "demo", &RenderOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("substituteFrom Secret/credz is not in cluster demo"),
        "{err}"
    );
}

#[test]
fn cli_writes_one_file_per_kustomization() {
    if !kustomize_available() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let assert = Command::cargo_bin("xtask")
        .unwrap()
        .args(["build", "--cluster", "demo", "--root"])
        .arg(fixture("basic"))
        .arg("--out")
        .arg(out.path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("apps"), "{stdout}");
    assert!(stdout.contains("Deployment 1"), "{stdout}");
    for file in ["flux-system.yaml", "variables.yaml", "apps.yaml"] {
        assert!(out.path().join("demo").join(file).is_file(), "{file}");
    }
}

fn build_into(root: &Path, out: &Path) -> std::process::Output {
    Command::cargo_bin("xtask")
        .unwrap()
        .args(["build", "--cluster", "demo", "--root"])
        .arg(root)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn out_removes_only_the_stale_files_build_wrote() {
    if !kustomize_available() {
        return;
    }
    let tree = copy_of("basic");
    let out = tempfile::tempdir().unwrap();
    common::assert_success(&build_into(tree.path(), out.path()));
    assert!(out.path().join("demo/apps.yaml").is_file());
    // The user's own files, in the cluster folder and beside it.
    std::fs::write(out.path().join("demo/notes.txt"), "mine").unwrap();
    std::fs::write(out.path().join("keep.yaml"), "mine too").unwrap();
    // A renamed Kustomization leaves a stale file that build wrote.
    edit(
        &tree.path().join("clusters/demo/apps.yaml"),
        "  name: apps\n",
        "  name: web\n",
    );
    common::assert_success(&build_into(tree.path(), out.path()));
    assert!(
        !out.path().join("demo/apps.yaml").exists(),
        "stale file kept"
    );
    assert!(out.path().join("demo/web.yaml").is_file());
    assert_eq!(
        std::fs::read_to_string(out.path().join("demo/notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("keep.yaml")).unwrap(),
        "mine too"
    );
}

#[test]
fn out_refuses_a_folder_build_did_not_make() {
    // `build --cluster dev --out ~` once removed the user's own `~/dev`.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("demo")).unwrap();
    std::fs::write(home.path().join("demo/thesis.txt"), "years of work").unwrap();
    let out = build_into(&fixture("basic"), home.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not empty and build did not make it"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(home.path().join("demo"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["thesis.txt"]);
    assert_eq!(
        std::fs::read_to_string(home.path().join("demo/thesis.txt")).unwrap(),
        "years of work"
    );
}

#[test]
fn cli_refuses_revealed_secrets_inside_the_repository() {
    let assert = Command::cargo_bin("xtask")
        .unwrap()
        .args(["build", "--reveal-secrets", "--out", "target/manifests"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("outside the repository"), "{stderr}");
}

#[test]
fn cli_unknown_cluster_is_a_clear_error() {
    let assert = Command::cargo_bin("xtask")
        .unwrap()
        .args(["build", "--cluster", "nope", "--out"])
        .arg(tempfile::tempdir().unwrap().path())
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("no folder")
            && stderr.contains("clusters/nope")
            && stderr.contains("found: dev, local, prod"),
        "{stderr}"
    );
}

/// The real tree: every cluster renders with the expected chain and objects.
#[test]
fn real_clusters_render_with_the_expected_objects() {
    if !kustomize_available() {
        return;
    }
    let root = common::root();
    let clusters = flux_render::list_clusters(&root);
    assert_eq!(clusters, ["dev", "local", "prod"]);
    for cluster in &clusters {
        let rendered = flux_render::render_cluster(&root, cluster, &RenderOptions::default())
            .unwrap_or_else(|e| panic!("{cluster}: {e}"));
        let names: Vec<_> = rendered
            .kustomizations
            .iter()
            .map(|k| k.flux.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "variables",
                "infrastructure-controllers",
                "infrastructure",
                "apps"
            ],
            "{cluster}"
        );
        let has = |kustomization: usize, kind: &str, name: &str| {
            rendered.kustomizations[kustomization]
                .objects
                .iter()
                .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        };
        for release in [
            "cert-manager",
            "cilium",
            "traefik",
            "kyverno",
            "cloudnative-pg",
            "metrics-server",
            "reloader",
            "dex",
            "oauth2-proxy",
            "vpa",
            "goldilocks",
            "headlamp",
        ] {
            assert!(
                has(1, "HelmRelease", release),
                "{cluster}: HelmRelease {release}"
            );
        }
        for release in ["homepage", "nextcloud", "whoami"] {
            assert!(
                has(3, "HelmRelease", release),
                "{cluster}: HelmRelease {release}"
            );
        }
        assert!(has(3, "Cluster", "nextcloud-db"), "{cluster}: CNPG Cluster");
        assert!(
            has(2, "Certificate", "certificate"),
            "{cluster}: wildcard Certificate"
        );
        assert!(has(0, "ConfigMap", "variables-cluster"), "{cluster}");
        assert!(has(0, "Secret", "variables-cluster"), "{cluster}");
        assert!(
            rendered
                .root_objects
                .iter()
                .any(|o| o["kind"] == "OCIRepository"),
            "{cluster}: OCIRepository flux-system"
        );
        let domain = match cluster.as_str() {
            "local" => "platform.localhost",
            "dev" => "dev.platform.devantler.tech",
            _ => "platform.devantler.tech",
        };
        let apps = flux_render::to_yaml_stream(&rendered.kustomizations[3].objects);
        assert!(
            apps.contains(&format!("whoami.{domain}")),
            "{cluster}: whoami host"
        );
        assert!(
            !apps.contains("${"),
            "{cluster}: unsubstituted variable left in apps"
        );
        let platform_only = has(1, "HelmRelease", "hcloud-csi");
        assert_eq!(
            platform_only,
            cluster != "local",
            "{cluster}: talos-only controllers"
        );
        assert_eq!(
            has(1, "Deployment", "kubelet-serving-cert-approver"),
            cluster != "local",
            "{cluster}: Talos kubelets need their serving CSRs approved"
        );
    }
}

/// The manifest folders of the real tree in a temporary copy, to edit.
fn real_tree_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["clusters", "platform", "infrastructure", "apps"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        common::copy_tree(&common::root().join(sub), &dir.path().join(sub));
    }
    dir
}

fn whoami_replicas(root: &Path) -> serde_json::Value {
    let rendered = flux_render::render_cluster(root, "local", &RenderOptions::default()).unwrap();
    let apps = &rendered.kustomizations[3];
    let whoami = apps
        .objects
        .iter()
        .find(|o| o["kind"] == "HelmRelease" && o["metadata"]["name"] == "whoami")
        .expect("HelmRelease whoami");
    whoami["spec"]["values"]["replicaCount"].clone()
}

#[test]
fn a_cluster_value_overrides_the_base_default() {
    if !kustomize_available() {
        return;
    }
    let tree = real_tree_copy();
    // The base ConfigMap variables-base sets whoami_replicas: "2".
    assert_eq!(whoami_replicas(tree.path()), 2);
    edit(
        &tree
            .path()
            .join("clusters/local/variables/variables-cluster-config-map.yaml"),
        "  cluster_name: local\n",
        "  cluster_name: local\n  whoami_replicas: \"5\"\n",
    );
    assert_eq!(
        whoami_replicas(tree.path()),
        5,
        "variables-cluster must win over variables-base"
    );
}

#[test]
fn helm_release_defaults_are_set_on_the_releases_themselves() {
    if !kustomize_available() {
        return;
    }
    let root = common::root();
    for cluster in flux_render::list_clusters(&root) {
        let rendered = flux_render::render_cluster(&root, &cluster, &RenderOptions::default())
            .unwrap_or_else(|e| panic!("{cluster}: {e}"));
        let mut releases = 0;
        for o in rendered.kustomizations.iter().flat_map(|k| &k.objects) {
            // No Kyverno policy mutates HelmReleases any more.
            if o["kind"] == "ClusterPolicy" {
                assert!(
                    !serde_json::to_string(o).unwrap().contains("HelmRelease"),
                    "{cluster}: {}",
                    o["metadata"]["name"]
                );
            }
            if o["kind"] != "HelmRelease" {
                continue;
            }
            releases += 1;
            let name = &o["metadata"]["name"];
            let label = |l: &str| {
                o["metadata"]["labels"][format!("helm.toolkit.fluxcd.io/{l}")] == "enabled"
            };
            let spec = &o["spec"];
            if label("crds") {
                assert_eq!(
                    spec["install"]["crds"], "CreateReplace",
                    "{cluster}: {name}"
                );
                assert_eq!(
                    spec["upgrade"]["crds"], "CreateReplace",
                    "{cluster}: {name}"
                );
            } else {
                assert!(spec["install"]["crds"].is_null(), "{cluster}: {name}");
            }
            if label("remediation") {
                assert_eq!(
                    spec["install"]["remediation"]["retries"], 3,
                    "{cluster}: {name}"
                );
                assert_eq!(
                    spec["upgrade"]["remediation"]["retries"], 3,
                    "{cluster}: {name}"
                );
            } else {
                assert!(
                    spec["install"]["remediation"].is_null(),
                    "{cluster}: {name}"
                );
            }
            assert_eq!(
                spec["test"]["enable"] == true,
                label("helm-test"),
                "{cluster}: {name}"
            );
        }
        assert!(releases >= 15, "{cluster}: {releases} HelmReleases");
    }
}

/// A spec field the render cannot honour stops it with the field's name,
/// instead of a render that silently differs from what Flux applies.
#[test]
fn spec_fields_that_cannot_be_honoured_are_errors_naming_the_field() {
    if !kustomize_available() {
        return;
    }
    let cases = [
        (
            "  prune: true",
            "  prune: true\n  ignore: |\n    *.txt",
            "spec.ignore",
        ),
        (
            "  prune: true",
            "  prune: true\n  patchesStrategicMerge: []",
            "spec.patchesStrategicMerge",
        ),
        (
            "  postBuild:",
            "  postBuild:\n    substituteStrategy: Sometimes",
            "spec.postBuild.substituteStrategy",
        ),
        (
            "  prune: true",
            "  prune: true\n  components:\n    - https://example.com/c",
            "spec.components[0]",
        ),
        (
            "  prune: true",
            "  prune: true\n  patches:\n    - path: p.yaml\n      patch: x",
            "spec.patches[0].path",
        ),
        (
            "  prune: true",
            "  prune: true\n  images:\n    - newTag: \"1\"",
            "spec.images[0].name",
        ),
        (
            "      - kind: ConfigMap\n        name: base",
            "      - kind: Configmap\n        name: base",
            "spec.postBuild.substituteFrom[0].kind",
        ),
    ];
    for (from, to, field) in cases {
        let tree = copy_of("basic");
        edit(&tree.path().join("clusters/demo/apps.yaml"), from, to);
        let err = flux_render::render_cluster(tree.path(), "demo", &RenderOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "Kustomization apps (clusters/demo/apps.yaml): {field} "
            )),
            "{field}: {err}"
        );
    }
}

/// Every object carries the labels kustomize-controller adds, substituted
/// values take YAML 1.1 types, and the written YAML quotes what a YAML 1.1
/// reader would retype.
#[test]
fn objects_carry_the_ownership_labels_and_written_yaml_is_quoted() {
    if !kustomize_available() {
        return;
    }
    let tree = copy_of("basic");
    edit(
        &tree.path().join("clusters/demo/apps.yaml"),
        "      tier: inline",
        "      tier: inline\n      flag: \"yes\"",
    );
    edit(
        &tree.path().join("apps/web/deployment.yaml"),
        "            - name: TOKEN",
        "            - name: FLAG\n              value: \"${flag}\"\n            - name: ON\n              value: \"on\"\n            - name: TOKEN",
    );
    let rendered =
        flux_render::render_cluster(tree.path(), "demo", &RenderOptions::default()).unwrap();
    for k in &rendered.kustomizations {
        for o in &k.objects {
            let labels = &o["metadata"]["labels"];
            assert_eq!(labels[flux_render::OWNER_NAME_LABEL], k.flux.name.as_str());
            assert_eq!(labels[flux_render::OWNER_NAMESPACE_LABEL], "flux-system");
        }
    }
    let deployment = &rendered.kustomizations[1].objects[1];
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    // kustomize drops the quotes around `${flag}`, so Flux reads `yes` as YAML 1.1 does.
    assert_eq!(env[0]["value"], true);
    assert_eq!(env[1]["value"], "on");
    let apps = flux_render::to_yaml_stream(&rendered.kustomizations[1].objects);
    assert!(apps.contains("value: \"on\""), "{apps}");
}
