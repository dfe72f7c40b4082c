//! `cargo xtask bootstrap`, `down` and friends against the named test doubles
//! in `xtask/tests/doubles` (docker, kind, kubectl, helm): the order of the
//! steps, idempotency, `--recreate`, every preflight message (a stopped or
//! rootless engine, Podman, busy ports), a failure at step N that a re-run
//! completes, and what a real laptop meets: a crash-looping Cilium, a mirror
//! that never answers, a changed kind.yaml, a cluster stopped by a Docker
//! restart, a helm release an interrupted run left pending. The doubles stand
//! in for the real CLIs only here; the real path is the default and runs in
//! `.github/workflows/e2e.yaml`. The Flux install.yaml download is tested
//! against a release server on 127.0.0.1 in this process.

use crate::common;
use crate::registry::free_port;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

fn doubles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles")
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
        let (secret, public) = sops::generate_identity();
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
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - cilium.yaml\n  - whoami.yaml\n  - ca.yaml\n",
        );
        write(
            &root.join("infra/cilium.yaml"),
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: cilium\n  namespace: kube-system\nspec:\n  url: https://helm.cilium.io/\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: cilium\n  namespace: kube-system\nspec:\n  chart:\n    spec:\n      chart: cilium\n      version: 1.18.2\n      sourceRef:\n        kind: HelmRepository\n        name: cilium\n  values:\n    kubeProxyReplacement: true\n    operator:\n      replicas: ${cilium_replicas:=1}\n",
        );
        write(
            &root.join("infra/whoami.yaml"),
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: whoami\n  namespace: whoami\nspec:\n  chart:\n    spec:\n      chart: whoami\n      sourceRef:\n        kind: HelmRepository\n        name: cilium\n        namespace: kube-system\n  values:\n    ingress:\n      hosts:\n        - host: whoami.platform.lan\n",
        );
        // The local CA as platform/kind declares it.
        write(
            &root.join("infra/ca.yaml"),
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: selfsigned-ca\n  namespace: cert-manager\nspec:\n  isCA: true\n  commonName: selfsigned-ca\n  secretName: selfsigned-ca\n  issuerRef:\n    name: selfsigned-bootstrap\n    kind: ClusterIssuer\n---\napiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: selfsigned\nspec:\n  ca:\n    secretName: selfsigned-ca\n",
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
        // The Flux install manifest, as a checked download leaves it (the
        // download itself is tested against a local server below).
        let pin = xtask::cluster::flux_install::FluxPin::of_repo(&common::root()).unwrap();
        let install = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n";
        let cached = dir
            .path()
            .join(format!("cache/flux/{}/install.yaml", pin.version));
        write(&cached, install);
        write(
            &cached.with_extension("yaml.sha256"),
            &xtask::cluster::flux_install::sha256_hex(install.as_bytes()),
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

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Runs a double directly, as the engine itself would act (`docker stop`).
    fn double(&self, tool: &str, args: &[&str]) {
        let out = Command::new(doubles().join(tool))
            .args(args)
            .env("DOUBLE_STATE", self.state())
            .output()
            .unwrap();
        common::assert_success(&out);
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
            .env_remove("DOUBLE_NOT_READY")
            .env_remove("DOUBLE_SLOW")
            .env_remove("DOUBLE_SLOW_SECONDS")
            .env_remove("DOUBLE_INTERRUPT")
            .env_remove("XTASK_ALLOW_ROOTLESS")
            .env_remove("KIND_EXPERIMENTAL_PROVIDER")
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
    // The name local-registry-hosting gives as hostFromContainerRuntime has
    // a hosts.toml too, so containerd pulls it over plain HTTP.
    assert_eq!(
        std::fs::read_to_string(
            nodes.join(
                "local-control-plane/etc/containerd/certs.d/platform-registry:5000/hosts.toml"
            )
        )
        .unwrap(),
        "[host.\"http://platform-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    );
    // Every registry answered /v2/ before the cluster was made.
    let kind_create = pos(&calls, "kind create");
    for name in ["platform-mirror-docker-io", "platform-mirror-quay-io"] {
        let probe = pos(
            &calls,
            &format!("docker exec {name} wget -q -O /dev/null http://127.0.0.1:5000/v2/"),
        );
        assert!(probe < kind_create, "{}", calls.join("\n"));
    }
    // Cilium, its operator and CoreDNS rolled out before Flux was installed.
    let flux = calls
        .iter()
        .position(|c| c.contains("install.yaml"))
        .unwrap();
    for w in [
        "daemonset/cilium",
        "deployment/cilium-operator",
        "deployment/coredns",
    ] {
        let r = calls
            .iter()
            .position(|c| c.contains(&format!("rollout status {w} ")))
            .unwrap_or_else(|| panic!("no rollout of {w}:\n{}", calls.join("\n")));
        assert!(r < flux, "{w} after the Flux install");
    }
    assert!(stderr.contains("waits: "), "{stderr}");
    assert!(stderr.contains("of 20.0s used; longest: "), "{stderr}");

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

#[test]
fn the_kind_config_handed_to_kind_binds_loopback_only() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    assert!(has(&calls, "kind create cluster --name local --config"));
    let handed = f.state().join("kind-config-local.yaml");
    let kind = xtask::cluster::kind::read_kind_file(&handed).unwrap();
    assert_eq!(kind.listens.len(), 2, "{kind:?}");
    for (addr, port) in &kind.listens {
        assert_eq!(addr.to_string(), "127.0.0.1", "host port {port}");
    }
    // No warning about ports open to the network.
    assert!(!stderr.contains("every interface"), "{stderr}");
}

#[test]
fn the_kubeconfig_is_written_private_and_atomically() {
    use std::os::unix::fs::PermissionsExt;
    let Some(f) = Fixture::new() else { return };
    // A kubeconfig an older run left world-readable.
    let path = f.cache().join("kubeconfig-local");
    write(&path, "stale");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "kubeconfig mode {mode:o}");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("current-context: kind-local")
    );
    let leftovers: Vec<_> = std::fs::read_dir(f.cache())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_budget_starts_once_the_cluster_exists() {
    let Some(f) = Fixture::new() else { return };
    // kind create takes 6 s (a cold node-image pull); the budget is 5 s.
    let mut c = f.bootstrap(&["--mirrors", "false", "--timeout", "5s"]);
    c.env("DOUBLE_SLOW", "kind create")
        .env("DOUBLE_SLOW_SECONDS", "6");
    let (ok, _, stderr, _) = f.run(c);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("of 5.0s used"), "{stderr}");
    let help = f.run(f.cmd(&["bootstrap", "--help"])).1;
    assert!(help.contains("[default: 20m]"), "{help}");
    assert!(
        help.contains("the clock starts once the cluster exists"),
        "{help}"
    );
}

#[test]
fn a_crash_looping_cilium_is_named_with_its_pods_and_events() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.bootstrap(&["--mirrors", "false", "--timeout", "3s"]);
    c.env("DOUBLE_NOT_READY", "cilium");
    let (ok, _, stderr, calls) = f.run(c);
    assert!(!ok);
    assert!(
        stderr.contains(
            "step 4/9 (CNI (Cilium)) failed: kube-system/daemonset/cilium did not roll out"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("timed out waiting for the condition"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pod cilium-double: Running; cilium waiting CrashLoopBackOff: back-off 40s restarting failed container, 4 restart(s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Warning BackOff: Back-off restarting failed container cilium"),
        "{stderr}"
    );
    assert!(
        stderr.contains("time budget (--timeout):") && stderr.contains("longest: daemonset/cilium"),
        "{stderr}"
    );
    // It stops there: no node wait that would blame the nodes later.
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("--for=condition=Ready nodes"))
    );
}

#[test]
fn a_registry_that_never_answers_is_named_with_its_logs() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.bootstrap(&["--timeout", "2s"]);
    c.env("DOUBLE_NOT_READY", "platform-mirror-docker-io");
    let (ok, _, stderr, calls) = f.run(c);
    assert!(!ok);
    assert!(
        stderr.contains(
            "step 2/9 (Registries) failed: platform-mirror-docker-io does not answer /v2/ after 2s"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("no such host"), "{stderr}");
    assert!(!has(&calls, "kind create"));
    // The mirrors run registry:3 (distribution 2.8 crash-loops offline).
    assert!(
        calls
            .iter()
            .filter(|c| c.starts_with("docker run"))
            .all(|c| c.ends_with(" registry:3")),
        "{}",
        calls.join("\n")
    );
}

#[test]
fn a_registry_2_container_from_an_older_run_is_replaced() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    std::fs::write(
        f.state().join("containers/platform-registry/image"),
        "registry:2\n",
    )
    .unwrap();
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    assert!(pos(&calls, "docker rm -f -v platform-registry") < pos(&calls, "docker run"));
    assert!(
        stderr.contains("replaced (registry:2 -> registry:3)"),
        "{stderr}"
    );
}

#[test]
fn a_changed_kind_config_is_named_and_recreate_applies_it() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let config = f.root().join("clusters/local/kind.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "- role: worker\n",
        "- role: worker\n  labels: {tier: edge}\n",
    );
    std::fs::write(&config, text).unwrap();
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    assert!(!has(&calls, "kind create"));
    assert!(
        stderr.contains("changed since cluster local was created; the running cluster keeps its old shape: `cargo xtask bootstrap --recreate` applies it"),
        "{stderr}"
    );
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false", "--recreate"]));
    assert!(ok, "{stderr}");
    assert!(has(&calls, "kind create"));
    assert!(!stderr.contains("changed since"), "{stderr}");
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok && !stderr.contains("changed since"), "{stderr}");
}

#[test]
fn a_stopped_cluster_is_started_again() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    // Docker restarted: kind's node containers stay stopped.
    f.double(
        "docker",
        &[
            "stop",
            "local-control-plane",
            "local-worker",
            "local-worker2",
            "local-worker3",
        ],
    );
    let (ok, _, stderr, _) = f.run(f.cmd(&["status"]));
    assert!(!ok);
    assert!(
        stderr.contains("cluster local is stopped (4 of its node containers are not running"),
        "{stderr}"
    );
    assert!(
        stderr.contains("run `cargo xtask bootstrap` to start it"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("failed to get cluster internal kubeconfig"),
        "{stderr}"
    );
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let start = pos(
        &calls,
        "docker start local-control-plane local-worker local-worker2 local-worker3",
    );
    assert!(start < pos(&calls, "kind get kubeconfig"));
    assert!(calls.iter().any(|c| c.contains("get --raw /readyz")));
    assert!(!has(&calls, "kind create"));
    assert!(stderr.contains("4 stopped node(s) started"), "{stderr}");
}

#[test]
fn an_interrupted_cilium_install_is_recovered() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.bootstrap(&["--mirrors", "false"]);
    c.env("DOUBLE_INTERRUPT", "helm upgrade");
    let (ok, _, stderr, _) = f.run(c);
    assert!(!ok);
    assert!(
        stderr.contains("step 4/9 (CNI (Cilium)) failed"),
        "{stderr}"
    );
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    assert!(has(&calls, "helm list -a -n kube-system"));
    let uninstall = pos(&calls, "helm uninstall cilium -n kube-system");
    assert!(uninstall < pos(&calls, "helm upgrade --install cilium"));
    assert!(
        stderr.contains(
            "cilium-1.18.2 installed (recovered from pending-install, left by an interrupted helm)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_rootless_engine_is_named_in_preflight() {
    let Some(f) = Fixture::new() else { return };
    std::fs::write(f.state().join("docker-rootless"), "").unwrap();
    preflight_fails(&f, f.bootstrap(&[]), "rootless Docker: Cilium needs BPF");
    // Host ports below the unprivileged start cannot be bound rootless.
    let config = f.root().join("clusters/local/kind.yaml");
    let kind = xtask::cluster::kind::kind_config(&xtask::cluster::kind::KindOptions::default());
    std::fs::write(&config, serde_yaml::to_string(&kind).unwrap()).unwrap();
    let start = xtask::cluster::engine::unprivileged_port_start().unwrap_or(0);
    let mut c = f.bootstrap(&[]);
    c.env("XTASK_ALLOW_ROOTLESS", "1");
    if start > 80 {
        preflight_fails(
            &f,
            c,
            &format!(
                "rootless Docker cannot bind host port(s) 80, 443 (below net.ipv4.ip_unprivileged_port_start={start}): run `sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80`"
            ),
        );
    } else {
        eprintln!("note: ip_unprivileged_port_start={start} lets ports 80/443 bind here");
    }
}

#[test]
fn rootless_is_allowed_on_request_with_a_warning() {
    let Some(f) = Fixture::new() else { return };
    std::fs::write(f.state().join("docker-rootless"), "").unwrap();
    let mut c = f.bootstrap(&["--mirrors", "false"]);
    c.env("XTASK_ALLOW_ROOTLESS", "1");
    let (ok, _, stderr, _) = f.run(c);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: rootless Docker: Cilium needs BPF"),
        "{stderr}"
    );
}

#[test]
fn podman_is_handed_to_kind_as_its_provider() {
    let Some(f) = Fixture::new() else { return };
    let bin = f.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(doubles().join("docker"), bin.join("podman")).unwrap();
    let mut c = f.bootstrap(&["--mirrors", "false"]);
    c.env("XTASK_DOCKER", bin.join("podman"));
    let (ok, _, stderr, calls) = f.run(c);
    assert!(ok, "{stderr}");
    assert!(has(&calls, "podman info --format"), "{}", calls.join("\n"));
    assert_eq!(
        std::fs::read_to_string(f.state().join("kind-provider"))
            .unwrap()
            .trim(),
        "podman"
    );
    // A stopped Podman machine is named as such.
    std::fs::write(f.state().join("docker-down"), "").unwrap();
    let mut c = f.bootstrap(&[]);
    c.env("XTASK_DOCKER", bin.join("podman"));
    preflight_fails(
        &f,
        c,
        "podman is installed but its daemon is not reachable: start Podman",
    );
}

#[test]
fn status_down_and_reconcile_without_docker_give_the_preflight_line() {
    let Some(f) = Fixture::new() else { return };
    std::fs::write(f.state().join("docker-down"), "").unwrap();
    let line = "docker is installed but its daemon is not reachable: start Docker (Cannot connect to the Docker daemon";
    let root = f.root();
    for args in [
        vec!["status"],
        vec!["down"],
        vec!["reconcile", "--root", root.to_str().unwrap()],
    ] {
        let (ok, stdout, stderr, calls) = f.run(f.cmd(&args));
        assert!(!ok, "{args:?}");
        assert!(stderr.contains(line), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(!has(&calls, "kind"), "{args:?}: {}", calls.join("\n"));
    }
    // JSON readers get a document with the error as data.
    let (ok, stdout, _, _) = f.run(f.cmd(&["status", "--output", "json"]));
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["cluster"], "local");
    assert_eq!(v["ready"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with(line.split(" (").next().unwrap()),
        "{v}"
    );
}

#[test]
fn status_json_without_a_cluster_is_a_document() {
    let Some(f) = Fixture::new() else { return };
    let (ok, stdout, _, _) = f.run(f.cmd(&["status", "--output", "json"]));
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["error"],
        "cluster local does not exist: run `cargo xtask bootstrap` first"
    );
    let (_, help, _, _) = f.run(f.cmd(&["status", "--help"]));
    assert!(help.contains("The kind cluster to read"), "{help}");
    assert!(
        help.contains("one JSON document on stdout, always"),
        "{help}"
    );
}

#[test]
fn bootstrap_ends_with_the_ca_to_trust() {
    let Some(f) = Fixture::new() else { return };
    // Without the Secret yet, the command that fetches it.
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("kubectl --context kind-local -n cert-manager get secret selfsigned-ca -o jsonpath='{.data.ca\\.crt}' | base64 -d > local-ca.crt"),
        "{stderr}"
    );
    // With cert-manager's Secret: the CA as a file, and how to trust it.
    let ca = rcgen::generate_simple_self_signed(vec!["selfsigned-ca".into()])
        .unwrap()
        .cert
        .pem();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&ca);
    write(
        &f.state().join("secrets/cert-manager/selfsigned-ca.json"),
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "selfsigned-ca", "namespace": "cert-manager"},
                "data": {"ca.crt": b64, "tls.crt": b64, "tls.key": "cmVkYWN0ZWQ="}})
        .to_string(),
    );
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let path = f.cache().join("local-ca.crt");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ca);
    assert!(
        stderr.contains(&format!(
            "trust the cluster's CA so browsers accept the URLs: {}",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("update-ca-certificates"), "{stderr}");
}

/// A release server on 127.0.0.1 in this process: serves `files` by path
/// and records every requested path.
struct ReleaseServer {
    base: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ReleaseServer {
    fn start(files: Vec<(String, Vec<u8>)>) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(path.clone());
                let reply = match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend(body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&reply);
            }
        });
        Self { base, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// An install.yaml shaped like the release asset: its header, the
/// namespace, a CRD, RBAC, and one Deployment per controller.
fn install_yaml(version: &str) -> String {
    let mut y = format!(
        "---\n# This manifest was generated by flux. DO NOT EDIT.\n# Flux Version: {version}\n# Components: source-controller,kustomize-controller,helm-controller,notification-controller\napiVersion: v1\nkind: Namespace\nmetadata:\n  labels:\n    app.kubernetes.io/instance: flux-system\n    app.kubernetes.io/part-of: flux\n    app.kubernetes.io/version: {version}\n    pod-security.kubernetes.io/warn: restricted\n    pod-security.kubernetes.io/warn-version: latest\n  name: flux-system\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ocirepositories.source.toolkit.fluxcd.io\nspec:\n  group: source.toolkit.fluxcd.io\n  names:\n    kind: OCIRepository\n    listKind: OCIRepositoryList\n    plural: ocirepositories\n    shortNames: [ocirepo]\n    singular: ocirepository\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: cluster-reconciler-flux-system\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n- kind: ServiceAccount\n  name: kustomize-controller\n  namespace: flux-system\n"
    );
    for c in [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
        "notification-controller",
    ] {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {c}\n  namespace: flux-system\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels:\n    app.kubernetes.io/component: {c}\n    app.kubernetes.io/part-of: flux\n  name: {c}\n  namespace: flux-system\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {c}\n  template:\n    metadata:\n      labels:\n        app: {c}\n    spec:\n      containers:\n      - name: manager\n        image: ghcr.io/fluxcd/{c}:v1.0.0\n        args: [--events-addr=http://notification-controller.flux-system.svc.cluster.local./, --watch-all-namespaces=true, --log-level=info, --log-encoding=json]\n      serviceAccountName: {c}\n"
        ));
    }
    y
}

#[test]
fn the_flux_install_download_is_checked_against_the_release_checksums() {
    use xtask::cluster::flux_install::{FluxPin, ensure_manifest_at, sha256_hex};
    // The download goes through curl, as on a laptop.
    if common::tool("curl").is_none() {
        return;
    }
    let version = "v2.9.5";
    let good = install_yaml(version).into_bytes();
    let digest = sha256_hex(&good);
    let other = "e".repeat(64);
    // goreleaser's format: `<sha256>  <asset>`, every archive plus the manifests.
    let sums = |install: &str| {
        format!(
            "{other}  flux_2.9.5_darwin_arm64.tar.gz\n{other}  flux_2.9.5_linux_amd64.tar.gz\n{install}{other}  manifests.tar.gz\n"
        )
    };
    let release = "/fluxcd/flux2/releases/download/v2.9.5";
    let serve = |install: Vec<u8>, checksums: String| {
        ReleaseServer::start(vec![
            (format!("{release}/install.yaml"), install),
            (
                format!("{release}/flux_2.9.5_checksums.txt"),
                checksums.into_bytes(),
            ),
        ])
    };
    let pin_for = |server: &ReleaseServer, sha256: &str| FluxPin {
        version: version.into(),
        install_url: format!(
            "{}/fluxcd/flux2/releases/download/{{version}}/install.yaml",
            server.base
        ),
        sha256: sha256.into(),
    };
    let dir = tempfile::tempdir().unwrap();

    // No sha256 recorded: checked against the checksums file, digest printed.
    let server = serve(good.clone(), sums(&format!("{digest}  install.yaml\n")));
    let path = dir.path().join("a/install.yaml");
    let (got, note) = ensure_manifest_at(&pin_for(&server, ""), &path).unwrap();
    assert_eq!(got, path);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert!(note.contains("matches flux_2.9.5_checksums.txt"), "{note}");
    assert!(
        note.contains(&format!("record sha256 = \"{digest}\"")),
        "{note}"
    );
    assert_eq!(
        server.requests(),
        [
            format!("{release}/install.yaml"),
            format!("{release}/flux_2.9.5_checksums.txt")
        ]
    );
    // A second run uses the checked copy without asking the server.
    let (_, note) = ensure_manifest_at(&pin_for(&server, ""), &path).unwrap();
    assert_eq!(note, "cached");
    assert_eq!(server.requests().len(), 2);
    // A cached file that was never checked (an older run) is fetched again.
    std::fs::remove_file(path.with_extension("yaml.sha256")).unwrap();
    std::fs::write(&path, b"apiVersion: v1\nkind: Namespace\n").unwrap();
    ensure_manifest_at(&pin_for(&server, ""), &path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert_eq!(server.requests().len(), 4);

    // A download that does not match the checksums file is not cached.
    let mut tampered = good.clone();
    tampered.extend_from_slice(b"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n");
    let server = serve(tampered, sums(&format!("{digest}  install.yaml\n")));
    let path = dir.path().join("b/install.yaml");
    let err = ensure_manifest_at(&pin_for(&server, ""), &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("does not match the {digest} of")),
        "{err}"
    );
    assert!(
        err.contains("flux_2.9.5_checksums.txt; nothing was cached"),
        "{err}"
    );
    assert!(!path.exists());
    assert!(!path.with_extension("yaml.part").exists());

    // A checksums file without the asset: no trust on first use.
    let server = serve(good.clone(), sums(""));
    let path = dir.path().join("c/install.yaml");
    let err = ensure_manifest_at(&pin_for(&server, ""), &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("flux_2.9.5_checksums.txt lists no install.yaml"),
        "{err}"
    );
    assert!(!path.exists());

    // A recorded sha256 is the check; the checksums file is not fetched.
    let server = serve(good.clone(), String::new());
    let path = dir.path().join("d/install.yaml");
    let (_, note) = ensure_manifest_at(&pin_for(&server, &digest), &path).unwrap();
    assert_eq!(note, "downloaded, sha256 verified");
    assert_eq!(server.requests(), [format!("{release}/install.yaml")]);
    let err = ensure_manifest_at(&pin_for(&server, &other), &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match the"), "{err}");
}

#[test]
fn an_interrupted_cilium_upgrade_is_rolled_back_then_upgraded() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let cilium = f.root().join("infra/cilium.yaml");
    let text = std::fs::read_to_string(&cilium).unwrap();
    std::fs::write(&cilium, text.replace("version: 1.18.2", "version: 1.18.3")).unwrap();
    let mut c = f.bootstrap(&["--mirrors", "false"]);
    c.env("DOUBLE_INTERRUPT", "helm upgrade");
    let (ok, _, _, _) = f.run(c);
    assert!(!ok);
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    let rollback = pos(&calls, "helm rollback cilium -n kube-system");
    assert!(
        rollback
            < pos(
                &calls,
                "helm upgrade --install cilium cilium --repo https://helm.cilium.io/ --version 1.18.3"
            )
    );
    assert!(
        stderr.contains("cilium-1.18.3 installed (recovered from pending-upgrade"),
        "{stderr}"
    );
}

#[test]
fn a_registry_that_publishes_no_port_is_named_and_recreated() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, stderr, _) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    // Someone ran it again by hand without -p: `docker port` exits 1.
    f.double("docker", &["rm", "-f", "-v", "platform-registry"]);
    f.double(
        "docker",
        &[
            "run",
            "-d",
            "--restart=always",
            "--name",
            "platform-registry",
            "registry:3",
        ],
    );
    let (ok, stdout, stderr, _) = f.run(f.cmd(&["status", "--output", "json"]));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["registry"]["error"],
        "platform-registry publishes no port: `cargo xtask bootstrap` recreates it"
    );
    let (ok, _, stderr, calls) = f.run(f.bootstrap(&["--mirrors", "false"]));
    assert!(ok, "{stderr}");
    assert!(
        pos(&calls, "docker port platform-registry")
            < pos(&calls, "docker rm -f -v platform-registry")
    );
    assert!(has(
        &calls,
        &format!(
            "docker run -d --restart=always --name platform-registry --label dev.devantler.platform=registry -p 127.0.0.1:{}:5000",
            f.registry_port
        )
    ));
    assert!(
        stderr.contains("platform-registry recreated (it published no port)"),
        "{stderr}"
    );
}

#[test]
fn nodes_that_stay_not_ready_are_named_with_their_condition() {
    let Some(f) = Fixture::new() else { return };
    let mut c = f.bootstrap(&["--mirrors", "false", "--timeout", "3s"]);
    c.env("DOUBLE_NOT_READY", "nodes");
    let (ok, _, stderr, _) = f.run(c);
    assert!(!ok);
    assert!(
        stderr.contains("step 4/9 (CNI (Cilium)) failed: the nodes are not Ready: kubectl failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "node local-worker2: Ready=False KubeletNotReady: container runtime network not ready"
        ),
        "{stderr}"
    );
    let budget = stderr
        .lines()
        .find(|l| l.starts_with("  time budget (--timeout):"))
        .unwrap_or_else(|| panic!("no budget line in:\n{stderr}"));
    assert!(budget.contains("nodes Ready "), "{budget}");
}

#[test]
fn preflight_tells_a_user_without_socket_access_how_to_get_it() {
    let Some(f) = Fixture::new() else { return };
    std::fs::write(f.state().join("docker-denied"), "").unwrap();
    preflight_fails(
        &f,
        f.bootstrap(&[]),
        "docker is installed but its daemon is not reachable: give your user access to its socket (`sudo usermod -aG docker $USER`, then log in again) (permission denied while trying to connect",
    );
}
