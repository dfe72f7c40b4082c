//! Renders a cluster the way Flux would: kustomize on the cluster folder finds
//! the Flux Kustomizations; for each one, the generator step merges its spec
//! into the folder's kustomization ([`generate`]), kustomize builds it, and
//! [`post_build`] substitutes variables from the ConfigMaps and Secrets that
//! `substituteFrom` names (found in the rendered tree) and adds the labels
//! kustomize-controller adds.

mod error;
pub mod generate;
pub mod helm;
pub mod post_build;
pub mod substitute;
pub mod yaml11;
pub mod yaml_out;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::Value;

use exec::runner::RunError;
use exec::tools;

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
}

/// A Flux Kustomization as declared in the cluster folder.
#[derive(Debug, Clone)]
pub struct FluxKustomization {
    pub name: String,
    pub namespace: String,
    /// `spec.path`, normalised relative to the artifact (repository) root.
    pub path: PathBuf,
    pub depends_on: Vec<String>,
    pub source_ref: Option<(String, String)>,
    /// The file in the cluster folder that declares it.
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
}

/// A whole rendered cluster.
#[derive(Debug, Clone)]
pub struct RenderedCluster {
    pub name: String,
    /// The cluster folder's own objects: what the root `flux-system`
    /// Kustomization applies, rendered like the others when it is declared.
    pub root_objects: Vec<Value>,
    /// In dependency order.
    pub kustomizations: Vec<RenderedKustomization>,
    pub warnings: Vec<String>,
}

/// The clusters: folder names under `clusters/`, sorted.
pub fn list_clusters(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("clusters"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("kustomization.yaml").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Runs kustomize on `dir` and parses the YAML stream.
pub fn kustomize_build(dir: &Path) -> Result<Vec<Value>, RenderError> {
    let kustomize = tools::kustomize()?;
    let output = kustomize.build(dir).read().map_err(|err| match err {
        RunError::Failed { stderr, .. } => RenderError::Kustomize {
            dir: dir.to_path_buf(),
            message: stderr,
        },
        other => RenderError::Tool(other.into()),
    })?;
    parse_stream(&output).map_err(|source| RenderError::Parse {
        dir: dir.to_path_buf(),
        what: String::new(),
        source,
    })
}

/// Runs kustomize on `dir` as Flux does (no load restrictions) and returns
/// its output; errors name `shown`, the folder the user knows.
fn kustomize_build_text(dir: &Path, shown: &Path) -> Result<String, RenderError> {
    let kustomize = tools::kustomize()?;
    kustomize
        .build(dir)
        .args(["--load-restrictor", "LoadRestrictionsNone"])
        .read()
        .map_err(|err| match err {
            RunError::Failed { stderr, .. } => RenderError::Kustomize {
                dir: shown.to_path_buf(),
                message: stderr,
            },
            other => RenderError::Tool(other.into()),
        })
}

/// Builds a folder as Flux reads it (YAML 1.1 types).
fn flux_build(dir: &Path, shown: &Path) -> Result<Vec<post_build::Document>, RenderError> {
    post_build::documents(shown, &kustomize_build_text(dir, shown)?)
}

/// Parses a multi-document YAML stream into JSON values, skipping empty documents.
pub fn parse_stream(text: &str) -> Result<Vec<Value>, YamlError> {
    use serde::Deserialize;
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

/// Renders one cluster: `root` is the repository (artifact) root.
pub fn render_cluster(
    root: &Path,
    cluster: &str,
    opts: &RenderOptions,
) -> Result<RenderedCluster, RenderError> {
    let cluster_dir = root.join("clusters").join(cluster);
    if !cluster_dir.join("kustomization.yaml").is_file() {
        return Err(RenderError::NoCluster(cluster_dir));
    }
    let index = SourceIndex::scan(root, &cluster_dir);
    let root_docs = flux_build(&cluster_dir, &cluster_dir)?;
    let raw_root: Vec<Value> = root_docs.iter().map(|d| d.object.clone()).collect();
    let cluster_path = normalize(&format!("clusters/{cluster}"));

    // The root Kustomization applies the cluster folder itself: it is
    // rendered here, its postBuild and labels are applied at the end.
    let (root_flux, declared): (Vec<FluxKustomization>, Vec<FluxKustomization>) = raw_root
        .iter()
        .filter_map(|o| FluxKustomization::from_object(o, &index))
        .partition(|k| k.path == cluster_path);
    for k in &declared {
        if !root.join(&k.path).is_dir() {
            return Err(RenderError::MissingPath {
                name: k.name.clone(),
                file: k.file.clone(),
                path: k.path.display().to_string(),
            });
        }
    }
    let order = dependency_order(cluster, &declared)?;

    type Built = (Result<Vec<post_build::Document>, RenderError>, Duration);
    let built: Vec<Built> = order
        .par_iter()
        .map(|&i| {
            let started = Instant::now();
            let flux = &declared[i];
            let shown = root.join(&flux.path);
            let result = generate::prepare(root, flux)
                .and_then(|prepared| flux_build(&prepared.dir, &shown));
            (result, started.elapsed())
        })
        .collect();
    let mut outputs = Vec::with_capacity(built.len());
    for (result, elapsed) in built {
        outputs.push((result?, elapsed));
    }

    let mut warnings = Vec::new();
    let sources = post_build::VariableSources::collect(
        raw_root.iter().chain(
            outputs
                .iter()
                .flat_map(|(docs, _)| docs.iter().map(|d| &d.object)),
        ),
        opts,
        &mut warnings,
    );

    let mut kustomizations = Vec::with_capacity(order.len());
    for (&i, (docs, elapsed)) in order.iter().zip(outputs) {
        let flux = declared[i].clone();
        let variables = post_build::variables(cluster, &flux, &sources)?;
        let dir = root.join(&flux.path);
        let objects = post_build::apply(&flux, docs, &variables, &dir, root)?;
        kustomizations.push(RenderedKustomization {
            flux,
            objects,
            variables,
            elapsed,
        });
    }
    let root_objects = match root_flux.first() {
        Some(flux) => {
            let prepared = generate::prepare(root, flux)?;
            let docs = if prepared.dir == cluster_dir {
                root_docs
            } else {
                flux_build(&prepared.dir, &cluster_dir)?
            };
            let variables = post_build::variables(cluster, flux, &sources)?;
            post_build::apply(flux, docs, &variables, &cluster_dir, root)?
        }
        None => raw_root,
    };
    Ok(RenderedCluster {
        name: cluster.to_string(),
        root_objects,
        kustomizations,
        warnings,
    })
}

/// Orders Kustomizations so that each comes after what it depends on; stable
/// otherwise. A dependency outside the set or a cycle is an error.
pub fn dependency_order(
    cluster: &str,
    kustomizations: &[FluxKustomization],
) -> Result<Vec<usize>, RenderError> {
    let by_name: HashMap<&str, usize> = kustomizations
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name.as_str(), i))
        .collect();
    for k in kustomizations {
        for dep in &k.depends_on {
            if !by_name.contains_key(dep.as_str()) {
                return Err(RenderError::MissingDependency {
                    name: k.name.clone(),
                    file: k.file.clone(),
                    target: dep.clone(),
                    cluster: cluster.to_string(),
                });
            }
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        ks: &[FluxKustomization],
        by_name: &HashMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<String>> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<String> =
                    stack[start..].iter().map(|&s| ks[s].name.clone()).collect();
                cycle.push(ks[i].name.clone());
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        stack.push(i);
        for dep in &ks[i].depends_on {
            visit(by_name[dep.as_str()], ks, by_name, marks, stack, order)?;
        }
        stack.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; kustomizations.len()];
    let mut order = Vec::with_capacity(kustomizations.len());
    for i in 0..kustomizations.len() {
        visit(
            i,
            kustomizations,
            &by_name,
            &mut marks,
            &mut Vec::new(),
            &mut order,
        )
        .map_err(|cycle| RenderError::Cycle {
            cluster: cluster.to_string(),
            cycle,
        })?;
    }
    Ok(order)
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
fn normalize(path: &str) -> PathBuf {
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

/// Which file of a cluster folder declares an object, for messages.
struct SourceIndex {
    files: HashMap<(String, String), String>,
}

impl SourceIndex {
    fn scan(root: &Path, cluster_dir: &Path) -> Self {
        let mut files = HashMap::new();
        for entry in ignore::WalkBuilder::new(cluster_dir).build().flatten() {
            let path = entry.path();
            if !is_yaml(path) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            for object in parse_stream(&text).unwrap_or_default() {
                if let (Some(kind), Some(name)) = (
                    str_at(&object, &["kind"]),
                    str_at(&object, &["metadata", "name"]),
                ) {
                    files.insert((kind.to_string(), name.to_string()), relative(root, path));
                }
            }
        }
        Self { files }
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
