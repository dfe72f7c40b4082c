//! The generator step of kustomize-controller (fluxcd/pkg/kustomize): before
//! kustomize runs, the Flux Kustomization's spec is merged into the folder's
//! kustomization.yaml (`targetNamespace`, `namePrefix`, `nameSuffix`,
//! `patches`, `images`, `components`, `buildMetadata`), and a folder without
//! one gets a generated one listing its manifests. Flux edits a throwaway copy
//! of the artifact; so do we, in a temporary copy of the tree, and only when
//! there is something to write.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{FluxKustomization, RenderError};

/// The names kustomize recognises, in its order of preference.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Spec fields that do not change what is rendered (scheduling, health,
/// access, pruning) or that the render handles elsewhere.
const SPEC_FIELDS: [&str; 26] = [
    "buildMetadata",
    "commonMetadata",
    "components",
    "decryption",
    "deletionPolicy",
    "dependsOn",
    "force",
    "healthCheckExprs",
    "healthChecks",
    "ignoreMissingComponents",
    "images",
    "interval",
    "kubeConfig",
    "namePrefix",
    "nameSuffix",
    "path",
    "patches",
    "postBuild",
    "prune",
    "retryInterval",
    "serviceAccountName",
    "sourceRef",
    "suspend",
    "targetNamespace",
    "timeout",
    "wait",
];

/// Where kustomize should build a Flux Kustomization: its own folder, or the
/// same folder in a temporary copy of the tree with the generated file.
pub struct Prepared {
    pub dir: PathBuf,
    _copy: Option<tempfile::TempDir>,
}

impl Prepared {
    /// True when the folder is a generated copy of the tree, not the tree's own.
    pub fn is_copy(&self) -> bool {
        self._copy.is_some()
    }
}

fn field_error(flux: &FluxKustomization, field: &str, reason: impl Into<String>) -> RenderError {
    RenderError::Field {
        name: flux.name.clone(),
        file: flux.file.clone(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Checks that every field of the spec is one the render honours.
pub fn check_spec(flux: &FluxKustomization) -> Result<(), RenderError> {
    let Some(spec) = flux.object.get("spec").and_then(Value::as_object) else {
        return Ok(());
    };
    for key in spec.keys() {
        if key == "ignore" {
            return Err(field_error(
                flux,
                "spec.ignore",
                "is not supported by this render (it would filter the generated kustomization)",
            ));
        }
        if !SPEC_FIELDS.contains(&key.as_str()) {
            return Err(field_error(
                flux,
                &format!("spec.{key}"),
                "is not a field of the Flux Kustomization v1 spec",
            ));
        }
    }
    let allowed = |field: &str, value: Option<&Value>, keys: &[&str]| -> Result<(), RenderError> {
        let Some(value) = value else { return Ok(()) };
        let Some(map) = value.as_object() else {
            return Err(field_error(flux, field, "must be a mapping"));
        };
        match map.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(field_error(
                flux,
                &format!("{field}.{k}"),
                "is not a known field",
            )),
            None => Ok(()),
        }
    };
    allowed(
        "spec.postBuild",
        spec.get("postBuild"),
        &["substitute", "substituteFrom", "substituteStrategy"],
    )?;
    allowed(
        "spec.commonMetadata",
        spec.get("commonMetadata"),
        &["labels", "annotations"],
    )?;
    for (i, patch) in list(spec.get("patches")).iter().enumerate() {
        let field = format!("spec.patches[{i}]");
        allowed(&field, Some(patch), &["patch", "target"])?;
        if patch.get("patch").and_then(Value::as_str).is_none() {
            return Err(field_error(
                flux,
                &format!("{field}.patch"),
                "must be a string",
            ));
        }
        allowed(
            &format!("{field}.target"),
            patch.get("target"),
            &[
                "group",
                "version",
                "kind",
                "name",
                "namespace",
                "labelSelector",
                "annotationSelector",
            ],
        )?;
    }
    for (i, image) in list(spec.get("images")).iter().enumerate() {
        let field = format!("spec.images[{i}]");
        allowed(
            &field,
            Some(image),
            &["name", "newName", "newTag", "digest"],
        )?;
        if image.get("name").and_then(Value::as_str).is_none() {
            return Err(field_error(flux, &format!("{field}.name"), "is required"));
        }
    }
    for (i, c) in list(spec.get("components")).iter().enumerate() {
        let field = format!("spec.components[{i}]");
        let Some(c) = c.as_str() else {
            return Err(field_error(flux, &field, "must be a string"));
        };
        if !is_local_relative(c) {
            return Err(field_error(
                flux,
                &field,
                format!("component path '{c}' must be local and relative"),
            ));
        }
    }
    for field in ["targetNamespace", "namePrefix", "nameSuffix"] {
        if spec.get(field).is_some_and(|v| !v.is_string()) {
            return Err(field_error(
                flux,
                &format!("spec.{field}"),
                "must be a string",
            ));
        }
    }
    Ok(())
}

fn list(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// fluxcd/pkg/kustomize's `IsLocalRelativePath`.
fn is_local_relative(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let remote = [
        "git::",
        "gh:",
        "ssh://",
        "https://",
        "http://",
        "git@",
        "github.com:",
        "github.com/",
    ];
    if remote
        .iter()
        .any(|p| p.len() < path.len() && lower.starts_with(p))
    {
        return false;
    }
    !(path.starts_with('/') || lower.trim_start_matches("file://").starts_with('/'))
}

pub(crate) fn find_kustomization_file(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// True when `flux`'s spec changes what kustomize builds from its folder
/// (names, namespace, patches, images, components, build metadata).
pub fn edits_the_build(flux: &FluxKustomization) -> bool {
    let spec = flux.object.get("spec").cloned().unwrap_or(Value::Null);
    [
        "targetNamespace",
        "namePrefix",
        "nameSuffix",
        "patches",
        "images",
        "components",
        "buildMetadata",
    ]
    .iter()
    .any(|f| spec.get(f).is_some())
}

/// Prepares the folder kustomize builds for `flux`: the folder itself when
/// Flux would leave its kustomization as it is, else a copy with the
/// generated kustomization.yaml.
pub fn prepare(root: &Path, flux: &FluxKustomization) -> Result<Prepared, RenderError> {
    check_spec(flux)?;
    let source = root.join(&flux.path);
    let edits = edits_the_build(flux);
    let existing = find_kustomization_file(&source);
    let existing_doc = match &existing {
        Some(file) => Some(read_kustomization(file)?),
        None => None,
    };
    let has_resources = existing_doc
        .as_ref()
        .and_then(|d| d.get("resources"))
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty());
    if !edits && existing.is_some() && has_resources {
        return Ok(Prepared {
            dir: source,
            _copy: None,
        });
    }

    let copy = tempfile::tempdir().map_err(|e| io_error(root, e))?;
    copy_tree(root, copy.path())?;
    let dir = copy.path().join(&flux.path);
    let (mut doc, file) = match (existing, existing_doc) {
        (Some(file), Some(doc)) => {
            let mut doc = doc;
            if !has_resources {
                // kustomize-controller asks for origin annotations then.
                doc.insert("buildMetadata".into(), json!(["originAnnotations"]));
            }
            let name = file.file_name().map(PathBuf::from).unwrap_or_default();
            (doc, dir.join(name))
        }
        _ => (generated(flux, &dir)?, dir.join("kustomization.yaml")),
    };
    let spec = flux.object.get("spec").cloned().unwrap_or(Value::Null);
    merge_spec(&spec, &dir, &mut doc);
    // A temp copy: never read after a crash.
    exec::fsutil::write_atomic_unsynced(
        &file,
        crate::yaml_out::to_string(&Value::Object(doc)).as_bytes(),
    )
    .map_err(|e| io_error(&file, e))?;
    Ok(Prepared {
        dir,
        _copy: Some(copy),
    })
}

fn io_error(path: &Path, source: std::io::Error) -> RenderError {
    RenderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_kustomization(file: &Path) -> Result<Map<String, Value>, RenderError> {
    let text = std::fs::read_to_string(file).map_err(|e| io_error(file, e))?;
    let value: Value = serde_yaml::from_str(&text).map_err(|e| RenderError::Parse {
        dir: file.to_path_buf(),
        what: String::new(),
        source: e.into(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(RenderError::Yaml {
            dir: file.to_path_buf(),
            message: "a kustomization must be a mapping".into(),
        }),
    }
}

/// The kustomization Flux writes into a folder that has none: every YAML
/// manifest below it, and each subfolder that has its own kustomization.
fn generated(flux: &FluxKustomization, dir: &Path) -> Result<Map<String, Value>, RenderError> {
    let mut resources = Vec::new();
    scan(flux, dir, dir, &mut resources)?;
    let mut doc = Map::new();
    doc.insert(
        "apiVersion".into(),
        json!("kustomize.config.k8s.io/v1beta1"),
    );
    doc.insert("kind".into(), json!("Kustomization"));
    if resources.is_empty() {
        doc.insert("namespace".into(), json!("_placeholder"));
    } else {
        doc.insert("resources".into(), json!(resources));
    }
    Ok(doc)
}

fn scan(
    flux: &FluxKustomization,
    base: &Path,
    dir: &Path,
    out: &mut Vec<String>,
) -> Result<(), RenderError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = format!("./{}", path.strip_prefix(base).unwrap_or(&path).display());
        if path.is_dir() {
            if find_kustomization_file(&path).is_some() {
                out.push(rel);
            } else {
                scan(flux, base, &path, out)?;
            }
            continue;
        }
        if !super::is_yaml(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        let objects = super::yaml11::parse_stream(&text).map_err(|source| RenderError::Parse {
            dir: path.clone(),
            what: "failed to decode Kubernetes YAML: ".into(),
            source,
        })?;
        if let Some(bad) = objects.iter().find(|o| {
            o.get("kind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        }) {
            return Err(field_error(
                flux,
                "spec.path",
                format!(
                    "{} has no kustomization.yaml and {} holds a document that is not a Kubernetes object: {}",
                    flux.path.display(),
                    path.strip_prefix(base).unwrap_or(&path).display(),
                    serde_json::to_string(bad).unwrap_or_default()
                ),
            ));
        }
        out.push(rel);
    }
    Ok(())
}

/// Merges the spec into the kustomization, as fluxcd/pkg/kustomize's
/// `GenerateManifest` does.
fn merge_spec(spec: &Value, dir: &Path, doc: &mut Map<String, Value>) {
    if let Some(ns) = spec.get("targetNamespace") {
        doc.insert("namespace".into(), ns.clone());
    }
    if let Some(p) = spec.get("namePrefix") {
        doc.insert("namePrefix".into(), p.clone());
    }
    if let Some(s) = spec.get("nameSuffix") {
        doc.insert("nameSuffix".into(), s.clone());
    }
    for patch in list(spec.get("patches")) {
        let mut entry = Map::new();
        entry.insert("patch".into(), patch["patch"].clone());
        if let Some(target) = patch.get("target").and_then(Value::as_object) {
            let target: Map<String, Value> = target
                .iter()
                .filter(|(_, v)| v.as_str().is_some_and(|s| !s.is_empty()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            entry.insert("target".into(), Value::Object(target));
        }
        push(doc, "patches", Value::Object(entry));
    }
    let ignore_missing = spec
        .get("ignoreMissingComponents")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for component in list(spec.get("components"))
        .iter()
        .filter_map(Value::as_str)
    {
        if ignore_missing && !dir.join(component).exists() {
            continue;
        }
        push(doc, "components", json!(component));
    }
    for image in list(spec.get("images")) {
        let get = |k: &str| image.get(k).and_then(Value::as_str).unwrap_or("");
        let images = doc
            .entry("images")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !images.is_array() {
            *images = Value::Array(Vec::new());
        }
        let Value::Array(images) = images else {
            continue;
        };
        let existing = images
            .iter_mut()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(get("name")));
        match existing.and_then(Value::as_object_mut) {
            Some(found) => {
                if !get("newName").is_empty() {
                    found.insert("newName".into(), json!(get("newName")));
                }
                if !get("newTag").is_empty() || !get("digest").is_empty() {
                    set_or_remove(found, "newTag", get("newTag"));
                    set_or_remove(found, "digest", get("digest"));
                }
            }
            None => {
                let mut entry = Map::new();
                for k in ["name", "newName", "newTag", "digest"] {
                    set_or_remove(&mut entry, k, get(k));
                }
                images.push(Value::Object(entry));
            }
        }
    }
    if let Some(meta) = spec.get("buildMetadata").and_then(Value::as_array)
        && !meta.is_empty()
    {
        doc.insert("buildMetadata".into(), Value::Array(meta.clone()));
    }
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: &str) {
    if value.is_empty() {
        map.remove(key);
    } else {
        map.insert(key.into(), json!(value));
    }
}

fn push(doc: &mut Map<String, Value>, key: &str, value: Value) {
    let slot = doc.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    match slot {
        Value::Array(items) => items.push(value),
        other => *other = Value::Array(vec![value]),
    }
}

/// Copies the tree kustomize may read (the artifact): every file, except
/// git's folder and build output; symbolic links are not followed.
fn copy_tree(root: &Path, to: &Path) -> Result<(), RenderError> {
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .filter_entry(|e| {
            e.depth() != 1 || !matches!(e.file_name().to_str(), Some(".git" | "target"))
        })
        .build();
    for entry in walker.flatten() {
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = to.join(rel);
        let kind = entry.file_type();
        if kind.is_some_and(|t| t.is_dir()) {
            std::fs::create_dir_all(&target).map_err(|e| io_error(&target, e))?;
        } else if kind.is_some_and(|t| t.is_file()) {
            std::fs::copy(path, &target).map_err(|e| io_error(&target, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_merges_into_the_kustomization_as_flux_does() {
        let spec = json!({
            "targetNamespace": "team",
            "namePrefix": "p-",
            "patches": [{"patch": "x", "target": {"kind": "Deployment", "name": ""}}],
            "images": [
                {"name": "nginx", "newTag": "2"},
                {"name": "busybox", "newName": "mirror/busybox"}
            ],
            "components": ["present", "missing"],
            "ignoreMissingComponents": true,
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("present")).unwrap();
        let mut doc = json!({
            "namespace": "old",
            "patches": [{"patch": "first"}],
            "images": [{"name": "nginx", "newName": "mirror/nginx", "digest": "sha256:1"}],
        })
        .as_object()
        .cloned()
        .unwrap();
        merge_spec(&spec, dir.path(), &mut doc);
        assert_eq!(
            Value::Object(doc),
            json!({
                "namespace": "team",
                "namePrefix": "p-",
                "patches": [{"patch": "first"}, {"patch": "x", "target": {"kind": "Deployment"}}],
                // A new tag replaces the digest too; the name is kept.
                "images": [
                    {"name": "nginx", "newName": "mirror/nginx", "newTag": "2"},
                    {"name": "busybox", "newName": "mirror/busybox"}
                ],
                "components": ["present"],
            })
        );
    }

    #[test]
    fn remote_and_absolute_components_are_not_local() {
        assert!(is_local_relative("../components/x"));
        assert!(is_local_relative("components/x"));
        assert!(!is_local_relative("https://example.com/x"));
        assert!(!is_local_relative("github.com/org/repo"));
        assert!(!is_local_relative("/abs/path"));
        assert!(!is_local_relative("file:///abs"));
    }
}
