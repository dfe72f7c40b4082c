//! `cargo xtask bootstrap`, `down` and friends against the named test doubles
//! in `xtask/tests/doubles` (docker, kind, kubectl, helm): the order of the
//! steps, idempotency, `--recreate`, every preflight message, and a failure
//! at step N that a re-run completes. The doubles stand in for the real CLIs
//! only here; the real path is the default and runs in `.github/workflows/e2e.yaml`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

fn doubles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A small tree shaped like the platform: a root sync, one Flux
/// Kustomization with Cilium and whoami, a `.sops.yaml` rule for local.
struct Fixture {
    dir: tempfile::TempDir,
    registry_port: u16,
    registry_bin: PathBuf,
}

impl Fixture {
    /// `None` (a SKIP) without kustomize (render) or docker-registry (publish).
    fn new() -> Option<Self> {
        common::tool("kustomize")?;
        let registry_bin = common::tool("docker-registry")?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        let (secret, public) = xtask::sops::generate_identity();
        write(
            &root.join(".sops.yaml"),
            &format!(
                "creation_rules:\n  - path_regex: ^clusters/local/.+\\.enc\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n    age: {public}\n"
            ),
        );
        write(
            &dir.path().join("keys.txt"),
            &format!("# public key: {public}\n{secret}\n"),
        );
        let real = common::root().join("clusters/local/flux-system");
        for f in [
            "kustomization.yaml",
            "oci-repository.yaml",
            "flux-system.yaml",
        ] {
            write(
                &root.join("clusters/local/flux-system").join(f),
                &std::fs::read_to_string(real.join(f)).unwrap(),
            );
        }
        write(
            &root.join("clusters/local/kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - flux-system/\n  - infrastructure-controllers.yaml\n",
        );
        write(
            &root.join("clusters/local/infrastructure-controllers.yaml"),
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: infrastructure-controllers\n  namespace: flux-system\nspec:\n  interval: 60m\n  path: ./infra\n  prune: true\n  sourceRef:\n    kind: OCIRepository\n    name: flux-system\n  postBuild:\n    substitute:\n      domain: platform.lan\n",
        );
        write(
            &root.join("infra/kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - cilium.yaml\n  - whoami.yaml\n",
        );
        write(
            &root.join("infra/cilium.yaml"),
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: cilium\n  namespace: kube-system\nspec:\n  url: https://helm.cilium.io/\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: cilium\n  namespace: kube-system\nspec:\n  chart:\n    spec:\n      chart: cilium\n      version: 1.18.2\n      sourceRef:\n        kind: HelmRepository\n        name: cilium\n  values:\n    kubeProxyReplacement: true\n    operator:\n      replicas: ${cilium_replicas:=1}\n",
        );
        write(
            &root.join("infra/whoami.yaml"),
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: whoami\n  namespace: whoami\nspec:\n  chart:\n    spec:\n      chart: whoami\n      sourceRef:\n        kind: HelmRepository\n        name: cilium\n        namespace: kube-system\n  values:\n    ingress:\n      hosts:\n        - host: whoami.platform.lan\n",
        );
        // The real generator, with host ports nobody listens on.
        let kind = xtask::cluster::kind::kind_config(&xtask::cluster::kind::KindOptions {
            port_mappings: vec![(30080, free_port()), (30443, free_port())],
            ..Default::default()
        });
        write(
            &root.join("clusters/local/kind.yaml"),
            &serde_yaml::to_string(&kind).unwrap(),
        );
        // The Flux install manifest, as if downloaded before (no internet here).
        let pin = xtask::cluster::flux_install::FluxPin::project().unwrap();
        write(
            &dir.path()
                .join(format!("cache/flux/{}/install.yaml", pin.version)),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n",
        );
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        Some(Self {
            dir,
            registry_port: free_port(),
            registry_bin,
        })
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("tree")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
        c.args(args);
        let path = format!(
            "{}:{}",
            doubles().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path)
            .env("XTASK_DOCKER", doubles().join("docker"))
            .env("XTASK_KIND", doubles().join("kind"))
            .env("XTASK_KUBECTL", doubles().join("kubectl"))
            .env("XTASK_HELM", doubles().join("helm"))
            .env("XTASK_FLUX", self.dir.path().join("no-flux-cli"))
            .env("XTASK_CACHE_DIR", self.dir.path().join("cache"))
            .env("XTASK_REGISTRY_PORT", self.registry_port.to_string())
            .env("SOPS_AGE_KEY_FILE", self.dir.path().join("keys.txt"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env_remove("SOPS_AGE_KEY")
            .env_remove("DOUBLE_FAIL")
            .env("DOUBLE_STATE", self.state())
            .env("DOUBLE_REGISTRY_BIN", &self.registry_bin);
        c
    }

    fn bootstrap(&self, extra: &[&str]) -> Command {
        let root = self.root();
        let mut args = vec!["bootstrap", "--root", root.to_str().unwrap()];
        if !extra.contains(&"--timeout") {
            args.extend(["--timeout", "20s"]);
        }
        args.extend(extra);
        self.cmd(&args)
    }

    /// Runs; returns (success, stdout, stderr, the calls made by this run).
    fn run(&self, mut c: Command) -> (bool, String, String, Vec<String>) {
        let log = self.state().join("calls.log");
        let before = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count();
        let out = c.output().unwrap();
        let calls: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .skip(before)
            .map(str::to_string)
            .collect();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            calls,
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Stop any registry a `docker run` double started.
        if let Ok(entries) = std::fs::read_dir(self.state().join("containers")) {
            for e in entries.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("pid")) {
                    let _ = Command::new("kill").arg(pid.trim()).status();
                }
            }
        }
    }
}

/// Index of the first call starting with `prefix`; panics with the log.
fn pos(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call starting with {prefix:?} in:\n{}", calls.join("\n")))
}

fn has(calls: &[String], prefix: &str) -> bool {
    calls.iter().any(|c| c.starts_with(prefix))
}

#[test]
fn a_fresh_bootstrap_runs_the_steps_in_order() {
    let Some(f) = Fixture::new() else { return };
    let (ok, stdout, stderr, calls) = f.run(f.bootstrap(&[]));
    assert!(ok, "{stderr}");
    let order = [
        "docker info",
        "kind get clusters",
        "docker run -d --restart=always --name platform-registry",
        "docker run -d --restart=always --name platform-mirror-docker-io",
        "kind create cluster --name local --config",
        "kind get kubeconfig --name local",
        "docker network connect kind platform-registry",
        "kind get nodes --name local",
        "docker exec -i local-control-plane sh -c",
        "kubectl --kubeconfig",
        "helm list",
        "helm upgrade --install cilium cilium --repo https://helm.cilium.io/ --version 1.18.2",
    ];
    let mut last = 0;
    for p in order {
        let i = pos(&calls[last..], p) + last;
        last = i;
    }
    // kubectl: ConfigMap, nodes Ready, Flux, Secret, root sync, wait, in order.
    let kubectl: Vec<&String> = calls.iter().filter(|c| c.starts_with("kubectl")).collect();
    let find = |needle: &str| {
        kubectl
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no kubectl call with {needle:?}:\n{}", calls.join("\n")))
    };
    let steps = [
        find("apply --server-side --force-conflicts --field-manager=xtask -f -"),
        find("wait --for=condition=Ready nodes --all"),
        find("install.yaml"),
        find("-n flux-system wait --for=condition=Available deployment --all"),
        find("annotate --overwrite -n flux-system ocirepositories"),
        find("get ocirepositories.source.toolkit.fluxcd.io flux-system"),
        find("get kustomizations.kustomize.toolkit.fluxcd.io infrastructure-controllers"),
        find("get helmreleases.helm.toolkit.fluxcd.io cilium"),
    ];
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "{steps:?}\n{}",
        calls.join("\n")
    );

    // 4 nodes x (local registry + 4 mirrors) hosts.toml files.
    let nodes = f.state().join("nodes");
    let hosts = nodes.join(format!(
        "local-worker/etc/containerd/certs.d/localhost:{}/hosts.toml",
        f.registry_port
    ));
    assert_eq!(
        std::fs::read_to_string(hosts).unwrap(),
        "[host.\"http://platform-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    );
    assert!(
        nodes
            .join("local-worker3/etc/containerd/certs.d/docker.io/hosts.toml")
            .is_file()
    );

    // What was applied: the ConfigMap, the Secret with our key, the root sync.
    let applied = std::fs::read_to_string(f.state().join("applied.yaml")).unwrap();
    assert!(
        applied.contains("name: local-registry-hosting"),
        "{applied}"
    );
    assert!(applied.contains("name: sops-age"), "{applied}");
    assert!(applied.contains("age.agekey:"), "{applied}");
    assert!(
        applied.contains("url: oci://platform-registry:5000/platform"),
        "{applied}"
    );
    // Cilium got the HelmRelease's values, substituted.
    let values: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.state().join("helm-values.json")).unwrap())
            .unwrap();
    assert_eq!(
        values,
        json!({"kubeProxyReplacement": true, "operator": {"replicas": 1}})
    );

    // The artifact is in the local registry under `latest`.
    let tags = Command::new("curl")
        .args([
            "-fsS",
            &format!("http://127.0.0.1:{}/v2/platform/tags/list", f.registry_port),
        ])
        .output();
    if let Ok(t) = tags
        && t.status.success()
    {
        assert!(String::from_utf8_lossy(&t.stdout).contains("latest"));
    }

    for (i, title) in xtask::cluster::bootstrap::STEPS.iter().enumerate() {
        assert!(
            stderr.contains(&format!("[{}/9] {title}", i + 1)),
            "{stderr}"
        );
    }
    assert!(stderr.contains("is Ready in"), "{stderr}");
    assert_eq!(stdout.trim(), "https://whoami.platform.lan");
}

#[test]
fn a_rerun_converges_without_recreating_anything() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    assert!(!has(&calls, "kind create"), "{}", calls.join("\n"));
    assert!(!has(&calls, "docker run"), "{}", calls.join("\n"));
    assert!(
        !has(&calls, "docker network connect"),
        "{}",
        calls.join("\n")
    );
    assert!(!has(&calls, "helm upgrade"), "{}", calls.join("\n"));
    assert!(stderr.contains("platform-registry reused"), "{stderr}");
    assert!(stderr.contains("local exists"), "{stderr}");
    assert!(
        stderr.contains("cilium-1.18.2 already deployed"),
        "{stderr}"
    );
    assert!(stderr.contains("up to date"), "{stderr}");
    // hosts.toml and the ConfigMap are rewritten: cheap and convergent.
    assert!(has(&calls, "docker exec -i local-worker"));
}

#[test]
fn recreate_deletes_the_cluster_and_registry_first() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false", "--recreate"]));
    assert!(ok, "{stderr}");
    assert!(pos(&calls, "docker rm -f -v platform-registry") < pos(&calls, "docker run"));
    assert!(pos(&calls, "kind delete cluster --name local") < pos(&calls, "kind create cluster"));
}

#[test]
fn a_failure_at_step_n_names_it_and_a_rerun_completes() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.bootstrap(&["--mirrors", "false"]);
    c.env("DOUBLE_FAIL", "helm upgrade");
    let (ok, _, stderr, calls) = f.run(c);
    assert!(!ok);
    assert!(
        stderr.contains("error: step 4/9 (CNI (Cilium)) failed: helm failed"),
        "{stderr}"
    );
    assert!(stderr.contains("injected failure"), "{stderr}");
    assert!(
        stderr.contains("re-run `cargo xtask bootstrap`"),
        "{stderr}"
    );
    assert!(
        !has(&calls, "kubectl --kubeconfig") || !calls.iter().any(|c| c.contains("install.yaml"))
    );
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    assert!(!has(&calls, "kind create"), "{}", calls.join("\n"));
    assert!(has(&calls, "helm upgrade --install cilium"));
}

#[test]
fn a_flux_object_that_never_gets_ready_fails_the_wait_with_its_conditions() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.bootstrap(&["--mirrors", "false", "--timeout", "2s"]);
    c.env("DOUBLE_NOT_READY", "infrastructure-controllers");
    let (ok, _, stderr, _) = f.run(c);
    assert!(!ok);
    assert!(stderr.contains("step 9/9 (Wait) failed"), "{stderr}");
    assert!(
        stderr.contains("Kustomization flux-system/infrastructure-controllers is not Ready"),
        "{stderr}"
    );
    assert!(stderr.contains("Ready=False (Double)"), "{stderr}");
}

/// Preflight fails with `message` and changes nothing.
fn preflight_fails(f: &Fixture, mut c: Command, message: &str) {
    let (ok, _, stderr, calls) = {
        c.env("XTASK_CACHE_DIR", f.dir.path().join("cache"));
        f.run(c)
    };
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("step 1/9 (Preflight) failed"), "{stderr}");
    assert!(
        stderr.contains(message),
        "expected {message:?} in:\n{stderr}"
    );
    for mutating in ["docker run", "kind create", "helm upgrade", "kubectl"] {
        assert!(
            !has(&calls, mutating),
            "{mutating} ran: {}",
            calls.join("\n")
        );
    }
}

#[test]
fn preflight_names_each_missing_piece() {
    let Some(f) = Fixture::new() else { return };
    let none = f.dir.path().join("absent");
    for (var, message) in [
        ("XTASK_DOCKER", "docker not found: install Docker"),
        (
            "XTASK_KIND",
            "kind not found: install it with `cargo xtask tools install kind`",
        ),
        (
            "XTASK_HELM",
            "helm not found: install it with `cargo xtask tools install helm`",
        ),
        ("XTASK_KUBECTL", "kubectl not found: install it"),
    ] {
        let mut c = f.bootstrap(&[]);
        c.env(var, none.join(var));
        preflight_fails(&f, c, message);
    }
}

#[test]
fn preflight_reports_a_stopped_docker_daemon() {
    let Some(f) = Fixture::new() else { return };
    std::fs::write(f.state().join("docker-down"), "").unwrap();
    preflight_fails(
        &f,
        f.bootstrap(&[]),
        "docker is installed but its daemon is not reachable: start Docker",
    );
}

#[test]
fn preflight_reports_busy_ports() {
    let Some(f) = Fixture::new() else { return };
    let busy = TcpListener::bind(("127.0.0.1", f.registry_port)).unwrap();
    preflight_fails(
        &f,
        f.bootstrap(&[]),
        &format!(
            "port {} is in use: free it or pass --registry-port",
            f.registry_port
        ),
    );
    drop(busy);
    let kind =
        xtask::cluster::kind::read_kind_file(&f.root().join("clusters/local/kind.yaml")).unwrap();
    let _busy = TcpListener::bind(("127.0.0.1", kind.host_ports[0])).unwrap();
    preflight_fails(
        &f,
        f.bootstrap(&[]),
        &format!(
            "port {} is in use: the cluster maps it to Traefik",
            kind.host_ports[0]
        ),
    );
}

#[test]
fn preflight_asks_for_a_local_age_key() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.bootstrap(&[]);
    c.env("SOPS_AGE_KEY_FILE", f.dir.path().join("no-keys.txt"));
    preflight_fails(&f, c, "run `cargo xtask secrets keygen --env local`");
}

#[test]
fn down_removes_the_cluster_and_registry_and_all_the_mirrors() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&[]));
    assert!(ok, "{stderr}");
    let (ok, _, stderr, calls) = f.run(f.cmd(&["down"]));
    assert!(ok, "{stderr}");
    assert!(has(&calls, "kind delete cluster --name local"));
    assert!(has(&calls, "docker rm -f -v platform-registry"));
    assert!(
        !has(&calls, "docker rm -f -v platform-mirror"),
        "{}",
        calls.join("\n")
    );
    let (ok, _, stderr, calls) = f.run(f.cmd(&["down", "--all"]));
    assert!(ok, "{stderr}");
    assert!(
        !has(&calls, "kind delete"),
        "already gone: {}",
        calls.join("\n")
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("docker rm -f -v platform-mirror-"))
            .count(),
        4
    );
}

#[test]
fn status_lists_flux_objects_as_json() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr, _) = f.run(f.cmd(&["status", "--output", "json"]));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["cluster"], "local");
    assert!(
        v["registry"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{v}"
    );
}
