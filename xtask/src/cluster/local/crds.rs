//! CRDs for the local control plane: Flux's own (from the controllers' Go
//! modules, `config/crd/bases`), and permissive stand-ins for the
//! third-party kinds the tree uses whose controllers do not run here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::LocalError;
use super::build::Pins;
use exec::runner::Cmd;

/// Groups the API server serves without any CRD.
pub const BUILTIN_GROUPS: [&str; 20] = [
    "",
    "v1",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "admissionregistration.k8s.io",
    "apiregistration.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "events.k8s.io",
    "resource.k8s.io",
];

/// The groups whose CRDs come from the Flux controllers we run.
pub const FLUX_GROUPS: [&str; 2] = ["source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io"];

/// The CRD YAML files of the pinned source- and kustomize-controller, read
/// from the Go module cache (downloaded if needed).
pub fn flux_crd_files(root: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let pins = Pins::of_repo(root)?;
    let mut files = Vec::new();
    for name in ["source-controller", "kustomize-controller"] {
        let pin = pins.get(name)?;
        let json = Cmd::new("go")
            .args([
                "mod",
                "download",
                "-json",
                &format!("{}@{}", pin.module, pin.version),
            ])
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .read()?;
        let info: Value = serde_json::from_str(&json)
            .map_err(|e| LocalError::Other(format!("go mod download printed {json}: {e}")))?;
        let dir = info
            .get("Dir")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| LocalError::Other(format!("go mod download printed no Dir: {json}")))?;
        let bases = dir.join("config/crd/bases");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&bases)
            .map_err(super::io_err(bases.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// One kind the tree uses that nothing installs here.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingKind {
    pub group: String,
    pub kind: String,
    pub versions: BTreeSet<String>,
    pub namespaced: bool,
}

impl MissingKind {
    pub fn plural(&self) -> String {
        plural(&self.kind.to_lowercase())
    }
}

/// The kinds among `objects` that are neither built in, nor Flux's
/// installed kinds, nor defined by a CRD among the objects themselves.
pub fn missing_kinds<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Vec<MissingKind> {
    let objects: Vec<&Value> = objects.into_iter().collect();
    let defined: BTreeSet<(String, String)> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition"))
        .filter_map(|o| {
            Some((
                o.pointer("/spec/group")?.as_str()?.to_string(),
                o.pointer("/spec/names/kind")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let mut out: BTreeMap<(String, String), MissingKind> = BTreeMap::new();
    for o in objects {
        let (Some(api_version), Some(kind)) = (
            o.get("apiVersion").and_then(Value::as_str),
            o.get("kind").and_then(Value::as_str),
        ) else {
            continue;
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if BUILTIN_GROUPS.contains(&group)
            || FLUX_GROUPS.contains(&group)
            || defined.contains(&(group.to_string(), kind.to_string()))
        {
            continue;
        }
        let namespaced = o.pointer("/metadata/namespace").is_some();
        let entry = out
            .entry((group.to_string(), kind.to_string()))
            .or_insert_with(|| MissingKind {
                group: group.to_string(),
                kind: kind.to_string(),
                versions: BTreeSet::new(),
                namespaced,
            });
        entry.versions.insert(version.to_string());
        entry.namespaced |= namespaced;
    }
    out.into_values().collect()
}

/// A CRD that accepts anything (`x-kubernetes-preserve-unknown-fields`),
/// with the Ready-condition status subresource.
pub fn permissive_crd(k: &MissingKind) -> Value {
    let plural = k.plural();
    let versions: Vec<Value> = k
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({
                "name": v,
                "served": true,
                "storage": i == 0,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                }},
            })
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{}", k.group),
            "labels": {"xtask.devantler.tech/permissive": "true"},
        },
        "spec": {
            "group": k.group,
            "names": {
                "kind": k.kind,
                "listKind": format!("{}List", k.kind),
                "plural": plural,
                "singular": k.kind.to_lowercase(),
            },
            "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
            "versions": versions,
        },
    })
}

/// English plural of a lowercase kind, as Kubernetes names resources.
pub fn plural(kind: &str) -> String {
    if let Some(stem) = kind.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if kind.ends_with('s') || kind.ends_with('x') || kind.ends_with("ch") || kind.ends_with("sh") {
        return format!("{kind}es");
    }
    format!("{kind}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_third_party_kinds_and_their_scope() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "a"}}),
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "a", "namespace": "x"}}),
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "metadata": {"name": "a", "namespace": "x"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "a", "namespace": "x"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "things.example.com"}, "spec": {"group": "example.com", "names": {"kind": "Thing"}}}),
        ];
        let missing = missing_kinds(&objects);
        let names: Vec<String> = missing
            .iter()
            .map(|k| format!("{}/{} {}", k.group, k.kind, k.namespaced))
            .collect();
        assert_eq!(
            names,
            [
                "cert-manager.io/ClusterIssuer false",
                "helm.toolkit.fluxcd.io/HelmRelease true"
            ]
        );
        let crd = permissive_crd(&missing[0]);
        assert_eq!(crd["metadata"]["name"], "clusterissuers.cert-manager.io");
        assert_eq!(crd["spec"]["scope"], "Cluster");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural("clusterpolicy"), "clusterpolicies");
        assert_eq!(plural("gateway"), "gateways");
        assert_eq!(plural("ingressclass"), "ingressclasses");
        assert_eq!(plural("middleware"), "middlewares");
    }
}
