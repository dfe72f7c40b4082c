//! Where a cluster's sync starts, found as Flux finds it: the `flux-system`
//! Kustomization that `flux bootstrap` writes into `gotk-sync.yaml` (its
//! `spec.path`), else a FluxInstance's `spec.sync.path` (the Flux Operator
//! then creates a source and a Kustomization named after its namespace), else
//! the cluster folder itself, which is what `flux bootstrap --path
//! clusters/<name>` syncs. The Kustomization the sync starts from is also
//! the owner of the root's objects.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{RenderError, is_flux_kustomization, is_yaml, normalize, str_at};

/// The name and namespace that `flux bootstrap` gives the root sync.
pub const ROOT_NAME: &str = "flux-system";

/// How the root Kustomization was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootOrigin {
    /// A Flux Kustomization declared in this file (`gotk-sync.yaml` usually).
    Declared(String),
    /// Created by the Flux Operator from the FluxInstance in this file.
    FluxInstance(String),
    /// None declared (e.g. a placeholder `gotk-sync.yaml`): the one that
    /// `flux bootstrap` writes for the cluster folder.
    Bootstrap,
}

/// Where one cluster's sync starts.
#[derive(Debug, Clone)]
pub struct SyncRoot {
    pub cluster: String,
    /// `clusters/<name>`, relative to the repository.
    pub cluster_dir: PathBuf,
    /// The root Kustomization's path, relative to the repository.
    pub path: PathBuf,
    /// The root Kustomization: as declared, or as Flux would create it.
    pub object: Value,
    pub origin: RootOrigin,
}

impl SyncRoot {
    /// The source the root syncs from: this repository. `(kind, namespace, name)`.
    pub fn source(&self) -> (String, String, String) {
        let namespace = str_at(&self.object, &["metadata", "namespace"]).unwrap_or(ROOT_NAME);
        let kind = str_at(&self.object, &["spec", "sourceRef", "kind"]).unwrap_or("GitRepository");
        let name = str_at(&self.object, &["spec", "sourceRef", "name"]).unwrap_or(ROOT_NAME);
        let ns = str_at(&self.object, &["spec", "sourceRef", "namespace"]).unwrap_or(namespace);
        (kind.to_string(), ns.to_string(), name.to_string())
    }

    /// True for the source that is this repository: the root's own, or,
    /// when the root is not in the tree, any source kind named as
    /// `flux bootstrap` names it (flux-system/flux-system).
    pub fn is_this_repo(&self, kind: &str, namespace: &str, name: &str) -> bool {
        if self.origin == RootOrigin::Bootstrap {
            return namespace == ROOT_NAME
                && name == ROOT_NAME
                && matches!(kind, "GitRepository" | "OCIRepository" | "Bucket");
        }
        let (k, ns, n) = self.source();
        (kind, namespace, name) == (k.as_str(), ns.as_str(), n.as_str())
    }

    /// Says where the root came from, for the build summary.
    pub fn describe(&self) -> String {
        let path = self.path.display();
        match &self.origin {
            RootOrigin::Declared(file) => format!("sync root ./{path} (Kustomization in {file})"),
            RootOrigin::FluxInstance(file) => {
                format!("sync root ./{path} (FluxInstance sync.path in {file})")
            }
            RootOrigin::Bootstrap => format!(
                "sync root ./{path} (no flux-system Kustomization in the tree: the one `flux bootstrap` writes is assumed)"
            ),
        }
    }
}

/// The clusters of a tree: the folders under `clusters/` that hold
/// manifests (a kustomization file, or YAML anywhere below), sorted.
pub fn list_clusters(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("clusters"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| !name.starts_with('.'))
        .filter(|name| holds_manifests(&root.join("clusters").join(name)))
        .collect();
    names.sort();
    names
}

fn holds_manifests(dir: &Path) -> bool {
    yaml_files(dir).next().is_some()
}

/// YAML files below `dir`, sorted, hidden entries skipped.
fn yaml_files(dir: &Path) -> impl Iterator<Item = PathBuf> {
    let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .hidden(true)
        .sort_by_file_path(|a, b| a.cmp(b))
        .build()
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| e.into_path())
        .filter(|p| is_yaml(p) || p.file_name().is_some_and(|n| n == "Kustomization"))
        .collect();
    files.sort();
    files.into_iter()
}

/// Finds the sync root of `clusters/<cluster>`.
pub fn sync_root(root: &Path, cluster: &str) -> Result<SyncRoot, RenderError> {
    let cluster_dir = Path::new("clusters").join(cluster);
    let abs = root.join(&cluster_dir);
    if !abs.is_dir() {
        return Err(RenderError::NoCluster {
            cluster: cluster.to_string(),
            looked: root.join("clusters").display().to_string(),
            found: list_clusters(root),
        });
    }
    if !holds_manifests(&abs) {
        return Err(RenderError::NoSyncRoot {
            cluster: cluster.to_string(),
            dir: abs,
        });
    }
    let mut instance = None;
    for file in yaml_files(&abs) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        // A cheap test first: gotk-components.yaml is large.
        if !text.contains(ROOT_NAME) && !text.contains("FluxInstance") {
            continue;
        }
        let rel = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for object in crate::parse_stream(&text).unwrap_or_default() {
            if is_flux_kustomization(&object)
                && str_at(&object, &["metadata", "name"]) == Some(ROOT_NAME)
                && str_at(&object, &["metadata", "namespace"]).unwrap_or(ROOT_NAME) == ROOT_NAME
            {
                let path = normalize(str_at(&object, &["spec", "path"]).unwrap_or("./"));
                return Ok(SyncRoot {
                    cluster: cluster.to_string(),
                    cluster_dir,
                    path,
                    object,
                    origin: RootOrigin::Declared(rel),
                });
            }
            if instance.is_none()
                && str_at(&object, &["kind"]) == Some("FluxInstance")
                && str_at(&object, &["spec", "sync", "path"]).is_some()
            {
                instance = Some((object, rel.clone()));
            }
        }
    }
    if let Some((object, file)) = instance {
        let namespace = str_at(&object, &["metadata", "namespace"]).unwrap_or(ROOT_NAME);
        let sync = &object["spec"]["sync"];
        let path = str_at(sync, &["path"]).unwrap_or("./");
        let kind = str_at(sync, &["kind"]).unwrap_or("GitRepository");
        let name = str_at(sync, &["name"]).unwrap_or(namespace);
        return Ok(SyncRoot {
            cluster: cluster.to_string(),
            cluster_dir,
            path: normalize(path),
            object: root_kustomization(name, namespace, path, kind),
            origin: RootOrigin::FluxInstance(file),
        });
    }
    let path = format!("./{}", cluster_dir.display());
    Ok(SyncRoot {
        cluster: cluster.to_string(),
        object: root_kustomization(ROOT_NAME, ROOT_NAME, &path, "GitRepository"),
        path: cluster_dir.clone(),
        cluster_dir,
        origin: RootOrigin::Bootstrap,
    })
}

/// The root Kustomization as `flux bootstrap` or the Flux Operator writes it.
fn root_kustomization(name: &str, namespace: &str, path: &str, source_kind: &str) -> Value {
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": "10m0s",
            "path": path,
            "prune": true,
            "sourceRef": {"kind": source_kind, "name": name},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";

    #[test]
    fn the_bootstrap_layout_without_a_kustomization_file_is_a_cluster() {
        let tree = tempfile::tempdir().unwrap();
        write(
            tree.path(),
            &[
                (
                    "clusters/production/flux-system/gotk-sync.yaml",
                    "# generated by flux bootstrap\n",
                ),
                ("clusters/production/apps.yaml", CM),
                ("clusters/.hidden/a.yaml", CM),
                ("clusters/empty/README.md", "nothing"),
            ],
        );
        assert_eq!(list_clusters(tree.path()), ["production"]);
        let root = sync_root(tree.path(), "production").unwrap();
        assert_eq!(root.origin, RootOrigin::Bootstrap);
        assert_eq!(root.path, PathBuf::from("clusters/production"));
        assert_eq!(
            root.source(),
            (
                "GitRepository".into(),
                "flux-system".into(),
                "flux-system".into()
            )
        );
    }

    #[test]
    fn a_declared_root_in_a_subfolder_sets_the_path() {
        let tree = tempfile::tempdir().unwrap();
        write(
            tree.path(),
            &[(
                "clusters/home/flux/flux-system/gotk-sync.yaml",
                "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n  namespace: flux-system\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: flux-system\n  namespace: flux-system\nspec:\n  path: ./clusters/home/flux\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
            )],
        );
        let root = sync_root(tree.path(), "home").unwrap();
        assert_eq!(root.path, PathBuf::from("clusters/home/flux"));
        assert_eq!(
            root.origin,
            RootOrigin::Declared("clusters/home/flux/flux-system/gotk-sync.yaml".into())
        );
    }

    #[test]
    fn a_flux_instance_names_the_root_after_its_namespace() {
        let tree = tempfile::tempdir().unwrap();
        write(
            tree.path(),
            &[(
                "clusters/edge/flux-instance.yaml",
                "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: flux-system\nspec:\n  sync:\n    kind: OCIRepository\n    url: oci://example/fleet\n    ref: latest\n    path: clusters/edge/sync\n",
            )],
        );
        let root = sync_root(tree.path(), "edge").unwrap();
        assert_eq!(root.path, PathBuf::from("clusters/edge/sync"));
        assert_eq!(
            root.source(),
            (
                "OCIRepository".into(),
                "flux-system".into(),
                "flux-system".into()
            )
        );
    }

    #[test]
    fn a_missing_cluster_says_what_was_looked_for_and_where() {
        let tree = tempfile::tempdir().unwrap();
        write(tree.path(), &[("clusters/staging/a.yaml", CM)]);
        let err = sync_root(tree.path(), "production")
            .unwrap_err()
            .to_string();
        assert!(err.contains("clusters/production"), "{err}");
        assert!(err.contains("found: staging"), "{err}");
        std::fs::create_dir_all(tree.path().join("clusters/bare")).unwrap();
        let err = sync_root(tree.path(), "bare").unwrap_err().to_string();
        assert!(err.contains("gotk-sync.yaml"), "{err}");
    }
}
