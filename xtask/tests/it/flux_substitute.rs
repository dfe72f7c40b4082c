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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use exec::runner::Cmd;
use flux_render::RenderOptions;
use rayon::prelude::*;
use serde_json::Value;
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

/// The real tree's tools: flux, sops, age-keygen, kustomize, kubectl.
struct Tools {
    flux: PathBuf,
    sops: PathBuf,
    keygen: PathBuf,
    kustomize: PathBuf,
}

impl Tools {
    fn find() -> Option<Self> {
        let tools = Self {
            flux: common::tool("flux")?,
            sops: common::tool("sops")?,
            keygen: common::tool("age-keygen")?,
            kustomize: common::tool("kustomize")?,
        };
        common::tool("kubectl")?;
        Some(tools)
    }

    /// The sops CLI, away from any `.sops.yaml` and user config.
    fn sops(&self, keys: &Path) -> Cmd {
        Cmd::new(&self.sops)
            .dir(keys)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY_FILE", keys.join("age.txt"))
            .env("SOPS_AGE_KEY", "")
            .env("XDG_CONFIG_HOME", keys)
    }

    fn kustomize(&self, dir: &Path) -> Vec<Value> {
        let out = Cmd::new(&self.kustomize)
            .args(["build", "--load-restrictor", "LoadRestrictionsNone"])
            .arg(dir)
            .read()
            .unwrap_or_else(|e| panic!("kustomize build {}: {e}", dir.display()));
        flux_render::parse_stream(&out).unwrap()
    }
}

/// `(kind, name)` of every `substituteFrom` entry of these Kustomizations.
fn substitute_sources<'a>(
    kustomizations: impl Iterator<Item = &'a Value>,
) -> BTreeSet<(String, String)> {
    kustomizations
        .flat_map(|k| {
            k.pointer("/spec/postBuild/substituteFrom")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .map(|from| {
            let at = |f: &str| from[f].as_str().unwrap_or_default().to_string();
            (at("kind"), at("name"))
        })
        .collect()
}

/// The test value of one key of a cluster's Secret.
fn test_value(cluster: &str, key: &str) -> String {
    format!("test-{cluster}-{key}")
}

/// Replaces, in the tree copy, each SOPS-encrypted Secret of `cluster` that
/// `names` lists by one with the same keys and test values, encrypted by the
/// sops CLI for `recipient`. Returns `(name, file)` of each.
fn reencrypt(
    tools: &Tools,
    keys: &Path,
    recipient: &str,
    tree: &Path,
    cluster: &str,
    names: &BTreeSet<String>,
) -> Vec<(String, PathBuf)> {
    let mut done = Vec::new();
    let mut files = Vec::new();
    let mut dirs = vec![tree.join("clusters").join(cluster)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if flux_render::is_yaml(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = flux_render::parse_stream(&text).unwrap();
        let [secret] = docs.as_slice() else { continue };
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        if secret["kind"] != "Secret" || secret.get("sops").is_none() || !names.contains(name) {
            continue;
        }
        let mut plain = secret.clone();
        plain.as_object_mut().unwrap().remove("sops");
        for (field, encode) in [("stringData", false), ("data", true)] {
            let Some(values) = plain.get_mut(field).and_then(Value::as_object_mut) else {
                continue;
            };
            for (key, value) in values.iter_mut() {
                let v = test_value(cluster, key);
                *value = Value::String(if encode {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.encode(v)
                } else {
                    v
                });
            }
        }
        // The test values go to a file of the key's folder, never the tree.
        let input = keys.join(format!("{cluster}-{name}.yaml"));
        std::fs::write(&input, flux_render::to_yaml_stream(&[plain])).unwrap();
        let encrypted = tools
            .sops(keys)
            .args(["encrypt", "--age", recipient])
            .args(["--encrypted-regex", "^(data|stringData)$"])
            .args(["--input-type", "yaml", "--output-type", "yaml"])
            .arg(&input)
            .read()
            .unwrap();
        std::fs::remove_file(&input).unwrap();
        assert!(!encrypted.contains(&format!("test-{cluster}-")));
        std::fs::write(&file, encrypted).unwrap();
        done.push((name.to_string(), file));
    }
    done
}

/// The real tree, like for like: flux reads each cluster's ConfigMaps and
/// (decrypted) Secrets from the API server, and every Kustomization with
/// `substituteFrom` renders as ours does.
#[test]
fn the_real_tree_substitutes_as_flux_reads_it_from_the_api_server() {
    let _one = crate::control_plane::exclusive();
    let Some(binaries) = crate::control_plane::api_server_binaries() else {
        return;
    };
    let Some(tools) = Tools::find() else {
        return;
    };
    // The key and the test values live here, outside the tree copy.
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("age.txt");
    Cmd::new(&tools.keygen)
        .arg("-o")
        .arg(&key_file)
        .output()
        .unwrap();
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let recipient = key_text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_string();

    let tree = tempfile::tempdir().unwrap();
    for dir in flux_render::MANIFEST_DIRS {
        common::copy_tree(&common::root().join(dir), &tree.path().join(dir));
    }
    let clusters = flux_render::list_clusters(tree.path());
    assert_eq!(clusters, ["dev", "local", "prod"]);

    let ids = std::sync::Arc::new(sops::Identities::from_keys_text(&key_text).unwrap());
    let opts = RenderOptions {
        decryptor: Some(std::sync::Arc::new(move |object| {
            sops::decrypt_object(object, &ids).map_err(Into::into)
        })),
        reveal_secrets: true,
        ..Default::default()
    };
    let cp = local::ControlPlane::start_api_server(&common::root(), &binaries, |_| {}).unwrap();
    let kube = &cp.kube;
    cp.install_flux_crds().unwrap();

    let mut compared = Vec::new();
    let mut failures = Vec::new();
    for cluster in &clusters {
        // What the cluster declares, as kustomize builds its folder.
        let declared: Vec<Value> = tools
            .kustomize(&tree.path().join("clusters").join(cluster))
            .into_iter()
            .filter(flux_render::is_flux_kustomization)
            .collect();
        let sources = substitute_sources(declared.iter());
        let secret_names: BTreeSet<String> = sources
            .iter()
            .filter(|(kind, _)| kind == "Secret")
            .map(|(_, name)| name.clone())
            .collect();
        let reencrypted = reencrypt(
            &tools,
            keys.path(),
            &recipient,
            tree.path(),
            cluster,
            &secret_names,
        );
        assert!(
            !reencrypted.is_empty(),
            "{cluster}: no SOPS Secret that substituteFrom reads"
        );

        let ours = flux_render::render_closure(tree.path(), cluster, &opts)
            .unwrap_or_else(|e| panic!("{cluster}: {e}"));
        assert!(
            ours.failures.is_empty() && ours.skipped.is_empty(),
            "{cluster}"
        );
        assert!(
            ours.root
                .object
                .pointer("/spec/postBuild/substituteFrom")
                .is_none(),
            "{cluster}: the root has no substituteFrom"
        );

        // The API server holds the sources as Flux applies them: the
        // ConfigMaps (and plain Secrets) that kustomize builds for the
        // cluster's Kustomizations, and the SOPS Secrets as the sops CLI
        // decrypts them.
        let mut objects: Vec<Value> = declared.clone();
        let folders: Vec<(&Value, PathBuf)> = std::iter::once((
            &ours.root.object,
            tree.path().join("clusters").join(cluster),
        ))
        .chain(
            ours.kustomizations
                .iter()
                .map(|k| (&k.flux.object, k.source_dir.join(&k.flux.path))),
        )
        .collect();
        for (kustomization, folder) in &folders {
            for o in tools.kustomize(folder) {
                let kind = o["kind"].as_str().unwrap_or_default().to_string();
                let name = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if !sources.contains(&(kind, name.clone())) || o.get("sops").is_some() {
                    continue;
                }
                assert!(
                    kustomization.pointer("/spec/postBuild").is_none(),
                    "{cluster}: {name} would be applied with substitution"
                );
                objects.push(o);
            }
        }
        for (name, file) in &reencrypted {
            let plain = tools
                .sops(keys.path())
                .args(["decrypt", "--input-type", "yaml", "--output-type", "yaml"])
                .arg(file)
                .read()
                .unwrap_or_else(|e| panic!("{cluster}: sops decrypt {name}: {e}"));
            objects.extend(flux_render::parse_stream(&plain).unwrap());
        }
        let held: Vec<String> = objects
            .iter()
            .filter(|o| !flux_render::is_flux_kustomization(o))
            .map(flux_render::describe)
            .collect();
        kube.apply(&objects).unwrap();

        let with_substitute_from: Vec<_> = ours
            .kustomizations
            .iter()
            .filter(|k| {
                k.flux
                    .object
                    .pointer("/spec/postBuild/substituteFrom")
                    .is_some()
            })
            .collect();
        let results: Vec<(String, Result<Vec<String>, String>, usize)> = with_substitute_from
            .par_iter()
            .map(|k| {
                let label = format!("{cluster}/{}", k.flux.name);
                let file = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(
                    file.path(),
                    flux_render::to_yaml_stream(std::slice::from_ref(&k.flux.object)),
                )
                .unwrap();
                let out = Cmd::new(&tools.flux)
                    .dir(tree.path())
                    .args(["build", "kustomization"])
                    .arg(&k.flux.name)
                    .args(["--strict-substitute", "--in-memory-build"])
                    .arg("--path")
                    .arg(k.source_dir.join(&k.flux.path))
                    .arg("--kustomization-file")
                    .arg(file.path())
                    .arg("--kubeconfig")
                    .arg(&cp.kubeconfig)
                    .args(["--namespace", &k.flux.namespace])
                    .output()
                    .unwrap();
                if !out.status.success() {
                    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                    return (label, Err(stderr), 0);
                }
                let theirs =
                    flux_render::yaml11::parse_stream(&String::from_utf8_lossy(&out.stdout))
                        .unwrap();
                // The test values that reached the output: the Secrets were read.
                let text = serde_json::to_string(&theirs).unwrap();
                let used = text.matches(&format!("test-{cluster}-")).count();
                let diffs = testkit::flux_compare::compare(&k.objects, &theirs);
                (label, Ok(diffs), used)
            })
            .collect();
        let mut used_here = 0;
        for (label, result, used) in results {
            used_here += used;
            match result {
                Ok(diffs) if diffs.is_empty() => compared.push(label),
                Ok(diffs) => failures.push(format!("{label}:\n{}", diffs.join("\n"))),
                Err(e) => failures.push(format!("{label}: flux failed: {e}")),
            }
        }
        eprintln!(
            "  {cluster}: {} Kustomization(s) with substituteFrom; the API server held {}; {used_here} use(s) of the test Secret values in flux's output",
            with_substitute_from.len(),
            held.join(", ")
        );
        assert!(used_here > 0, "{cluster}: no Secret value was substituted");
        kube.cmd()
            .args([
                "delete",
                "kustomizations.kustomize.toolkit.fluxcd.io,configmaps,secrets",
                "--all",
                "-n",
                "flux-system",
            ])
            .read()
            .unwrap();
    }
    eprintln!(
        "substituteFrom like for like on the real tree: {} Kustomization(s) equal to flux reading the API server, none excluded: {}",
        compared.len(),
        compared.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} difference(s) with flux:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // 3 clusters x (infrastructure-controllers, infrastructure, apps).
    assert_eq!(compared.len(), 9, "{compared:#?}");
}
