//! `cargo xtask bootstrap`: the whole local platform in nine idempotent steps
//! (preflight, registries, cluster, CNI, Flux, secrets, publish, root sync,
//! wait). Each step converges: a re-run skips or reuses what exists, so a
//! failed run is fixed and re-run, never cleaned up by hand.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::flux::Kube;
use super::flux_install::FluxPin;
use super::steps::{Progress, StepFailed, Steps};
use super::{Toolbox, age_key, kind, registry};
use crate::render::{self, RenderOptions, RenderedCluster};
use crate::runner::Cmd;

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
    pub cluster: String,
    /// `clusters/<cluster>/kind.yaml` unless given.
    pub kind_config: PathBuf,
    pub registry_port: u16,
    pub mirrors: bool,
    pub recreate: bool,
    /// For every wait together (nodes, controllers, Flux objects).
    pub timeout: Duration,
}

impl Options {
    pub fn new(root: PathBuf, cluster: &str) -> Self {
        Self {
            kind_config: root.join("clusters").join(cluster).join("kind.yaml"),
            root,
            cluster: cluster.to_string(),
            registry_port: registry::DEFAULT_PORT,
            mirrors: true,
            recreate: false,
            timeout: Duration::from_secs(600),
        }
    }
}

/// What preflight found: everything later steps need.
pub struct Ready {
    pub tools: Toolbox,
    pub rendered: RenderedCluster,
    pub keys: Vec<String>,
    pub pin: FluxPin,
    pub cluster_exists: bool,
    pub notes: Vec<String>,
}

/// Something listens on 127.0.0.1:`port`. (A connect, not a bind: binding
/// ports below 1024 needs privileges even when they are free.)
pub fn port_busy(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Checks everything up front and returns one line per problem.
pub fn preflight(o: &Options) -> Result<Ready, Vec<String>> {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let tools = match Toolbox::resolve() {
        Ok(t) => Some(t),
        Err(missing) => {
            problems.extend(missing);
            None
        }
    };
    let docker = super::find_tool("docker");
    let mut docker_up = false;
    if let Some(docker) = &docker {
        match Cmd::new(docker)
            .args(["info", "--format", "{{.ServerVersion}}"])
            .read()
        {
            Ok(_) => docker_up = true,
            Err(e) => problems.push(format!(
                "docker is installed but its daemon is not reachable: start Docker ({})",
                first_line(&e.to_string())
            )),
        }
    }
    if let Some(t) = &tools
        && let Ok(pinned) = crate::tools::Manifest::project()
        && let Ok(pin) = pinned.get("kind")
        && let Ok(v) = Cmd::new(&t.kind).arg("version").read()
        && !v.contains(&pin.version)
    {
        notes.push(format!(
            "kind is {} but {} is pinned: `cargo xtask tools install kind`",
            v.split_whitespace().nth(1).unwrap_or("unknown"),
            pin.version
        ));
    }
    let kind_file = match kind::read_kind_file(&o.kind_config) {
        Ok(f) => Some(f),
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    };
    let mut cluster_exists = false;
    if let Some(t) = &tools
        && docker_up
    {
        match kind::exists(t, &o.cluster) {
            Ok(e) => cluster_exists = e,
            Err(e) => problems.push(format!("kind get clusters: {e:#}")),
        }
        if !cluster_exists && let Some(f) = &kind_file {
            for p in &f.host_ports {
                if port_busy(*p) {
                    problems.push(format!(
                        "port {p} is in use: the cluster maps it to Traefik; stop what listens on it"
                    ));
                }
            }
        }
        let reg_state =
            registry::state(t, registry::REGISTRY_NAME).unwrap_or(registry::State::Absent);
        if reg_state == registry::State::Absent && port_busy(o.registry_port) {
            problems.push(format!(
                "port {} is in use: free it or pass --registry-port",
                o.registry_port
            ));
        }
    }
    let keys = match age_key::local_keys(&o.root, &o.cluster) {
        Ok(k) => k,
        Err(e) => {
            problems.push(format!("{e:#}"));
            Vec::new()
        }
    };
    let pin = match FluxPin::project() {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    };
    let rendered = match render::render_cluster(&o.root, &o.cluster, &RenderOptions::default()) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.push(format!(
                "clusters/{} does not render, so Flux could not apply it: {e}",
                o.cluster
            ));
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Ready {
        tools: tools.expect("no problems"),
        rendered: rendered.expect("no problems"),
        keys,
        pin: pin.expect("no problems"),
        cluster_exists,
        notes,
    })
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// The Cilium HelmRelease of the rendered tree, as a Helm install.
#[derive(Clone, Debug, PartialEq)]
pub struct HelmInstall {
    pub release: String,
    pub namespace: String,
    pub chart: String,
    /// `--repo` for an http(s) HelmRepository; `None` when `chart` is an oci:// ref.
    pub repo: Option<String>,
    pub version: String,
    pub values: Value,
}

impl HelmInstall {
    /// Finds HelmRelease `name` and its HelmRepository among `objects`.
    pub fn from_objects(objects: &[Value], name: &str) -> anyhow::Result<Self> {
        let is = |o: &Value, kind: &str, n: &str| {
            o.get("kind").and_then(Value::as_str) == Some(kind)
                && o.pointer("/metadata/name").and_then(Value::as_str) == Some(n)
        };
        let hr = objects
            .iter()
            .find(|o| is(o, "HelmRelease", name))
            .ok_or_else(|| anyhow::anyhow!("no HelmRelease {name} in the rendered cluster"))?;
        let ns = hr
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let str_at = |p: &str| hr.pointer(p).and_then(Value::as_str).map(str::to_string);
        let chart = str_at("/spec/chart/spec/chart")
            .ok_or_else(|| anyhow::anyhow!("HelmRelease {name}: no spec.chart.spec.chart"))?;
        let version = str_at("/spec/chart/spec/version")
            .ok_or_else(|| anyhow::anyhow!("HelmRelease {name}: no chart version"))?;
        let repo_name = str_at("/spec/chart/spec/sourceRef/name").unwrap_or_default();
        let repo = objects
            .iter()
            .find(|o| is(o, "HelmRepository", &repo_name))
            .and_then(|r| r.pointer("/spec/url").and_then(Value::as_str))
            .ok_or_else(|| {
                anyhow::anyhow!("HelmRelease {name}: HelmRepository {repo_name} not found")
            })?;
        let target = str_at("/spec/targetNamespace");
        let release = str_at("/spec/releaseName").unwrap_or_else(|| match &target {
            Some(t) => format!("{t}-{name}"),
            None => name.to_string(),
        });
        let (chart, repo) = if repo.starts_with("oci://") {
            (format!("{}/{chart}", repo.trim_end_matches('/')), None)
        } else {
            (chart, Some(repo.to_string()))
        };
        Ok(Self {
            release,
            namespace: target.unwrap_or_else(|| ns.to_string()),
            chart,
            repo,
            version,
            values: hr.pointer("/spec/values").cloned().unwrap_or(json!({})),
        })
    }

    /// `helm` arguments (values from `values_file`).
    pub fn args(&self, values_file: &Path, kubeconfig: &Path, context: &str) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "upgrade".into(),
            "--install".into(),
            self.release.clone(),
            self.chart.clone(),
        ];
        if let Some(r) = &self.repo {
            a.extend(["--repo".into(), r.clone()]);
        }
        a.extend([
            "--version".into(),
            self.version.clone(),
            "--namespace".into(),
            self.namespace.clone(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--kube-context".into(),
            context.into(),
            "--values".into(),
            values_file.display().to_string(),
        ]);
        a
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
}

/// Publishes the tree to the local registry through the secrets gate:
/// `latest` and the short sha, or `latest` and the dirty tag for a working
/// tree with uncommitted changes (the inner loop publishes those on purpose).
pub fn publish(rt: &tokio::runtime::Runtime, root: &Path, port: u16) -> anyhow::Result<String> {
    let ids = crate::sops::Identities::from_env().ok();
    let shipment = crate::ship::prepare(
        &crate::ship::ShipOptions {
            root: root.to_path_buf(),
            dirty: crate::ship::DirtyTree::Stamp,
            source: None,
            revision: None,
            created: None,
        },
        ids.as_ref(),
    )?;
    let a = shipment.artifact;
    let mut tags = vec!["latest".to_string()];
    tags.extend(shipment.default_tags.into_iter().filter(|t| t != "latest"));
    let reference = format!("oci://localhost:{port}/{}", registry::REPOSITORY);
    let out = rt.block_on(crate::artifact::publish(
        &a,
        &reference,
        &tags,
        &crate::artifact::Auth::Anonymous,
        false,
        false,
    ))?;
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

/// Writes kind's kubeconfig for the cluster where [`super::kube`] reads it.
pub fn write_kubeconfig(t: &Toolbox, name: &str) -> anyhow::Result<PathBuf> {
    let text = Cmd::new(&t.kind)
        .args(["get", "kubeconfig", "--name", name])
        .read()?;
    let path = super::kubeconfig_path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

/// Waits for every object of `order`, one progress line each.
pub fn wait_all(
    kube: &Kube,
    order: &[(String, String, String)],
    deadline: Instant,
    p: &Progress,
) -> anyhow::Result<()> {
    for (kind, ns, name) in order {
        let started = Instant::now();
        let label = format!("{kind} {ns}/{name}");
        p.tick(&label);
        kube.wait_ready(kind, ns, name, remaining(deadline), |pr| {
            p.tick(&format!("{label}: {} {}", pr.reason, pr.message));
        })?;
        p.note(&format!(
            "{label} Ready ({})",
            super::steps::fmt_duration(started.elapsed())
        ));
    }
    Ok(())
}

/// Runs every step. The runtime is the verb's (one per process).
pub fn run(o: &Options, rt: &tokio::runtime::Runtime) -> Result<Summary, StepFailed> {
    let mut steps = Steps::new(STEPS.len());
    let deadline = Instant::now() + o.timeout;

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
        Err(problems) => {
            for line in &problems {
                eprintln!("  - {line}");
            }
            Err(anyhow::anyhow!(
                "{} problem(s), listed above",
                problems.len()
            ))
        }
    })?;
    let t = &ready.tools;
    let kube = super::kube(t, &o.cluster);

    let port = steps.run(STEPS[1], |p| {
        let local = registry::local(o.registry_port);
        if o.recreate && registry::remove(t, &local.name)? {
            p.note("removed platform-registry (--recreate)");
        }
        let what = registry::ensure(t, &local)?;
        let port = registry::published_port(t, &local.name)?.unwrap_or(o.registry_port);
        let mut outcome = format!("{} {what} on 127.0.0.1:{port}", local.name);
        if o.mirrors {
            let mut done = Vec::new();
            for m in registry::mirrors() {
                p.note(&format!("mirror {}", m.host));
                done.push(registry::ensure(t, &m)?);
            }
            let created = done.iter().filter(|d| **d == "created").count();
            outcome.push_str(&format!("; {} mirror(s) ({created} new)", done.len()));
        }
        Ok((port, outcome))
    })?;

    steps.run(STEPS[2], |p| {
        let mut exists = ready.cluster_exists;
        if exists && o.recreate {
            p.note(&format!("deleting cluster {} (--recreate)", o.cluster));
            kind::delete(t, &o.cluster)?;
            exists = false;
        }
        let what = if exists {
            "exists".to_string()
        } else {
            p.note(&format!("kind create cluster --name {}", o.cluster));
            kind::create(t, &o.cluster, &o.kind_config, None)?;
            "created".to_string()
        };
        write_kubeconfig(t, &o.cluster)?;
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
                registry::write_hosts(t, node, r)
                    .with_context(|| format!("writing {}/hosts.toml on {node}", r.hosts_dir()))?;
            }
        }
        kube.apply(&[registry::local_registry_hosting(port)])?;
        Ok((
            (),
            format!(
                "{} {what}, {} node(s), {} registry host(s)",
                o.cluster,
                nodes.len(),
                regs.len()
            ),
        ))
    })?;

    steps.run(STEPS[3], |p| {
        let all: Vec<Value> = ready
            .rendered
            .kustomizations
            .iter()
            .flat_map(|k| k.objects.iter().cloned())
            .collect();
        let cilium = HelmInstall::from_objects(&all, "cilium")?;
        let deployed = Cmd::new(&t.helm)
            .args([
                "list",
                "-n",
                &cilium.namespace,
                "-f",
                &format!("^{}$", cilium.release),
                "-o",
                "json",
            ])
            .args(["--kubeconfig"])
            .arg(&kube.kubeconfig)
            .args(["--kube-context", &kind::context(&o.cluster)])
            .read()?;
        let deployed: Value = serde_json::from_str(deployed.trim()).unwrap_or(json!([]));
        let current = deployed.as_array().and_then(|a| a.first()).and_then(|r| {
            (r.get("status").and_then(Value::as_str) == Some("deployed")).then(|| {
                r.get("chart")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            })
        });
        let want = format!("cilium-{}", cilium.version);
        let what = if current.as_deref() == Some(want.as_str()) {
            format!("{want} already deployed")
        } else {
            p.note(&format!(
                "helm upgrade --install {} {}",
                cilium.release, cilium.version
            ));
            let dir = tempfile::tempdir()?;
            let values = dir.path().join("values.json");
            std::fs::write(&values, serde_json::to_vec_pretty(&cilium.values)?)?;
            Cmd::new(&t.helm)
                .args(cilium.args(&values, &kube.kubeconfig, &kind::context(&o.cluster)))
                .read()?;
            format!("{want} installed")
        };
        p.note("waiting for the nodes to be Ready");
        kube.cmd()
            .args([
                "wait",
                "--for=condition=Ready",
                "nodes",
                "--all",
                &format!("--timeout={}s", remaining(deadline).as_secs()),
            ])
            .read()?;
        Ok(((), format!("{what}, nodes Ready")))
    })?;

    steps.run(STEPS[4], |p| {
        let how =
            super::flux_install::install(&kube, &ready.pin, remaining(deadline), &|m| p.note(m))?;
        Ok(((), how))
    })?;

    steps.run(STEPS[5], |_| {
        kube.apply(&[age_key::sops_age_secret(&ready.keys)])?;
        Ok((
            (),
            format!("flux-system/sops-age with {} key(s)", ready.keys.len()),
        ))
    })?;

    let digest = steps.run(STEPS[6], |_| {
        let outcome = publish(rt, &o.root, port)?;
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

    steps.run(STEPS[8], |p| {
        let order = wait_order(&ready.rendered);
        wait_all(&kube, &order, deadline, p)?;
        Ok(((), format!("{} object(s) Ready", order.len())))
    })?;

    Ok(Summary {
        urls: urls(&ready.rendered),
        total: steps.elapsed(),
        kubeconfig: kube.kubeconfig.clone(),
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_sync_matches_the_tree() {
        let root = crate::project_root();
        let dir = root.join("clusters/local/flux-system");
        let mut from_tree = Vec::new();
        for f in ["oci-repository.yaml", "flux-system.yaml"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            from_tree.extend(render::parse_stream(&text).unwrap());
        }
        assert_eq!(from_tree, root_sync("local", "latest"));
        assert_eq!(root_sync_from_tree(&from_tree).len(), 2);
    }

    #[test]
    fn cilium_install_comes_from_the_helm_release() {
        let objects = render::parse_stream(
            r#"
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: cilium, namespace: kube-system}
spec: {url: "https://helm.cilium.io/"}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: cilium, namespace: kube-system}
spec:
  chart: {spec: {chart: cilium, version: 1.18.2, sourceRef: {kind: HelmRepository, name: cilium}}}
  values: {kubeProxyReplacement: true, k8sServiceHost: local-control-plane}
"#,
        )
        .unwrap();
        let h = HelmInstall::from_objects(&objects, "cilium").unwrap();
        assert_eq!(h.release, "cilium");
        assert_eq!(h.namespace, "kube-system");
        assert_eq!(h.repo.as_deref(), Some("https://helm.cilium.io/"));
        assert_eq!(h.version, "1.18.2");
        assert_eq!(h.values["k8sServiceHost"], "local-control-plane");
        let args = h
            .args(Path::new("/v.json"), Path::new("/kc"), "kind-local")
            .join(" ");
        assert_eq!(
            args,
            "upgrade --install cilium cilium --repo https://helm.cilium.io/ --version 1.18.2 --namespace kube-system --kubeconfig /kc --kube-context kind-local --values /v.json"
        );
        assert!(HelmInstall::from_objects(&objects, "traefik").is_err());
    }

    #[test]
    fn oci_helm_repositories_become_chart_refs() {
        let objects = vec![
            json!({"kind": "HelmRepository", "metadata": {"name": "r"}, "spec": {"url": "oci://ghcr.io/x/charts"}}),
            json!({"kind": "HelmRelease", "metadata": {"name": "a", "namespace": "n"},
                   "spec": {"targetNamespace": "t", "chart": {"spec": {"chart": "a", "version": "1.0.0", "sourceRef": {"name": "r"}}}}}),
        ];
        let h = HelmInstall::from_objects(&objects, "a").unwrap();
        assert_eq!(h.chart, "oci://ghcr.io/x/charts/a");
        assert_eq!(h.repo, None);
        assert_eq!(h.release, "t-a");
        assert_eq!(h.namespace, "t");
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
