//! Renders a cluster the way Flux would: [`discover`] finds where its sync
//! starts, kustomize on that folder finds the Flux Kustomizations, and
//! [`closure`] follows every one reachable from there; for each one, the
//! generator step merges its spec into the folder's kustomization
//! ([`generate`]), kustomize builds it, and [`post_build`] substitutes
//! variables from the ConfigMaps and Secrets that `substituteFrom` names
//! (found in the rendered tree) and adds the labels kustomize-controller adds.

pub mod artifact;
pub mod closure;
pub mod discover;
mod error;
pub mod generate;
pub mod helm;
pub mod kustomize;
pub mod post_build;
pub mod substitute;
pub mod trace;
pub mod yaml11;
pub mod yaml_out;
pub mod yaml_value;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use discover::list_clusters;
pub use error::{RenderError, YamlError};
pub use post_build::{OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, substitution_disabled};

/// The folders of a manifest tree (the layout of Flux's monorepo example)
/// that messages search when they point at a variable's uses.
pub const MANIFEST_DIRS: [&str; 4] = ["clusters", "platform", "infrastructure", "apps"];

pub const FLUX_KUSTOMIZE_GROUP: &str = "kustomize.toolkit.fluxcd.io/";
/// What a Secret-sourced variable renders as unless `reveal_secrets` is set.
pub const REDACTED_PREFIX: &str = "sops-redacted-";

/// What a [`Decryptor`] fails with: the decrypting library's own error.
pub type DecryptError = Box<dyn std::error::Error + Send + Sync>;

/// Decrypts one SOPS-encrypted object (as Flux's kustomize-controller does).
pub type Decryptor = std::sync::Arc<dyn Fn(&Value) -> Result<Value, DecryptError> + Send + Sync>;

/// How to render.
#[derive(Clone, Default)]
pub struct RenderOptions {
    /// Decrypts SOPS-encrypted Secrets named in `substituteFrom`; `None` when no age identity is available.
    pub decryptor: Option<Decryptor>,
    /// Substitute decrypted Secret values instead of redacted placeholders.
    pub reveal_secrets: bool,
    /// Runs the kustomize builds (bounds, cache); `None`: the kustomize on
    /// PATH with default bounds and no cache.
    pub kustomize: Option<Arc<kustomize::Builder>>,
    /// Records the render's builds ([`trace`]), for a caller that keeps
    /// what it concluded from them.
    pub trace: Option<Arc<trace::Trace>>,
}

impl RenderOptions {
    /// The builder to render with.
    pub fn builder(&self) -> Result<Arc<kustomize::Builder>, RenderError> {
        match &self.kustomize {
            Some(b) => Ok(b.clone()),
            None => Ok(Arc::new(kustomize::Builder::find()?)),
        }
    }
}

/// A Flux Kustomization as declared in the tree.
#[derive(Debug, Clone, Default)]
pub struct FluxKustomization {
    pub name: String,
    pub namespace: String,
    /// `spec.path`, normalised relative to the artifact (repository) root.
    pub path: PathBuf,
    pub depends_on: Vec<String>,
    pub source_ref: Option<(String, String)>,
    /// The file that declares it, or what rendered it.
    pub file: String,
    /// The whole object.
    pub object: Value,
}

impl FluxKustomization {
    fn from_object(object: &Value, index: &SourceIndex) -> Option<Self> {
        if !is_flux_kustomization(object) {
            return None;
        }
        let name = str_at(object, &["metadata", "name"])?.to_string();
        let namespace = str_at(object, &["metadata", "namespace"])
            .unwrap_or("flux-system")
            .to_string();
        let path = normalize(str_at(object, &["spec", "path"]).unwrap_or("./"));
        let depends_on = object
            .pointer("/spec/dependsOn")
            .and_then(Value::as_array)
            .map(|deps| {
                deps.iter()
                    .filter_map(|d| d.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let source_ref = object.pointer("/spec/sourceRef").map(|s| {
            (
                s.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                s.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        });
        let file = index.file_of("Kustomization", &name);
        Some(Self {
            name,
            namespace,
            path,
            depends_on,
            source_ref,
            file,
            object: object.clone(),
        })
    }

    /// `spec.dependsOn` as `(namespace, name)`; the namespace defaults to its own.
    pub fn dependencies(&self) -> Vec<(String, String)> {
        match self
            .object
            .pointer("/spec/dependsOn")
            .and_then(Value::as_array)
        {
            Some(deps) => deps
                .iter()
                .filter_map(|d| {
                    let name = d.get("name").and_then(Value::as_str)?;
                    let ns = d
                        .get("namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(&self.namespace);
                    Some((ns.to_string(), name.to_string()))
                })
                .collect(),
            None => self
                .depends_on
                .iter()
                .map(|name| (self.namespace.clone(), name.clone()))
                .collect(),
        }
    }
}

/// One rendered Flux Kustomization.
#[derive(Debug, Clone)]
pub struct RenderedKustomization {
    pub flux: FluxKustomization,
    /// The objects after kustomize build and postBuild substitution.
    pub objects: Vec<Value>,
    /// The postBuild variables, merged as Flux merges them.
    pub variables: BTreeMap<String, String>,
    pub elapsed: Duration,
    /// The source it was built from: the repository, or an ExternalArtifact
    /// assembled from it. `flux.path` is relative to this.
    pub source_dir: PathBuf,
}

/// A Flux Kustomization that was not rendered, and why (another
/// repository's source, `spec.suspend`).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub flux: FluxKustomization,
    pub reason: String,
}

/// A Flux Kustomization that could not be rendered: its own error, or the
/// one it depends on (or that declares it) that failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub flux: FluxKustomization,
    pub error: Arc<RenderError>,
}

/// A whole rendered cluster.
#[derive(Debug, Clone, Default)]
pub struct RenderedCluster {
    pub name: String,
    /// The sync root's objects: what the root `flux-system` Kustomization
    /// applies, with its postBuild and ownership labels.
    pub root_objects: Vec<Value>,
    /// Every other Kustomization of the closure that rendered, in
    /// dependency order (one that declares others comes before them).
    pub kustomizations: Vec<RenderedKustomization>,
    pub warnings: Vec<String>,
    /// The root Kustomization: as the root's objects declare it, or as
    /// `flux bootstrap` / the Flux Operator creates it.
    pub root: FluxKustomization,
    /// Where the sync starts and how that was found.
    pub sync: Option<discover::SyncRoot>,
    pub skipped: Vec<Skipped>,
    /// Root causes first, then what they stopped.
    pub failures: Vec<Failure>,
    /// Keeps assembled ExternalArtifacts on disk while the render lives.
    pub artifacts: Vec<Arc<tempfile::TempDir>>,
}

/// Runs kustomize on `dir` (default bounds, no cache) and parses the YAML stream.
pub fn kustomize_build(dir: &Path) -> Result<Vec<Value>, RenderError> {
    let output = kustomize::Builder::find()?
        .build(dir, &[])
        .map_err(|err| build_error(err, dir))?;
    parse_stream(&String::from_utf8_lossy(&output)).map_err(|source| RenderError::Parse {
        dir: dir.to_path_buf(),
        what: String::new(),
        source,
    })
}

fn build_error(err: kustomize::BuildError, shown: &Path) -> RenderError {
    match err {
        kustomize::BuildError::Tool(e) => RenderError::Tool(e),
        kustomize::BuildError::Run(e) => RenderError::Tool(e.into()),
        other => RenderError::Kustomize {
            dir: shown.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// Runs kustomize on `dir` as Flux does (no load restrictions) and returns
/// its output; errors name `shown`, the folder the user knows.
fn kustomize_build_text(
    builder: &kustomize::Builder,
    dir: &Path,
    shown: &Path,
) -> Result<String, RenderError> {
    let output = builder
        .build(dir, FLUX_BUILD_FLAGS)
        .map_err(|err| build_error(err, shown))?;
    String::from_utf8(output).map_err(|e| RenderError::Yaml {
        dir: shown.to_path_buf(),
        message: e.to_string(),
    })
}

/// kustomize's flags as kustomize-controller builds.
const FLUX_BUILD_FLAGS: &[&str] = &["--load-restrictor", "LoadRestrictionsNone"];

/// Builds a prepared folder as Flux reads it (YAML 1.1 types), recorded in
/// `trace`.
pub(crate) fn flux_build(
    builder: &kustomize::Builder,
    prepared: &generate::Prepared,
    shown: &Path,
    trace: Option<&trace::Trace>,
) -> Result<Vec<post_build::Document>, RenderError> {
    let text = kustomize_build_text(builder, &prepared.dir, shown)?;
    if let Some(trace) = trace {
        let copied = prepared
            .is_copy()
            .then_some("a generated kustomization (a copy of the tree)");
        trace.record(&prepared.dir, copied, FLUX_BUILD_FLAGS, text.as_bytes());
    }
    post_build::documents(shown, &text)
}

/// Parses a multi-document YAML stream into JSON values, skipping empty documents.
pub fn parse_stream(text: &str) -> Result<Vec<Value>, YamlError> {
    use serde::Deserialize;
    yaml11::check_aliases(text)?;
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        objects.push(serde_json::to_value(value)?);
    }
    Ok(objects)
}

/// Writes objects as one multi-document YAML stream that every reader reads
/// the same (see [`crate::yaml_out`]).
pub fn to_yaml_stream(objects: &[Value]) -> String {
    crate::yaml_out::to_stream(objects)
}

/// Renders one cluster (`root` is the repository root) and fails on the
/// first Kustomization that fails: for callers that need all of it.
pub fn render_cluster(
    root: &Path,
    cluster: &str,
    opts: &RenderOptions,
) -> Result<RenderedCluster, RenderError> {
    let mut rendered = closure::render(root, cluster, opts)?;
    if rendered.failures.is_empty() {
        return Ok(rendered);
    }
    let error = rendered.failures.swap_remove(0).error;
    drop(rendered);
    Err(Arc::try_unwrap(error).unwrap_or_else(RenderError::Shared))
}

/// Renders one cluster's closure; a Kustomization that fails is in
/// [`RenderedCluster::failures`] and the rest renders. `Err` only when the
/// cluster cannot be found or its root sync cannot be built.
pub fn render_closure(
    root: &Path,
    cluster: &str,
    opts: &RenderOptions,
) -> Result<RenderedCluster, RenderError> {
    closure::render(root, cluster, opts)
}

/// Orders Kustomizations so that each comes after what it depends on; stable
/// otherwise. A dependency outside the set or a cycle is an error.
pub fn dependency_order(
    cluster: &str,
    kustomizations: &[FluxKustomization],
) -> Result<Vec<usize>, RenderError> {
    let parents = vec![None; kustomizations.len()];
    let graph = closure::Graph::new(cluster, kustomizations, &parents, None);
    if let Some((_, error)) = graph.primary_failures().into_iter().next() {
        return Err(Arc::try_unwrap(error).unwrap_or_else(RenderError::Shared));
    }
    Ok(graph.order(&|_| true))
}

/// `Kind namespace/name` of an object, for messages.
pub fn describe(object: &Value) -> String {
    let kind = str_at(object, &["kind"]).unwrap_or("?");
    let name = str_at(object, &["metadata", "name"]).unwrap_or("?");
    match str_at(object, &["metadata", "namespace"]) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

pub fn is_flux_kustomization(object: &Value) -> bool {
    str_at(object, &["kind"]) == Some("Kustomization")
        && str_at(object, &["apiVersion"]).is_some_and(|v| v.starts_with(FLUX_KUSTOMIZE_GROUP))
}

pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

/// `./a/b/` and `a/b` are the same artifact path.
pub(crate) fn normalize(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// Where a variable is used in the manifest folders, for error messages.
pub(crate) fn find_use(root: &Path, var: &str) -> Option<String> {
    let needle = format!("${{{var}");
    let mut hits = Vec::new();
    for dir in crate::MANIFEST_DIRS {
        for entry in ignore::WalkBuilder::new(root.join(dir)).build().flatten() {
            let path = entry.path();
            if !is_yaml(path) {
                continue;
            }
            if std::fs::read_to_string(path).is_ok_and(|text| text.contains(&needle)) {
                hits.push(relative(root, path));
            }
        }
    }
    hits.sort();
    (!hits.is_empty()).then(|| hits.join(", "))
}

pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Which file of a cluster folder declares a Flux Kustomization, for messages.
pub(crate) struct SourceIndex {
    files: HashMap<(String, String), String>,
    scanned: std::collections::HashSet<PathBuf>,
}

impl SourceIndex {
    fn scan(root: &Path, cluster_dir: &Path) -> Self {
        let mut index = Self {
            files: HashMap::new(),
            scanned: Default::default(),
        };
        index.add(root, cluster_dir);
        index
    }

    /// Indexes the files below `dir` (once), first declaration first.
    fn add(&mut self, root: &Path, dir: &Path) {
        if !self.scanned.insert(dir.to_path_buf()) {
            return;
        }
        let files = &mut self.files;
        for entry in ignore::WalkBuilder::new(dir).build().flatten() {
            let path = entry.path();
            if !is_yaml(path) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            // Only Flux Kustomizations are looked up: other files are not parsed.
            if !text.contains(FLUX_KUSTOMIZE_GROUP) {
                continue;
            }
            for object in parse_stream(&text).unwrap_or_default() {
                if let (Some(kind), Some(name)) = (
                    str_at(&object, &["kind"]),
                    str_at(&object, &["metadata", "name"]),
                ) {
                    files
                        .entry((kind.to_string(), name.to_string()))
                        .or_insert_with(|| relative(root, path));
                }
            }
        }
    }

    fn file_of(&self, kind: &str, name: &str) -> String {
        self.files
            .get(&(kind.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_else(|| "unknown file".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ks(name: &str, deps: &[&str]) -> FluxKustomization {
        FluxKustomization {
            name: name.into(),
            namespace: "flux-system".into(),
            path: PathBuf::from(name),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            source_ref: None,
            file: format!("clusters/x/{name}.yaml"),
            object: json!({}),
        }
    }

    #[test]
    fn orders_by_dependencies() {
        let all = [
            ks("apps", &["infrastructure"]),
            ks("infrastructure", &["controllers"]),
            ks("controllers", &["variables"]),
            ks("variables", &[]),
        ];
        let order = dependency_order("x", &all).unwrap();
        let names: Vec<_> = order.iter().map(|&i| all[i].name.as_str()).collect();
        assert_eq!(
            names,
            ["variables", "controllers", "infrastructure", "apps"]
        );
    }

    #[test]
    fn reports_a_cycle_with_its_members() {
        let all = [ks("a", &["b"]), ks("b", &["c"]), ks("c", &["a"])];
        let err = dependency_order("x", &all).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dependsOn cycle in cluster x: a -> b -> c -> a"
        );
    }

    #[test]
    fn reports_a_missing_dependency_with_its_file() {
        let err = dependency_order("x", &[ks("apps", &["infra"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Kustomization apps (clusters/x/apps.yaml): dependsOn infra, which is not in cluster x"
        );
    }

    #[test]
    fn normalises_flux_paths() {
        assert_eq!(
            normalize("./clusters/local/"),
            PathBuf::from("clusters/local")
        );
        assert_eq!(normalize("platform/kind"), PathBuf::from("platform/kind"));
    }
}
