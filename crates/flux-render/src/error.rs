//! What rendering fails with: [`RenderError`] for a cluster or a folder,
//! [`YamlError`] for a YAML stream that cannot be read.

use std::path::PathBuf;

use serde_json::Value;

use crate::substitute;
use exec::tools::ToolError;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "no folder {looked}/{cluster} (a cluster is a folder under clusters/ holding manifests; found: {})",
        if found.is_empty() { "none".to_string() } else { found.join(", ") }
    )]
    NoCluster {
        cluster: String,
        looked: String,
        found: Vec<String>,
    },
    #[error(
        "{} holds no manifests: looked for a flux-system Kustomization (flux-system/gotk-sync.yaml), a FluxInstance with spec.sync.path, and YAML files for a generated kustomization.yaml",
        dir.display()
    )]
    NoSyncRoot { cluster: String, dir: PathBuf },
    #[error("Kustomization {name} ({file}): not rendered: {why}")]
    NotRendered {
        name: String,
        file: String,
        why: String,
    },
    #[error("Kustomization {name} ({file}): ExternalArtifact {artifact}: {reason}")]
    Artifact {
        name: String,
        file: String,
        artifact: String,
        reason: String,
    },
    /// A failure that the cluster's report holds too.
    #[error(transparent)]
    Shared(std::sync::Arc<RenderError>),
    #[error("kustomize build {dir} failed: {message}")]
    Kustomize { dir: PathBuf, message: String },
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{dir}: output is not valid YAML: {message}")]
    Yaml { dir: PathBuf, message: String },
    /// `what` names the object or step, ending in ": ", or is empty.
    #[error("{dir}: output is not valid YAML: {what}{source}")]
    Parse {
        dir: PathBuf,
        what: String,
        source: YamlError,
    },
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
    #[error(
        "Kustomization {name} ({file}): dependsOn {target}, which only exists once it is applied itself (it declares {target}, directly or below): Flux waits forever"
    )]
    DependsOnOwnChild {
        name: String,
        file: String,
        target: String,
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
    #[error("Kustomization {name} ({file}): {field} {reason}")]
    Field {
        name: String,
        file: String,
        field: String,
        reason: String,
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

/// Why a YAML stream could not be read into JSON values. The libyaml
/// messages keep go-yaml's wording, as Flux reports them.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("yaml: line {line}: {problem}")]
    Syntax { line: u64, problem: String },
    #[error("yaml: unknown anchor '{0}' referenced")]
    UnknownAnchor(String),
    #[error(
        "yaml: document contains excessive aliasing: alias *{anchor} at line {line} makes {aliased} of the first {nodes} nodes copies through aliases (an alias bomb: refused before it is expanded or built, as go-yaml refuses it)"
    )]
    ExcessiveAliasing {
        anchor: String,
        line: u64,
        nodes: u64,
        aliased: u64,
    },
    #[error("yaml: unbalanced collection end")]
    Unbalanced,
    #[error("yaml: map merge requires map or sequence of maps as the value")]
    MergeValue,
    #[error("unsupported map key: {0}")]
    MapKey(Value),
    #[error("json: unsupported value: {0}")]
    Float(f64),
    #[error(transparent)]
    Serde(#[from] serde_yaml::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
