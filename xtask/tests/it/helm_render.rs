//! HelmRelease rendering against real chart sources on loopback: an OCI
//! registry (`docker-registry`, charts pushed with `helm push`) and an
//! https-style chart repository (`helm repo index` + a loopback HTTP server).

use crate::common;
use crate::support;

use std::collections::BTreeMap;

use flux_render::RenderOptions;
use flux_render::helm::{self, RenderedRelease};
use serde_json::{Value, json};

fn render_fixture() -> Option<(support::Charts, BTreeMap<String, RenderedRelease>)> {
    let charts = support::charts()?;
    let tree = tempfile::tempdir().unwrap();
    charts.write_tree(tree.path()).unwrap();
    let rendered =
        flux_render::render_cluster(tree.path(), "test", &RenderOptions::default()).unwrap();
    let releases = helm::render_cluster(&rendered, &charts.options())
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    Some((charts, releases))
}

fn objects<'a>(releases: &'a BTreeMap<String, RenderedRelease>, name: &str) -> &'a [Value] {
    match &releases[name].result {
        Ok(objects) => objects,
        Err(err) => panic!("release {name} failed: {err}"),
    }
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
}

#[test]
fn releases_render_from_both_sources_with_values_crds_and_post_renderers() {
    let Some((charts, releases)) = render_fixture() else {
        return;
    };
    assert_eq!(
        releases.keys().collect::<Vec<_>>(),
        ["broken", "inline", "oci", "ociref"]
    );

    // Values: chart defaults < valuesFrom (in order, targetPath typed) < inline.
    let inline = objects(&releases, "inline");
    let cm = find(inline, "ConfigMap").expect("values ConfigMap");
    let values: Value =
        serde_json::from_str(cm.pointer("/data/values.json").unwrap().as_str().unwrap()).unwrap();
    assert_eq!(
        values,
        json!({
            "replicas": 2,
            "image": "nginx:1.29",
            "greeting": "from-configmap",
            "nested": {"a": 1, "b": 2},
            "auth": {"password": "hunter2"}
        })
    );
    assert_eq!(
        cm.pointer("/data/kubeVersion"),
        Some(&json!(k8s_schema::normalize_kubernetes_version(
            k8s_schema::DEFAULT_KUBERNETES_VERSION
        )))
    );
    assert_eq!(cm.pointer("/metadata/namespace"), Some(&json!("demo")));

    // CRDs: included by default, left out with install.crds: Skip.
    assert!(find(inline, "CustomResourceDefinition").is_some());
    let oci = objects(&releases, "oci");
    assert!(find(oci, "CustomResourceDefinition").is_none());

    // postRenderers: the JSON patch and the image override.
    let deployment = find(oci, "Deployment").unwrap();
    assert_eq!(deployment.pointer("/spec/replicas"), Some(&json!(3)));
    assert_eq!(
        deployment.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("nginx:1.28"))
    );

    // chartRef OCIRepository, targetNamespace: release name and namespace.
    let ociref = objects(&releases, "ociref");
    let deployment = find(ociref, "Deployment").unwrap();
    assert_eq!(
        deployment.pointer("/metadata/name"),
        Some(&json!("other-ociref"))
    );
    assert_eq!(
        deployment.pointer("/metadata/namespace"),
        Some(&json!("other"))
    );

    // A chart that cannot be fetched fails alone, with the reason.
    let err = releases["broken"].result.as_ref().unwrap_err();
    assert!(matches!(err, helm::HelmError::Pull { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cannot fetch absent 9.9.9"),
        "{err}"
    );

    // Pulled once: the https chart, and the OCI chart that both the OCI
    // HelmRepository and the OCIRepository name (the same reference and tag).
    let cached: Vec<_> = walk(charts.cache.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tgz"))
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_pinned_digest_that_does_not_match_is_refused() {
    let Some(charts) = support::charts() else {
        return;
    };
    let source = json!({"kind": "OCIRepository", "metadata": {"name": "d", "namespace": "demo"},
        "spec": {"url": charts.registry.url("charts/demo"), "insecure": true,
            "ref": {"tag": "0.1.0", "digest": format!("sha256:{}", "0".repeat(64))}}});
    let request = helm::ChartRequest::from_oci_repository(&source).unwrap();
    let err = helm::chart::fetch(&charts.helm, &request, charts.cache.path()).unwrap_err();
    assert!(
        matches!(err, helm::HelmError::PinnedDigest { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("digest mismatch"), "{err}");
}

#[test]
fn build_helm_writes_one_file_per_release() {
    let Some(charts) = support::charts() else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    charts.write_tree(tree.path()).unwrap();
    let rendered =
        flux_render::render_cluster(tree.path(), "test", &RenderOptions::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let releases = helm::render_releases(&rendered, out.path(), &charts.options()).unwrap();
    assert_eq!(releases.len(), 4);
    let mut files: Vec<String> = std::fs::read_dir(out.path().join("helm"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["demo-inline.yaml", "demo-oci.yaml", "demo-ociref.yaml"]
    );
    let text = std::fs::read_to_string(out.path().join("helm/demo-inline.yaml")).unwrap();
    assert!(text.contains("kind: CustomResourceDefinition"));
}

#[test]
fn values_that_the_chart_schema_rejects_are_an_error_for_that_release() {
    let Some(charts) = support::charts() else {
        return;
    };
    let source = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "https-charts", "namespace": "demo"},
        "spec": {"url": charts.http.url()}});
    let release = |replicas: Value| {
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "bad", "namespace": "demo"},
            "spec": {"chart": {"spec": {"chart": "demo", "version": "0.1.0",
                "sourceRef": {"kind": "HelmRepository", "name": "https-charts"}}},
                "values": {"replicas": replicas}}})
    };
    let err =
        helm::render_release(&release(json!("many")), &[&source], &charts.options()).unwrap_err();
    assert!(matches!(err, helm::HelmError::Template { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("values don't meet the specifications of the schema"),
        "{err}"
    );
    let ok = helm::render_release(&release(json!(4)), &[&source], &charts.options()).unwrap();
    let deployment = find(&ok, "Deployment").unwrap();
    assert_eq!(deployment.pointer("/spec/replicas"), Some(&json!(4)));
}

#[test]
fn an_https_chart_that_does_not_match_the_index_digest_is_refused_and_the_cache_is_checked() {
    let Some(charts) = support::charts() else {
        return;
    };
    let source = json!({"kind": "HelmRepository", "metadata": {"name": "r", "namespace": "demo"},
        "spec": {"url": charts.http.url()}});
    let request = helm::ChartRequest::from_helm_repository(&source, "demo", "0.1.0").unwrap();

    // Fetched and cached; a cache hit is checked against the recorded digest.
    let cached = helm::chart::fetch(&charts.helm, &request, charts.cache.path()).unwrap();
    assert_eq!(
        helm::chart::fetch(&charts.helm, &request, charts.cache.path()).unwrap(),
        cached
    );
    std::fs::write(&cached, b"tampered").unwrap();
    let err = helm::chart::fetch(&charts.helm, &request, charts.cache.path()).unwrap_err();
    assert!(matches!(err, helm::HelmError::CachedDigest(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("does not match its recorded digest"),
        "{err}"
    );

    // The repository serves other bytes than its index describes.
    let repo = charts.repo_dir();
    std::fs::copy(repo.join("demo-0.2.0.tgz"), repo.join("demo-0.1.0.tgz")).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let err = helm::chart::fetch(&charts.helm, &request, fresh.path()).unwrap_err();
    assert!(
        matches!(err, helm::HelmError::IndexDigest { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("digest mismatch"), "{err}");
}

/// `validate --helm`: the chart output is checked with the same schemas and
/// attributed to the HelmRelease's file; a release that cannot render is one
/// finding of its own.
#[test]
fn validate_helm_checks_the_chart_output_against_the_schemas() {
    use xtask::validate::{self, Check};
    let Some(charts) = support::charts() else {
        return;
    };
    let schemas = common::root().join(".schemas");
    if !schemas.join("kubernetes").is_dir() {
        assert!(
            !common::tools_required(),
            ".schemas/ is empty: run `cargo xtask validate --fetch-schemas`"
        );
        eprintln!("SKIP: .schemas/ is empty");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    charts.write_tree(dir.path()).unwrap();
    // The oci release's postRenderer now also sets a field no Deployment has.
    let releases = dir.path().join("apps/releases.yaml");
    let text = std::fs::read_to_string(&releases).unwrap();
    let patched = text.replace(
        "                value: 3\n",
        "                value: 3\n              - op: add\n                path: /spec/replicaz\n                value: 1\n",
    );
    assert_ne!(text, patched);
    std::fs::write(&releases, patched).unwrap();
    // A Kyverno policy in the tree judges the chart output too.
    std::fs::write(
        dir.path().join("apps/policy.yaml"),
        "apiVersion: policies.kyverno.io/v1alpha1\nkind: ValidatingPolicy\nmetadata:\n  name: name-label\nspec:\n  validationActions: [Deny]\n  matchConstraints:\n    resourceRules:\n      - apiGroups: [apps]\n        apiVersions: [v1]\n        operations: [CREATE]\n        resources: [deployments]\n  validations:\n    - expression: \"has(object.metadata.labels) && 'app.kubernetes.io/name' in object.metadata.labels\"\n      message: workloads must carry app.kubernetes.io/name\n",
    )
    .unwrap();
    let kustomization = dir.path().join("apps/kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).unwrap();
    std::fs::write(&kustomization, format!("{text}  - policy.yaml\n")).unwrap();

    let mut opts = validate::Options::new(dir.path());
    opts.schema_locations = vec![schemas.display().to_string()];
    opts.identities = None;
    opts.helm = Some(charts.options());
    let report = validate::run(&opts).unwrap();
    let in_releases: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.file == "apps/releases.yaml")
        .collect();
    assert!(
        in_releases
            .iter()
            .any(|f| f.check == Check::Schema && f.text().contains("replicaz")),
        "{}",
        report.render_text()
    );
    // Each chart Deployment breaks the policy, reported at the HelmRelease's file.
    let policy: Vec<String> = in_releases
        .iter()
        .filter(|f| f.check == Check::Policy)
        .map(|f| f.text())
        .collect();
    assert_eq!(policy.len(), 3, "inline, oci and ociref: {policy:#?}");
    assert!(
        policy.iter().all(|t| t.starts_with("Deployment ")
            && t.contains("workloads must carry app.kubernetes.io/name (policy name-label")),
        "{policy:#?}"
    );
    let helm: Vec<_> = in_releases
        .iter()
        .filter(|f| f.check == Check::Helm && f.severity == validate::Severity::Error)
        .collect();
    assert_eq!(helm.len(), 1, "{}", report.render_text());
    assert!(helm[0].text().contains("absent"), "{}", helm[0].text());
}
