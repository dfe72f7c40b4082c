//! Renders the HelmReleases of a rendered cluster as helm-controller would:
//! the chart from its HelmRepository (https or OCI) or OCIRepository at the
//! pinned version (pulled once into the user's cache), the values composed
//! from `valuesFrom` and `spec.values`, `helm template` with the release's
//! name, namespace, CRD policy and the cluster's Kubernetes version, then the
//! `postRenderers` kustomize patches. A release that fails (a chart that
//! cannot be fetched, a missing values source) is reported on its own.

pub mod chart;
pub mod keys;
pub mod values;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::{Value, json};

use crate::{DecryptError, Decryptor, RenderError, RenderedCluster, YamlError};
use exec::runner::{Cmd, RunError};
use exec::tools::ToolError;

pub use chart::{ChartRequest, ChartSource};
pub use values::ValuesRef;

/// Why one HelmRelease could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("chartRef kind {0} is not supported (only OCIRepository)")]
    ChartRefKind(String),
    #[error("charts from a {0} are not supported (only HelmRepository and OCIRepository)")]
    SourceKind(String),
    /// `field` is `chartRef` or `sourceRef`.
    #[error("{field} {kind} {namespace}/{name} is not in the cluster")]
    SourceMissing {
        field: &'static str,
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("HelmRelease has neither spec.chart.spec nor spec.chartRef")]
    NoChart,
    #[error("spec.chart.spec.chart is missing")]
    NoChartName,
    #[error("{0} has no spec.url")]
    NoUrl(&'static str),
    #[error("OCIRepository has no ref.tag, ref.semver or ref.digest")]
    NoOciRef,
    #[error(transparent)]
    Helm(#[from] ToolError),
    /// helm could not be run, or `helm repo add` failed.
    #[error("cannot fetch {chart}: {source}")]
    Fetch { chart: String, source: RunError },
    /// `helm pull` failed; `log` is what it printed.
    #[error("cannot fetch {chart}: {log}")]
    Pull { chart: String, log: String },
    #[error("helm pull of {0} left no chart archive")]
    NoArchive(String),
    #[error(
        "{chart}: digest mismatch: the index says sha256:{expected}, the archive is sha256:{actual}"
    )]
    IndexDigest {
        chart: String,
        expected: String,
        actual: String,
    },
    #[error("{chart}: digest mismatch: the source pins {expected}, the registry served {served}")]
    PinnedDigest {
        chart: String,
        expected: String,
        served: String,
    },
    #[error("cached chart {0} does not match its recorded digest; delete it to fetch it again")]
    CachedDigest(PathBuf),
    #[error("cannot cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("valuesFrom kind {0:?} is not ConfigMap or Secret")]
    ValuesKind(String),
    #[error("valuesFrom {0} is not in the cluster")]
    ValuesMissing(ValuesRef),
    #[error("valuesFrom {0} is SOPS-encrypted and no age identity is available")]
    NoIdentity(ValuesRef),
    #[error("valuesFrom {from}: cannot decrypt: {source}")]
    Decrypt {
        from: ValuesRef,
        source: DecryptError,
    },
    #[error("valuesFrom {from} has no key {key:?}")]
    NoValuesKey { from: ValuesRef, key: String },
    #[error("valuesFrom {from} key {key:?} is not YAML: {source}")]
    ValuesYaml {
        from: ValuesRef,
        key: String,
        source: serde_yaml::Error,
    },
    #[error("valuesFrom {from} key {key:?} is not a map of values")]
    ValuesNotMap { from: ValuesRef, key: String },
    #[error("helm template {release}: {source}")]
    Template { release: String, source: RunError },
    #[error("helm template output is not YAML: {0}")]
    TemplateOutput(#[source] YamlError),
    #[error("postRenderers: {0}")]
    PostRender(#[source] RenderError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Yaml(#[from] serde_yaml::Error),
}

/// An I/O error on `path`.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> HelmError + '_ {
    move |source| HelmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How to render releases.
#[derive(Clone)]
pub struct HelmOptions {
    /// Where pulled charts are kept.
    pub cache_dir: PathBuf,
    /// `--kube-version` for `helm template`.
    pub kube_version: String,
    /// Decrypts SOPS Secrets named in `valuesFrom`.
    pub decryptor: Option<Decryptor>,
    /// The helm binary; `None`: found on PATH.
    pub helm: Option<PathBuf>,
}

impl std::fmt::Debug for HelmOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelmOptions")
            .field("cache_dir", &self.cache_dir)
            .field("kube_version", &self.kube_version)
            .field("decryptor", &self.decryptor.is_some())
            .field("helm", &self.helm)
            .finish()
    }
}

impl HelmOptions {
    /// Charts cached in `cache_dir`, rendered for Kubernetes `kube_version`,
    /// no decryption, helm found on PATH.
    pub fn new(cache_dir: PathBuf, kube_version: &str) -> Self {
        Self {
            cache_dir,
            kube_version: kube_version.to_string(),
            decryptor: None,
            helm: None,
        }
    }

    /// The same, decrypting SOPS Secrets named in `valuesFrom` with `decryptor`.
    pub fn decrypting(self, decryptor: Option<Decryptor>) -> Self {
        Self { decryptor, ..self }
    }

    fn helm_bin(&self) -> Result<PathBuf, HelmError> {
        match &self.helm {
            Some(p) => Ok(p.clone()),
            None => Ok(exec::tools::find("helm")?),
        }
    }
}

/// One HelmRelease and what rendering it gave.
#[derive(Debug)]
pub struct RenderedRelease {
    /// The Flux Kustomization that holds the HelmRelease.
    pub kustomization: String,
    pub namespace: String,
    pub name: String,
    /// `chart version` as resolved, for messages.
    pub chart: String,
    pub result: Result<Vec<Value>, HelmError>,
    pub elapsed: Duration,
}

pub fn is_helm_release(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("HelmRelease")
        && object
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("helm.toolkit.fluxcd.io/"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Finds a source object by kind, namespace and name.
fn find_source<'a>(
    objects: &[&'a Value],
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<&'a Value> {
    objects.iter().copied().find(|o| {
        str_at(o, "/kind") == Some(kind)
            && str_at(o, "/metadata/name") == Some(name)
            && str_at(o, "/metadata/namespace").unwrap_or("default") == namespace
    })
}

/// Where a release's chart comes from, resolved against the cluster's sources.
pub fn chart_request(release: &Value, objects: &[&Value]) -> Result<ChartRequest, HelmError> {
    let namespace = str_at(release, "/metadata/namespace").unwrap_or("default");
    if let Some(chart_ref) = release.pointer("/spec/chartRef") {
        let kind = str_at(chart_ref, "/kind").unwrap_or("");
        let name = str_at(chart_ref, "/name").unwrap_or("");
        let ns = str_at(chart_ref, "/namespace").unwrap_or(namespace);
        if kind != "OCIRepository" {
            return Err(HelmError::ChartRefKind(kind.to_string()));
        }
        let source = find_source(objects, kind, ns, name)
            .ok_or_else(|| missing_source("chartRef", kind, ns, name))?;
        return ChartRequest::from_oci_repository(source);
    }
    let spec = release
        .pointer("/spec/chart/spec")
        .ok_or(HelmError::NoChart)?;
    let chart = str_at(spec, "/chart").ok_or(HelmError::NoChartName)?;
    let version = str_at(spec, "/version").unwrap_or("*");
    let kind = str_at(spec, "/sourceRef/kind").unwrap_or("HelmRepository");
    let name = str_at(spec, "/sourceRef/name").unwrap_or("");
    let ns = str_at(spec, "/sourceRef/namespace").unwrap_or(namespace);
    if kind != "HelmRepository" {
        return Err(HelmError::SourceKind(kind.to_string()));
    }
    let source = find_source(objects, kind, ns, name)
        .ok_or_else(|| missing_source("sourceRef", kind, ns, name))?;
    ChartRequest::from_helm_repository(source, chart, version)
}

fn missing_source(field: &'static str, kind: &str, namespace: &str, name: &str) -> HelmError {
    HelmError::SourceMissing {
        field,
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// Whether `helm template` should include the chart's CRDs (`install.crds`:
/// `Skip` leaves them out; `Create` (the default) and `CreateReplace` keep them).
pub fn include_crds(release: &Value) -> bool {
    str_at(release, "/spec/install/crds") != Some("Skip")
}

/// The Helm release name and the namespace it installs into.
pub fn release_identity(release: &Value) -> (String, String) {
    let name = str_at(release, "/metadata/name").unwrap_or("release");
    let namespace = str_at(release, "/metadata/namespace").unwrap_or("default");
    let target = str_at(release, "/spec/targetNamespace");
    let release_name = match (str_at(release, "/spec/releaseName"), target) {
        (Some(r), _) => r.to_string(),
        (None, Some(t)) => format!("{t}-{name}"),
        (None, None) => name.to_string(),
    };
    (release_name, target.unwrap_or(namespace).to_string())
}

/// Renders one HelmRelease against the objects of its cluster.
pub fn render_release(
    release: &Value,
    objects: &[&Value],
    opts: &HelmOptions,
) -> Result<Vec<Value>, HelmError> {
    let request = chart_request(release, objects)?;
    let values = values::compose(release, objects, opts.decryptor.as_ref())?;
    let helm = opts.helm_bin()?;
    let archive = chart::fetch(&helm, &request, &opts.cache_dir)?;
    let (release_name, namespace) = release_identity(release);
    let temp = std::env::temp_dir();
    let scratch = tempfile::tempdir().map_err(io_error(&temp))?;
    let values_file = scratch.path().join("values.json");
    std::fs::write(&values_file, serde_json::to_vec(&values)?).map_err(io_error(&values_file))?;
    let mut cmd = Cmd::new(&helm)
        .arg("template")
        .arg(&release_name)
        .arg(&archive)
        .args(["--namespace", namespace.as_str()])
        .args(["--kube-version", opts.kube_version.as_str()])
        .arg("--values")
        .arg(&values_file);
    if include_crds(release) {
        cmd = cmd.arg("--include-crds");
    }
    let output = cmd.read().map_err(|source| HelmError::Template {
        release: release_name.clone(),
        source,
    })?;
    let objects = crate::parse_stream(&output).map_err(HelmError::TemplateOutput)?;
    post_render(release, objects)
}

/// Applies the release's `postRenderers` (kustomize `patches` and `images`).
pub fn post_render(release: &Value, mut objects: Vec<Value>) -> Result<Vec<Value>, HelmError> {
    for renderer in release
        .pointer("/spec/postRenderers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(kustomize) = renderer.get("kustomize") else {
            continue;
        };
        let temp = std::env::temp_dir();
        let dir = tempfile::tempdir().map_err(io_error(&temp))?;
        let resources = dir.path().join("resources.yaml");
        std::fs::write(&resources, crate::to_yaml_stream(&objects))
            .map_err(io_error(&resources))?;
        let mut kustomization = json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["resources.yaml"],
        });
        for field in ["patches", "images"] {
            if let Some(v) = kustomize.get(field) {
                kustomization[field] = v.clone();
            }
        }
        let file = dir.path().join("kustomization.yaml");
        std::fs::write(&file, serde_yaml::to_string(&kustomization)?).map_err(io_error(&file))?;
        objects = crate::kustomize_build(dir.path()).map_err(HelmError::PostRender)?;
    }
    Ok(objects)
}

/// Renders every HelmRelease of a rendered cluster, in parallel. Failures are
/// per release.
pub fn render_cluster(rendered: &RenderedCluster, opts: &HelmOptions) -> Vec<RenderedRelease> {
    let all: Vec<&Value> = rendered
        .root_objects
        .iter()
        .chain(rendered.kustomizations.iter().flat_map(|k| &k.objects))
        .collect();
    let releases: Vec<(&str, &Value)> = rendered
        .kustomizations
        .iter()
        .flat_map(|k| k.objects.iter().map(move |o| (k.flux.name.as_str(), o)))
        .chain(rendered.root_objects.iter().map(|o| ("flux-system", o)))
        .filter(|(_, o)| is_helm_release(o))
        .collect();
    releases
        .par_iter()
        .map(|&(kustomization, release)| {
            let started = Instant::now();
            let chart = match chart_request(release, &all) {
                Ok(r) => match &r.source {
                    ChartSource::Https { chart, .. } => format!("{chart} {}", r.version),
                    ChartSource::Oci { reference, .. } => format!("{reference} {}", r.version),
                },
                Err(_) => String::new(),
            };
            RenderedRelease {
                kustomization: kustomization.to_string(),
                namespace: str_at(release, "/metadata/namespace")
                    .unwrap_or("default")
                    .to_string(),
                name: str_at(release, "/metadata/name").unwrap_or("").to_string(),
                chart,
                result: render_release(release, &all, opts),
                elapsed: started.elapsed(),
            }
        })
        .collect()
}

/// The file a release renders to: `<namespace>-<name>.yaml`.
pub fn release_file(release: &RenderedRelease) -> String {
    format!("{}-{}.yaml", release.namespace, release.name)
}

/// The line `build --helm` prints for a release it rendered.
pub fn release_summary(release: &RenderedRelease, objects: usize) -> String {
    format!(
        "  helm {:<33} {:>4} objects  {:>6.2}s  {}",
        format!("{}/{}", release.namespace, release.name),
        objects,
        release.elapsed.as_secs_f64(),
        release.chart
    )
}

/// Renders a cluster's releases into `<cluster_out>/helm/`, one file per
/// release, and prints one line per release (errors to stderr). Files it
/// did not write are left alone. Returns the releases; the failed ones are
/// reported, not fatal.
pub fn render_releases(
    rendered: &RenderedCluster,
    cluster_out: &Path,
    opts: &HelmOptions,
) -> std::io::Result<Vec<RenderedRelease>> {
    let releases = render_cluster(rendered, opts);
    let dir = cluster_out.join("helm");
    std::fs::create_dir_all(&dir)?;
    for r in &releases {
        match &r.result {
            Ok(objects) => {
                exec::fsutil::write_atomic(
                    &dir.join(release_file(r)),
                    crate::to_yaml_stream(objects).as_bytes(),
                )?;
                println!("{}", release_summary(r, objects.len()));
            }
            Err(err) => eprintln!(
                "error: cluster {}: HelmRelease {}/{}: {err}",
                rendered.name, r.namespace, r.name
            ),
        }
    }
    Ok(releases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_name_and_namespace_follow_helm_controller() {
        let r = json!({"metadata": {"name": "app", "namespace": "ns"}, "spec": {}});
        assert_eq!(release_identity(&r), ("app".into(), "ns".into()));
        let t = json!({"metadata": {"name": "app", "namespace": "ns"}, "spec": {"targetNamespace": "t"}});
        assert_eq!(release_identity(&t), ("t-app".into(), "t".into()));
        let n =
            json!({"metadata": {"name": "app", "namespace": "ns"}, "spec": {"releaseName": "x"}});
        assert_eq!(release_identity(&n), ("x".into(), "ns".into()));
    }

    #[test]
    fn crds_follow_install_crds() {
        assert!(include_crds(&json!({"spec": {}})));
        assert!(include_crds(
            &json!({"spec": {"install": {"crds": "CreateReplace"}}})
        ));
        assert!(!include_crds(
            &json!({"spec": {"install": {"crds": "Skip"}}})
        ));
    }

    #[test]
    fn chart_sources_resolve_by_kind_namespace_and_name() {
        let https = json!({"kind": "HelmRepository", "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"url": "https://charts.example/"}});
        let oci = json!({"kind": "HelmRepository", "metadata": {"name": "o", "namespace": "ns"},
            "spec": {"type": "oci", "url": "oci://reg.example/charts", "insecure": true}});
        let release = |source: &str| {
            json!({"kind": "HelmRelease", "metadata": {"name": "a", "namespace": "ns"},
                "spec": {"chart": {"spec": {"chart": "c", "version": "1.2.3",
                    "sourceRef": {"kind": "HelmRepository", "name": source}}}}})
        };
        let objects = [&https, &oci];
        let r = chart_request(&release("r"), &objects).unwrap();
        assert_eq!(
            r.source,
            ChartSource::Https {
                url: "https://charts.example".into(),
                chart: "c".into()
            }
        );
        let o = chart_request(&release("o"), &objects).unwrap();
        assert_eq!(
            o.source,
            ChartSource::Oci {
                reference: "oci://reg.example/charts/c".into(),
                plain_http: true,
                digest: None
            }
        );
        let err = chart_request(&release("gone"), &objects).unwrap_err();
        assert!(matches!(
            err,
            HelmError::SourceMissing {
                field: "sourceRef",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "sourceRef HelmRepository ns/gone is not in the cluster"
        );
    }
}
