//! Renders a cluster the way Flux would: kustomize on the cluster folder finds
//! the Flux Kustomizations, each one's `path` is built with kustomize, and its
//! postBuild substitution is applied with values from the ConfigMaps and
//! Secrets that `substituteFrom` names, found in the rendered tree.

pub mod substitute;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rayon::prelude::*;
use serde_json::Value;

use crate::runner::RunError;
use crate::tools::{self, ToolError};

pub const FLUX_KUSTOMIZE_GROUP: &str = "kustomize.toolkit.fluxcd.io/";
const SUBSTITUTE_KEY: &str = "kustomize.toolkit.fluxcd.io/substitute";
/// What a Secret-sourced variable renders as unless `reveal_secrets` is set.
pub const REDACTED_PREFIX: &str = "sops-redacted-";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cluster folder {0} not found (clusters are the folders under clusters/)")]
    NoCluster(PathBuf),
    #[error("kustomize build {dir} failed: {message}")]
    Kustomize { dir: PathBuf, message: String },
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("{dir}: output is not valid YAML: {message}")]
    Yaml { dir: PathBuf, message: String },
    #[error("Kustomization {name} ({file}): path {path} does not exist")]
    MissingPath {
        name: String,
        file: String,
        path: String,
    },
    #[error("Kustomization {name} ({file}): dependsOn {target}, which is not in cluster {cluster}")]
    MissingDependency {
        name: String,
        file: String,
        target: String,
        cluster: String,
    },
    #[error("dependsOn cycle in cluster {cluster}: {}", cycle.join(" -> "))]
    Cycle { cluster: String, cycle: Vec<String> },
    #[error(
        "Kustomization {name}: substituteFrom {kind}/{from} is not in cluster {cluster} (mark it optional: true if that is intended)"
    )]
    MissingSource {
        name: String,
        kind: String,
        from: String,
        cluster: String,
    },
    #[error("Kustomization {name}: {object}: {source}{}", hint.as_ref().map(|h| format!(" (used in {h})")).unwrap_or_default())]
    Substitute {
        name: String,
        object: String,
        source: substitute::SubstError,
        hint: Option<String>,
    },
    #[error(
        "Kustomization {name}: variable name {var:?} from {origin} is invalid, it must match ^[_[:alpha:]][_[:alpha:][:digit:]]*$"
    )]
    BadVariableName {
        name: String,
        var: String,
        origin: String,
    },
}

/// Decrypts one SOPS-encrypted object (as Flux's kustomize-controller does).
pub type Decryptor = std::sync::Arc<dyn Fn(&Value) -> Result<Value, String> + Send + Sync>;

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
    pub elapsed: Duration,
}

/// A whole rendered cluster.
#[derive(Debug, Clone)]
pub struct RenderedCluster {
    pub name: String,
    /// The cluster folder's own objects (what the root `flux-system` Kustomization applies).
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
    parse_stream(&output).map_err(|message| RenderError::Yaml {
        dir: dir.to_path_buf(),
        message,
    })
}

/// Parses a multi-document YAML stream into JSON values, skipping empty documents.
pub fn parse_stream(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        objects.push(serde_json::to_value(value).map_err(|e| e.to_string())?);
    }
    Ok(objects)
}

/// Writes objects as one multi-document YAML stream.
pub fn to_yaml_stream(objects: &[Value]) -> String {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(object).unwrap_or_default());
    }
    out
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
    let root_objects = kustomize_build(&cluster_dir)?;
    let cluster_path = normalize(&format!("clusters/{cluster}"));

    // The root Kustomization applies the cluster folder itself; it is already rendered.
    let declared: Vec<FluxKustomization> = root_objects
        .iter()
        .filter_map(|o| FluxKustomization::from_object(o, &index))
        .filter(|k| k.path != cluster_path)
        .collect();
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

    let built: Vec<(Result<Vec<Value>, RenderError>, Duration)> = order
        .par_iter()
        .map(|&i| {
            let started = Instant::now();
            (
                kustomize_build(&root.join(&declared[i].path)),
                started.elapsed(),
            )
        })
        .collect();
    let mut outputs = Vec::with_capacity(built.len());
    for (result, elapsed) in built {
        outputs.push((result?, elapsed));
    }

    let mut warnings = Vec::new();
    let sources = VariableSources::collect(
        root_objects
            .iter()
            .chain(outputs.iter().flat_map(|(o, _)| o)),
        opts,
        &mut warnings,
    );

    let mut kustomizations = Vec::with_capacity(order.len());
    for (&i, (objects, elapsed)) in order.iter().zip(outputs) {
        let flux = declared[i].clone();
        let objects = apply_post_build(cluster, &flux, objects, &sources, root)?;
        kustomizations.push(RenderedKustomization {
            flux,
            objects,
            elapsed,
        });
    }
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

/// ConfigMaps and Secrets of a cluster, by `kind/namespace/name`, as variables.
struct VariableSources {
    by_key: HashMap<String, BTreeMap<String, String>>,
}

impl VariableSources {
    fn collect<'a>(
        objects: impl Iterator<Item = &'a Value>,
        opts: &RenderOptions,
        warnings: &mut Vec<String>,
    ) -> Self {
        let mut by_key = HashMap::new();
        for object in objects {
            let kind = str_at(object, &["kind"]).unwrap_or("");
            if kind != "ConfigMap" && kind != "Secret" {
                continue;
            }
            let name = str_at(object, &["metadata", "name"]).unwrap_or("");
            let namespace = str_at(object, &["metadata", "namespace"]).unwrap_or("default");
            let vars = if kind == "Secret" {
                secret_variables(object, name, opts, warnings)
            } else {
                string_map(object.get("data"))
            };
            by_key.insert(format!("{kind}/{namespace}/{name}"), vars);
        }
        Self { by_key }
    }
}

fn secret_variables(
    object: &Value,
    name: &str,
    opts: &RenderOptions,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let encrypted = object.get("sops").is_some();
    let decrypted = match (&opts.decryptor, encrypted) {
        (Some(decrypt), true) => match decrypt(object) {
            Ok(plain) => Some(plain),
            Err(err) => {
                warnings.push(format!(
                    "Secret {name}: cannot decrypt ({err}); its variables render as placeholders"
                ));
                None
            }
        },
        (_, true) => {
            warnings.push(format!(
                "Secret {name} is SOPS-encrypted and no age identity is available (SOPS_AGE_KEY_FILE or ~/.config/sops/age/keys.txt); its variables render as placeholders"
            ));
            None
        }
        (_, false) => Some(object.clone()),
    };
    let mut vars = BTreeMap::new();
    let source = decrypted.as_ref().unwrap_or(object);
    let engine = base64::engine::general_purpose::STANDARD;
    if let Some(data) = source.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let text = v.as_str().unwrap_or_default();
            let value = engine
                .decode(text)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            vars.insert(k.clone(), value);
        }
    }
    vars.extend(string_map(source.get("stringData")));
    let reveal = decrypted.is_some() && (opts.reveal_secrets || !encrypted);
    if !reveal {
        for (k, v) in vars.iter_mut() {
            *v = format!("{REDACTED_PREFIX}{}", k.replace('_', "-"));
        }
    }
    vars
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn apply_post_build(
    cluster: &str,
    flux: &FluxKustomization,
    objects: Vec<Value>,
    sources: &VariableSources,
    root: &Path,
) -> Result<Vec<Value>, RenderError> {
    let Some(post_build) = flux.object.pointer("/spec/postBuild") else {
        return Ok(objects);
    };
    let mut vars = BTreeMap::new();
    for reference in post_build
        .get("substituteFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = str_at(reference, &["kind"]).unwrap_or("ConfigMap");
        let source = str_at(reference, &["name"]).unwrap_or("");
        let optional = reference
            .get("optional")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match sources
            .by_key
            .get(&format!("{kind}/{}/{source}", flux.namespace))
        {
            Some(values) => {
                for (k, v) in values {
                    vars.insert(k.clone(), v.replace('\n', ""));
                }
            }
            None if optional => {}
            None => {
                return Err(RenderError::MissingSource {
                    name: flux.name.clone(),
                    kind: kind.to_string(),
                    from: source.to_string(),
                    cluster: cluster.to_string(),
                });
            }
        }
    }
    for (k, v) in string_map(post_build.get("substitute")) {
        vars.insert(k, v.replace('\n', ""));
    }
    if let Some(bad) = vars.keys().find(|k| !substitute::is_valid_name(k)) {
        return Err(RenderError::BadVariableName {
            name: flux.name.clone(),
            var: bad.clone(),
            origin: "substituteFrom/substitute".into(),
        });
    }
    // As in kustomize-controller: no variables, no substitution.
    if vars.is_empty() {
        return Ok(objects);
    }
    objects
        .into_iter()
        .map(|object| {
            if substitution_disabled(&object) {
                return Ok(object);
            }
            let text = serde_yaml::to_string(&object).unwrap_or_default();
            let describe = || describe(&object);
            let replaced =
                substitute::substitute(&text, &vars).map_err(|source| RenderError::Substitute {
                    name: flux.name.clone(),
                    object: describe(),
                    hint: match &source {
                        substitute::SubstError::Undefined(var) => find_use(root, var),
                        _ => None,
                    },
                    source,
                })?;
            let mut parsed = parse_stream(&replaced).map_err(|message| RenderError::Yaml {
                dir: root.join(&flux.path),
                message: format!("{} after substitution: {message}", describe()),
            })?;
            Ok(parsed.pop().unwrap_or(Value::Null))
        })
        .collect()
}

/// True when an object opts out of substitution (label or annotation).
pub fn substitution_disabled(object: &Value) -> bool {
    ["labels", "annotations"].iter().any(|field| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(|m| m.get(SUBSTITUTE_KEY))
            .and_then(Value::as_str)
            == Some("disabled")
    })
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

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
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
fn find_use(root: &Path, var: &str) -> Option<String> {
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

    #[test]
    fn substitution_can_be_disabled_by_label_or_annotation() {
        let by_label = json!({"metadata": {"labels": {SUBSTITUTE_KEY: "disabled"}}});
        let by_annotation = json!({"metadata": {"annotations": {SUBSTITUTE_KEY: "disabled"}}});
        let enabled = json!({"metadata": {"annotations": {SUBSTITUTE_KEY: "enabled"}}});
        assert!(substitution_disabled(&by_label));
        assert!(substitution_disabled(&by_annotation));
        assert!(!substitution_disabled(&enabled));
    }

    #[test]
    fn plain_secret_values_come_from_data_and_string_data() {
        let secret = json!({
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"a": "YWxwaGE="},
            "stringData": {"b": "beta"}
        });
        let mut warnings = Vec::new();
        let vars = secret_variables(&secret, "s", &RenderOptions::default(), &mut warnings);
        assert_eq!(vars["a"], "alpha");
        assert_eq!(vars["b"], "beta");
        assert!(warnings.is_empty());
    }

    #[test]
    fn encrypted_secret_without_key_renders_placeholders_and_warns() {
        let secret = json!({
            "kind": "Secret",
            "metadata": {"name": "variables-cluster"},
            "stringData": {"nextcloud_password": "ENC[AES256_GCM,data:xx,iv:yy,tag:zz,type:str]"},
            "sops": {"mac": "ENC[...]"}
        });
        let mut warnings = Vec::new();
        let vars = secret_variables(
            &secret,
            "variables-cluster",
            &RenderOptions::default(),
            &mut warnings,
        );
        assert_eq!(
            vars["nextcloud_password"],
            "sops-redacted-nextcloud-password"
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("no age identity"), "{}", warnings[0]);
    }
}
