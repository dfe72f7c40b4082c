//! Every check of `cargo xtask validate` on a broken fixture tree: each case
//! is the clean `fixtures/validate/base` tree plus the files of
//! `fixtures/validate/<case>/`, and must give exactly one finding, of the
//! expected check, in the expected file.

use crate::common;

use std::path::{Path, PathBuf};

use xtask::validate::{self, Check, Finding, Options, Report, Severity};

fn fixtures() -> PathBuf {
    common::root().join("xtask/tests/fixtures/validate")
}

/// The fetched schema folder, or `None` (skip) when it was never filled.
pub fn schemas() -> Option<PathBuf> {
    let dir = common::root().join(".schemas");
    let version = k8s_schema::normalize_kubernetes_version(k8s_schema::DEFAULT_KUBERNETES_VERSION);
    if dir.join("kubernetes").join(version).is_dir() {
        return Some(dir);
    }
    if common::tools_required() {
        panic!(".schemas/ is empty: run `cargo xtask validate --fetch-schemas`");
    }
    eprintln!("SKIP: .schemas/ is empty; `cargo xtask validate --fetch-schemas` fills it");
    None
}

fn run_case(case: Option<&str>, tweak: impl FnOnce(&mut Options)) -> Option<Report> {
    common::tool("kustomize")?;
    let schemas = schemas()?;
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(&fixtures().join("base"), dir.path());
    if let Some(case) = case {
        common::copy_tree(&fixtures().join(case), dir.path());
    }
    let mut opts = Options::new(dir.path());
    opts.schema_locations = vec![schemas.display().to_string()];
    tweak(&mut opts);
    Some(validate::run(&opts).unwrap())
}

fn only_finding(case: &str) -> Option<Finding> {
    let report = run_case(Some(case), |_| {})?;
    assert_eq!(
        report.findings.len(),
        1,
        "{case}: expected exactly one finding, got:\n{}",
        report.render_text()
    );
    Some(report.findings[0].clone())
}

fn expect(
    case: &str,
    check: Check,
    file: &str,
    line: Option<usize>,
    contains: &str,
) -> Option<Finding> {
    let f = only_finding(case)?;
    assert_eq!(f.check, check, "{case}: {f:?}");
    assert_eq!(f.severity, Severity::Error, "{case}: {f:?}");
    assert_eq!(f.file, file, "{case}: {f:?}");
    if line.is_some() {
        assert_eq!(f.line, line, "{case}: {f:?}");
    }
    assert!(
        f.text().contains(contains),
        "{case}: {:?} lacks {contains:?}",
        f.text()
    );
    Some(f)
}

#[test]
fn base_tree_is_clean() {
    let Some(report) = run_case(None, |_| {}) else {
        return;
    };
    assert!(report.findings.is_empty(), "{}", report.render_text());
    assert!(report.objects_checked >= 7, "{}", report.summary());
    assert_eq!(report.flux_kustomizations, 2);
}

#[test]
fn bad_yaml() {
    let Some(f) = expect("bad-yaml", Check::Yaml, "apps/demo/notes.yaml", None, "") else {
        return;
    };
    assert!(
        f.line.is_some_and(|l| l >= 3) && f.column.is_some(),
        "{f:?}"
    );
}

#[test]
fn kustomize_error() {
    expect(
        "kustomize-error",
        Check::Kustomize,
        "apps/broken/kustomization.yaml",
        None,
        "missing.yaml",
    );
}

#[test]
fn unknown_field() {
    let Some(f) = expect(
        "unknown-field",
        Check::Schema,
        "apps/demo/deployment.yaml",
        Some(9),
        "unknown field \"replicass\" (did you mean \"replicas\"?)",
    ) else {
        return;
    };
    assert_eq!(f.path.as_deref(), Some("spec.replicass"));
    assert_eq!(f.object.as_deref(), Some("Deployment demo/web"));
}

#[test]
fn wrong_type() {
    let Some(f) = expect(
        "wrong-type",
        Check::Schema,
        "apps/demo/deployment.yaml",
        Some(33),
        "expected string, got array",
    ) else {
        return;
    };
    assert_eq!(
        f.path.as_deref(),
        Some("spec.template.spec.containers[0].imagePullPolicy")
    );
}

#[test]
fn missing_api_version() {
    let Some(f) = expect(
        "missing-api-version",
        Check::Schema,
        "apps/demo/settings.yaml",
        Some(2),
        "the object has no apiVersion: the API server cannot decode it",
    ) else {
        return;
    };
    assert_eq!(f.object.as_deref(), Some("ConfigMap settings"));
}

#[test]
fn identical_objects_are_reported_in_every_file() {
    let Some(report) = run_case(Some("identical-objects"), |_| {}) else {
        return;
    };
    let files: Vec<&str> = report.findings.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(
        files,
        ["apps/copy/settings.yaml", "apps/demo/settings.yaml"],
        "{}",
        report.render_text()
    );
    for f in &report.findings {
        assert_eq!(
            f.path.as_deref(),
            Some("metadata.labels[\"tier\"]"),
            "{f:?}"
        );
        assert!(f.message.contains("ValidateLabels"), "{f:?}");
    }
}

#[test]
fn missing_crd_schema() {
    expect(
        "missing-crd-schema",
        Check::Schema,
        "apps/demo/widget.yaml",
        Some(1),
        "no schema for example.com/v1 Widget",
    );
    // --skip-missing-schemas demotes it to a warning; it is still listed.
    let Some(report) = run_case(Some("missing-crd-schema"), |o| {
        o.skip_missing_schemas = true
    }) else {
        return;
    };
    assert_eq!(report.errors(), 0, "{}", report.render_text());
    assert_eq!(report.warnings(), 1);
    assert_eq!(
        report.missing_schemas.get("example.com/v1 Widget"),
        Some(&1)
    );
}

#[test]
fn depends_on_nothing() {
    expect(
        "depends-on-nothing",
        Check::Flux,
        "clusters/test/apps.yaml",
        Some(15),
        "dependsOn flux-system/nothing: no such Kustomization in cluster test",
    );
}

#[test]
fn cycle() {
    expect(
        "cycle",
        Check::Flux,
        "clusters/test/apps.yaml",
        None,
        "dependsOn cycle: flux-system/apps -> flux-system/infra -> flux-system/apps",
    );
}

#[test]
fn undefined_variable() {
    expect(
        "undefined-variable",
        Check::Flux,
        "apps/demo/deployment.yaml",
        Some(26),
        "undefined variable ${domian}",
    );
}

#[test]
fn unpinned_chart() {
    expect(
        "unpinned-chart",
        Check::Flux,
        "apps/demo/helm-release.yaml",
        Some(10),
        "chart version \"*\" is not pinned",
    );
}

#[test]
fn plaintext_secret() {
    expect(
        "plaintext-secret",
        Check::Secrets,
        "apps/demo/secret.yaml",
        Some(1),
        "Secret demo/api-token holds plaintext values (stringData.token): SOPS-encrypt it",
    );
}

#[test]
fn wrong_recipient() {
    expect(
        "wrong-recipient",
        Check::Secrets,
        "apps/demo/token.enc.yaml",
        None,
        "encrypted for the wrong age recipients: missing age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq; not in .sops.yaml age1rk6fs67kly3h4zux5za429z3grjtvs8vcunav4sa28pxk738najsk8wgs6",
    );
}

/// An in-cluster URL with nothing behind it in the cluster; the other URL of
/// the same object is served by the HelmRelease podinfo and is no finding.
#[test]
fn in_cluster_address_with_nothing_deployed() {
    let Some(f) = expect(
        "address-unknown",
        Check::Address,
        "apps/demo/deployment.yaml",
        Some(31),
        "http://api.demo.svc.cluster.local names Service demo/api, but cluster test deploys no Service or HelmRelease api in namespace demo",
    ) else {
        return;
    };
    assert_eq!(f.object.as_deref(), Some("Deployment demo/web"));
    assert_eq!(
        f.path.as_deref(),
        Some(".spec.template.spec.containers[0].env[2].value")
    );
}

/// The same URLs once a Service of that name exists in that namespace.
#[test]
fn in_cluster_address_served_by_a_service_is_clean() {
    let Some(report) = run_case(Some("address-known"), |_| {}) else {
        return;
    };
    assert!(report.findings.is_empty(), "{}", report.render_text());
}

/// The case the rule was written for: the real tree without oauth2-proxy,
/// which Traefik's forward-auth Middleware calls, fails in every cluster.
#[test]
fn forward_auth_without_oauth2_proxy_is_caught_in_every_cluster() {
    let root = common::root();
    let Some(schemas) = schemas() else { return };
    if common::tool("kustomize").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::copy_manifests(&root, dir.path());
    let kfile = dir
        .path()
        .join("infrastructure/controllers/kustomization.yaml");
    let text = std::fs::read_to_string(&kfile).unwrap();
    assert!(text.contains("  - oauth2-proxy/\n"), "{text}");
    std::fs::write(&kfile, text.replace("  - oauth2-proxy/\n", "")).unwrap();
    let mut opts = Options::new(dir.path());
    opts.schema_locations = vec![schemas.display().to_string()];
    let report = validate::run(&opts).unwrap();
    let found: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.check == Check::Address)
        .collect();
    assert_eq!(found.len(), 3, "{}", report.render_text());
    for (f, cluster) in found.iter().zip(["dev", "local", "prod"]) {
        assert_eq!(
            f.file,
            "infrastructure/configs/middlewares/forward-auth.yaml"
        );
        assert_eq!(f.object.as_deref(), Some("Middleware traefik/forward-auth"));
        assert!(
            f.message.contains(&format!(
                "cluster {cluster} deploys no Service or HelmRelease oauth2-proxy"
            )),
            "{f:?}"
        );
    }
    // The errors Alert's event source for that namespace now matches
    // nothing either, in each cluster.
    let alert: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.check == Check::Flux)
        .collect();
    assert_eq!(alert.len(), 3, "{}", report.render_text());
    for f in &alert {
        assert_eq!(f.file, "infrastructure/notifications/alert-errors.yaml");
        assert!(
            f.message
                .contains("no HelmRelease in namespace oauth2-proxy in this cluster"),
            "{f:?}"
        );
    }
    assert_eq!(report.errors(), 6, "{}", report.render_text());
}

#[test]
fn outputs_and_annotations() {
    let Some(report) = run_case(Some("depends-on-nothing"), |_| {}) else {
        return;
    };
    let text = report.render_text();
    assert!(text.starts_with("clusters/test/apps.yaml\n"), "{text}");
    assert!(text.trim_end().ends_with('s'), "{text}");
    assert!(text.contains("1 error, 0 warnings"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.render_json()).unwrap();
    assert_eq!(json["summary"]["errors"], 1);
    assert_eq!(json["findings"][0]["check"], "flux");
    let gh = report.github_annotations();
    assert!(
        gh.starts_with("::error file=clusters/test/apps.yaml,line=15,title=validate flux::"),
        "{gh}"
    );
}

#[test]
fn every_finding_is_reported_not_just_the_first() {
    let Some(schemas) = schemas() else { return };
    if common::tool("kustomize").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(&fixtures().join("base"), dir.path());
    for case in [
        "bad-yaml",
        "unknown-field",
        "depends-on-nothing",
        "plaintext-secret",
        "unpinned-chart",
    ] {
        common::copy_tree(&fixtures().join(case), dir.path());
    }
    let mut opts = Options::new(dir.path());
    opts.schema_locations = vec![schemas.display().to_string()];
    let report = validate::run(&opts).unwrap();
    assert_eq!(report.errors(), 5, "{}", report.render_text());
}

#[test]
fn real_tree_validates_clean() {
    let root = common::root();
    if !root.join("clusters").is_dir() || schemas().is_none() || common::tool("kustomize").is_none()
    {
        return;
    }
    let clusters = validate::clusters_of(&root);
    for c in ["local", "dev", "prod"] {
        assert!(clusters.iter().any(|x| x == c), "clusters/{c} is missing");
    }
    let mut opts = Options::new(Path::new(&root));
    opts.clusters = vec!["local".into(), "dev".into(), "prod".into()];
    let report = validate::run(&opts).unwrap();
    assert_eq!(report.errors(), 0, "{}", report.render_text());
    assert!(report.objects_checked > 50, "{}", report.summary());
}

/// With a key that opens the file, a SOPS file changed without re-encrypting
/// (here: an unencrypted field, which the MAC covers) is a finding; the same
/// file untouched is clean, and without a key the MAC is not checked.
#[test]
fn tampered_mac_is_found_when_a_key_opens_the_file() {
    use sops::{self, CreationRule, Format, Identities, Selection};
    use std::sync::Arc;

    let (secret, recipient) = sops::generate_identity();
    let rule = CreationRule::new(
        vec![recipient.clone()],
        Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    let plain = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  namespace: demo\n  labels:\n    team: platform\nstringData:\n  token: s3cret-value\n";
    let encrypted = sops::encrypt(plain, Format::Yaml, &rule).unwrap();
    let ids = Arc::new(Identities::from_keys_text(&secret).unwrap());
    let sops_yaml = format!(
        "creation_rules:\n  - path_regex: \\.enc\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n    age: {recipient}\n"
    );
    let with_file = |bytes: Vec<u8>, ids: Option<Arc<Identities>>| {
        let sops_yaml = sops_yaml.clone();
        run_case(None, move |opts| {
            std::fs::write(opts.root.join(".sops.yaml"), sops_yaml).unwrap();
            std::fs::write(opts.root.join("apps/demo/token.enc.yaml"), &bytes).unwrap();
            opts.identities = ids;
        })
    };
    let Some(clean) = with_file(encrypted.clone(), Some(ids.clone())) else {
        return;
    };
    assert!(clean.findings.is_empty(), "{}", clean.render_text());

    let tampered = String::from_utf8(encrypted)
        .unwrap()
        .replace("team: platform", "team: intruder")
        .into_bytes();
    let report = with_file(tampered.clone(), Some(ids)).unwrap();
    assert_eq!(report.findings.len(), 1, "{}", report.render_text());
    let f = &report.findings[0];
    assert_eq!(
        (f.check, f.file.as_str()),
        (Check::Secrets, "apps/demo/token.enc.yaml")
    );
    assert!(f.text().contains("MAC mismatch"), "{}", f.text());
    assert!(!f.text().contains("s3cret-value"));

    let without_key = with_file(tampered, None).unwrap();
    assert!(
        without_key.findings.is_empty(),
        "{}",
        without_key.render_text()
    );
}

#[test]
fn a_tab_is_named_once_at_its_line() {
    expect(
        "yaml-tab",
        Check::Yaml,
        "apps/demo/deployment.yaml",
        Some(8),
        "a tab character: YAML indents with spaces only",
    );
}

#[test]
fn an_unclosed_quote_is_reported_where_it_opens() {
    let Some(f) = expect(
        "unclosed-quote",
        Check::Yaml,
        "apps/demo/deployment.yaml",
        Some(4),
        "an unclosed \" quote",
    ) else {
        return;
    };
    assert_eq!(f.column, Some(9));
}

#[test]
fn a_missing_resource_is_one_plain_finding_at_its_listing() {
    let Some(f) = expect(
        "missing-resource",
        Check::Kustomize,
        "apps/demo/kustomization.yaml",
        Some(6),
        "apps/demo/missing.yaml does not exist, but this kustomization lists it",
    ) else {
        return;
    };
    assert!(!f.text().contains("evalsymlink"), "{}", f.text());
}

#[test]
fn policy_violation_at_the_objects_file_and_line() {
    expect(
        "policy-violation",
        Check::Policy,
        "apps/demo/deployment.yaml",
        Some(1),
        "Deployment demo/web: workloads must carry app.kubernetes.io/name (policy name-label, cluster test)",
    );
}

#[test]
fn policy_verdicts_kept_between_runs_say_what_a_fresh_judgement_says() {
    let cache = tempfile::tempdir().unwrap();
    let in_cache = |o: &mut Options| o.cache_dir = Some(cache.path().to_path_buf());
    let Some(cold) = run_case(Some("policy-violation"), in_cache) else {
        return;
    };
    let stores = || {
        std::fs::read_dir(cache.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("policy-verdicts-")
            })
            .count()
    };
    assert_eq!(stores(), 1, "the verdicts were kept");
    let warm = run_case(Some("policy-violation"), in_cache).unwrap();
    assert_eq!(warm.findings, cold.findings);
    assert_eq!(warm.errors(), 1);
    // A changed policy is judged again: its new message, not the kept one.
    let edited = run_case(Some("policy-violation"), |o| {
        in_cache(o);
        let policy = o.root.join("infra/policy.yaml");
        let text = std::fs::read_to_string(&policy).unwrap();
        std::fs::write(
            &policy,
            text.replace("workloads must carry", "every workload needs"),
        )
        .unwrap();
    })
    .unwrap();
    assert_eq!(edited.errors(), 1, "{}", edited.render_text());
    assert!(
        edited
            .render_text()
            .contains("every workload needs app.kubernetes.io/name"),
        "{}",
        edited.render_text()
    );
}

#[test]
fn policy_expression_that_cannot_be_evaluated_is_an_error_naming_it() {
    expect(
        "policy-unevaluable",
        Check::Policy,
        "apps/demo/deployment.yaml",
        Some(1),
        "ValidatingPolicy probes: expression \"object.spec.template.spec.containers.all(c, c.readinessProbe.periodSeconds > 0)\" cannot be evaluated",
    );
}

#[test]
fn policy_that_does_not_compile_is_an_error_at_the_policy() {
    expect(
        "policy-does-not-compile",
        Check::Policy,
        "apps/demo/policy.yaml",
        Some(1),
        "ValidatingPolicy broken: expression \"object.metadata.(labels\" does not compile",
    );
}
