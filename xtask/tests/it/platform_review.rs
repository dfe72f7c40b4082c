//! The review of every HelmRelease against its chart (issue 24), kept true by
//! tests: Headlamp's plugin sidecar runs as a user that can write where it
//! writes, Alerts and Providers render for every cluster and a dangling one
//! is caught, a misspelled values key is named with the closest known one,
//! and `validate` warns about placeholders (bootstrap's refusal is tested in
//! `bootstrap_existing`).

use crate::common;
use crate::support;

use std::path::Path;

use exec::runner::Cmd;
use serde_json::{Value, json};

fn yaml_docs(text: &str) -> Vec<Value> {
    flux_render::parse_stream(text).unwrap()
}

/// The repository's Headlamp HelmRelease.
fn headlamp_release() -> Value {
    let text = std::fs::read_to_string(
        common::root().join("infrastructure/controllers/headlamp/helm-release.yaml"),
    )
    .unwrap();
    yaml_docs(&text).remove(0)
}

#[test]
fn headlamp_plugin_sidecar_runs_as_a_user_that_can_write_where_it_writes() {
    let Some(helm) = common::tool("helm") else {
        return;
    };
    let chart = common::root().join("xtask/tests/fixtures/helm/charts/headlamp");
    let release = headlamp_release();
    // The fixture stands in for the pinned chart version, no other.
    let fixture: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart.join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(
        release["spec"]["chart"]["spec"]["version"], fixture["version"],
        "the release pins another Headlamp chart: read its templates and update the fixture"
    );
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.json");
    std::fs::write(&values, release["spec"]["values"].to_string()).unwrap();
    let out = Cmd::new(&helm)
        .args(["template", "headlamp"])
        .arg(&chart)
        .args(["--namespace", "headlamp", "--values"])
        .arg(&values)
        .read()
        .unwrap();
    let objects = yaml_docs(&out);

    // No cluster-admin (no binding at all): users bring their own token.
    assert!(
        !objects.iter().any(|o| o["kind"] == "ClusterRoleBinding"),
        "{out}"
    );
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let sidecar = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "headlamp-plugin")
        .expect("the plugin sidecar is enabled");
    let sc = &sidecar["securityContext"];
    let uid = sc["runAsUser"].as_u64().expect("a fixed non-root user");
    assert_ne!(uid, 0);
    assert_eq!(sc["runAsNonRoot"], json!(true));
    let script = sidecar["args"][0].as_str().unwrap();
    // 0.36.0's `npm install -g` writes the root-owned global prefix.
    assert!(!script.contains("install -g"), "{script}");
    assert!(script.contains("npx "), "{script}");
    assert!(
        script.contains("@headlamp-k8s/pluginctl@0.1.1 "),
        "{script}"
    );

    // Every place it writes is writable by that user: the npm cache and user
    // config under /tmp (world-writable, the root filesystem not read-only),
    // and the plugins folder, an emptyDir (mode 0777).
    let read_only_root = sc["readOnlyRootFilesystem"] == json!(true);
    let mounts = sidecar["volumeMounts"].as_array().unwrap();
    let volume_of = |path: &str| -> Option<&Value> {
        let m = mounts.iter().find(|m| m["mountPath"] == path)?;
        pod["volumes"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == m["name"])
    };
    for line in script.lines() {
        if let Some(dir) = line
            .trim()
            .strip_prefix("export NPM_CONFIG_CACHE=")
            .or_else(|| line.trim().strip_prefix("export NPM_CONFIG_USERCONFIG="))
        {
            assert!(dir.starts_with("/tmp/"), "{dir}");
            assert!(
                !read_only_root || volume_of("/tmp").is_some(),
                "{dir} is on a read-only root filesystem"
            );
        }
    }
    let plugins_dir = release["spec"]["values"]["config"]["pluginsDir"]
        .as_str()
        .unwrap_or("/headlamp/plugins");
    assert!(
        script.contains(&format!("--folderName {plugins_dir}")),
        "{script}"
    );
    let volume = volume_of(plugins_dir).expect("the plugins folder is a volume");
    assert!(volume.get("emptyDir").is_some(), "{volume}");
}

/// `(Alerts, Providers)` of every cluster as Flux applies it.
#[test]
fn alerts_and_providers_render_for_every_cluster_and_a_dangling_provider_is_caught() {
    if common::tool("kustomize").is_none() {
        return;
    }
    let root = common::root();
    let mut counts = Vec::new();
    for cluster in ["local", "dev", "prod"] {
        let rendered =
            flux_render::render_cluster(&root, cluster, &flux_render::RenderOptions::default())
                .unwrap();
        let items: Vec<xtask::validate::Item> = rendered
            .kustomizations
            .iter()
            .flat_map(|k| k.objects.iter())
            .map(|o| xtask::validate::Item {
                object: o.clone(),
                file: String::new(),
                line: None,
            })
            .collect();
        counts.push((cluster, xtask::validate::alerts::count(&items)));
        let findings = xtask::validate::alerts::check_cluster(cluster, &items);
        assert_eq!(
            findings,
            Vec::new(),
            "cluster {cluster}: every Alert's Provider and sources exist"
        );
        // Every Kustomization's and HelmRelease's errors are heard.
        let errors = items
            .iter()
            .find(|it| it.object["kind"] == "Alert" && it.object["metadata"]["name"] == "errors")
            .expect("an errors Alert");
        assert_eq!(errors.object["spec"]["eventSeverity"], "error");
        let sources = errors.object["spec"]["eventSources"].as_array().unwrap();
        for it in &items {
            let o = &it.object;
            if o["kind"] == "HelmRelease" || o["kind"] == "Kustomization" {
                let ns = o["metadata"]["namespace"].as_str().unwrap();
                assert!(
                    sources.iter().any(|s| s["kind"] == o["kind"]
                        && s["name"] == "*"
                        && s.get("namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("flux-system")
                            == ns),
                    "cluster {cluster}: no error alerts for {} {ns}/{}",
                    o["kind"],
                    o["metadata"]["name"]
                );
            }
        }
    }
    assert_eq!(
        counts,
        [("local", (1, 1)), ("dev", (2, 2)), ("prod", (3, 2))]
    );

    // The same check through `validate`, on a copy whose Alert names a
    // Provider that no cluster has.
    let dir = tempfile::tempdir().unwrap();
    common::copy_manifests(&root, dir.path());
    let file = dir
        .path()
        .join("infrastructure/notifications/alert-errors.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("    name: chat\n", "    name: pager\n")).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut opts = xtask::validate::Options::new(dir.path());
    opts.schema_locations = vec![empty.path().display().to_string()];
    opts.skip_missing_schemas = true;
    opts.identities = None;
    opts.cache_dir = None;
    let report = xtask::validate::run(&opts).unwrap();
    let dangling: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.check == xtask::validate::Check::Flux && f.text().contains("pager"))
        .collect();
    assert_eq!(dangling.len(), 3, "{}", report.render_text());
    for (f, cluster) in dangling.iter().zip(["dev", "local", "prod"]) {
        assert_eq!(f.severity, xtask::validate::Severity::Error);
        assert_eq!(f.file, "infrastructure/notifications/alert-errors.yaml");
        assert_eq!(f.path.as_deref(), Some("spec.providerRef.name"));
        assert!(
            f.text().contains(&format!(
                "cluster {cluster}: Provider flux-system/pager does not exist in this cluster"
            )),
            "{}",
            f.text()
        );
    }
}

/// `validate --helm`: a misspelled values key in a release of the fixture
/// chart is a warning that names the closest key the chart knows.
#[test]
fn a_misspelled_values_key_is_named_with_the_closest_known_key() {
    let Some(charts) = support::charts() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    charts.write_tree(dir.path()).unwrap();
    let releases = dir.path().join("apps/releases.yaml");
    let text = std::fs::read_to_string(&releases).unwrap();
    // A misspelled key, and a CRD policy (which acts: the demo chart keeps
    // its CRD in crds/, so no warning for it).
    let patched = text
        .replace(
            "    image: nginx:1.29\n",
            "    image: nginx:1.29\n    greting: hi\n",
        )
        .replacen(
            "  interval: 10m\n",
            "  interval: 10m\n  install:\n    crds: CreateReplace\n",
            1,
        );
    assert_ne!(text, patched);
    std::fs::write(&releases, patched).unwrap();

    let rendered =
        flux_render::render_cluster(dir.path(), "test", &flux_render::RenderOptions::default())
            .unwrap();
    let (tree, _) = xtask::validate::tree::Tree::load(dir.path());
    let found =
        xtask::validate::helm_values::check_cluster(&tree, "test", &rendered, &charts.options());
    let mut texts: Vec<String> = found
        .iter()
        .filter(|f| f.object.as_deref() == Some("HelmRelease demo/inline"))
        .map(|f| f.text())
        .collect();
    texts.sort();
    // `greting` is named with `greeting`; `nested` and `auth` (set by this
    // release, declared by neither values.yaml nor the schema) without a
    // guess; `replicas` and `image` are known.
    assert_eq!(
        texts,
        [
            "HelmRelease demo/inline: spec.values.auth: cluster test: values key `auth` is not in the chart's values.yaml or values.schema.json: helm ignores it",
            "HelmRelease demo/inline: spec.values.greting: cluster test: values key `greting` is not in the chart's values.yaml or values.schema.json: helm ignores it; did you mean `greeting`?",
            "HelmRelease demo/inline: spec.values.nested: cluster test: values key `nested` is not in the chart's values.yaml or values.schema.json: helm ignores it",
        ],
        "{found:#?}"
    );
    let greting = found.iter().find(|f| f.text().contains("greting")).unwrap();
    assert_eq!(greting.severity, xtask::validate::Severity::Warning);
    assert_eq!(greting.check, xtask::validate::Check::Helm);
    assert_eq!(greting.file, "apps/releases.yaml");
    let line = std::fs::read_to_string(&releases)
        .unwrap()
        .lines()
        .position(|l| l.trim() == "greting: hi")
        .unwrap()
        + 1;
    assert_eq!(greting.line, Some(line));
}

/// Writes `secrets` (`(file, name, stringData)`) under `dir`, encrypted for `recipient`.
pub(crate) fn write_secrets(dir: &Path, recipient: &str, secrets: &[(&str, &str, Value)]) {
    let rule = sops::CreationRule::new(
        vec![recipient.to_string()],
        sops::Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    for (file, name, data) in secrets {
        let plain = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "flux-system"},
            "type": "Opaque", "stringData": data});
        let bytes = sops::encrypt(
            serde_yaml::to_string(&plain).unwrap().as_bytes(),
            sops::Format::Yaml,
            &rule,
        )
        .unwrap();
        std::fs::write(dir.join(file), bytes).unwrap();
    }
}

/// `ci.yaml` renders the real charts on GitHub, with the pulled charts cached
/// where `validate` keeps them.
#[test]
fn ci_validates_the_real_charts_with_a_chart_cache() {
    let text = std::fs::read_to_string(common::root().join(".github/workflows/ci.yaml")).unwrap();
    let ci: Value = serde_yaml::from_str(&text).unwrap();
    let job = ci["jobs"]
        .as_object()
        .unwrap()
        .values()
        .find(|j| {
            j["steps"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|st| st["run"] == "cargo xtask validate --helm")
            })
        })
        .expect("a job runs `cargo xtask validate --helm`");
    let cache = job["env"]["XTASK_CHART_CACHE"].as_str().unwrap();
    let dir = cache.trim_start_matches("${{ github.workspace }}/");
    let steps = job["steps"].as_array().unwrap();
    let cached = steps.iter().position(|s| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("actions/cache@"))
            && s["with"]["path"].as_str() == Some(dir)
    });
    let validate = steps
        .iter()
        .position(|s| s["run"] == "cargo xtask validate --helm")
        .unwrap();
    assert!(
        cached.is_some_and(|c| c < validate),
        "the chart cache {dir} is restored before validate --helm"
    );
}

/// `validate` warns about each placeholder in a Secret the user's key opens.
#[test]
fn validate_warns_about_placeholders_it_can_decrypt() {
    if common::tool("kustomize").is_none() {
        return;
    }
    let root = common::root();
    let dir = tempfile::tempdir().unwrap();
    common::copy_manifests(&root, dir.path());
    let dev = xtask::cluster::age_key::recipients(&root, "dev").unwrap();
    let (identity, recipient) = sops::generate_identity();
    let sops_yaml = std::fs::read_to_string(root.join(".sops.yaml")).unwrap();
    std::fs::write(
        dir.path().join(".sops.yaml"),
        sops_yaml.replace(&dev[0], &recipient),
    )
    .unwrap();
    let vars = dir.path().join("clusters/dev/variables");
    write_secrets(
        &vars,
        &recipient,
        &[(
            "alerts-github-secret.enc.yaml",
            "alerts-github",
            json!({"token": "REPLACE-ME-github-token"}),
        )],
    );
    let empty = tempfile::tempdir().unwrap();
    let mut opts = xtask::validate::Options::new(dir.path());
    opts.clusters = vec!["dev".into()];
    opts.schema_locations = vec![empty.path().display().to_string()];
    opts.skip_missing_schemas = true;
    opts.cache_dir = None;
    opts.identities = Some(std::sync::Arc::new(
        sops::Identities::from_keys_text(&identity).unwrap(),
    ));
    let report = xtask::validate::run(&opts).unwrap();
    let warned: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.text().contains("placeholder"))
        .collect();
    assert_eq!(warned.len(), 1, "{}", report.render_text());
    assert_eq!(warned[0].severity, xtask::validate::Severity::Warning);
    assert_eq!(
        warned[0].file,
        "clusters/dev/variables/alerts-github-secret.enc.yaml"
    );
    assert!(
        warned[0].text().starts_with(
            "Secret flux-system/alerts-github: `token` still holds a placeholder (REPLACE-ME-...)"
        ),
        "{}",
        warned[0].text()
    );
    assert!(
        !warned[0].text().contains("github-token"),
        "no value is shown"
    );
}
