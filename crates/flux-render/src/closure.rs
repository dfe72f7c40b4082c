//! The closure of a cluster, as Flux reconciles it: the root sync's objects,
//! every Flux Kustomization they declare, and every one that those render in
//! turn (the `ks.yaml` and tenant patterns), each once, rendered from the
//! tree when its source is this repository or an ExternalArtifact assembled
//! from it. One that cannot be built fails alone, with those that depend on
//! it or that it declares; the rest renders.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::Value;

use crate::discover::{self, RootOrigin, SyncRoot};
use crate::{
    Failure, FluxKustomization, RenderError, RenderOptions, RenderedCluster, RenderedKustomization,
    Skipped, SourceIndex, artifact, flux_build, generate, post_build, str_at,
};

type Key = (String, String);

/// Renders the Kustomizations of one wave of a [`walk`]: the build does
/// kustomize and postBuild; `validate` reads its own memoised builds.
pub trait Renderer {
    /// What one rendered Kustomization gives the caller.
    type Output;
    /// Renders `ready` (in parallel if it likes): one result each, in order.
    fn wave(&mut self, ready: &[Ready<'_>]) -> Vec<Result<Self::Output, RenderError>>;
    /// The objects the walk reads for the Kustomizations and
    /// ArtifactGenerators that an output declares.
    fn objects(output: &Self::Output) -> &[Value];
}

/// One Kustomization a wave renders: `flux.path` is relative to `source_dir`
/// (this repository, or an ExternalArtifact assembled from it).
pub struct Ready<'a> {
    pub index: usize,
    pub flux: &'a FluxKustomization,
    pub source_dir: &'a Path,
}

/// What became of one Kustomization of the closure.
#[derive(Debug, Clone)]
pub enum Outcome {
    Rendered,
    /// Not reconciled from this tree (`spec.suspend`, another repository's source).
    Skipped(String),
    /// Its own error, or that of one it depends on or that declares it. A
    /// Kustomization that rendered but failed for the graph (a cycle, a
    /// missing dependency, a failed dependency) keeps its output.
    Failed(Arc<RenderError>),
    /// Never reached a wave (not left after a walk).
    Pending,
}

/// One Kustomization of a cluster's closure.
#[derive(Debug)]
pub struct Node<T> {
    pub flux: FluxKustomization,
    /// The Kustomization whose objects declare it; `None` for the root's.
    pub parent: Option<usize>,
    /// The folder `flux.path` is relative to, when it was rendered.
    pub source_dir: Option<PathBuf>,
    pub output: Option<T>,
    pub outcome: Outcome,
    /// Each `dependsOn` (namespace, name) that is not in the closure.
    pub missing_dependencies: Vec<Key>,
}

/// Every Flux Kustomization reachable from a cluster's sync root, as Flux
/// reconciles them: the one graph that `build`, `diff` and `validate` read.
#[derive(Debug)]
pub struct Closure<T> {
    /// In the order they were found (the root's first, then wave by wave).
    pub nodes: Vec<Node<T>>,
    /// Every node, each after what it depends on and after the one that
    /// declares it; stable otherwise (a cycle is broken where it closes).
    pub order: Vec<usize>,
    /// Each dependsOn cycle, its members in walk order from the first found.
    pub cycles: Vec<Vec<usize>>,
    pub warnings: Vec<String>,
    /// Keeps assembled ExternalArtifacts on disk while the closure lives.
    pub artifacts: Vec<Arc<tempfile::TempDir>>,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

/// What a Kustomization's `sourceRef` resolves to.
enum Source {
    /// A folder on disk: this repository or an assembled ExternalArtifact.
    Dir(PathBuf),
    /// An ExternalArtifact that no generator seen so far declares.
    Waiting,
    /// Not this repository: named and skipped.
    Elsewhere(String),
    Broken(String),
}

struct Walk<'a, T> {
    root: &'a Path,
    cluster: &'a str,
    /// Knows which source is this repository.
    sync: &'a SyncRoot,
    nodes: Vec<Node<T>>,
    seen: HashMap<Key, usize>,
    root_key: Key,
    /// ExternalArtifacts that generators in the tree declare.
    generators: HashMap<Key, (Value, Value)>,
    artifacts: HashMap<Key, Result<Arc<tempfile::TempDir>, String>>,
    index: SourceIndex,
    warnings: Vec<String>,
}

/// True when `object` is the sync root itself, as the root's own objects may
/// declare (and patch) it: named as the root, or syncing the root's path.
pub fn is_root(sync: &SyncRoot, object: &Value) -> bool {
    if !crate::is_flux_kustomization(object) {
        return false;
    }
    let namespace = |v: &Value| {
        str_at(v, &["metadata", "namespace"])
            .unwrap_or(discover::ROOT_NAME)
            .to_string()
    };
    let name = |v: &Value| {
        str_at(v, &["metadata", "name"])
            .unwrap_or_default()
            .to_string()
    };
    (namespace(object), name(object)) == (namespace(&sync.object), name(&sync.object))
        || crate::normalize(str_at(object, &["spec", "path"]).unwrap_or("./")) == sync.path
}

/// Walks the closure of one cluster from its root's objects (`root_objects`,
/// what the sync root's path renders), wave by wave: `renderer` renders each
/// wave, and the Kustomizations and ArtifactGenerators its outputs declare
/// feed the next. Sources, `spec.suspend`, ExternalArtifacts, dependsOn,
/// cycles and failures are decided here, the same for every caller.
pub fn walk<R: Renderer>(
    root: &Path,
    sync: &SyncRoot,
    root_objects: &[Value],
    renderer: &mut R,
) -> Closure<R::Output> {
    let index = SourceIndex::scan(root, &root.join(&sync.cluster_dir));
    let root_key = root_objects
        .iter()
        .find(|o| is_root(sync, o))
        .unwrap_or(&sync.object);
    let root_key = key(
        str_at(root_key, &["metadata", "namespace"]).unwrap_or(discover::ROOT_NAME),
        str_at(root_key, &["metadata", "name"]).unwrap_or_default(),
    );
    walk_from(root, sync, root_key, index, root_objects, renderer)
}

fn walk_from<R: Renderer>(
    root: &Path,
    sync: &SyncRoot,
    root_key: Key,
    index: SourceIndex,
    root_objects: &[Value],
    renderer: &mut R,
) -> Closure<R::Output> {
    let mut walk = Walk {
        root,
        cluster: &sync.cluster,
        sync,
        nodes: Vec::new(),
        seen: HashMap::new(),
        root_key,
        generators: HashMap::new(),
        artifacts: HashMap::new(),
        index,
        warnings: Vec::new(),
    };
    walk.declare(root_objects, None);
    walk.run(renderer);
    walk.finish()
}

/// Renders the closure of one cluster. `Err` only when the cluster itself
/// cannot be found or its root sync cannot be built.
pub fn render(
    root: &Path,
    cluster: &str,
    opts: &RenderOptions,
) -> Result<RenderedCluster, RenderError> {
    let sync = discover::sync_root(root, cluster)?;
    let cluster_dir = root.join(&sync.cluster_dir);
    let index = SourceIndex::scan(root, &cluster_dir);
    let root_dir = root.join(&sync.path);
    let mut declared_root =
        FluxKustomization::from_object(&sync.object, &index).unwrap_or_else(|| FluxKustomization {
            object: sync.object.clone(),
            ..FluxKustomization::default()
        });
    declared_root.file = match &sync.origin {
        RootOrigin::Declared(file) | RootOrigin::FluxInstance(file) => file.clone(),
        RootOrigin::Bootstrap => "not in the tree, as flux bootstrap writes it".into(),
    };
    if !root_dir.is_dir() {
        return Err(RenderError::MissingPath {
            name: declared_root.name.clone(),
            file: declared_root.file.clone(),
            path: sync.path.display().to_string(),
        });
    }
    let builder = opts.builder()?;
    let build_root = |flux: &FluxKustomization| {
        generate::prepare(root, flux)
            .and_then(|prepared| flux_build(&builder, &prepared, &root_dir, opts.trace.as_deref()))
    };
    let mut root_docs = build_root(&declared_root)?;
    // The root's objects may declare (and patch) the root Kustomization
    // itself: Flux then reconciles that one.
    let built_root = root_docs
        .iter()
        .find(|d| is_root(&sync, &d.object))
        .and_then(|d| FluxKustomization::from_object(&d.object, &index));
    let root_flux = match built_root {
        Some(mut built) => {
            if built.object.get("spec") != declared_root.object.get("spec") {
                root_docs = build_root(&built)?;
            }
            if built.file == "unknown file" {
                built.file = declared_root.file.clone();
            }
            built
        }
        None => declared_root,
    };
    let raw_root: Vec<Value> = root_docs.iter().map(|d| d.object.clone()).collect();

    let mut renderer = Build {
        root,
        cluster,
        opts,
        builder,
        variable_objects: raw_root.clone(),
        warnings: Vec::new(),
    };
    let root_key = key(&root_flux.namespace, &root_flux.name);
    let closure = walk_from(root, &sync, root_key, index, &raw_root, &mut renderer);

    let sources = post_build::VariableSources::collect(
        renderer.variable_objects.iter(),
        opts,
        &mut Vec::new(),
    );
    let variables = post_build::variables(cluster, &root_flux, &sources)?;
    let root_objects = post_build::apply(&root_flux, root_docs, &variables, &root_dir, root)?;
    let mut warnings = closure.warnings;
    for w in renderer.warnings {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    let mut by_index: Vec<Option<RenderedKustomization>> = Vec::new();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for node in closure.nodes {
        let flux = node.flux;
        match node.outcome {
            Outcome::Rendered => by_index.push(node.output),
            Outcome::Skipped(reason) => {
                by_index.push(None);
                skipped.push(Skipped { flux, reason });
            }
            Outcome::Failed(error) => {
                by_index.push(None);
                failures.push(Failure { flux, error });
            }
            Outcome::Pending => by_index.push(None),
        }
    }
    // Root causes first, then what they took down.
    failures.sort_by_key(|f| matches!(*f.error, RenderError::NotRendered { .. }));
    let kustomizations = closure
        .order
        .into_iter()
        .filter_map(|i| by_index[i].take())
        .collect();
    Ok(RenderedCluster {
        name: cluster.to_string(),
        root_objects,
        kustomizations,
        warnings,
        root: root_flux,
        sync: Some(sync),
        skipped,
        failures,
        artifacts: closure.artifacts,
    })
}

/// The build's renderer: kustomize as Flux runs it, then postBuild with the
/// variables of every object rendered so far.
struct Build<'a> {
    root: &'a Path,
    cluster: &'a str,
    opts: &'a RenderOptions,
    builder: Arc<crate::kustomize::Builder>,
    /// Every object rendered so far, raw: where substituteFrom looks.
    variable_objects: Vec<Value>,
    warnings: Vec<String>,
}

impl Renderer for Build<'_> {
    type Output = RenderedKustomization;

    fn wave(&mut self, ready: &[Ready<'_>]) -> Vec<Result<RenderedKustomization, RenderError>> {
        let built: Vec<_> = ready
            .par_iter()
            .map(|r| {
                let started = Instant::now();
                let result = build_objects(
                    &self.builder,
                    r.source_dir,
                    r.flux,
                    self.opts.trace.as_deref(),
                );
                (result, started.elapsed())
            })
            .collect();
        for (result, _) in &built {
            if let Ok(docs) = result {
                self.variable_objects
                    .extend(docs.iter().map(|d| d.object.clone()));
            }
        }
        let mut warnings = Vec::new();
        let sources = post_build::VariableSources::collect(
            self.variable_objects.iter(),
            self.opts,
            &mut warnings,
        );
        for w in warnings {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        ready
            .iter()
            .zip(built)
            .map(|(r, (result, elapsed))| {
                let flux = r.flux.clone();
                let dir = r.source_dir.join(&flux.path);
                let docs = result?;
                let variables = post_build::variables(self.cluster, &flux, &sources)?;
                let objects = post_build::apply(&flux, docs, &variables, &dir, self.root)?;
                Ok(RenderedKustomization {
                    flux,
                    objects,
                    variables,
                    elapsed,
                    source_dir: r.source_dir.to_path_buf(),
                })
            })
            .collect()
    }

    fn objects(output: &RenderedKustomization) -> &[Value] {
        &output.objects
    }
}

/// What kustomize builds for `flux` from `source_dir`, as Flux builds it
/// (its generated kustomization, no load restrictions), before postBuild.
fn build_objects(
    builder: &crate::kustomize::Builder,
    source_dir: &Path,
    flux: &FluxKustomization,
    trace: Option<&crate::trace::Trace>,
) -> Result<Vec<post_build::Document>, RenderError> {
    let shown = source_dir.join(&flux.path);
    generate::prepare(source_dir, flux)
        .and_then(|prepared| flux_build(builder, &prepared, &shown, trace))
}

/// The objects kustomize builds for `flux` from `source_dir` as Flux builds
/// them, before postBuild: for a caller's [`Renderer`] that reads a folder
/// it has not built itself (an assembled ExternalArtifact).
pub fn build_source(
    builder: &crate::kustomize::Builder,
    source_dir: &Path,
    flux: &FluxKustomization,
) -> Result<Vec<Value>, RenderError> {
    Ok(build_objects(builder, source_dir, flux, None)?
        .into_iter()
        .map(|d| d.object)
        .collect())
}

impl<T> Walk<'_, T> {
    /// Adds the Kustomizations and generators among `objects`.
    fn declare(&mut self, objects: &[Value], parent: Option<usize>) -> Vec<usize> {
        let mut added = Vec::new();
        for object in objects {
            if artifact::is_generator(object) {
                for (k, spec) in artifact::declared(object) {
                    self.generators
                        .entry(k)
                        .or_insert_with(|| (object.clone(), spec));
                }
            }
            let Some(mut flux) = FluxKustomization::from_object(object, &self.index) else {
                continue;
            };
            let k = key(&flux.namespace, &flux.name);
            if k == self.root_key {
                continue;
            }
            if let Some(&first) = self.seen.get(&k) {
                if self.nodes[first].flux.object != flux.object {
                    self.warnings.push(format!(
                        "Kustomization {}/{} is declared twice ({} and {}); the first is rendered",
                        k.0,
                        k.1,
                        self.nodes[first].flux.file,
                        self.declared_by(parent)
                    ));
                }
                continue;
            }
            if flux.file == "unknown file" {
                flux.file = self.declared_by(parent);
            }
            self.seen.insert(k, self.nodes.len());
            added.push(self.nodes.len());
            self.nodes.push(Node {
                flux,
                parent,
                source_dir: None,
                output: None,
                outcome: Outcome::Pending,
                missing_dependencies: Vec::new(),
            });
        }
        added
    }

    fn declared_by(&self, parent: Option<usize>) -> String {
        match parent {
            Some(p) => format!("rendered by Kustomization {}", self.nodes[p].flux.name),
            None => "the root sync".into(),
        }
    }

    fn fail(&mut self, i: usize, error: RenderError) {
        self.nodes[i].outcome = Outcome::Failed(Arc::new(error));
    }

    /// Renders wave after wave until no new Kustomization appears.
    fn run<R: Renderer<Output = T>>(&mut self, renderer: &mut R) {
        let mut frontier: Vec<usize> = (0..self.nodes.len()).collect();
        while !frontier.is_empty() {
            let mut ready = Vec::new();
            let mut waiting = Vec::new();
            for i in frontier {
                let flux = &self.nodes[i].flux;
                if flux.object.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
                    self.nodes[i].outcome =
                        Outcome::Skipped("spec.suspend is true: Flux does not reconcile it".into());
                    continue;
                }
                match self.resolve(i) {
                    Source::Dir(dir) => {
                        let flux = &self.nodes[i].flux;
                        if dir.join(&flux.path).is_dir() {
                            ready.push((i, dir));
                        } else {
                            let error = RenderError::MissingPath {
                                name: flux.name.clone(),
                                file: flux.file.clone(),
                                path: flux.path.display().to_string(),
                            };
                            self.fail(i, error);
                        }
                    }
                    Source::Waiting => waiting.push(i),
                    Source::Elsewhere(reason) => self.nodes[i].outcome = Outcome::Skipped(reason),
                    Source::Broken(reason) => {
                        let flux = &self.nodes[i].flux;
                        let error = RenderError::NotRendered {
                            name: flux.name.clone(),
                            file: flux.file.clone(),
                            why: reason,
                        };
                        self.fail(i, error);
                    }
                }
            }
            if ready.is_empty() {
                for i in waiting {
                    let flux = &self.nodes[i].flux;
                    let (_, name) = flux.source_ref.clone().unwrap_or_default();
                    let error = RenderError::Artifact {
                        name: flux.name.clone(),
                        file: flux.file.clone(),
                        artifact: name,
                        reason: "no ArtifactGenerator in this tree declares it".into(),
                    };
                    self.fail(i, error);
                }
                break;
            }
            frontier = self.render_wave(ready, renderer);
            frontier.extend(waiting);
        }
    }

    /// Where `sourceRef` points: this repository, an ExternalArtifact built
    /// from it, or elsewhere.
    fn resolve(&mut self, i: usize) -> Source {
        let flux = &self.nodes[i].flux;
        let Some(source) = flux.object.pointer("/spec/sourceRef") else {
            return Source::Broken("it has no spec.sourceRef".into());
        };
        let kind = str_at(source, &["kind"]).unwrap_or_default().to_string();
        let name = str_at(source, &["name"]).unwrap_or_default().to_string();
        let namespace = str_at(source, &["namespace"])
            .unwrap_or(&flux.namespace)
            .to_string();
        if kind == "ExternalArtifact" {
            return self.external_artifact(key(&namespace, &name));
        }
        if self.sync.is_this_repo(&kind, &namespace, &name) {
            return Source::Dir(self.root.to_path_buf());
        }
        let (k, ns, n) = self.sync.source();
        Source::Elsewhere(format!(
            "its source {kind} {namespace}/{name} is not this repository (the root syncs from {k} {ns}/{n})"
        ))
    }

    fn external_artifact(&mut self, k: Key) -> Source {
        if let Some(done) = self.artifacts.get(&k) {
            return match done {
                Ok(dir) => Source::Dir(dir.path().to_path_buf()),
                Err(reason) => Source::Broken(reason.clone()),
            };
        }
        let Some((generator, spec)) = self.generators.get(&k).cloned() else {
            return Source::Waiting;
        };
        let generator_name = str_at(&generator, &["metadata", "name"]).unwrap_or_default();
        let mut dirs = HashMap::new();
        for (alias, (kind, ns, name)) in artifact::sources(&generator) {
            let dir = if self.sync.is_this_repo(&kind, &ns, &name) {
                self.root.to_path_buf()
            } else if kind == "ExternalArtifact" {
                match self.external_artifact(key(&ns, &name)) {
                    Source::Dir(dir) => dir,
                    Source::Waiting => return Source::Waiting,
                    other => return other,
                }
            } else {
                return Source::Elsewhere(format!(
                    "ExternalArtifact {}/{} is assembled by ArtifactGenerator {generator_name} from {kind} {ns}/{name} (alias {alias}), which is not this repository",
                    k.0, k.1
                ));
            };
            dirs.insert(alias, dir);
        }
        let assembled = tempfile::tempdir()
            .map_err(|e| e.to_string())
            .and_then(|dir| {
                artifact::assemble(&spec, &dirs, dir.path())
                    .map(|()| Arc::new(dir))
                    .map_err(|e| format!("ArtifactGenerator {generator_name}: {e}"))
            })
            .map_err(|e| format!("ExternalArtifact {}/{}: {e}", k.0, k.1));
        self.artifacts.insert(k.clone(), assembled);
        self.external_artifact(k)
    }

    /// Renders `ready` and returns the Kustomizations their objects declare.
    fn render_wave<R: Renderer<Output = T>>(
        &mut self,
        ready: Vec<(usize, PathBuf)>,
        renderer: &mut R,
    ) -> Vec<usize> {
        let visits: Vec<Ready> = ready
            .iter()
            .map(|(i, dir)| Ready {
                index: *i,
                flux: &self.nodes[*i].flux,
                source_dir: dir,
            })
            .collect();
        let results = renderer.wave(&visits);
        drop(visits);
        let mut next = Vec::new();
        for ((i, source_dir), result) in ready.into_iter().zip(results) {
            match result {
                Ok(output) => {
                    let objects = R::objects(&output);
                    // Only to name the files of the Kustomizations it declares.
                    if source_dir == self.root && objects.iter().any(crate::is_flux_kustomization) {
                        let dir = source_dir.join(&self.nodes[i].flux.path);
                        self.index.add(self.root, &dir);
                    }
                    next.extend(self.declare(objects, Some(i)));
                    let node = &mut self.nodes[i];
                    node.source_dir = Some(source_dir);
                    node.output = Some(output);
                    node.outcome = Outcome::Rendered;
                }
                Err(error) => self.fail(i, error),
            }
        }
        next
    }

    /// Fails what depends on a failure or is declared by one, and orders
    /// the graph.
    fn finish(mut self) -> Closure<T> {
        let flux: Vec<FluxKustomization> = self.nodes.iter().map(|n| n.flux.clone()).collect();
        let parents: Vec<Option<usize>> = self.nodes.iter().map(|n| n.parent).collect();
        let graph = Graph::new(self.cluster, &flux, &parents, Some(&self.root_key));
        for (i, error) in graph.primary_failures() {
            if matches!(self.nodes[i].outcome, Outcome::Rendered | Outcome::Pending) {
                self.nodes[i].outcome = Outcome::Failed(error);
            }
        }
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let wanted = node.flux.dependencies();
            let wanted = wanted.into_iter().filter(|d| *d != self.root_key);
            node.missing_dependencies = graph.deps[i]
                .iter()
                .zip(wanted)
                .filter(|(d, _)| d.is_none())
                .map(|(_, w)| w)
                .collect();
        }
        // Dependents and descendants of a failure, to a fixed point.
        loop {
            let mut changed = false;
            for i in 0..self.nodes.len() {
                if !matches!(self.nodes[i].outcome, Outcome::Rendered) {
                    continue;
                }
                let failed = |j: usize| matches!(self.nodes[j].outcome, Outcome::Failed(_));
                let why = match self.nodes[i].parent.filter(|&p| failed(p)) {
                    Some(p) => Some(format!(
                        "it is declared by Kustomization {}, which failed",
                        self.nodes[p].flux.name
                    )),
                    None => graph.deps[i]
                        .iter()
                        .flatten()
                        .find(|&&d| failed(d))
                        .map(|&d| {
                            format!(
                                "it depends on Kustomization {}, which failed",
                                self.nodes[d].flux.name
                            )
                        }),
                };
                if let Some(why) = why {
                    let error = RenderError::NotRendered {
                        name: self.nodes[i].flux.name.clone(),
                        file: self.nodes[i].flux.file.clone(),
                        why,
                    };
                    self.fail(i, error);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let order = graph.order(&|_| true);
        let cycles = graph.cycles();
        drop(graph);
        Closure {
            nodes: self.nodes,
            order,
            cycles,
            warnings: self.warnings,
            artifacts: self
                .artifacts
                .into_values()
                .filter_map(Result::ok)
                .collect(),
        }
    }
}

/// The dependsOn graph of a cluster's Kustomizations.
pub(crate) struct Graph<'a> {
    cluster: &'a str,
    flux: &'a [FluxKustomization],
    parents: &'a [Option<usize>],
    root: Option<Key>,
    /// Resolved dependsOn of each; `None` for a name not in the cluster.
    deps: Vec<Vec<Option<usize>>>,
}

impl<'a> Graph<'a> {
    /// `root`, the sync root, is no node of the graph but exists: a
    /// dependsOn on it is met.
    pub(crate) fn new(
        cluster: &'a str,
        flux: &'a [FluxKustomization],
        parents: &'a [Option<usize>],
        root: Option<&Key>,
    ) -> Self {
        let by_key: HashMap<Key, usize> = flux
            .iter()
            .enumerate()
            .map(|(i, k)| (key(&k.namespace, &k.name), i))
            .collect();
        let deps = flux
            .iter()
            .map(|k| {
                k.dependencies()
                    .iter()
                    .filter(|d| Some(*d) != root)
                    .map(|(ns, name)| by_key.get(&key(ns, name)).copied())
                    .collect()
            })
            .collect();
        Self {
            cluster,
            flux,
            parents,
            root: root.cloned(),
            deps,
        }
    }

    /// Missing dependencies and cycles, each on the Kustomizations it stops,
    /// in declaration order.
    pub(crate) fn primary_failures(&self) -> Vec<(usize, Arc<RenderError>)> {
        let mut out = Vec::new();
        for (i, k) in self.flux.iter().enumerate() {
            let deps: Vec<Key> = k
                .dependencies()
                .into_iter()
                .filter(|d| Some(d) != self.root.as_ref())
                .collect();
            if let Some(pos) = self.deps[i].iter().position(Option::is_none) {
                out.push((
                    i,
                    Arc::new(RenderError::MissingDependency {
                        name: k.name.clone(),
                        file: k.file.clone(),
                        target: deps[pos].1.clone(),
                        cluster: self.cluster.to_string(),
                    }),
                ));
            }
        }
        // Depending on what it declares itself (at any depth, through any
        // chain of dependsOn) waits for an object that never comes.
        for i in 0..self.flux.len() {
            if out.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let mut stack: Vec<usize> = self.deps[i].iter().flatten().copied().collect();
            let mut seen = HashSet::new();
            while let Some(d) = stack.pop() {
                if !seen.insert(d) {
                    continue;
                }
                if self.declared_below(i, d) {
                    out.push((
                        i,
                        Arc::new(RenderError::DependsOnOwnChild {
                            name: self.flux[i].name.clone(),
                            file: self.flux[i].file.clone(),
                            target: self.flux[d].name.clone(),
                        }),
                    ));
                    break;
                }
                stack.extend(self.deps[d].iter().flatten().copied());
            }
        }
        let mut in_cycle = HashSet::new();
        for cycle in self.cycles() {
            let error = Arc::new(RenderError::Cycle {
                cluster: self.cluster.to_string(),
                cycle: cycle
                    .iter()
                    .map(|&c| self.flux[c].name.clone())
                    .chain([self.flux[cycle[0]].name.clone()])
                    .collect(),
            });
            for &member in &cycle {
                if in_cycle.insert(member) && !out.iter().any(|(j, _)| *j == member) {
                    out.push((member, error.clone()));
                }
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// Each dependsOn cycle once, from its first member in walk order.
    pub(crate) fn cycles(&self) -> Vec<Vec<usize>> {
        let mut in_cycle = HashSet::new();
        let mut out = Vec::new();
        for start in 0..self.flux.len() {
            if in_cycle.contains(&start) {
                continue;
            }
            if let Some(cycle) = self.cycle_from(start) {
                in_cycle.extend(cycle.iter().copied());
                out.push(cycle);
            }
        }
        out
    }

    /// True when `ancestor` declares `node`, directly or through others.
    fn declared_below(&self, ancestor: usize, node: usize) -> bool {
        let mut at = self.parents[node];
        let mut steps = 0;
        while let Some(p) = at {
            if p == ancestor {
                return true;
            }
            steps += 1;
            if steps > self.parents.len() {
                return false;
            }
            at = self.parents[p];
        }
        false
    }

    /// A dependsOn cycle through `start`, in walk order, if there is one.
    fn cycle_from(&self, start: usize) -> Option<Vec<usize>> {
        fn dfs(
            g: &Graph,
            at: usize,
            start: usize,
            path: &mut Vec<usize>,
            done: &mut HashSet<usize>,
        ) -> bool {
            path.push(at);
            for &d in g.deps[at].iter().flatten() {
                if d == start {
                    return true;
                }
                if !path.contains(&d) && done.insert(d) && dfs(g, d, start, path, done) {
                    return true;
                }
            }
            path.pop();
            false
        }
        let mut path = Vec::new();
        dfs(self, start, start, &mut path, &mut HashSet::new()).then_some(path)
    }

    /// The Kustomizations `keep` accepts, each after what it depends on and
    /// after the one that declares it; stable otherwise.
    pub(crate) fn order(&self, keep: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let mut done = vec![false; self.flux.len()];
        let mut active = vec![false; self.flux.len()];
        let mut out = Vec::new();
        fn visit(
            g: &Graph,
            i: usize,
            keep: &dyn Fn(usize) -> bool,
            done: &mut [bool],
            active: &mut [bool],
            out: &mut Vec<usize>,
        ) {
            if done[i] || active[i] {
                return;
            }
            active[i] = true;
            for &d in g.parents[i].iter().chain(g.deps[i].iter().flatten()) {
                visit(g, d, keep, done, active, out);
            }
            active[i] = false;
            done[i] = true;
            if keep(i) {
                out.push(i);
            }
        }
        for i in 0..self.flux.len() {
            visit(self, i, keep, &mut done, &mut active, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(name: &str, deps: &[&str]) -> FluxKustomization {
        FluxKustomization {
            name: name.into(),
            namespace: "flux-system".into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            file: format!("{name}.yaml"),
            ..FluxKustomization::default()
        }
    }

    #[test]
    fn depending_on_what_it_declares_is_reported() {
        // apps declares team, team declares web; apps waits for web.
        let flux = [
            ks("apps", &["web"]),
            ks("team", &[]),
            ks("web", &[]),
            ks("other", &["web"]),
        ];
        let parents = [None, Some(0), Some(1), None];
        let graph = Graph::new("c", &flux, &parents, None);
        let failures = graph.primary_failures();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, 0);
        assert!(
            failures[0]
                .1
                .to_string()
                .contains("dependsOn web, which only exists once it is applied itself"),
            "{}",
            failures[0].1
        );
        // The rest is ordered: a declaring Kustomization before what it declares.
        let order = graph.order(&|i| i != 0);
        assert_eq!(order, [1, 2, 3]);
    }
}
