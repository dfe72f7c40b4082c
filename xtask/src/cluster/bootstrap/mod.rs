//! `cargo xtask bootstrap`: the whole local platform in nine idempotent steps
//! (preflight, registries, cluster, CNI, Flux, secrets, publish, root sync,
//! wait). Each step converges: a re-run skips or reuses what exists, so a
//! failed run is fixed and re-run, never cleaned up by hand.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

pub use super::cni::HelmInstall;
use super::cni::{cilium_install, install_cilium, wait_cni};
use super::flux::Kube;
use super::flux_install::FluxPin;
use super::steps::{Budget, Progress, StepFailed, Steps};
use super::{Toolbox, age_key, engine, kind, registry};
use flux_render::RenderedCluster;

mod preflight;
pub use preflight::{Ready, port_busy, port_busy_on, preflight};

/// The step titles, in order.
pub const STEPS: [&str; 9] = [
    "Preflight",
    "Registries",
    "Cluster",
    "CNI (Cilium)",
    "Flux",
    "Secrets",
    "Publish",
    "Root sync",
    "Wait",
];

#[derive(Clone, Debug)]
pub struct Options {
    /// The tree to publish and render (the repository root).
    pub root: PathBuf,
    /// The checkout whose `xtask/tools.toml` pins kind and Flux; the tree by default.
    pub checkout: PathBuf,
    pub cluster: String,
    /// `clusters/<cluster>/kind.yaml` unless given.
    pub kind_config: PathBuf,
    pub registry_port: u16,
    pub mirrors: bool,
    pub recreate: bool,
    /// For every wait together (Cilium, CoreDNS, nodes, Flux controllers,
    /// Flux objects). The clock starts once the cluster exists: creating it
    /// and pulling the node image are not counted.
    pub timeout: Duration,
    /// How long each registry may take to answer `/v2/`.
    pub registry_wait: Duration,
}

/// The default `--timeout`: a cold laptop pulls Cilium, the Flux
/// controllers and every chart's images within it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

impl Options {
    pub fn new(root: PathBuf, cluster: &str) -> Self {
        Self {
            kind_config: root.join("clusters").join(cluster).join("kind.yaml"),
            checkout: root.clone(),
            root,
            cluster: cluster.to_string(),
            registry_port: registry::DEFAULT_PORT,
            mirrors: true,
            recreate: false,
            timeout: DEFAULT_TIMEOUT,
            registry_wait: Duration::from_secs(120),
        }
    }
}

/// The root sync objects as the tree should declare them
/// (`clusters/<cluster>/flux-system/`): the OCIRepository on the in-cluster
/// registry and the root Kustomization of the cluster folder.
pub fn root_sync(cluster: &str, tag: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": { "name": "flux-system", "namespace": "flux-system" },
            "spec": {
                "interval": "30s",
                "url": format!("oci://{}:5000/{}", registry::REGISTRY_NAME, registry::REPOSITORY),
                "insecure": true,
                "ref": { "tag": tag },
            }
        }),
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": { "name": "flux-system", "namespace": "flux-system" },
            "spec": {
                "interval": "1m",
                "path": format!("./clusters/{cluster}"),
                "prune": true,
                "sourceRef": { "kind": "OCIRepository", "name": "flux-system" },
            }
        }),
    ]
}

/// The root sync objects among the cluster folder's rendered objects.
pub fn root_sync_from_tree(root_objects: &[Value]) -> Vec<Value> {
    root_objects
        .iter()
        .filter(|o| {
            o.pointer("/metadata/name").and_then(Value::as_str) == Some("flux-system")
                && matches!(
                    o.get("kind").and_then(Value::as_str),
                    Some("OCIRepository" | "Kustomization")
                )
        })
        .cloned()
        .collect()
}

/// What to wait for, in order: (kind, namespace, name).
pub fn wait_order(rendered: &RenderedCluster) -> Vec<(String, String, String)> {
    let mut out = vec![
        (
            "OCIRepository".into(),
            "flux-system".into(),
            "flux-system".into(),
        ),
        (
            "Kustomization".into(),
            "flux-system".into(),
            "flux-system".into(),
        ),
    ];
    for k in &rendered.kustomizations {
        out.push((
            "Kustomization".into(),
            k.flux.namespace.clone(),
            k.flux.name.clone(),
        ));
    }
    for k in &rendered.kustomizations {
        for o in &k.objects {
            if o.get("kind").and_then(Value::as_str) == Some("HelmRelease") {
                let ns = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .or_else(|| {
                        k.flux
                            .object
                            .pointer("/spec/targetNamespace")
                            .and_then(Value::as_str)
                    })
                    .unwrap_or("default");
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                out.push(("HelmRelease".into(), ns.into(), name.into()));
            }
        }
    }
    out
}

/// `https://<host>` for every host under the cluster's domain that the
/// rendered objects route (Ingress hosts, IngressRoute rules, chart values).
pub fn urls(rendered: &RenderedCluster) -> Vec<String> {
    let all: Vec<&Value> = rendered
        .root_objects
        .iter()
        .chain(rendered.kustomizations.iter().flat_map(|k| &k.objects))
        .collect();
    let domain = all
        .iter()
        .find(|o| {
            o.get("kind").and_then(Value::as_str) == Some("ConfigMap")
                && o.pointer("/data/domain").is_some()
        })
        .and_then(|o| o.pointer("/data/domain").and_then(Value::as_str))
        .unwrap_or("platform.lan")
        .to_string();
    let re = regex::Regex::new(&format!(
        r"(?:^|[^a-z0-9.-])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+{})(?:$|[^a-z0-9.-])",
        regex::escape(&domain)
    ))
    .expect("a valid regex");
    let mut hosts = BTreeSet::new();
    for o in all {
        let text = o.to_string();
        for c in re.captures_iter(&text) {
            hosts.insert(c[1].to_string());
        }
    }
    hosts.into_iter().map(|h| format!("https://{h}")).collect()
}

/// The result of a bootstrap, for the final summary.
pub struct Summary {
    pub urls: Vec<String>,
    pub total: Duration,
    pub kubeconfig: PathBuf,
    pub digest: String,
    /// Where the waits' budget went.
    pub budget: String,
    /// The cluster CA that signs the platform's certificates.
    pub ca: CaFile,
}

/// Where the user finds the CA to trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaFile {
    /// Copied out of the cluster.
    Saved(PathBuf),
    /// Not readable yet (or not declared): the command that fetches it.
    FetchWith(String),
}

/// Publishes the tree to the local registry through the secrets gate:
/// `latest` and the short sha, or `latest` and the dirty tag for a working
/// tree with uncommitted changes (the inner loop publishes those on purpose).
pub fn publish(
    registry: &oci_artifact::Registry,
    checkout: &Path,
    root: &Path,
    port: u16,
) -> anyhow::Result<String> {
    let ids = sops::Identities::from_env().ok();
    let shipment = crate::ship::prepare(
        &crate::ship::ShipOptions {
            root: root.to_path_buf(),
            dirty: crate::ship::DirtyTree::Stamp,
            source: None,
            revision: None,
            created: None,
            cache: crate::ship::cache::location(Some(checkout)),
        },
        ids.as_ref(),
    )?;
    let a = shipment.artifact;
    let mut tags = vec!["latest".to_string()];
    tags.extend(shipment.default_tags.into_iter().filter(|t| t != "latest"));
    let reference = format!("oci://localhost:{port}/{}", registry::REPOSITORY);
    let out = registry.publish(
        &a,
        &reference,
        &tags,
        &oci_artifact::Auth::Anonymous,
        false,
        false,
    )?;
    Ok(if out.up_to_date {
        format!("{} up to date", short_digest(&out.digest))
    } else {
        format!(
            "pushed {} ({})",
            short_digest(&out.digest),
            out.pushed_tags.join(", ")
        )
    })
}

fn short_digest(d: &str) -> String {
    d.chars().take(19).collect()
}

/// Writes kind's kubeconfig for the cluster where [`super::kube`] reads it:
/// mode 0600 (it holds the cluster-admin key) and atomically, as kind does.
pub fn write_kubeconfig(t: &Toolbox, name: &str) -> anyhow::Result<PathBuf> {
    let text = t
        .kind_cmd()
        .args(["get", "kubeconfig", "--name", name])
        .read()?;
    let path = super::kubeconfig_path(name);
    write_private(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes a file only its owner can read (0600 from its first byte:
/// tempfile creates it so), fsynced, renamed over the target.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".xtask-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Waits for every object of `order` before `deadline`, one progress line each.
pub fn wait_all(
    kube: &Kube,
    order: &[(String, String, String)],
    deadline: Instant,
    p: &Progress,
) -> anyhow::Result<()> {
    let budget = Budget::start(deadline.saturating_duration_since(Instant::now()));
    wait_all_in(kube, order, &budget, p)
}

/// Waits for every object of `order` within `budget`, recording each wait.
pub fn wait_all_in(
    kube: &Kube,
    order: &[(String, String, String)],
    budget: &Budget,
    p: &Progress,
) -> anyhow::Result<()> {
    for (kind, ns, name) in order {
        let started = Instant::now();
        let label = format!("{kind} {ns}/{name}");
        p.tick(&label);
        budget.time(&label, |left| {
            kube.wait_ready(kind, ns, name, left, |pr| {
                p.tick(&format!("{label}: {} {}", pr.reason, pr.message));
            })
        })?;
        p.note(&format!(
            "{label} Ready ({})",
            super::steps::fmt_duration(started.elapsed())
        ));
    }
    Ok(())
}

/// Polls until the API server answers `/readyz` (after its node was started).
pub fn wait_api(kube: &Kube, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let out = kube.cmd().args(["get", "--raw", "/readyz"]).output()?;
        if out.status.success() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "the API server does not answer after {}s ({}): `cargo xtask bootstrap --recreate` makes a fresh cluster",
                timeout.as_secs(),
                engine::first_line(&String::from_utf8_lossy(&out.stderr))
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The Secret holding the CA that signs the platform's certificates: the
/// CA ClusterIssuer's `spec.ca.secretName`, in the namespace of the
/// Certificate that writes it (cert-manager's by default).
pub fn ca_secret(rendered: &RenderedCluster) -> Option<(String, String)> {
    let objects: Vec<(&Value, Option<&str>)> = rendered
        .kustomizations
        .iter()
        .flat_map(|k| {
            let target = k
                .flux
                .object
                .pointer("/spec/targetNamespace")
                .and_then(Value::as_str);
            k.objects.iter().map(move |o| (o, target))
        })
        .collect();
    let secret = objects.iter().find_map(|(o, _)| {
        (o.get("kind").and_then(Value::as_str) == Some("ClusterIssuer"))
            .then(|| o.pointer("/spec/ca/secretName").and_then(Value::as_str))
            .flatten()
    })?;
    let ns = objects
        .iter()
        .find(|(o, _)| {
            o.get("kind").and_then(Value::as_str) == Some("Certificate")
                && o.pointer("/spec/secretName").and_then(Value::as_str) == Some(secret)
        })
        .and_then(|(o, target)| {
            o.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .or(*target)
        })
        .unwrap_or("cert-manager");
    Some((ns.to_string(), secret.to_string()))
}

/// Copies the CA certificate (public; the key stays in the cluster) to
/// `<state dir>/<cluster>-ca.crt`, or says how to fetch it.
pub fn fetch_ca(kube: &Kube, rendered: &RenderedCluster, cluster: &str) -> CaFile {
    let Some((ns, name)) = ca_secret(rendered) else {
        return CaFile::FetchWith(format!(
            "clusters/{cluster} declares no CA ClusterIssuer (spec.ca.secretName)"
        ));
    };
    let by_hand = format!(
        "kubectl --context {} -n {ns} get secret {name} -o jsonpath='{{.data.ca\\.crt}}' | base64 -d > {cluster}-ca.crt",
        kind::context(cluster)
    );
    let pem = kube
        .get("secret", Some(&ns), &name)
        .ok()
        .flatten()
        .and_then(|s| {
            ["/data/ca.crt", "/data/tls.crt"]
                .iter()
                .find_map(|p| s.pointer(p).and_then(Value::as_str).map(str::to_string))
        })
        .and_then(|b64| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .filter(|pem| pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    let Some(pem) = pem else {
        return CaFile::FetchWith(by_hand);
    };
    let path = super::state_dir().join(format!("{cluster}-ca.crt"));
    match exec::fsutil::write_atomic(&path, &pem) {
        Ok(()) => CaFile::Saved(path),
        Err(_) => CaFile::FetchWith(by_hand),
    }
}

/// Prints the budget report when a step that spends it fails.
fn or_report<T>(r: Result<T, StepFailed>, budget: &Budget) -> Result<T, StepFailed> {
    if r.is_err() {
        eprintln!("  time budget (--timeout): {}", budget.report());
    }
    r
}

/// Runs every step. The runtime is the verb's (one per process).
pub fn run(o: &Options, registry: &oci_artifact::Registry) -> Result<Summary, StepFailed> {
    let mut steps = Steps::new(STEPS.len());

    let ready = steps.run(STEPS[0], |p| match preflight(o) {
        Ok(r) => {
            for n in &r.notes {
                p.note(&format!("warning: {n}"));
            }
            let outcome = format!(
                "{} Flux Kustomization(s), {} key(s){}",
                r.rendered.kustomizations.len(),
                r.keys.len(),
                if r.cluster_exists {
                    ", cluster exists"
                } else {
                    ""
                }
            );
            Ok((r, outcome))
        }
        Err(problems) => Err(super::steps::listed(&problems)),
    })?;
    let t = &ready.tools;
    let kube = super::kube(t, &o.cluster);
    let context = kind::context(&o.cluster);

    let port = steps.run(STEPS[1], |p| {
        let local = registry::local(o.registry_port);
        if o.recreate && registry::remove(t, &local.name)? {
            p.note("removed platform-registry (--recreate)");
        }
        let mut what = registry::ensure(t, &local)?;
        let port = match registry::published_port(t, &local.name)? {
            Some(port) => port,
            None => {
                // Run without `-p` (by hand, or an older tool): publish needs the port.
                p.note("platform-registry publishes no port: recreating it");
                registry::remove(t, &local.name)?;
                registry::ensure(t, &local)?;
                what = "recreated (it published no port)".into();
                registry::published_port(t, &local.name)?.unwrap_or(o.registry_port)
            }
        };
        let mut regs = vec![registry::local(port)];
        let mut outcome = format!("{} {what} on 127.0.0.1:{port}", local.name);
        if o.mirrors {
            let mut done = Vec::new();
            for m in registry::mirrors() {
                p.note(&format!("mirror {}", m.host));
                done.push(registry::ensure(t, &m)?);
                regs.push(m);
            }
            let created = done.iter().filter(|d| *d == "created").count();
            outcome.push_str(&format!("; {} mirror(s) ({created} new)", done.len()));
        }
        for r in &regs {
            p.note(&format!("waiting for {} to answer /v2/", r.name));
            registry::wait_ready(t, r, o.registry_wait)?;
        }
        outcome.push_str(", all answer /v2/");
        Ok((port, outcome))
    })?;

    steps.run(STEPS[2], |p| {
        let mut exists = ready.cluster_exists;
        if exists && o.recreate {
            p.note(&format!("deleting cluster {} (--recreate)", o.cluster));
            kind::delete(t, &o.cluster)?;
            exists = false;
        }
        let mut what = if exists {
            "exists".to_string()
        } else {
            p.note(&format!("kind create cluster --name {}", o.cluster));
            kind::create(t, &o.cluster, &o.kind_config, None)?;
            kind::record_config(&o.cluster, &o.kind_config)?;
            "created".to_string()
        };
        let mut started = false;
        if exists {
            if kind::config_changed(&o.cluster, &o.kind_config) == Some(true) {
                let msg = format!(
                    "{} changed since cluster {} was created; the running cluster keeps its old shape: `cargo xtask bootstrap --recreate` applies it",
                    o.kind_config.display(),
                    o.cluster
                );
                p.note(&format!("warning: {msg}"));
                eprintln!("warning: {msg}");
                what.push_str(" (kind.yaml changed: --recreate applies it)");
            }
            let stopped = kind::stopped_nodes(t, &o.cluster)?;
            if !stopped.is_empty() {
                p.note(&format!("starting {} stopped node(s)", stopped.len()));
                kind::start_nodes(t, &stopped)?;
                what.push_str(&format!(", {} stopped node(s) started", stopped.len()));
                started = true;
            }
        }
        write_kubeconfig(t, &o.cluster)?;
        if started {
            p.note("waiting for the API server");
            wait_api(&kube, Duration::from_secs(120))?;
        }
        let mut regs = vec![registry::local(port)];
        if o.mirrors {
            regs.extend(registry::mirrors());
        }
        for r in &regs {
            registry::connect(t, &r.name)?;
        }
        let nodes = kind::nodes(t, &o.cluster)?;
        p.note(&format!("hosts.toml on {} node(s)", nodes.len()));
        for node in &nodes {
            for r in &regs {
                for host in r.hosts() {
                    registry::write_hosts(t, node, r, host).with_context(|| {
                        format!("writing {}/{host}/hosts.toml on {node}", registry::CERTS_D)
                    })?;
                }
            }
        }
        let names: usize = regs.iter().map(|r| r.hosts().len()).sum();
        kube.apply(&[registry::local_registry_hosting(port)])?;
        Ok((
            (),
            format!(
                "{} {what}, {} node(s), {names} registry host name(s)",
                o.cluster,
                nodes.len(),
            ),
        ))
    })?;

    // The waits' clock starts here: creating the cluster is not counted.
    let budget = Budget::start(o.timeout);

    let cni = steps.run(STEPS[3], |p| {
        let cilium = cilium_install(&ready.rendered)?;
        let what = install_cilium(&t.helm, &kube, &context, &cilium, p)?;
        wait_cni(&kube, &cilium, &budget, p)?;
        Ok(((), format!("{what}; Cilium, nodes and CoreDNS Ready")))
    });
    or_report(cni, &budget)?;

    let flux = steps.run(STEPS[4], |p| {
        let how = budget.time("Flux controllers", |left| {
            super::flux_install::install(&kube, &ready.pin, left, &|m| p.note(m))
        })?;
        Ok(((), how))
    });
    or_report(flux, &budget)?;

    steps.run(STEPS[5], |_| {
        kube.apply(&[age_key::sops_age_secret(&ready.keys)])?;
        Ok((
            (),
            format!("flux-system/sops-age with {} key(s)", ready.keys.len()),
        ))
    })?;

    let digest = steps.run(STEPS[6], |_| {
        let outcome = publish(registry, &o.checkout, &o.root, port)?;
        Ok((outcome.clone(), outcome))
    })?;

    steps.run(STEPS[7], |p| {
        let objects = root_sync_from_tree(&ready.rendered.root_objects);
        if objects.len() != 2 {
            anyhow::bail!(
                "clusters/{}/flux-system must declare OCIRepository and Kustomization flux-system (found {})",
                o.cluster,
                objects.len()
            );
        }
        kube.apply(&objects)?;
        // Pick up a new artifact now rather than at the next interval.
        kube.request_reconcile("OCIRepository", "flux-system", "flux-system")?;
        p.note("applied OCIRepository and Kustomization flux-system");
        Ok(((), "applied, reconcile requested".to_string()))
    })?;

    let wait = steps.run(STEPS[8], |p| {
        let order = wait_order(&ready.rendered);
        wait_all_in(&kube, &order, &budget, p)?;
        Ok(((), format!("{} object(s) Ready", order.len())))
    });
    or_report(wait, &budget)?;

    Ok(Summary {
        urls: urls(&ready.rendered),
        total: steps.elapsed(),
        kubeconfig: kube.kubeconfig.clone(),
        digest,
        budget: budget.report(),
        ca: fetch_ca(&kube, &ready.rendered, &o.cluster),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_sync_matches_the_tree() {
        let root = crate::test_checkout();
        let dir = root.join("clusters/local/flux-system");
        let mut from_tree = Vec::new();
        for f in ["oci-repository.yaml", "flux-system.yaml"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            from_tree.extend(flux_render::parse_stream(&text).unwrap());
        }
        assert_eq!(from_tree, root_sync("local", "latest"));
        assert_eq!(root_sync_from_tree(&from_tree).len(), 2);
    }

    #[test]
    fn a_closed_port_is_free() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(port_busy(port));
        drop(l);
        assert!(!port_busy(port));
    }
}
