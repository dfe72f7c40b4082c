//! The Flux graph of one cluster: its Kustomizations, walked by the same
//! closure that `build` and `diff` render (`flux_render::closure::walk`:
//! which are reached, in what order, from which source, suspended or not,
//! ExternalArtifacts assembled, cycles and missing or circular dependencies)
//! over the builds this run already made; then their paths, sourceRefs,
//! postBuild variables, and HelmRelease sources and chart pins. Also yields
//! every object as Flux would apply it, for the schema check.

use std::collections::HashMap;
use std::sync::Arc;

use flux_render::RenderError;
use flux_render::closure::Outcome;
use rayon::prelude::*;

use base64::Engine as _;
use serde_json::Value;

use super::kustomize::{BuildResult, Builds};
use super::substitute;
use super::tree::Tree;
use super::{AllowList, Check, Finding, Item, Severity};

/// A `kind`/`namespace`/`name` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One Flux Kustomization of the cluster.
#[derive(Debug, Clone)]
pub struct FluxKustomization {
    pub namespace: String,
    pub name: String,
    pub path: String,
    pub object: Value,
    /// Where it is declared.
    pub file: String,
    /// The folder whose rendering declared it.
    pub origin: String,
    pub line: Option<usize>,
    /// Objects its path renders (before substitution).
    pub objects: Objects,
}

/// The objects a path renders, before substitution: a build's, shared by
/// every Kustomization and cluster that reaches it (not copied for each),
/// or rendered for this one alone.
#[derive(Debug, Clone)]
pub enum Objects {
    Built(Arc<BuildResult>),
    Rendered(Vec<Value>),
}

impl Default for Objects {
    fn default() -> Self {
        Objects::Rendered(Vec::new())
    }
}

impl std::ops::Deref for Objects {
    type Target = [Value];

    fn deref(&self) -> &[Value] {
        match self {
            Objects::Built(result) => result.as_ref().as_ref().map_or(&[], Vec::as_slice),
            Objects::Rendered(objects) => objects,
        }
    }
}

impl FluxKustomization {
    fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
    fn spec(&self, pointer: &str) -> Option<&Value> {
        self.object.pointer(pointer)
    }
    fn target_namespace(&self) -> Option<&str> {
        self.spec("/spec/targetNamespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
    /// The namespace an object it applies ends up in.
    fn namespace_of(&self, obj: &Value) -> String {
        self.target_namespace()
            .or_else(|| obj.pointer("/metadata/namespace").and_then(Value::as_str))
            .unwrap_or(&self.namespace)
            .to_string()
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn is_object(v: &Value) -> bool {
    s(v, "/apiVersion").is_some() && s(v, "/kind").is_some()
}

/// `./a/b/` → `a/b`.
pub fn normalize_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Describes an object as `Kind namespace/name`.
pub fn describe(obj: &Value) -> String {
    let kind = s(obj, "/kind").unwrap_or("?");
    let name = s(obj, "/metadata/name").unwrap_or("?");
    match s(obj, "/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// What Flux would apply for a path: the kustomize build when the folder has
/// a kustomization file, else every manifest under it (Flux generates one).
pub fn render_path(tree: &Tree, builds: &Builds, dir: &str) -> Vec<Value> {
    if tree.kustomization_file(dir).is_some() {
        return match builds.get(dir).as_ref() {
            Ok(objs) => objs.clone(),
            Err(_) => Vec::new(),
        };
    }
    let abs = tree.root.join(dir);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&abs) else {
        return out;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let rel = if dir.is_empty() {
            name.clone()
        } else {
            format!("{dir}/{name}")
        };
        if p.is_dir() {
            if !name.starts_with('.') {
                out.extend(render_path(tree, builds, &rel));
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            match tree.files.iter().find(|f| f.rel == rel) {
                Some(f) => out.extend(f.docs.iter().map(|d| d.value.clone()).filter(is_object)),
                None => {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let (docs, _) = super::tree::parse_stream(&text);
                    out.extend(docs.into_iter().map(|d| d.value).filter(is_object));
                }
            }
        }
    }
    out
}

static PINNED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
        .expect("static regex")
});

/// True for an exact version (`1.2.3`, `v1.2.3-rc.1`), false for ranges, `*`, empty.
pub fn is_pinned_version(v: &str) -> bool {
    PINNED.is_match(v.trim())
}

/// The result of checking one cluster.
pub struct ClusterCheck {
    pub findings: Vec<Finding>,
    pub items: Vec<Item>,
    pub kustomizations: Vec<FluxKustomization>,
}

/// Checks the Flux graph of `clusters/<cluster>`.
pub fn check_cluster(
    tree: &Tree,
    builds: &Builds,
    allow: &AllowList,
    cluster: &str,
) -> ClusterCheck {
    let mut findings = Vec::new();
    let mut items = Vec::new();
    // Where the sync starts, as Flux finds it (gotk-sync.yaml, a
    // FluxInstance, or the cluster folder).
    let sync = match flux_render::discover::sync_root(&tree.root, cluster) {
        Ok(sync) => sync,
        Err(err) => {
            findings.push(Finding::error(
                Check::Flux,
                &format!("clusters/{cluster}"),
                None,
                err.to_string(),
            ));
            return ClusterCheck {
                findings,
                items,
                kustomizations: Vec::new(),
            };
        }
    };
    let cluster_dir = normalize_path(&sync.path.to_string_lossy());
    let fallback = tree
        .kustomization_file(&cluster_dir)
        .unwrap_or_else(|| cluster_dir.clone());
    let root_objects = render_path(tree, builds, &cluster_dir);
    if tree.kustomization_file(&cluster_dir).is_none() {
        for o in &root_objects {
            let (file, line) = tree.locate(o, &cluster_dir, None, &fallback);
            items.push(Item {
                object: o.clone(),
                file,
                line,
            });
        }
    }

    // Which Kustomizations Flux reconciles, in what order, from which
    // source: the closure that `build` and `diff` render, walked over the
    // builds this run already made.
    let mut closure = flux_render::closure::walk(
        &tree.root,
        &sync,
        &root_objects,
        &mut Reader { tree, builds },
    );
    let mut generators: Vec<Value> = root_objects
        .iter()
        .chain(
            closure
                .nodes
                .iter()
                .filter_map(|n| n.output.as_deref())
                .flatten(),
        )
        .filter(|o| flux_render::artifact::is_generator(o))
        .cloned()
        .collect();
    generators.dedup();
    // Where each node's objects are in this repository, for findings.
    let mut paths: Vec<String> = Vec::with_capacity(closure.nodes.len());
    for node in &closure.nodes {
        let raw_path = s(&node.flux.object, "/spec/path").unwrap_or("./");
        let path = match &node.source_dir {
            Some(dir) if dir != &tree.root => {
                artifact_folder(&node.flux.object, raw_path, &sync, &generators).unwrap_or_default()
            }
            _ => normalize_path(raw_path),
        };
        paths.push(path);
    }
    let mut ks: Vec<FluxKustomization> = Vec::new();
    // The root itself, when the root's objects declare it: its postBuild
    // applies to them.
    if let Some(obj) = root_objects
        .iter()
        .find(|o| flux_render::closure::is_root(&sync, o))
    {
        let (file, line) = tree.locate(obj, &cluster_dir, None, &fallback);
        ks.push(FluxKustomization {
            namespace: s(obj, "/metadata/namespace")
                .unwrap_or("flux-system")
                .to_string(),
            name: s(obj, "/metadata/name").unwrap_or_default().to_string(),
            path: cluster_dir.clone(),
            object: obj.clone(),
            file,
            origin: cluster_dir.clone(),
            line,
            objects: Objects::Rendered(root_objects.clone()),
        });
    }
    let mut index_of = vec![0; closure.nodes.len()];
    for &i in &closure.order {
        let node = &closure.nodes[i];
        let obj = node.flux.object.clone();
        let origin = node
            .parent
            .map_or_else(|| cluster_dir.clone(), |p| paths[p].clone());
        let (file, line) = tree.locate(&obj, &origin, None, &fallback);
        let (namespace, name) = (node.flux.namespace.clone(), node.flux.name.clone());
        let label = format!("Kustomization {namespace}/{name}");
        let not_validated = |why: String| Finding {
            severity: Severity::Warning,
            ..Finding::error(Check::Flux, &file, line, format!("not validated: {why}"))
                .with_object(label.clone())
        };
        let mut path = paths[i].clone();
        match (&node.outcome, &node.output) {
            (Outcome::Skipped(why), _) => {
                findings.push(not_validated(why.clone()));
                path.clear();
            }
            (Outcome::Failed(error), None) => match &**error {
                RenderError::MissingPath { .. } => {
                    let raw_path = s(&obj, "/spec/path").unwrap_or("./");
                    let (file, line) =
                        tree.locate(&obj, &origin, Some(&format!("path: {raw_path}")), &fallback);
                    findings.push(
                        Finding::error(
                            Check::Flux,
                            &file,
                            line,
                            format!("spec.path {raw_path:?} does not exist"),
                        )
                        .with_object(label.clone()),
                    );
                }
                RenderError::Artifact {
                    artifact, reason, ..
                } => findings.push(not_validated(format!(
                    "ExternalArtifact {artifact}: {reason}"
                ))),
                RenderError::NotRendered { why, .. } => findings.push(not_validated(why.clone())),
                // kustomize's own error is the kustomize check's finding.
                _ => {}
            },
            (Outcome::Failed(error), Some(_)) => {
                if let RenderError::DependsOnOwnChild { target, .. } = &**error {
                    findings.push(named_ref_error(
                        tree,
                        &obj,
                        &origin,
                        &file,
                        target,
                        format!(
                            "dependsOn {target}, which only exists once this Kustomization is applied (it declares {target}, directly or below): Flux waits forever"
                        ),
                        &label,
                    ));
                }
            }
            _ => {}
        }
        for (ns, dep) in &node.missing_dependencies {
            findings.push(named_ref_error(
                tree,
                &obj,
                &origin,
                &file,
                dep,
                format!("dependsOn {ns}/{dep}: no such Kustomization in cluster {cluster}"),
                &label,
            ));
        }
        index_of[i] = ks.len();
        ks.push(FluxKustomization {
            namespace,
            name,
            path,
            object: obj,
            file,
            origin,
            line,
            // Taken, not copied: nothing reads a node's output after this.
            objects: closure.nodes[i].output.take().unwrap_or_default(),
        });
    }
    for cycle in &closure.cycles {
        let first = &ks[index_of[cycle[0]]];
        let mut chain: Vec<String> = cycle.iter().map(|&c| ks[index_of[c]].id()).collect();
        chain.push(first.id());
        findings.push(
            Finding::error(
                Check::Flux,
                &first.file,
                first.line,
                format!("dependsOn cycle: {}", chain.join(" -> ")),
            )
            .with_object(format!("Kustomization {}", first.id())),
        );
    }

    // Everything the cluster's tree defines, by kind/namespace/name.
    let mut defined: HashMap<Ref, &Value> = HashMap::new();
    for o in &root_objects {
        defined.insert(
            obj_ref(o, s(o, "/metadata/namespace").unwrap_or("flux-system")),
            o,
        );
    }
    for k in &ks {
        for o in k.objects.iter() {
            defined.insert(obj_ref(o, &k.namespace_of(o)), o);
        }
    }
    for generator in &generators {
        for ((namespace, name), _) in flux_render::artifact::declared(generator) {
            let r = Ref {
                kind: "ExternalArtifact".into(),
                namespace,
                name,
            };
            defined.insert(r, generator);
        }
    }
    for k in &ks {
        let label = format!("Kustomization {}", k.id());
        // sourceRef
        if let Some(src) = k.object.pointer("/spec/sourceRef") {
            let r = Ref {
                kind: s(src, "/kind").unwrap_or_default().to_string(),
                namespace: s(src, "/namespace").unwrap_or(&k.namespace).to_string(),
                name: s(src, "/name").unwrap_or_default().to_string(),
            };
            if !defined.contains_key(&r) && !allow.is_external_source(&r) {
                findings.push(named_ref_error(
                    tree,
                    &k.object,
                    &k.origin,
                    &k.file,
                    &r.name,
                    format!("sourceRef {r} does not exist in cluster {cluster}"),
                    &label,
                ));
            }
        }
        // postBuild substitution
        let post_build = k.object.pointer("/spec/postBuild");
        let vars = post_build.map(|pb| variables(pb, k, &defined, tree, &label, &mut findings));
        let fallback = tree
            .kustomization_file(&k.path)
            .unwrap_or_else(|| k.path.clone());
        // One object as applied, and what is wrong with it.
        let judge = |o: &Value| -> (Item, Vec<Finding>) {
            let mut findings = Vec::new();
            let (obj, undefined) = match &vars {
                Some(v) if !substitute::disabled(o) => substitute::substitute(o, Some(v)),
                _ => (o.clone(), Vec::new()),
            };
            for u in undefined {
                let (file, line) = tree.locate(o, &k.path, Some(&u.text), &fallback);
                findings.push(
                    Finding::error(
                        Check::Flux,
                        &file,
                        line,
                        format!(
                            "undefined variable {}: not set by postBuild of {label} and no default (write ${{{}:=default}} for one)",
                            u.text, u.name
                        ),
                    )
                    .with_object(describe(o)),
                );
            }
            if s(&obj, "/kind") == Some("HelmRelease") {
                check_helm_release(&obj, o, k, &defined, tree, allow, cluster, &mut findings);
            }
            let (file, line) = tree.locate(o, &k.path, None, &fallback);
            let item = Item {
                object: obj,
                file,
                line,
            };
            (item, findings)
        };
        // Each object on its own (substitution is most of the work): side by
        // side, then in order.
        let judged: Vec<(Item, Vec<Finding>)> = k.objects.par_iter().map(judge).collect();
        for (item, found) in judged {
            findings.extend(found);
            items.push(item);
        }
    }

    ClusterCheck {
        findings,
        items,
        kustomizations: ks,
    }
}

/// The folder of this repository that an ExternalArtifact copies to
/// `raw_path` whole, to point findings at its files (the objects themselves
/// come from the assembled artifact).
fn artifact_folder(
    obj: &Value,
    raw_path: &str,
    sync: &flux_render::discover::SyncRoot,
    generators: &[Value],
) -> Option<String> {
    let own_ns = s(obj, "/metadata/namespace").unwrap_or("flux-system");
    let name = s(obj, "/spec/sourceRef/name").unwrap_or_default();
    let ns = s(obj, "/spec/sourceRef/namespace").unwrap_or(own_ns);
    let (generator, spec) = generators.iter().find_map(|g| {
        flux_render::artifact::declared(g)
            .into_iter()
            .find(|((gns, gname), _)| gns == ns && gname == name)
            .map(|(_, spec)| (g, spec))
    })?;
    let sources = flux_render::artifact::sources(generator);
    flux_render::artifact::source_path(&spec, raw_path, |alias| {
        sources
            .get(alias)
            .is_some_and(|(k, n, m)| sync.is_this_repo(k, n, m))
    })
    .map(|(_, path)| normalize_path(&path))
}

/// Reads a wave of the closure from this run's builds: a folder of the
/// repository as [`render_path`] gives it; an assembled ExternalArtifact, or
/// a Kustomization whose spec edits the build, built as Flux builds it.
struct Reader<'a> {
    tree: &'a Tree,
    builds: &'a Builds,
}

impl flux_render::closure::Renderer for Reader<'_> {
    type Output = Objects;

    fn wave(
        &mut self,
        ready: &[flux_render::closure::Ready<'_>],
    ) -> Vec<Result<Objects, RenderError>> {
        ready
            .par_iter()
            .map(|r| {
                // An assembled ExternalArtifact, or a spec that edits the
                // build: built as Flux builds it (through the same cache).
                if r.source_dir != self.tree.root || flux_render::generate::edits_the_build(r.flux)
                {
                    return flux_render::closure::build_source(
                        self.builds.builder(),
                        r.source_dir,
                        r.flux,
                    )
                    .map(Objects::Rendered);
                }
                let dir = normalize_path(s(&r.flux.object, "/spec/path").unwrap_or("./"));
                if self.tree.kustomization_file(&dir).is_none() {
                    return Ok(Objects::Rendered(render_path(self.tree, self.builds, &dir)));
                }
                let built = self.builds.get(&dir);
                match built.as_ref() {
                    Ok(_) => Ok(Objects::Built(built)),
                    Err(e) => Err(RenderError::Kustomize {
                        dir: dir.into(),
                        message: e.to_string(),
                    }),
                }
            })
            .collect()
    }

    fn objects(output: &Objects) -> &[Value] {
        output
    }
}

fn obj_ref(o: &Value, namespace: &str) -> Ref {
    Ref {
        kind: s(o, "/kind").unwrap_or_default().to_string(),
        namespace: namespace.to_string(),
        name: s(o, "/metadata/name").unwrap_or_default().to_string(),
    }
}

/// The variables a postBuild defines: substituteFrom sources in order, then
/// `substitute` on top. Missing non-optional sources are findings.
/// An error about a reference a Flux Kustomization makes, placed at the line
/// of its file that names the missing object.
fn named_ref_error(
    tree: &Tree,
    object: &Value,
    origin: &str,
    file: &str,
    name: &str,
    message: String,
    label: &str,
) -> Finding {
    let (file, line) = tree.locate(object, origin, Some(&format!("name: {name}")), file);
    Finding::error(Check::Flux, &file, line, message).with_object(label.to_string())
}

fn variables(
    post_build: &Value,
    k: &FluxKustomization,
    defined: &HashMap<Ref, &Value>,
    tree: &Tree,
    label: &str,
    findings: &mut Vec<Finding>,
) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for from in post_build
        .get("substituteFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let r = Ref {
            kind: s(from, "/kind").unwrap_or_default().to_string(),
            namespace: k.namespace.clone(),
            name: s(from, "/name").unwrap_or_default().to_string(),
        };
        let optional = from
            .get("optional")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match defined.get(&r) {
            Some(src) => {
                if let Some(data) = src.get("data").and_then(Value::as_object) {
                    for (key, v) in data {
                        let text = v.as_str().unwrap_or_default();
                        let value = if r.kind == "Secret" {
                            base64::engine::general_purpose::STANDARD
                                .decode(text)
                                .ok()
                                .and_then(|b| String::from_utf8(b).ok())
                                .unwrap_or_else(|| "placeholder".into())
                        } else {
                            text.to_string()
                        };
                        vars.insert(key.clone(), value);
                    }
                }
                if let Some(data) = src.get("stringData").and_then(Value::as_object) {
                    for (key, v) in data {
                        let text = v.as_str().unwrap_or_default();
                        let value = if text.starts_with("ENC[") {
                            "placeholder".to_string()
                        } else {
                            text.to_string()
                        };
                        vars.insert(key.clone(), value);
                    }
                }
            }
            None if optional => {}
            None => {
                findings.push(named_ref_error(
                    tree,
                    &k.object,
                    &k.origin,
                    &k.file,
                    &r.name,
                    format!("postBuild.substituteFrom {r} does not exist in the cluster's tree"),
                    label,
                ));
            }
        }
    }
    if let Some(m) = post_build.get("substitute").and_then(Value::as_object) {
        for (key, v) in m {
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vars.insert(key.clone(), value);
        }
    }
    vars
}

#[allow(clippy::too_many_arguments)]
fn check_helm_release(
    hr: &Value,
    raw: &Value,
    k: &FluxKustomization,
    defined: &HashMap<Ref, &Value>,
    tree: &Tree,
    allow: &AllowList,
    cluster: &str,
    findings: &mut Vec<Finding>,
) {
    let ns = k.namespace_of(hr);
    let label = format!(
        "HelmRelease {}/{}",
        ns,
        s(hr, "/metadata/name").unwrap_or_default()
    );
    let fallback = tree
        .kustomization_file(&k.path)
        .unwrap_or_else(|| k.path.clone());
    let at = |needle: Option<&str>| tree.locate(raw, &k.path, needle, &fallback);
    let mut push = |needle: Option<&str>, msg: String| {
        let (file, line) = at(needle);
        findings.push(Finding::error(Check::Flux, &file, line, msg).with_object(label.clone()));
    };
    if let Some(spec) = hr.pointer("/spec/chart/spec") {
        let src = spec.get("sourceRef").cloned().unwrap_or(Value::Null);
        let r = Ref {
            kind: s(&src, "/kind").unwrap_or("HelmRepository").to_string(),
            namespace: s(&src, "/namespace").unwrap_or(&ns).to_string(),
            name: s(&src, "/name").unwrap_or_default().to_string(),
        };
        if !["HelmRepository", "GitRepository", "Bucket"].contains(&r.kind.as_str()) {
            push(
                Some("sourceRef"),
                format!(
                    "spec.chart.spec.sourceRef kind {} is not a chart source",
                    r.kind
                ),
            );
        } else if !defined.contains_key(&r) && !allow.is_external_source(&r) {
            push(
                Some(&format!("name: {}", r.name)),
                format!("chart source {r} does not exist in cluster {cluster}"),
            );
        }
        if r.kind == "HelmRepository" {
            match spec.get("version").map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }) {
                None => push(
                    Some("chart:"),
                    "chart version is not pinned: spec.chart.spec.version is missing".into(),
                ),
                Some(v) if !is_pinned_version(&v) => push(
                    Some("version:"),
                    format!(
                        "chart version {v:?} is not pinned: use an exact version such as 1.2.3"
                    ),
                ),
                Some(_) => {}
            }
        }
    } else if let Some(cr) = hr.pointer("/spec/chartRef") {
        let r = Ref {
            kind: s(cr, "/kind").unwrap_or_default().to_string(),
            namespace: s(cr, "/namespace").unwrap_or(&ns).to_string(),
            name: s(cr, "/name").unwrap_or_default().to_string(),
        };
        match defined.get(&r) {
            None if !allow.is_external_source(&r) => push(
                Some("chartRef"),
                format!("chartRef {r} does not exist in cluster {cluster}"),
            ),
            Some(src) if r.kind == "OCIRepository" => {
                let reference = src.pointer("/spec/ref");
                let pinned = reference.is_some_and(|rf| {
                    s(rf, "/digest").is_some()
                        || s(rf, "/semver").is_some_and(is_pinned_version)
                        || s(rf, "/tag").is_some_and(|t| !t.is_empty() && t != "latest")
                });
                if !pinned {
                    push(
                        Some("chartRef"),
                        format!(
                            "chart of {r} is not pinned: set spec.ref.tag, an exact spec.ref.semver or spec.ref.digest"
                        ),
                    );
                }
            }
            _ => {}
        }
    } else {
        push(
            None,
            "HelmRelease has neither spec.chart nor spec.chartRef".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions() {
        for ok in ["1.2.3", "v1.18.2", "37.1.1", "1.0.0-rc.1"] {
            assert!(is_pinned_version(ok), "{ok}");
        }
        for bad in [
            "",
            "*",
            ">=1.0.0",
            "1.x",
            "~1.2",
            "^1.2.3",
            "1.2",
            "1.2.3 || 2.0.0",
            "latest",
        ] {
            assert!(!is_pinned_version(bad), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_path("./apps/foo/"), "apps/foo");
        assert_eq!(normalize_path("./"), "");
        assert_eq!(normalize_path("a/../b"), "b");
    }
}
