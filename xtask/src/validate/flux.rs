//! The Flux graph of one cluster: its Kustomizations (from `clusters/<name>`
//! and, recursively, from what they render), their paths, sources,
//! dependencies and cycles, postBuild variables, and HelmRelease sources and
//! chart pins. Also yields every object as Flux would apply it, for the
//! schema check.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use base64::Engine as _;
use serde_json::Value;

use super::kustomize::Builds;
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
    pub objects: Vec<Value>,
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

fn is_flux_kustomization(v: &Value) -> bool {
    s(v, "/kind") == Some("Kustomization")
        && s(v, "/apiVersion").is_some_and(|a| a.starts_with("kustomize.toolkit.fluxcd.io/"))
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

    // Discover every Flux Kustomization, breadth first.
    let mut ks: Vec<FluxKustomization> = Vec::new();
    let mut seen = HashSet::new();
    let mut queue: Vec<(Value, String)> = root_objects
        .iter()
        .filter(|o| is_flux_kustomization(o))
        .map(|o| (o.clone(), cluster_dir.clone()))
        .collect();
    let mut generators: Vec<Value> = root_objects
        .iter()
        .filter(|o| flux_render::artifact::is_generator(o))
        .cloned()
        .collect();
    let mut qi = 0;
    while qi < queue.len() {
        let (obj, origin) = queue[qi].clone();
        qi += 1;
        let namespace = s(&obj, "/metadata/namespace")
            .unwrap_or("flux-system")
            .to_string();
        let name = s(&obj, "/metadata/name").unwrap_or_default().to_string();
        if !seen.insert(format!("{namespace}/{name}")) {
            continue;
        }
        let raw_path = s(&obj, "/spec/path").unwrap_or("./").to_string();
        let (file, line) = tree.locate(&obj, &origin, None, &fallback);
        let label = format!("Kustomization {namespace}/{name}");
        let path = match source_folder(&obj, &raw_path, &sync, &generators) {
            Ok(path) => path,
            Err(why) => {
                findings.push(Finding {
                    severity: Severity::Warning,
                    ..Finding::error(Check::Flux, &file, line, format!("not validated: {why}"))
                        .with_object(label)
                });
                ks.push(FluxKustomization {
                    namespace,
                    name,
                    path: String::new(),
                    object: obj,
                    file,
                    origin,
                    line,
                    objects: Vec::new(),
                });
                continue;
            }
        };
        let exists = tree.root.join(&path).is_dir();
        if !exists {
            let (file, line) =
                tree.locate(&obj, &origin, Some(&format!("path: {raw_path}")), &fallback);
            findings.push(
                Finding::error(
                    Check::Flux,
                    &file,
                    line,
                    format!("spec.path {raw_path:?} does not exist"),
                )
                .with_object(format!("Kustomization {namespace}/{name}")),
            );
        }
        let objects = if exists {
            render_path(tree, builds, &path)
        } else {
            Vec::new()
        };
        for o in objects.iter().filter(|o| is_flux_kustomization(o)) {
            queue.push((o.clone(), path.clone()));
        }
        generators.extend(
            objects
                .iter()
                .filter(|o| flux_render::artifact::is_generator(o))
                .cloned(),
        );
        ks.push(FluxKustomization {
            namespace,
            name,
            path,
            object: obj,
            file,
            origin,
            line,
            objects,
        });
    }

    // Everything the cluster's tree defines, by kind/namespace/name.
    let mut defined: HashMap<Ref, Value> = HashMap::new();
    for o in &root_objects {
        defined.insert(
            obj_ref(o, s(o, "/metadata/namespace").unwrap_or("flux-system")),
            o.clone(),
        );
    }
    for k in &ks {
        for o in &k.objects {
            defined.insert(obj_ref(o, &k.namespace_of(o)), o.clone());
        }
    }
    for generator in &generators {
        for ((namespace, name), _) in flux_render::artifact::declared(generator) {
            let r = Ref {
                kind: "ExternalArtifact".into(),
                namespace,
                name,
            };
            defined.insert(r, generator.clone());
        }
    }
    let ks_ids: HashSet<String> = ks.iter().map(FluxKustomization::id).collect();

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
                    k,
                    &r.name,
                    format!("sourceRef {r} does not exist in cluster {cluster}"),
                    &label,
                ));
            }
        }
        // dependsOn
        for dep in k
            .object
            .pointer("/spec/dependsOn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = s(dep, "/name").unwrap_or_default();
            let ns = s(dep, "/namespace").unwrap_or(&k.namespace);
            if !ks_ids.contains(&format!("{ns}/{name}")) {
                findings.push(named_ref_error(
                    tree,
                    k,
                    name,
                    format!("dependsOn {ns}/{name}: no such Kustomization in cluster {cluster}"),
                    &label,
                ));
            }
        }
        // postBuild substitution
        let post_build = k.object.pointer("/spec/postBuild");
        let vars = post_build.map(|pb| variables(pb, k, &defined, tree, &label, &mut findings));
        for o in &k.objects {
            let (obj, undefined) = match &vars {
                Some(v) if !substitute::disabled(o) => substitute::substitute(o, Some(v)),
                _ => (o.clone(), Vec::new()),
            };
            let fallback = tree
                .kustomization_file(&k.path)
                .unwrap_or_else(|| k.path.clone());
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
            items.push(Item {
                object: obj,
                file,
                line,
            });
        }
    }

    // Cycles.
    for cycle in cycles(&ks) {
        let first = ks
            .iter()
            .find(|k| k.id() == cycle[0])
            .expect("cycle member");
        let mut chain = cycle.clone();
        chain.push(cycle[0].clone());
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
    ClusterCheck {
        findings,
        items,
        kustomizations: ks,
    }
}

/// The folder of this repository a Kustomization renders: its path when
/// its source is this repository, the folder an ArtifactGenerator copies
/// there when it is an ExternalArtifact; `Err` says why it is not here
/// (another repository, suspended).
fn source_folder(
    obj: &Value,
    raw_path: &str,
    sync: &flux_render::discover::SyncRoot,
    generators: &[Value],
) -> Result<String, String> {
    if obj.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
        return Err("spec.suspend is true: Flux does not reconcile it".into());
    }
    let own_ns = s(obj, "/metadata/namespace").unwrap_or("flux-system");
    let kind = s(obj, "/spec/sourceRef/kind").unwrap_or_default();
    let name = s(obj, "/spec/sourceRef/name").unwrap_or_default();
    let ns = s(obj, "/spec/sourceRef/namespace").unwrap_or(own_ns);
    if kind != "ExternalArtifact" {
        return if sync.is_this_repo(kind, ns, name) || kind.is_empty() {
            Ok(normalize_path(raw_path))
        } else {
            let (k, n, m) = sync.source();
            Err(format!(
                "its source {kind} {ns}/{name} is another repository than this one ({k} {n}/{m})"
            ))
        };
    }
    let found = generators.iter().find_map(|g| {
        flux_render::artifact::declared(g)
            .into_iter()
            .find(|((gns, gname), _)| gns == ns && gname == name)
            .map(|(_, spec)| (g, spec))
    });
    let Some((generator, spec)) = found else {
        return Err(format!(
            "no ArtifactGenerator in this tree declares ExternalArtifact {ns}/{name}"
        ));
    };
    let sources = flux_render::artifact::sources(generator);
    flux_render::artifact::source_path(&spec, raw_path, |alias| {
        sources
            .get(alias)
            .is_some_and(|(k, n, m)| sync.is_this_repo(k, n, m))
    })
    .map(|(_, path)| normalize_path(&path))
    .ok_or_else(|| {
        format!(
            "ExternalArtifact {ns}/{name} puts no whole folder of this repository at {raw_path}"
        )
    })
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
    k: &FluxKustomization,
    name: &str,
    message: String,
    label: &str,
) -> Finding {
    let (file, line) = tree.locate(
        &k.object,
        &k.origin,
        Some(&format!("name: {name}")),
        &k.file,
    );
    Finding::error(Check::Flux, &file, line, message).with_object(label.to_string())
}

fn variables(
    post_build: &Value,
    k: &FluxKustomization,
    defined: &HashMap<Ref, Value>,
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
                    k,
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
    defined: &HashMap<Ref, Value>,
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

/// Every dependsOn cycle (strongly connected component with more than one
/// member, or a self-dependency), each as its members in dependency order.
fn cycles(ks: &[FluxKustomization]) -> Vec<Vec<String>> {
    let ids: BTreeSet<String> = ks.iter().map(FluxKustomization::id).collect();
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in ks {
        let deps = k
            .object
            .pointer("/spec/dependsOn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|d| {
                format!(
                    "{}/{}",
                    s(d, "/namespace").unwrap_or(&k.namespace),
                    s(d, "/name").unwrap_or_default()
                )
            })
            .filter(|d| ids.contains(d))
            .collect();
        edges.insert(k.id(), deps);
    }
    // Tarjan's algorithm.
    struct State<'a> {
        edges: &'a BTreeMap<String, Vec<String>>,
        index: HashMap<String, usize>,
        low: HashMap<String, usize>,
        stack: Vec<String>,
        on_stack: HashSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(st: &mut State, v: &str) {
        st.index.insert(v.to_string(), st.next);
        st.low.insert(v.to_string(), st.next);
        st.next += 1;
        st.stack.push(v.to_string());
        st.on_stack.insert(v.to_string());
        for w in st.edges.get(v).cloned().unwrap_or_default() {
            if !st.index.contains_key(&w) {
                visit(st, &w);
                let lw = st.low[&w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if st.on_stack.contains(&w) {
                let iw = st.index[&w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(&w);
                let done = w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            let self_loop =
                comp.len() == 1 && st.edges.get(v).is_some_and(|e| e.iter().any(|x| x == v));
            if comp.len() > 1 || self_loop {
                st.out.push(comp);
            }
        }
    }
    let mut st = State {
        edges: &edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: HashSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !st.index.contains_key(v) {
            visit(&mut st, v);
        }
    }
    // Order each cycle along its edges, from its smallest member.
    st.out
        .into_iter()
        .map(|comp| {
            let members: BTreeSet<String> = comp.into_iter().collect();
            let start = members.iter().next().cloned().unwrap_or_default();
            let mut order = vec![start.clone()];
            let mut cur = start;
            loop {
                let next = edges[&cur]
                    .iter()
                    .find(|n| members.contains(*n) && !order.contains(n))
                    .cloned();
                match next {
                    Some(n) => {
                        order.push(n.clone());
                        cur = n;
                    }
                    None => break,
                }
            }
            order
        })
        .collect()
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
