//! `substituteFrom` like for like with Flux: the flux CLI runs without
//! `--dry-run` against the Docker-less kube-apiserver that holds the
//! cluster's ConfigMaps and Secrets (and the Kustomizations, which flux
//! reads first), so flux merges the variables itself; our render merges
//! them from the tree. Covered: the merge order of several sources (a later
//! source wins), a key defined in a ConfigMap and a Secret, inline
//! `substitute` over `substituteFrom`, `optional: true` with a missing
//! source, a SOPS-encrypted Secret (decrypted with an age key made at test
//! time; the API server holds it decrypted, as kustomize-controller applies
//! it), and a required source that is missing (both refuse).

use std::collections::BTreeMap;
use std::path::Path;

use exec::runner::Cmd;
use flux_render::RenderOptions;
use xtask::cluster::local;

use crate::common;

const VARIABLES: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: vars-1
  namespace: flux-system
data:
  a: from-cm-1
  b: from-cm-1
  c: from-cm-1
  d: from-cm-1
---
apiVersion: v1
kind: Secret
metadata:
  name: vars-2
  namespace: flux-system
stringData:
  b: from-secret
  e: from-secret
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: vars-3
  namespace: flux-system
data:
  d: from-cm-3
";

/// Encrypted at test time for a fresh age key.
const SOPS_SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: vars-4
  namespace: flux-system
stringData:
  e: from-sops-secret
  g: from-sops-secret
";

fn kustomization(name: &str, from: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {name}
  namespace: flux-system
spec:
  interval: 10m
  path: ./app
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substitute:
      c: inline
    substituteFrom:
{from}"
    )
}

const APP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: merged
  namespace: default
data:
  a: ${a}
  b: ${b}
  c: ${c}
  d: ${d}
  e: ${e}
  f: ${f:=default}
  g: ${g}
";

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

#[test]
fn substitute_from_merges_as_flux_reads_it_from_the_api_server() {
    let _one = crate::control_plane::exclusive();
    let Some(binaries) = crate::control_plane::api_server_binaries() else {
        return;
    };
    let Some(flux) = common::tool("flux") else {
        return;
    };
    if common::tool("kubectl").is_none() || common::tool("kustomize").is_none() {
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    let merge = kustomization(
        "merge",
        "      - kind: ConfigMap
        name: vars-1
      - kind: Secret
        name: vars-2
      - kind: ConfigMap
        name: absent
        optional: true
      - kind: ConfigMap
        name: vars-3
      - kind: Secret
        name: vars-4
",
    );
    let required = kustomization(
        "required-missing",
        "      - kind: ConfigMap
        name: vars-1
      - kind: Secret
        name: absent
",
    );
    let (identity, recipient) = sops::generate_identity();
    let rule = sops::CreationRule::new(
        vec![recipient],
        sops::Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    let encrypted = sops::encrypt(SOPS_SECRET.as_bytes(), sops::Format::Yaml, &rule).unwrap();
    let encrypted = String::from_utf8(encrypted).unwrap();
    assert!(!encrypted.contains("from-sops-secret"));
    write(
        tree.path(),
        "clusters/t/kustomization.yaml",
        "resources:\n  - vars.yaml\n  - secret.sops.yaml\n  - merge.yaml\n  - required.yaml\n",
    );
    write(tree.path(), "clusters/t/vars.yaml", VARIABLES);
    write(tree.path(), "clusters/t/secret.sops.yaml", &encrypted);
    write(tree.path(), "clusters/t/merge.yaml", &merge);
    write(tree.path(), "clusters/t/required.yaml", &required);
    write(tree.path(), "app/cm.yaml", APP);

    let ids = std::sync::Arc::new(sops::Identities::from_keys_text(&identity).unwrap());
    let decrypt_ids = ids.clone();
    let opts = RenderOptions {
        decryptor: Some(std::sync::Arc::new(move |object| {
            sops::decrypt_object(object, &decrypt_ids).map_err(Into::into)
        })),
        reveal_secrets: true,
        ..Default::default()
    };
    let ours = flux_render::render_closure(tree.path(), "t", &opts).unwrap();
    assert_eq!(ours.kustomizations.len(), 1, "{:?}", ours.failures);
    let merged = &ours.kustomizations[0];
    assert_eq!(merged.flux.name, "merge");
    let failed: Vec<&str> = ours.failures.iter().map(|f| f.flux.name.as_str()).collect();
    assert_eq!(failed, ["required-missing"]);

    // The API server holds what the cluster would: the variables and the
    // Kustomizations (flux reads the live object before the local file).
    let cp = local::ControlPlane::start_api_server(&common::root(), &binaries, |_| {}).unwrap();
    let kube = &cp.kube;
    cp.install_flux_crds().unwrap();
    kube.apply_yaml(VARIABLES).unwrap();
    let mut decrypted =
        sops::decrypt_object(&flux_render::parse_stream(&encrypted).unwrap()[0], &ids).unwrap();
    decrypted.as_object_mut().unwrap().remove("sops");
    kube.apply(&[decrypted]).unwrap();
    kube.apply_yaml(&format!("{merge}---\n{required}")).unwrap();

    let flux_build = |name: &str, file: &str| {
        Cmd::new(&flux)
            .dir(tree.path())
            .args(["build", "kustomization", name, "--strict-substitute"])
            .arg("--path")
            .arg(tree.path().join("app"))
            .arg("--kustomization-file")
            .arg(tree.path().join("clusters/t").join(file))
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .args(["--namespace", "flux-system"])
            .output()
            .unwrap()
    };

    let out = flux_build("merge", "merge.yaml");
    assert!(
        out.status.success(),
        "flux: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = flux_render::yaml11::parse_stream(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(theirs, merged.objects, "ours and flux's merge differ");
    let data: BTreeMap<String, String> =
        serde_json::from_value(merged.objects[0]["data"].clone()).unwrap();
    let expected: BTreeMap<String, String> = [
        ("a", "from-cm-1"),
        // Defined in a ConfigMap and a later Secret: the Secret wins.
        ("b", "from-secret"),
        // Inline substitute beats every substituteFrom.
        ("c", "inline"),
        // A later ConfigMap beats an earlier one; the optional absent one
        // between them changes nothing.
        ("d", "from-cm-3"),
        // The encrypted Secret, last, wins over the plain one.
        ("e", "from-sops-secret"),
        ("f", "default"),
        ("g", "from-sops-secret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(data, expected);

    let out = flux_build("required-missing", "required.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "flux builds without a required source"
    );
    assert!(stderr.contains("absent"), "{stderr}");
    eprintln!(
        "substituteFrom like for like: 1 Kustomization equal to flux reading the API server, 1 refused by both\n  ours: {}\n  flux: {}",
        ours.failures[0].error,
        stderr.trim()
    );
}
