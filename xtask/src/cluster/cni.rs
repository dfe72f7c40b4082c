//! The CNI step shared by both bootstraps: Cilium installed with helm from
//! exactly the cluster's rendered Cilium HelmRelease (chart, version,
//! release name, namespace, values), so Flux adopts the release later.

use std::path::Path;

use serde_json::{Value, json};

use super::flux::Kube;
use super::steps::{Budget, Progress};
use exec::runner::Cmd;
use flux_render::RenderedCluster;

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

/// The Cilium HelmRelease of the rendered cluster, as a Helm install.
pub fn cilium_install(rendered: &RenderedCluster) -> anyhow::Result<HelmInstall> {
    let all: Vec<Value> = rendered
        .kustomizations
        .iter()
        .flat_map(|k| k.objects.iter().cloned())
        .collect();
    HelmInstall::from_objects(&all, "cilium")
}

/// Waits for Cilium to roll out, then for the nodes and CoreDNS.
pub fn wait_cni(
    kube: &Kube,
    cilium: &HelmInstall,
    budget: &Budget,
    p: &Progress,
) -> anyhow::Result<()> {
    let ns = cilium.namespace.as_str();
    for (kind, name) in [("daemonset", "cilium"), ("deployment", "cilium-operator")] {
        p.note(&format!("waiting for {kind}/{name} to roll out"));
        budget.time(&format!("{kind}/{name}"), |left| {
            kube.rollout(ns, kind, name, left)
        })?;
    }
    p.note("waiting for the nodes to be Ready");
    budget
        .time("nodes Ready", |left| {
            kube.cmd()
                .args([
                    "wait",
                    "--for=condition=Ready",
                    "nodes",
                    "--all",
                    &format!("--timeout={}s", left.as_secs()),
                ])
                .read()
        })
        .map_err(|e| anyhow::anyhow!("the nodes are not Ready: {e}\n{}", kube.nodes_report()))?;
    p.note("waiting for deployment/coredns to roll out");
    budget.time("deployment/coredns", |left| {
        kube.rollout("kube-system", "deployment", "coredns", left)
    })?;
    Ok(())
}

/// The Cilium chart's release state: `(status, chart)` of `helm list -a`
/// (`-a`: a release an interrupted helm left `pending-install` is listed too).
fn helm_release(
    helm: &Path,
    kube: &Kube,
    context: &str,
    h: &HelmInstall,
) -> anyhow::Result<Option<(String, String)>> {
    let out = Cmd::new(helm)
        .args(["list", "-a", "-n", &h.namespace])
        .args(["-f", &format!("^{}$", h.release), "-o", "json"])
        .arg("--kubeconfig")
        .arg(&kube.kubeconfig)
        .args(["--kube-context", context])
        .read()?;
    let v: Value = serde_json::from_str(out.trim()).unwrap_or(json!([]));
    Ok(v.as_array().and_then(|a| a.first()).map(|r| {
        let f = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        (f("status"), f("chart"))
    }))
}

/// Installs Cilium unless the pinned chart is deployed. A release an
/// interrupted helm left pending blocks every later helm run ("another
/// operation is in progress"): a pending install is uninstalled (nothing
/// depends on it yet), a pending upgrade or rollback is rolled back.
pub fn install_cilium(
    helm_bin: &Path,
    kube: &Kube,
    context: &str,
    h: &HelmInstall,
    p: &Progress,
) -> anyhow::Result<String> {
    let want = format!("cilium-{}", h.version);
    let helm = |args: &[&str]| {
        Cmd::new(helm_bin)
            .args(args)
            .args(["-n", &h.namespace])
            .arg("--kubeconfig")
            .arg(&kube.kubeconfig)
            .args(["--kube-context", context])
            .read()
    };
    let mut recovered = String::new();
    let mut current = helm_release(helm_bin, kube, context, h)?;
    if let Some((status, _)) = &current
        && status.starts_with("pending-")
    {
        if status == "pending-install" {
            p.note(&format!("{} is {status}: uninstalling it", h.release));
            helm(&["uninstall", &h.release])?;
        } else {
            p.note(&format!("{} is {status}: rolling it back", h.release));
            helm(&["rollback", &h.release])?;
        }
        recovered = format!(" (recovered from {status}, left by an interrupted helm)");
        current = helm_release(helm_bin, kube, context, h)?;
    }
    if let Some((status, chart)) = &current
        && status == "deployed"
        && *chart == want
    {
        return Ok(format!("{want} already deployed{recovered}"));
    }
    p.note(&format!(
        "helm upgrade --install {} {}",
        h.release, h.version
    ));
    let dir = tempfile::tempdir()?;
    let values = dir.path().join("values.json");
    std::fs::write(&values, serde_json::to_vec_pretty(&h.values)?)?;
    Cmd::new(helm_bin)
        .args(h.args(&values, &kube.kubeconfig, context))
        .read()?;
    Ok(format!("{want} installed{recovered}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cilium_install_comes_from_the_helm_release() {
        let objects = flux_render::parse_stream(
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
}
