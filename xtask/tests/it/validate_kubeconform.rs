//! Our schema validator and `kubeconform -strict` agree (both accept, or
//! both reject) on valid and invalid objects, using the very same schemas:
//! ours compiled from the OpenAPI documents and CRDs of `.schemas/`,
//! exported as JSON schemas in kubeconform's file layout.

use crate::common;

use k8s_schema::{Gvk, Lookup, Registry, RegistryOptions, jsonschema};

/// (name, YAML, valid?)
const CASES: &[(&str, &str, bool)] = &[
    (
        "deployment",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n  labels: {app: a}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: a}}\n  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}\n  template:\n    metadata: {labels: {app: a}}\n    spec:\n      containers:\n        - name: a\n          image: nginx:1.27\n          ports: [{containerPort: 80}]\n          resources: {limits: {cpu: 1, memory: 64Mi}}\n",
        true,
    ),
    (
        "deployment-unknown-field",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  replicass: 2\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: a, image: nginx}]}\n",
        false,
    ),
    (
        "deployment-wrong-type",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: two\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: a, image: nginx}]}\n",
        false,
    ),
    (
        "deployment-missing-selector",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: a, image: nginx}]}\n",
        false,
    ),
    (
        "deployment-bad-int-or-string",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  selector: {matchLabels: {app: a}}\n  strategy: {rollingUpdate: {maxSurge: true}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: a, image: nginx}]}\n",
        false,
    ),
    (
        "pod-no-containers",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {restartPolicy: Always}\n",
        false,
    ),
    (
        "pod-unknown-container-field",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: nginx, imagePullPolicyy: Always}]}\n",
        false,
    ),
    (
        "service",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: demo}\nspec:\n  selector: {app: a}\n  ports: [{port: 80, targetPort: http, protocol: TCP}]\n",
        true,
    ),
    (
        "service-port-string",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: \"80\"}]\n",
        false,
    ),
    (
        "configmap",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        true,
    ),
    (
        "configmap-int-value",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: 1}\n",
        false,
    ),
    (
        "configmap-bad-metadata",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, lables: {a: b}}\n",
        false,
    ),
    (
        "ingress",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n    - host: a.example.com\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend: {service: {name: s, port: {number: 80}}}\n",
        true,
    ),
    (
        "ingress-bad-path-type",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n    - http:\n        paths:\n          - path: /\n            backend: {service: {name: s, port: {number: 80}}}\n",
        false,
    ),
    (
        "helmrelease",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: h, namespace: demo}\nspec:\n  interval: 10m\n  chart:\n    spec:\n      chart: podinfo\n      version: 6.9.0\n      sourceRef: {kind: HelmRepository, name: podinfo}\n  values: {anything: {goes: here}}\n",
        true,
    ),
    (
        "helmrelease-unknown-field",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: h}\nspec:\n  interval: 10m\n  chart:\n    spec: {chart: podinfo, sourceRef: {kind: HelmRepository, name: podinfo}, versoin: 1.0.0}\n",
        false,
    ),
    (
        "helmrelease-bad-enum",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: h}\nspec:\n  interval: 10m\n  chart:\n    spec: {chart: podinfo, sourceRef: {kind: Deployment, name: podinfo}}\n",
        false,
    ),
    (
        "kustomization",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: k, namespace: flux-system}\nspec:\n  interval: 10m\n  path: ./apps\n  prune: true\n  sourceRef: {kind: OCIRepository, name: flux-system}\n  postBuild: {substitute: {a: b}}\n",
        true,
    ),
    (
        "kustomization-missing-prune",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: k}\nspec:\n  interval: 10m\n  sourceRef: {kind: OCIRepository, name: flux-system}\n",
        false,
    ),
];

#[test]
fn kubeconform_and_validate_agree() {
    let Some(kubeconform) = common::tool("kubeconform") else {
        return;
    };
    let root = common::root();
    let pin = exec::tools::Manifest::of_repo(&root).unwrap();
    let pin = pin.get("kubeconform").unwrap();
    common::assert_go_build(&kubeconform, &pin.module, &pin.version);
    let version = k8s_schema::normalize_kubernetes_version(k8s_schema::DEFAULT_KUBERNETES_VERSION);
    if !root.join(".schemas/kubernetes").join(&version).is_dir() {
        assert!(
            !common::tools_required(),
            ".schemas/ is empty: run `cargo xtask validate --fetch-schemas`"
        );
        eprintln!("SKIP: .schemas/ is empty");
        return;
    }
    let registry = Registry::load(RegistryOptions::for_root(&root)).unwrap();
    let objects: Vec<(&str, serde_json::Value, bool)> = CASES
        .iter()
        .map(|(name, yaml, valid)| {
            (
                *name,
                serde_yaml::from_str::<serde_json::Value>(yaml).unwrap(),
                *valid,
            )
        })
        .collect();
    let mut gvks: Vec<Gvk> = objects
        .iter()
        .map(|(_, o, _)| Gvk::of(o).unwrap())
        .collect();
    gvks.sort();
    gvks.dedup();
    let dir = tempfile::tempdir().unwrap();
    let location =
        jsonschema::write_kubeconform_dir(&registry, &gvks, &dir.path().join("schemas"), true)
            .unwrap();

    let mut disagreements = Vec::new();
    for ((name, yaml, expected), (_, object, _)) in CASES.iter().zip(&objects) {
        let gvk = Gvk::of(object).unwrap();
        let Lookup::Found(compiled) = registry.get(&gvk) else {
            panic!("{name}: no schema for {gvk}")
        };
        let ours = k8s_schema::validate(&compiled, object, true);
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let out = std::process::Command::new(&kubeconform)
            .args([
                "-strict",
                "-summary",
                "-schema-location",
                &location,
                "-kubernetes-version",
            ])
            .arg(version.trim_start_matches('v'))
            .arg(&file)
            .output()
            .unwrap();
        let theirs_ok = out.status.success();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("could not find schema"),
            "{name}: kubeconform found no schema: {stdout}"
        );
        assert_eq!(ours.is_empty(), *expected, "{name}: our verdict: {ours:?}");
        if ours.is_empty() != theirs_ok {
            disagreements.push(format!("{name}: ours {ours:?}, kubeconform: {stdout}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "disagreements:\n{}",
        disagreements.join("\n")
    );
}
