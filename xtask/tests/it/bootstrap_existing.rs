//! `cargo xtask bootstrap --cluster dev` for an existing cluster, end to end
//! at the process boundary: kubectl and helm are the named test doubles of
//! `xtask/tests/doubles` (no Talos cluster and no chart repository are
//! reachable here), the tree is a copy of the real one with `.sops.yaml`'s
//! dev rule on a key made for the test. The doubles model a Talos cluster
//! with `cni: none` (DOUBLE_NO_CNI=1): its nodes wait for a CNI until helm
//! has deployed Cilium. The real control-plane run of the same code is in
//! `e2e_existing.rs`.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

fn doubles() -> PathBuf {
    common::root().join("xtask/tests/doubles")
}

/// The dev secrets of the tree at `root`, set (bootstrap refuses
/// placeholders) and encrypted for `recipient`, as the owner's would be.
pub(crate) fn set_dev_secrets(root: &std::path::Path, recipient: &str) {
    let rule = sops::CreationRule::new(
        vec![recipient.to_string()],
        sops::Selection::EncryptedRegex("^(data|stringData)$".into()),
    );
    let vars = root.join("clusters/dev/variables");
    for entry in std::fs::read_dir(&vars).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".enc.yaml") {
            let old = std::fs::read(&path).unwrap();
            let new = sops::regenerate(&old, sops::Format::Yaml, &rule, &mut |p| {
                format!("set-{}", p.join("."))
            })
            .unwrap();
            std::fs::write(&path, new).unwrap();
        }
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    identity: String,
    recipient: String,
}

impl Fixture {
    fn new() -> Option<Self> {
        common::tool("kustomize")?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        common::copy_manifests(&common::root(), &root);
        let dev = xtask::cluster::age_key::recipients(&common::root(), "dev").unwrap();
        let (identity, recipient) = sops::generate_identity();
        let sops = std::fs::read_to_string(common::root().join(".sops.yaml")).unwrap();
        std::fs::write(root.join(".sops.yaml"), sops.replace(&dev[0], &recipient)).unwrap();
        set_dev_secrets(&root, &recipient);
        std::fs::write(
            dir.path().join("kubeconfig"),
            "apiVersion: v1\nkind: Config\n",
        )
        .unwrap();
        // The Flux install manifest, as a checked download leaves it.
        let pin = xtask::cluster::flux_install::FluxPin::of_repo(&common::root()).unwrap();
        let install = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n";
        let cached = dir
            .path()
            .join(format!("cache/flux/{}/install.yaml", pin.version));
        std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
        std::fs::write(&cached, install).unwrap();
        std::fs::write(
            cached.with_extension("yaml.sha256"),
            xtask::cluster::flux_install::sha256_hex(install.as_bytes()),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        Some(Self {
            dir,
            identity,
            recipient,
        })
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The verb, with the doubles, this fixture's key and a token.
    fn bootstrap(&self, stranger_key: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.args(["bootstrap", "--cluster", "dev", "--context", "talos-dev"])
            .arg("--root")
            .arg(self.path("tree"))
            .arg("--kubeconfig")
            .arg(self.path("kubeconfig"))
            .args(["--timeout", "20s"])
            .env("XTASK_KUBECTL", doubles().join("kubectl"))
            .env("XTASK_HELM", doubles().join("helm"))
            .env("XTASK_FLUX", self.path("no-flux-cli"))
            .env("XTASK_CACHE_DIR", self.path("cache"))
            .env("DOUBLE_STATE", self.path("state"))
            .env("DOUBLE_NO_CNI", "1")
            .env_remove("DOUBLE_FAIL")
            .env_remove("DOUBLE_NOT_READY")
            .env_remove("DOUBLE_SLOW")
            .env_remove("DOUBLE_INTERRUPT")
            // Another environment's identity next to dev's: only dev's goes in.
            .env(
                "SOPS_AGE_KEY",
                format!("{stranger_key}\n{}\n", self.identity),
            )
            .env_remove("SOPS_AGE_KEY_FILE")
            .env("GITHUB_TOKEN", "test-token")
            .env("GITHUB_ACTOR", "test-bot")
            .env_remove("REGISTRY_USERNAME")
            .env_remove("REGISTRY_PASSWORD")
            .env("DOCKER_CONFIG", "/nonexistent");
        c
    }

    /// The calls made, kubectl's `--kubeconfig K --context talos-dev` dropped.
    fn calls(&self) -> Vec<String> {
        let prefix = format!(
            "kubectl --kubeconfig {} --context talos-dev ",
            self.path("kubeconfig").display()
        );
        std::fs::read_to_string(self.path("state/calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.replacen(&prefix, "kubectl ", 1))
            .collect()
    }

    fn applied(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path("state/applied.yaml")).unwrap_or_default();
        flux_render::parse_stream(&text).unwrap()
    }
}

fn pos(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call starting with {prefix:?} in:\n{}", calls.join("\n")))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .rev()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} was not applied"))
}

fn decode(b64: &Value) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn a_talos_cluster_without_a_cni_gets_cilium_flux_secrets_and_its_root_sync() {
    let Some(f) = Fixture::new() else { return };
    let (stranger, _) = sops::generate_identity();
    let out = f.bootstrap(&stranger).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let calls = f.calls();

    // The steps, in order, each from the tree.
    for (i, step) in xtask::cluster::existing::STEPS.iter().enumerate() {
        assert!(err.contains(&format!("ok  [{}/7] {step}", i + 1)), "{err}");
    }
    assert!(err.contains("4 node(s) NotReady without a CNI"), "{err}");
    assert!(
        err.contains("(v1.34.1)"),
        "the server version is shown: {err}"
    );
    let helm = pos(&calls, "helm upgrade --install cilium cilium");
    assert!(pos(&calls, "kubectl get --raw /version") < helm);
    assert!(pos(&calls, "kubectl get nodes -o json") < helm);
    let flux = pos(
        &calls,
        "kubectl apply --server-side --force-conflicts --field-manager=xtask -f ",
    );
    assert!(
        helm < pos(
            &calls,
            "kubectl -n kube-system rollout status daemonset/cilium"
        )
    );
    assert!(pos(&calls, "kubectl wait --for=condition=Ready nodes") < flux);
    let call = &calls[helm];
    assert!(
        call.contains("--repo https://helm.cilium.io/ --version 1.18.2 --namespace kube-system")
            && call.contains("--kube-context talos-dev"),
        "{call}"
    );
    assert!(
        call.contains(&format!("--kubeconfig {}", f.path("kubeconfig").display())),
        "{call}"
    );

    // helm got exactly the rendered HelmRelease's values.
    let rendered = flux_render::render_cluster(
        &f.path("tree"),
        "dev",
        &flux_render::RenderOptions::default(),
    )
    .unwrap();
    let hr = rendered
        .kustomizations
        .iter()
        .flat_map(|k| &k.objects)
        .find(|o| o["kind"] == "HelmRelease" && o["metadata"]["name"] == "cilium")
        .unwrap();
    let values: Value =
        serde_json::from_str(&std::fs::read_to_string(f.path("state/helm-values.json")).unwrap())
            .unwrap();
    assert_eq!(values, hr["spec"]["values"]);

    // sops-age holds only the dev identity; the pull secret is the one the
    // OCIRepository names, for its host; the root sync is the committed folder.
    let applied = f.applied();
    let sops_age = find(&applied, "Secret", "sops-age");
    assert_eq!(
        decode(&sops_age["data"]["age.agekey"]),
        format!("{}\n", f.identity)
    );
    let pull = find(&applied, "Secret", "ghcr-auth");
    assert_eq!(pull["type"], "kubernetes.io/dockerconfigjson");
    let config: Value = serde_json::from_str(&decode(&pull["data"][".dockerconfigjson"])).unwrap();
    assert_eq!(config["auths"]["ghcr.io"]["username"], "test-bot");
    assert_eq!(config["auths"]["ghcr.io"]["password"], "test-token");
    let source = find(&applied, "OCIRepository", "flux-system");
    assert_eq!(source["spec"]["ref"]["tag"], "dev");
    assert_eq!(source["spec"]["secretRef"]["name"], "ghcr-auth");
    assert!(source["spec"]["verify"]["matchOIDCIdentity"].is_array());
    assert_eq!(
        find(&applied, "Kustomization", "flux-system")["spec"]["path"],
        "./clusters/dev"
    );
    assert!(
        !err.contains("AGE-SECRET-KEY") && !err.contains("test-token"),
        "{err}"
    );
    // Every Flux object and HelmRelease was waited for, with its conditions.
    assert!(
        err.contains("Kustomization flux-system/apps: Ready=True"),
        "{err}"
    );
    assert!(
        err.contains("HelmRelease kube-system/cilium: Ready=True"),
        "{err}"
    );

    // A re-run converges: Cilium runs now, so no node waits and helm is not called.
    let before = f.calls().len();
    let out = f.bootstrap(&stranger).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let again: Vec<String> = f.calls().into_iter().skip(before).collect();
    assert!(err.contains("CNI (Cilium): skipped"), "{err}");
    assert!(!again.iter().any(|c| c.starts_with("helm ")), "{again:#?}");
}

#[test]
fn a_key_for_another_environment_is_refused_by_name_before_anything_is_applied() {
    let Some(f) = Fixture::new() else { return };
    let (stranger, _) = sops::generate_identity();
    let mut c = f.bootstrap(&stranger);
    c.env("SOPS_AGE_KEY", &stranger);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no age identity for the dev environment (recipient age1"),
        "{err}"
    );
    assert!(!err.contains("AGE-SECRET-KEY"), "{err}");
    let calls = f.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("helm ") || c.contains(" apply ")),
        "{calls:#?}"
    );
}

/// The dev secrets' keys, as committed (the values are placeholders the
/// test cannot read; the keys are in clear).
fn committed_keys(file: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let doc = flux_render::parse_stream(&text).unwrap().remove(0);
    doc["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Placeholders (`REPLACE-ME-...`) refuse the bootstrap before anything is
/// applied, naming each Secret and key; once every value is set, the same
/// bootstrap goes through. (The e2e stand-in's control plane is not built on
/// every machine; this is the same preflight, with the kubectl and helm doubles.)
#[test]
fn placeholders_are_refused_by_name_and_bootstrap_proceeds_once_they_are_set() {
    use crate::platform_review::write_secrets;
    use serde_json::json;
    let Some(f) = Fixture::new() else { return };
    let (stranger, _) = sops::generate_identity();
    let vars = f.path("tree/clusters/dev/variables");
    let keys = committed_keys(
        &common::root().join("clusters/dev/variables/variables-cluster-secret.enc.yaml"),
    );
    assert!(
        keys.contains(&"hcloud_luks_passphrase".to_string()),
        "{keys:?}"
    );
    // Every value a placeholder, as committed, but two the owner has set.
    let mut data = serde_json::Map::new();
    for k in &keys {
        data.insert(k.clone(), json!(format!("REPLACE-ME-{k}")));
    }
    data.insert("dex_client_secret".into(), json!("set-by-the-owner"));
    data.insert("nextcloud_password".into(), json!("set-by-the-owner"));
    let secrets = |variables: Value, chat: &str| {
        vec![
            (
                "variables-cluster-secret.enc.yaml",
                "variables-cluster",
                variables,
            ),
            (
                "alerts-chat-secret.enc.yaml",
                "alerts-chat",
                json!({"address": chat}),
            ),
        ]
    };
    write_secrets(
        &vars,
        &f.recipient,
        &secrets(
            Value::Object(data.clone()),
            "https://REPLACE-ME.invalid/hook",
        ),
    );
    let out = f.bootstrap(&stranger).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    let mut unset: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| *k != "dex_client_secret" && *k != "nextcloud_password")
        .collect();
    unset.sort();
    assert!(
        err.contains(&format!(
            "clusters/dev still has {} placeholder value(s) (REPLACE-ME-...); set each with `cargo xtask secrets edit <file>` before bootstrapping:",
            unset.len() + 1
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Secret flux-system/variables-cluster (clusters/dev/variables/variables-cluster-secret.enc.yaml): {}",
            unset.join(", ")
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "Secret flux-system/alerts-chat (clusters/dev/variables/alerts-chat-secret.enc.yaml): address"
        ),
        "{err}"
    );
    assert!(
        !err.contains("set-by-the-owner") && !err.contains("AGE-SECRET-KEY"),
        "{err}"
    );
    let calls = f.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("helm ") || c.contains(" apply ")),
        "nothing is applied: {calls:#?}"
    );

    // Every value set: the same bootstrap goes through.
    for k in &keys {
        data.insert(k.clone(), json!(format!("set-{k}")));
    }
    write_secrets(
        &vars,
        &f.recipient,
        &secrets(Value::Object(data), "https://chat.example/hook"),
    );
    let out = f.bootstrap(&stranger).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("placeholder"), "{err}");
}
