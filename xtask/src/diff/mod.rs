//! Object-level diff of two rendered trees: the tree at a git ref (the base)
//! and the working tree (the head), for every cluster. Objects are grouped by
//! cluster, then by the Flux Kustomization or HelmRelease that produces them,
//! then by `kind/namespace/name`. Secret values are masked: only the fact of a
//! change is shown.

pub mod git;
pub mod lines;
pub mod output;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use rayon::prelude::*;
use serde_json::Value;

use flux_render::helm::{self, HelmOptions};
use flux_render::{Decryptor, RenderOptions, RenderedCluster};

/// Lines of context around each change in a unified diff.
pub const CONTEXT: usize = 3;
/// What a masked Secret value shows.
pub const MASKED: &str = "<masked>";
/// What a masked Secret value shows on the head side when it changed.
pub const MASKED_CHANGED: &str = "<masked: changed>";
/// The group of the objects that the cluster folder itself holds.
pub const ROOT_GROUP: &str = "Kustomization flux-system";

/// `kind`, `namespace` (empty when cluster-scoped) and `name` of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of(object: &Value) -> Self {
        let get = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Self {
            kind: get("/kind"),
            namespace: get("/metadata/namespace"),
            name: get("/metadata/name"),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One side of the comparison for one cluster: objects by group, then key.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    pub groups: BTreeMap<String, BTreeMap<ObjectKey, Value>>,
    /// Groups (HelmReleases) that could not be rendered, with the reason.
    pub failed: BTreeMap<String, String>,
    pub warnings: Vec<String>,
    /// Why the cluster did not render at all (the base only: a broken base
    /// must not hide what a fix does; everything then shows as added).
    pub render_error: Option<String>,
    /// Flux Kustomizations that failed to render (the rest did).
    pub render_failures: Vec<String>,
    /// The values of the cluster's Secrets (plain or decrypted), masked
    /// wherever else they show up (e.g. rendered from Helm values).
    pub secret_values: BTreeSet<String>,
}

/// The group name of a Flux Kustomization's objects: its name, with its
/// namespace when that is not flux-system (tenants share names).
pub fn kustomization_group(flux: &flux_render::FluxKustomization) -> String {
    if flux.namespace == "flux-system" {
        format!("Kustomization {}", flux.name)
    } else {
        format!("Kustomization {}/{}", flux.namespace, flux.name)
    }
}

/// The group name of a HelmRelease's rendered objects.
pub fn release_group(namespace: &str, name: &str) -> String {
    format!("HelmRelease {namespace}/{name}")
}

impl ClusterObjects {
    /// Collects a rendered cluster (and its rendered HelmReleases, if any).
    pub fn collect(
        rendered: &RenderedCluster,
        releases: &[helm::RenderedRelease],
        decryptor: Option<&Decryptor>,
    ) -> Self {
        let mut out = Self {
            warnings: rendered.warnings.clone(),
            ..Self::default()
        };
        out.insert_all(ROOT_GROUP.to_string(), &rendered.root_objects, decryptor);
        for k in &rendered.kustomizations {
            out.insert_all(kustomization_group(&k.flux), &k.objects, decryptor);
        }
        for f in &rendered.failures {
            out.failed
                .insert(kustomization_group(&f.flux), f.error.to_string());
            out.render_failures.push(f.error.to_string());
        }
        for s in &rendered.skipped {
            out.warnings.push(format!(
                "Kustomization {}/{} skipped: {}",
                s.flux.namespace, s.flux.name, s.reason
            ));
        }
        for r in releases {
            let group = release_group(&r.namespace, &r.name);
            match &r.result {
                Ok(objects) => out.insert_all(group, objects, decryptor),
                Err(err) => {
                    out.failed.insert(group, err.to_string());
                }
            }
        }
        out
    }

    fn insert_all(&mut self, group: String, objects: &[Value], decryptor: Option<&Decryptor>) {
        let entry = self.groups.entry(group).or_default();
        for object in objects {
            if !object.is_object() {
                continue;
            }
            let mut key = ObjectKey::of(object);
            let mut object = object.clone();
            if key.kind == "Secret"
                && object.get("sops").is_some()
                && let Some(decrypt) = decryptor
                && let Ok(plain) = decrypt(&object)
            {
                object = plain;
            }
            if key.kind == "Secret" && object.get("sops").is_none() {
                self.secret_values.extend(secret_strings(&object));
            }
            // The same key twice in one group: keep both, apart.
            let base = key.name.clone();
            let mut n = 1;
            while entry.contains_key(&key) {
                n += 1;
                key.name = format!("{base}#{n}");
            }
            entry.insert(key, object);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One object that differs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectChange {
    #[serde(flatten)]
    pub key: ObjectKey,
    pub change: ChangeKind,
    /// A unified diff (changed), the object's YAML as `+` lines (added), or empty (removed).
    pub diff: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupDiff {
    pub group: String,
    pub changes: Vec<ObjectChange>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterDiff {
    pub cluster: String,
    pub groups: Vec<GroupDiff>,
    /// Things the reader should know: releases not rendered, warnings.
    pub notes: Vec<String>,
    /// Flux Kustomizations of the working tree that failed to render (the
    /// rest is compared): the diff then exits as for an error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl ClusterDiff {
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.groups
            .iter()
            .flat_map(|g| &g.changes)
            .filter(|c| c.change == kind)
            .count()
    }
}

/// The whole comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffReport {
    /// The base as given (or chosen), and the commit it resolved to.
    pub base: String,
    pub base_commit: String,
    pub clusters: Vec<ClusterDiff>,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl DiffReport {
    pub fn changes(&self) -> usize {
        self.clusters
            .iter()
            .flat_map(|c| &c.groups)
            .map(|g| g.changes.len())
            .sum()
    }

    pub fn has_differences(&self) -> bool {
        self.changes() > 0
    }

    /// Kustomizations of the working tree that did not render.
    pub fn errors(&self) -> usize {
        self.clusters.iter().map(|c| c.errors.len()).sum()
    }
}

/// Compares two sides of one cluster.
pub fn compare_cluster(cluster: &str, base: &ClusterObjects, head: &ClusterObjects) -> ClusterDiff {
    let mut notes = Vec::new();
    if let Some(err) = &base.render_error {
        notes.push(format!(
            "the base does not render ({err}); its objects count as absent"
        ));
    }
    for (side, objects) in [("base", base), ("head", head)] {
        for (group, err) in &objects.failed {
            notes.push(format!("{group} not rendered on {side}: {err}"));
        }
    }
    for warning in &head.warnings {
        notes.push(format!("warning: {warning}"));
    }
    let secrets: BTreeSet<String> = base
        .secret_values
        .union(&head.secret_values)
        .cloned()
        .collect();
    let names: BTreeSet<&String> = base.groups.keys().chain(head.groups.keys()).collect();
    let empty = BTreeMap::new();
    let mut groups = Vec::new();
    for name in names {
        // A release that failed on one side would show as all added or removed.
        if base.failed.contains_key(name) || head.failed.contains_key(name) {
            continue;
        }
        let b = base.groups.get(name).unwrap_or(&empty);
        let h = head.groups.get(name).unwrap_or(&empty);
        let changes = compare_group_masked(b, h, &secrets);
        if !changes.is_empty() {
            groups.push(GroupDiff {
                group: name.clone(),
                changes,
            });
        }
    }
    ClusterDiff {
        cluster: cluster.to_string(),
        groups,
        notes,
        errors: head.render_failures.clone(),
    }
}

/// Secret values shorter than this are not masked elsewhere: too common.
const MIN_SECRET_LEN: usize = 6;

/// The plain values of a Secret (`data` decoded, `stringData`), line by line.
fn secret_strings(secret: &Value) -> Vec<String> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for field in ["data", "stringData"] {
        for v in secret
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            let Some(text) = v.as_str() else { continue };
            let plain = if field == "data" {
                match engine
                    .decode(text.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    Some(p) => p,
                    None => continue,
                }
            } else {
                text.to_string()
            };
            out.extend(
                plain
                    .lines()
                    .map(str::trim)
                    .filter(|l| {
                        l.len() >= MIN_SECRET_LEN && !l.starts_with(flux_render::REDACTED_PREFIX)
                    })
                    .map(str::to_string),
            );
        }
    }
    out
}

/// Replaces every known secret value in a diff with [`MASKED`].
fn mask_text(text: String, secrets: &BTreeSet<String>) -> String {
    // Longest first, so that a value containing another is masked whole.
    let mut sorted: Vec<&String> = secrets
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .collect();
    if sorted.is_empty() {
        return text;
    }
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    sorted
        .into_iter()
        .fold(text, |acc, secret| acc.replace(secret.as_str(), MASKED))
}

#[cfg(test)]
fn compare_group(
    base: &BTreeMap<ObjectKey, Value>,
    head: &BTreeMap<ObjectKey, Value>,
) -> Vec<ObjectChange> {
    compare_group_masked(base, head, &BTreeSet::new())
}

fn compare_group_masked(
    base: &BTreeMap<ObjectKey, Value>,
    head: &BTreeMap<ObjectKey, Value>,
    secrets: &BTreeSet<String>,
) -> Vec<ObjectChange> {
    let keys: BTreeSet<&ObjectKey> = base.keys().chain(head.keys()).collect();
    let mut changes = Vec::new();
    for key in keys {
        match (base.get(key), head.get(key)) {
            (Some(b), Some(h)) if b == h => {}
            (Some(b), Some(h)) if is_secret(b) && encrypted(b) != encrypted(h) => {
                // One side is still encrypted: no key here opens it (the base
                // before `secrets keygen`, say). Its values cannot be compared,
                // and its sops block is no change of the object.
                let side = if encrypted(b) { "base" } else { "head" };
                let strip = |v: &Value| {
                    let mut v = mask(v, None);
                    if let Some(o) = v.as_object_mut() {
                        o.remove("sops");
                    }
                    v
                };
                let diff = mask_text(
                    lines::unified(&to_yaml(&strip(b)), &to_yaml(&strip(h)), CONTEXT),
                    secrets,
                );
                changes.push(ObjectChange {
                    key: key.clone(),
                    change: ChangeKind::Changed,
                    diff: format!(
                        "(the {side} side cannot be decrypted with your age keys, for example because it was encrypted for another recipient before `cargo xtask secrets keygen`; its values are not compared)\n{diff}"
                    ),
                });
            }
            (Some(b), Some(h)) => {
                let (b, h) = mask_pair(b, h);
                let diff = mask_text(lines::unified(&to_yaml(&b), &to_yaml(&h), CONTEXT), secrets);
                // Masked values equal on both sides: nothing to show, but the
                // objects did differ (e.g. re-encrypted). Say so.
                let diff = if diff.is_empty() {
                    "(only masked or encrypted values differ)\n".to_string()
                } else {
                    diff
                };
                changes.push(ObjectChange {
                    key: key.clone(),
                    change: ChangeKind::Changed,
                    diff,
                });
            }
            (None, Some(h)) => {
                let h = mask(h, None);
                let diff = mask_text(lines::unified("", &to_yaml(&h), CONTEXT), secrets);
                changes.push(ObjectChange {
                    key: key.clone(),
                    change: ChangeKind::Added,
                    diff,
                });
            }
            (Some(_), None) => changes.push(ObjectChange {
                key: key.clone(),
                change: ChangeKind::Removed,
                diff: String::new(),
            }),
            (None, None) => {}
        }
    }
    changes
}

fn to_yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

/// Still SOPS-encrypted after the decrypt attempt.
fn encrypted(value: &Value) -> bool {
    value.get("sops").is_some()
}

fn is_secret(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Masks a Secret's values. With `other` (the base side), values that differ
/// from it show as changed. SOPS metadata is reduced to its recipients.
fn mask(object: &Value, other: Option<&Value>) -> Value {
    if !is_secret(object) {
        return object.clone();
    }
    let mut out = object.clone();
    for field in ["data", "stringData"] {
        let before = other.and_then(|o| o.get(field)).and_then(Value::as_object);
        if let Some(map) = out.get_mut(field).and_then(Value::as_object_mut) {
            for (k, v) in map.iter_mut() {
                let changed = before.and_then(|b| b.get(k)).is_some_and(|old| old != v);
                *v = Value::String(if changed { MASKED_CHANGED } else { MASKED }.into());
            }
        }
    }
    if let Some(sops) = out.get_mut("sops") {
        let recipients: Vec<Value> = sops
            .get("age")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.get("recipient").cloned())
                    .collect()
            })
            .unwrap_or_default();
        *sops = serde_json::json!({ "age": recipients });
    }
    out
}

fn mask_pair(base: &Value, head: &Value) -> (Value, Value) {
    (mask(base, None), mask(head, Some(base)))
}

/// What to compare.
#[derive(Clone)]
pub struct DiffOptions {
    /// The git working tree (head); the base is read from its repository.
    pub root: PathBuf,
    /// A git ref; `None`: the merge-base with origin/main.
    pub base: Option<String>,
    /// Clusters to compare; empty: every cluster on either side.
    pub clusters: Vec<String>,
    /// Render HelmReleases too.
    pub helm: Option<HelmOptions>,
    /// Decrypts SOPS Secrets so that only real value changes count.
    pub decryptor: Option<Decryptor>,
}

/// Renders base and head and compares them. The function the verb and the
/// bench call.
pub fn run(opts: &DiffOptions) -> anyhow::Result<DiffReport> {
    let started = Instant::now();
    let (base_name, commit) = git::resolve_base(&opts.root, opts.base.as_deref())?;
    let scratch = tempfile::Builder::new()
        .prefix("xtask-diff-")
        .tempdir()
        .context("creating a temporary folder for the base tree")?;
    let base_root = scratch.path().join("base");
    git::export_tree(&opts.root, &commit, &base_root)
        .with_context(|| format!("reading the tree at {base_name}"))?;
    let mut report = compare_trees(&base_root, &opts.root, opts)?;
    report.base = base_name;
    report.base_commit = commit;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Compares two trees on disk (no git involved).
pub fn compare_trees(
    base_root: &Path,
    head_root: &Path,
    opts: &DiffOptions,
) -> anyhow::Result<DiffReport> {
    let started = Instant::now();
    let clusters: Vec<String> = if opts.clusters.is_empty() {
        let mut all: BTreeSet<String> = flux_render::list_clusters(base_root).into_iter().collect();
        all.extend(flux_render::list_clusters(head_root));
        all.into_iter().collect()
    } else {
        opts.clusters.clone()
    };
    let head_clusters = flux_render::list_clusters(head_root);
    if !opts.clusters.is_empty() {
        let base_clusters = flux_render::list_clusters(base_root);
        for c in &opts.clusters {
            if !head_clusters.contains(c) && !base_clusters.contains(c) {
                return Err(anyhow!(
                    "cluster {c} exists neither in the base nor in the working tree"
                ));
            }
        }
    }
    let render_opts = RenderOptions {
        decryptor: opts.decryptor.clone(),
        reveal_secrets: false,
        kustomize: Some(crate::kustomize_builder(crate::kustomize_cache_dir())?),
        trace: None,
    };
    let jobs: Vec<(usize, &Path, &String)> = clusters
        .iter()
        .flat_map(|c| [(0, base_root, c), (1, head_root, c)])
        .collect();
    let sides: Vec<anyhow::Result<ClusterObjects>> = jobs
        .par_iter()
        .map(|&(side, root, cluster)| {
            let label = if side == 0 { "base" } else { "working tree" };
            if !flux_render::list_clusters(root).contains(cluster) {
                return Ok(ClusterObjects::default());
            }
            let rendered = match flux_render::render_closure(root, cluster, &render_opts) {
                Ok(rendered) => rendered,
                Err(err) if side == 0 => {
                    return Ok(ClusterObjects {
                        render_error: Some(err.to_string()),
                        ..ClusterObjects::default()
                    });
                }
                Err(err) => {
                    return Err(anyhow!(err).context(format!("cluster {cluster} ({label})")));
                }
            };
            let releases = match &opts.helm {
                Some(h) => helm::render_cluster(&rendered, h),
                None => Vec::new(),
            };
            Ok(ClusterObjects::collect(
                &rendered,
                &releases,
                opts.decryptor.as_ref(),
            ))
        })
        .collect();
    let mut sides = sides.into_iter();
    let mut out = Vec::new();
    for cluster in &clusters {
        let base = sides.next().expect("one result per job")?;
        let head = sides.next().expect("one result per job")?;
        out.push(compare_cluster(cluster, &base, &head));
    }
    Ok(DiffReport {
        base: base_root.display().to_string(),
        base_commit: String::new(),
        clusters: out,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(objects: &[Value]) -> BTreeMap<ObjectKey, Value> {
        objects
            .iter()
            .map(|o| (ObjectKey::of(o), o.clone()))
            .collect()
    }

    #[test]
    fn added_removed_changed_and_unchanged() {
        let cm = |name: &str, v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "a"}, "data": {"k": v}});
        let base = group(&[cm("same", "1"), cm("gone", "1"), cm("edit", "1")]);
        let head = group(&[cm("same", "1"), cm("new", "1"), cm("edit", "2")]);
        let changes = compare_group(&base, &head);
        let summary: Vec<(String, ChangeKind)> = changes
            .iter()
            .map(|c| (c.key.name.clone(), c.change))
            .collect();
        assert_eq!(
            summary,
            [
                ("edit".to_string(), ChangeKind::Changed),
                ("gone".to_string(), ChangeKind::Removed),
                ("new".to_string(), ChangeKind::Added),
            ]
        );
        assert!(changes[0].diff.contains("-  k: '1'"), "{}", changes[0].diff);
        assert!(changes[0].diff.contains("+  k: '2'"), "{}", changes[0].diff);
    }

    #[test]
    fn secret_values_are_masked_and_only_the_change_shows() {
        let s = |v: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": v, "user": "admin"}});
        let changes = compare_group(&group(&[s("hunter2")]), &group(&[s("correct-horse")]));
        let diff = &changes[0].diff;
        assert!(
            !diff.contains("hunter2") && !diff.contains("correct-horse"),
            "{diff}"
        );
        assert!(!diff.contains("admin"), "{diff}");
        assert!(
            diff.contains(&format!("+  password: '{MASKED_CHANGED}'")),
            "{diff}"
        );
        let added = compare_group(&BTreeMap::new(), &group(&[s("hunter2")]));
        assert!(!added[0].diff.contains("hunter2"), "{}", added[0].diff);
    }

    #[test]
    fn a_base_that_does_not_render_is_a_note_and_counts_as_empty() {
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}});
        let base = ClusterObjects {
            render_error: Some("boom".into()),
            ..ClusterObjects::default()
        };
        let mut head = ClusterObjects::default();
        head.groups.insert(ROOT_GROUP.into(), group(&[cm]));
        let diff = compare_cluster("x", &base, &head);
        assert_eq!(diff.count(ChangeKind::Added), 1);
        assert!(
            diff.notes[0].contains("the base does not render (boom)"),
            "{:?}",
            diff.notes
        );
    }

    #[test]
    fn secret_values_rendered_elsewhere_are_masked_too() {
        let secret =
            json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"p": "aHVudGVyMi1sb25n"}});
        let secrets: BTreeSet<String> = secret_strings(&secret).into_iter().collect();
        assert_eq!(secrets.iter().collect::<Vec<_>>(), ["hunter2-long"]);
        let cm =
            |v: &str| json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"conf": v}});
        let changes = compare_group_masked(
            &group(&[cm("password=hunter2-long")]),
            &group(&[cm("password=hunter2-long; x")]),
            &secrets,
        );
        assert!(!changes[0].diff.contains("hunter2"), "{}", changes[0].diff);
        assert!(
            changes[0].diff.contains("password=<masked>"),
            "{}",
            changes[0].diff
        );
    }

    #[test]
    fn a_side_no_key_opens_is_said_and_shows_no_sops_hunk() {
        let key =
            ObjectKey::of(&json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "n"}}));
        let base = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "stringData": {"password": "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]"},
            "sops": {"age": [{"recipient": "age1old", "enc": "..."}], "mac": "ENC[...]"}});
        let head = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "stringData": {"password": "fresh-development-value"}});
        let b: BTreeMap<ObjectKey, Value> = [(key.clone(), base)].into_iter().collect();
        let h: BTreeMap<ObjectKey, Value> = [(key, head)].into_iter().collect();
        let changes = compare_group(&b, &h);
        assert_eq!(changes.len(), 1);
        let diff = &changes[0].diff;
        assert!(diff.contains("the base side cannot be decrypted"), "{diff}");
        assert!(!diff.contains("sops"), "{diff}");
        assert!(!diff.contains("fresh-development-value"), "{diff}");
    }
}
