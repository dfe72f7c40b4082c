//! `cargo xtask validate`: fast, offline, strict validation of the whole tree,
//! with every finding reported.
//!
//! 1. [`tree`]: every `*.yaml`/`*.yml` of the manifest folders parses (file:line:col).
//! 2. [`kustomize`]: every folder with a kustomization file builds (each once, in parallel).
//! 3. Schemas ([`k8s_schema`]): every rendered object, after Flux substitution
//!    (defaults only outside a postBuild Kustomization), against its OpenAPI schema.
//! 4. [`flux`]: paths, sourceRefs, dependsOn, cycles, postBuild variables,
//!    HelmRelease sources and chart pins, per cluster.
//! 5. [`secrets`]: plaintext Secrets and SOPS recipients.
//! 6. [`addresses`]: in-cluster addresses name what the same cluster deploys.
//! 7. [`alerts`]: every Alert's Provider and event sources, and every
//!    Provider's Secret, exist in the same cluster.
//! 8. [`policies`]: each cluster's Kyverno CEL policies on each object it applies.
//!
//! Step 3 also runs [`rules`]: what the API server's own validation rejects
//! that OpenAPI cannot say (quantities, Service types, ports, names, ...).

pub mod addresses;
pub mod alerts;
mod allow;
pub mod flux;
pub mod helm_values;
pub mod kustomize;
pub mod placeholders;
pub mod policies;
mod report;
/// The API server's own rules, from the `k8s-rules` library.
pub use k8s_rules as rules;
pub mod secrets;
pub mod server;
pub mod substitute;
pub mod tree;
pub(crate) mod verdicts;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde_json::Value;

use k8s_schema::{Gvk, Lookup, Registry, RegistryOptions};

pub use allow::{ALLOW_FILE, AllowList, AllowedSecret, AllowedSource};
pub use report::{Check, Finding, Report, ServerSummary, Severity, counts};

/// An object to validate and where it came from.
#[derive(Debug, Clone)]
pub struct Item {
    pub object: Value,
    pub file: String,
    pub line: Option<usize>,
}

#[cfg(test)]
impl Item {
    /// `object` at line 1 of `x.yaml`, for unit tests.
    pub(crate) fn test(object: Value) -> Self {
        Self {
            object,
            file: "x.yaml".into(),
            line: Some(1),
        }
    }
}

/// What to validate and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    /// Clusters (`clusters/<name>`); empty means all.
    pub clusters: Vec<String>,
    pub kubernetes_version: String,
    /// Schema folders (relative to `root`) and URL templates.
    pub schema_locations: Vec<String>,
    pub skip_missing_schemas: bool,
    pub strict: bool,
    /// Show an indicatif progress bar.
    pub progress: bool,
    /// Cache directory for schemas; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Cache directory for kustomize builds; `None` disables it.
    pub kustomize_cache: Option<PathBuf>,
    /// The user's age identities, for the MAC check of SOPS files they can open.
    pub identities: Option<std::sync::Arc<sops::Identities>>,
    /// Also render every HelmRelease (`--helm`) and validate the chart output.
    pub helm: Option<flux_render::helm::HelmOptions>,
    /// Also send every object to the real API server (`--server`): the
    /// checkout whose `.tools/bin` holds etcd and kube-apiserver.
    pub server: Option<PathBuf>,
}

impl Options {
    /// Defaults for a tree at `root`: all clusters, strict, `.schemas/`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            clusters: Vec::new(),
            kubernetes_version: k8s_schema::DEFAULT_KUBERNETES_VERSION.into(),
            schema_locations: vec![".schemas".into()],
            skip_missing_schemas: false,
            strict: true,
            progress: false,
            cache_dir: Some(crate::user_cache("validate")),
            kustomize_cache: crate::kustomize_cache_dir(),
            identities: sops::Identities::from_env()
                .ok()
                .filter(|ids| !ids.is_empty())
                .map(std::sync::Arc::new),
            helm: None,
            server: None,
        }
    }
}

/// The clusters of a tree: the folders under `clusters/` holding manifests.
pub fn clusters_of(root: &Path) -> Vec<String> {
    flux_render::list_clusters(root)
}

struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(on: bool) -> Self {
        if on && std::io::stderr().is_terminal() {
            let pb = indicatif::ProgressBar::new(0);
            pb.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            Self(Some(pb))
        } else {
            Self(None)
        }
    }
    fn stage(&self, msg: &str, len: usize) {
        if let Some(pb) = &self.0 {
            // Position first: no redraw between these may show the old
            // stage's count over the new stage's length (`41/3`).
            pb.set_position(0);
            pb.set_length(len as u64);
            pb.set_message(msg.to_string());
        }
    }
    fn inc(&self) {
        if let Some(pb) = &self.0 {
            pb.inc(1);
        }
    }
    fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

/// The last key of a JSON path, to find its line in the source.
fn last_key(path: &str) -> Option<String> {
    let p = path.trim_end_matches(|c: char| c == ']' || c.is_ascii_digit());
    let p = p.trim_end_matches('[');
    if let Some(q) = p.strip_suffix('"') {
        let start = q.rfind('"')?;
        return Some(q[start + 1..].to_string());
    }
    let key = p.rsplit('.').next()?;
    (!key.is_empty()).then(|| key.to_string())
}

/// What a run needs that does not depend on the tree, loaded beside the
/// tree's parse and builds: the schemas, and the verdicts of earlier runs.
struct Preloaded {
    registry: std::io::Result<Registry>,
    schema_verdicts: verdicts::Store<Verdict>,
    policy_verdicts: verdicts::Store<policies::Outcome>,
}

impl Preloaded {
    fn spawn(opts: &Options, binary: &str) -> std::thread::JoinHandle<Self> {
        let registry = RegistryOptions {
            locations: opts.schema_locations.clone(),
            base: opts.root.clone(),
            kubernetes_version: opts.kubernetes_version.clone(),
            cache_dir: opts.cache_dir.clone(),
        };
        let cache_dir = opts.cache_dir.clone();
        let binary = binary.to_string();
        std::thread::spawn(move || Preloaded {
            registry: Registry::load(registry),
            schema_verdicts: verdicts::Store::load(
                cache_dir.as_deref(),
                verdicts::SCHEMAS,
                &binary,
            ),
            policy_verdicts: verdicts::Store::load(
                cache_dir.as_deref(),
                verdicts::POLICIES,
                &binary,
            ),
        })
    }
}

/// Runs every check.
pub fn run(opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let progress = Progress::new(opts.progress);
    let allow = AllowList::load(&opts.root)?;
    let builder = crate::kustomize_builder(opts.kustomize_cache.clone())?;
    {
        // The helper starts beside the tree's parse when a manifest changed
        // since the build cache did; an unchanged tree starts none.
        let builder = builder.clone();
        let dirs: Vec<PathBuf> = crate::MANIFEST_DIRS
            .iter()
            .map(|d| opts.root.join(d))
            .collect();
        std::thread::spawn(move || builder.prestart_if_changed(&dirs));
    }
    // This binary holds the rules: a verdict is kept by it.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| crate::file_identity(&p))
        .unwrap_or_default();
    let preload = Preloaded::spawn(opts, &binary);
    // The ship gate, for the secrets check: it runs beside the other checks
    // (the render of every cluster is mostly kustomize builds).
    let gate = {
        let root = opts.root.clone();
        let clusters = if opts.clusters.is_empty() {
            flux_render::list_clusters(&root)
        } else {
            opts.clusters.clone()
        };
        let allow = allow.clone();
        let cache = opts.cache_dir.as_ref().map(|d| d.join("render"));
        let builder = builder.clone();
        let ids = opts.identities.clone();
        std::thread::spawn(move || {
            let entries = oci_artifact::tree::collect(&root)?;
            let contents = crate::ship::gate::Contents::read(&entries)?;
            // The verdict is kept by the shipped files' bytes: an unchanged
            // tree is not rendered again.
            let rendered = crate::leaks::rendered::check_cached(
                &root,
                &clusters,
                &allow,
                contents.files(&entries),
                cache.as_deref(),
                Some(builder),
            );
            Ok(crate::ship::gate::check_with(
                &root,
                &entries,
                &contents,
                ids.as_deref(),
                rendered,
                cache.as_deref(),
            ))
        })
    };
    let mut report = Report::default();

    // 1. YAML.
    let kept_parses = opts
        .cache_dir
        .as_ref()
        .map(|dir| tree::Parses::new(dir, &binary));
    let (tree, mut findings) = tree::Tree::load_kept(&opts.root, kept_parses.as_ref());
    report.files = tree.files.len();

    // 2. kustomize.
    let builds = kustomize::Builds::new(opts.root.clone(), builder.clone())
        .with_parsed_cache(opts.cache_dir.as_ref().map(|d| d.join("objects")), &binary);
    // Top-level directories first: a directory that a successful build includes
    // built successfully as part of it, so it is only built alone (to place the
    // error) when every directory including it failed.
    progress.stage("kustomize build", tree.kustomize_dirs.len());
    builds.build_all(&tree.top_level_dirs(), &|| progress.inc());
    let mut covered = 0;
    loop {
        let mut pending: Vec<String> = Vec::new();
        let mut progressed = false;
        for (dir, parents) in &tree.included_by {
            if builds.is_built(dir) || builds.is_covered(dir) {
                continue;
            }
            let states: Vec<Option<bool>> = parents.iter().map(|p| builds.succeeded(p)).collect();
            if states.contains(&Some(true)) {
                builds.mark_covered(dir);
                covered += 1;
                progress.inc();
                progressed = true;
            } else if states.iter().all(|s| s == &Some(false)) {
                pending.push(dir.clone());
            }
        }
        if !pending.is_empty() {
            builds.build_all(&pending, &|| progress.inc());
            progressed = true;
        }
        if !progressed {
            break;
        }
    }

    // 4. Flux graph, per cluster; it also yields the objects as applied.
    let all_clusters = clusters_of(&opts.root);
    let clusters = if opts.clusters.is_empty() {
        all_clusters
    } else {
        for c in &opts.clusters {
            if !all_clusters.contains(c) {
                bail!(
                    "no cluster {c:?}: clusters/ has {}",
                    all_clusters.join(", ")
                );
            }
        }
        opts.clusters.clone()
    };
    progress.stage("flux graph", clusters.len());
    let checks: Vec<flux::ClusterCheck> = clusters
        .par_iter()
        .map(|c| {
            let r = flux::check_cluster(&tree, &builds, &allow, c);
            progress.inc();
            r
        })
        .collect();
    let mut items: Vec<Item> = Vec::new();
    let mut cluster_items: Vec<policies::ClusterItems> = Vec::new();
    for (cluster, c) in clusters.iter().zip(checks) {
        report.flux_kustomizations += c.kustomizations.len();
        findings.extend(c.findings);
        findings.extend(addresses::check_cluster(&tree, cluster, &c.items));
        findings.extend(alerts::check_cluster(cluster, &c.items));
        let start = items.len();
        items.extend(c.items);
        cluster_items.push(policies::ClusterItems {
            cluster: cluster.clone(),
            range: start..items.len(),
            default_namespace: None,
        });
    }
    // One finding per root cause: a kustomize chain that repeats a YAML
    // error, or a missing resource that every including build trips over,
    // is said once, in plain words (the raw chains with -v).
    let yaml_failed: HashSet<String> = findings
        .iter()
        .filter(|f| f.check == Check::Yaml)
        .map(|f| f.file.clone())
        .collect();
    let mut missing_said = HashSet::new();
    let verbose = exec::runner::verbose();
    let built = builds.all();
    // Each build's objects as applied, where they come from: independent
    // of each other, so built side by side.
    let built_items: Vec<Vec<Item>> = built
        .par_iter()
        .map(|(dir, result)| {
            let Ok(objects) = result.as_ref() else {
                return Vec::new();
            };
            let kfile = tree.kustomization_file(dir).unwrap_or_else(|| dir.clone());
            objects
                .iter()
                .map(|o| {
                    let object = if substitute::disabled(o) {
                        o.clone()
                    } else {
                        substitute::substitute(o, None).0
                    };
                    let (file, line) = tree.locate(o, dir, None, &kfile);
                    Item { object, file, line }
                })
                .collect()
        })
        .collect();
    items.extend(built_items.into_iter().flatten());
    for (dir, result) in &built {
        let Err(msg) = result.as_ref() else {
            continue;
        };
        let kfile = tree.kustomization_file(dir).unwrap_or_else(|| dir.clone());
        let raw = || {
            Finding::error(
                Check::Kustomize,
                &kfile,
                None,
                format!("kustomize build {dir}: {msg}"),
            )
        };
        match kustomize::cause(&opts.root, &msg.to_string(), &yaml_failed) {
            _ if verbose => findings.push(raw()),
            kustomize::Cause::BrokenYaml => {}
            kustomize::Cause::Missing {
                file,
                line,
                missing,
            } => {
                if missing_said.insert(missing.clone()) {
                    findings.push(Finding::error(
                        Check::Kustomize,
                        &file,
                        line,
                        format!("{missing} does not exist, but this kustomization lists it (every build that includes it fails)"),
                    ));
                }
            }
            kustomize::Cause::Other => findings.push(raw()),
        }
    }
    report.kustomize_builds = built.len() + covered;

    if let Some(helm) = &opts.helm {
        let render_opts = flux_render::RenderOptions {
            kustomize: Some(builder.clone()),
            ..Default::default()
        };
        cluster_items.extend(helm_items(
            opts,
            helm,
            &render_opts,
            &clusters,
            &tree,
            &mut items,
            &mut findings,
        ));
    }
    let Preloaded {
        registry,
        schema_verdicts,
        policy_verdicts,
    } = preload
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    // Each object's JSON text, once: the identity both verdict stores key by.
    let item_texts: Vec<String> = items
        .par_iter()
        .map(|it| k8s_schema::object_text(&it.object))
        .collect();
    findings.extend(policies::check(
        &items,
        &item_texts,
        &cluster_items,
        policies::Memo {
            store: policy_verdicts,
            binary: &binary,
        },
    ));

    // 3. Schemas.
    let mut registry = registry?;
    for it in &items {
        if it.object.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
            registry.add_crd(&it.object);
        }
    }
    let missing_counts: std::sync::Mutex<BTreeMap<String, usize>> = Default::default();
    // An object without apiVersion or kind cannot be decoded by the API server.
    for it in &items {
        if let Some(f) = incomplete(it, &tree) {
            findings.push(f);
        }
    }
    // Each distinct object is validated once; its findings are reported for
    // every file that holds it.
    let mut groups: Vec<Vec<&Item>> = Vec::new();
    let mut texts: Vec<&String> = Vec::new();
    let mut by_text: HashMap<&String, usize> = HashMap::new();
    for (it, text) in items
        .iter()
        .zip(&item_texts)
        .filter(|(it, _)| Gvk::of(&it.object).is_some())
    {
        match by_text.get(text) {
            Some(i) => groups[*i].push(it),
            None => {
                by_text.insert(text, groups.len());
                groups.push(vec![it]);
                texts.push(text);
            }
        }
    }
    // Verdicts from earlier runs: only objects not judged before under the
    // same schema, strictness and binary are judged (and their schemas
    // compiled).
    let store = schema_verdicts;
    let keys: Vec<String> = groups
        .iter()
        .zip(&texts)
        .map(|(g, text)| {
            let schema = Gvk::of(&g[0].object)
                .map(|gvk| registry.schema_key(&gvk))
                .unwrap_or_default();
            let strictness = if opts.strict { "strict" } else { "lax" };
            verdicts::key(&[&binary, &schema, strictness, text])
        })
        .collect();
    let known: Vec<Option<Verdict>> = keys.iter().map(|k| store.get(k)).collect();
    let gvks: Vec<Gvk> = groups
        .iter()
        .zip(&known)
        .filter(|(_, v)| v.is_none())
        .filter_map(|(g, _)| Gvk::of(&g[0].object))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !registry.has_kubernetes() && !groups.is_empty() {
        let msg = format!(
            "no Kubernetes {} OpenAPI documents in {}: run `cargo xtask validate --fetch-schemas --kubernetes-version {}`",
            k8s_schema::normalize_kubernetes_version(&opts.kubernetes_version),
            opts.schema_locations.join(", "),
            opts.kubernetes_version
        );
        let mut f = Finding::error(Check::Schema, "", None, msg);
        if opts.skip_missing_schemas {
            f.severity = Severity::Warning;
        }
        findings.push(f);
    }
    progress.stage("compile schemas", gvks.len());
    registry.prepare(&gvks);
    progress.stage("validate objects", groups.len());
    let results: Vec<(Vec<Finding>, Option<Verdict>)> = groups
        .par_iter()
        .zip(&known)
        .map(|(group, known)| {
            let judged = known
                .is_none()
                .then(|| judge(&registry, &group[0].object, opts));
            let verdict = known.as_ref().or(judged.as_ref()).expect("known or judged");
            if let Some(m) = &verdict.missing {
                *missing_counts
                    .lock()
                    .expect("lock")
                    .entry(m.clone())
                    .or_default() += 1;
            }
            let found = group
                .iter()
                .flat_map(|it| place(verdict, it, &tree, opts))
                .collect();
            progress.inc();
            (found, judged)
        })
        .collect();
    let mut fresh = Vec::new();
    let mut found_all = Vec::new();
    for ((found, judged), key) in results.into_iter().zip(&keys) {
        found_all.push(found);
        if let Some(v) = judged {
            fresh.push((key.clone(), v));
        }
    }
    report.objects_judged = fresh.len();
    store.save(fresh, &keys);
    let results = found_all;
    report.objects_checked = groups.len();
    report.missing_schemas = missing_counts.into_inner().expect("lock");
    findings.extend(results.into_iter().flatten());

    // 3b. The real API server, when asked.
    if let Some(checkout) = &opts.server {
        progress.stage("kube-apiserver dry-run", 0);
        let dirs: Vec<PathBuf> = opts
            .schema_locations
            .iter()
            .filter(|l| !l.contains("{{"))
            .map(|l| opts.root.join(l))
            .filter(|d| d.is_dir())
            .collect();
        let outcome = server::check(checkout, &dirs, &items, |_| {})?;
        report.server = Some(ServerSummary {
            objects: outcome.objects,
            rejected: outcome.rejected,
            crds: outcome.crds,
            seconds: outcome.took.as_secs_f64(),
        });
        findings.extend(outcome.findings);
    }

    // 5. Secrets.
    let gate = gate
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    builder.settle();
    findings.extend(secrets::check(&tree, gate));
    findings.extend(placeholders::check(&items, opts.identities.as_deref()));

    progress.finish();
    // The gate beside has joined: every build of the run is counted.
    report.kustomize_runs = builder.stats().1;
    // Dedupe (an object can be checked per cluster and per build) and sort.
    let mut seen = HashSet::new();
    findings.retain(|f| seen.insert(f.clone()));
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.check, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.check, &b.message))
    });
    report.findings = findings;
    report.clusters = clusters;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What the schema and the server-side rules say of one distinct object.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Verdict {
    /// `(JSON path, message)` of each problem.
    errors: Vec<(String, String)>,
    /// `apiVersion kind` when no schema serves it.
    missing: Option<String>,
    label: String,
}

/// Judges one object as the API server would: its schema (built-in or CRD,
/// with the server's null handling and formats), then [`rules`].
fn judge(registry: &Registry, object: &Value, opts: &Options) -> Verdict {
    let label = flux::describe(object);
    let Some(gvk) = Gvk::of(object) else {
        return Verdict {
            errors: Vec::new(),
            missing: None,
            label,
        };
    };
    // SOPS-encrypted values are judged after Flux decrypts them, not as
    // `ENC[...]` text: an empty string stands in for each.
    let decrypted_view;
    let object = if object.get("sops").is_some() {
        let mut view = object.clone();
        if let Some(m) = view.as_object_mut() {
            m.remove("sops");
        }
        blank_encrypted(&mut view);
        decrypted_view = view;
        &decrypted_view
    } else {
        object
    };
    let mut errors = Vec::new();
    let mut missing = None;
    match registry.get(&gvk) {
        Lookup::Found(compiled) => {
            errors.extend(
                k8s_schema::validate(&compiled, object, opts.strict)
                    .into_iter()
                    .map(|e| (e.path, e.message)),
            );
        }
        Lookup::Missing => missing = Some(gvk.to_string()),
    }
    errors.extend(
        rules::check(&gvk, object, registry.is_builtin(&gvk))
            .into_iter()
            .map(|v| {
                let function = v.mirrors.split([' ', ',']).next().unwrap_or(v.mirrors);
                (
                    v.path,
                    format!("{} (the API server's {function})", v.message),
                )
            }),
    );
    // A value Flux fills at apply time (`${var}` left without a default
    // here) cannot be judged before: only its type can.
    errors
        .retain(|(path, message)| !unresolved_at(object, path) || message.starts_with("expected "));
    Verdict {
        errors,
        missing,
        label,
    }
}

/// Replaces every `ENC[AES256_GCM,...]` string with an empty one.
pub(crate) fn blank_encrypted(value: &mut Value) {
    match value {
        Value::String(s) if s.starts_with("ENC[AES256_GCM,") => s.clear(),
        Value::Array(items) => items.iter_mut().for_each(blank_encrypted),
        Value::Object(map) => map.values_mut().for_each(blank_encrypted),
        _ => {}
    }
}

/// True when the value at `path` (`a.b[0]["k.e.y"]`, as the schema check and
/// the rules write paths) is a string holding an unexpanded `${var}`.
fn unresolved_at(object: &Value, path: &str) -> bool {
    let mut cur = object;
    let mut rest = path;
    while !rest.is_empty() {
        rest = rest.strip_prefix('.').unwrap_or(rest);
        let next = if let Some(after) = rest.strip_prefix("[\"") {
            // A quoted key, JSON-escaped.
            let Some(end) = after.find("\"]") else {
                return false;
            };
            let key: String = match serde_json::from_str(&format!("\"{}\"", &after[..end])) {
                Ok(k) => k,
                Err(_) => return false,
            };
            rest = &after[end + 2..];
            cur.get(key.as_str())
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return false;
            };
            let index: Option<usize> = after[..end].parse().ok();
            rest = &after[end + 1..];
            index.and_then(|i| cur.get(i))
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            rest = &rest[end..];
            cur.get(key)
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    cur.as_str()
        .is_some_and(|s| !substitute::references(s).is_empty())
}

/// The findings of a verdict, placed in the file (and line) of one item.
fn place(verdict: &Verdict, it: &Item, tree: &tree::Tree, opts: &Options) -> Vec<Finding> {
    let mut findings: Vec<Finding> = verdict
        .errors
        .iter()
        .map(|(path, message)| {
            let needle = last_key(path).map(|k| format!("{k}:"));
            let (file, line) = match &needle {
                Some(n) => tree.locate(&it.object, "", Some(n), &it.file),
                None => (it.file.clone(), it.line),
            };
            // Keep the object's own file when the needle found another.
            let (file, line) = if file == it.file {
                (file, line.or(it.line))
            } else {
                (it.file.clone(), it.line)
            };
            Finding {
                severity: Severity::Error,
                check: Check::Schema,
                file,
                line,
                column: None,
                object: Some(verdict.label.clone()),
                path: (!path.is_empty()).then(|| path.clone()),
                message: message.clone(),
            }
        })
        .collect();
    if let Some(gvk) = &verdict.missing {
        let mut f = Finding::error(
            Check::Schema,
            &it.file,
            it.line,
            format!(
                "no schema for {gvk}: add its CRD to a schema folder (xtask/schemas.toml) or pass --skip-missing-schemas"
            ),
        )
        .with_object(verdict.label.clone());
        if opts.skip_missing_schemas {
            f.severity = Severity::Warning;
        }
        findings.push(f);
    }
    findings
}

/// An error for an object without a string `apiVersion` or `kind`, at the
/// document that holds it.
fn incomplete(it: &Item, tree: &tree::Tree) -> Option<Finding> {
    let absent: Vec<&str> = ["apiVersion", "kind"]
        .into_iter()
        .filter(|k| {
            it.object
                .get(*k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .collect();
    if absent.is_empty() {
        return None;
    }
    let (file, line) = if it.line.is_some() {
        (it.file.clone(), it.line)
    } else {
        source_of(it, tree).unwrap_or_else(|| (it.file.clone(), None))
    };
    // The document's first line of YAML, past comments and blank lines.
    let line = line.map(|l| {
        let text = tree
            .files
            .iter()
            .find(|f| f.rel == file)
            .map(|f| f.text.as_str());
        let skip = text
            .into_iter()
            .flat_map(|t| t.split('\n').skip(l - 1))
            .take_while(|s| s.trim().is_empty() || s.trim_start().starts_with('#'))
            .count();
        l + skip
    });
    let mut f = Finding::error(
        Check::Schema,
        &file,
        line,
        format!(
            "the object has no {}: the API server cannot decode it",
            absent.join(" and no ")
        ),
    );
    if let Some(name) = it.object.pointer("/metadata/name").and_then(Value::as_str) {
        let kind = it
            .object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("object");
        f = f.with_object(format!("{kind} {name}"));
    }
    Some(f)
}

/// The source document of an object that [`tree::Tree::locate`] cannot find
/// by kind and name: one under the item's directory with the same name and
/// the same `apiVersion`/`kind` (or lack of them).
fn source_of(it: &Item, tree: &tree::Tree) -> Option<(String, Option<usize>)> {
    let dir = it.file.rsplit_once('/').map_or("", |(d, _)| d);
    let same = |doc: &Value, key: &str| doc.get(key) == it.object.get(key);
    tree.docs_under(dir)
        .find(|(_, d)| {
            d.value.pointer("/metadata/name") == it.object.pointer("/metadata/name")
                && same(&d.value, "apiVersion")
                && same(&d.value, "kind")
        })
        .map(|(f, d)| (f.rel.clone(), Some(d.start)))
}

/// `--helm`: renders every HelmRelease of each cluster (as `build --helm`
/// does) and adds the chart output to what the schemas check, attributed to
/// the HelmRelease's file. A release that cannot be rendered (chart not
/// fetched, values rejected by the chart's schema) is one finding; the
/// others go on. Values keys the chart does not know are warnings
/// ([`helm_values`]).
fn helm_items(
    opts: &Options,
    helm: &flux_render::helm::HelmOptions,
    render_opts: &flux_render::RenderOptions,
    clusters: &[String],
    tree: &tree::Tree,
    items: &mut Vec<Item>,
    findings: &mut Vec<Finding>,
) -> Vec<policies::ClusterItems> {
    let mut cluster_items = Vec::new();
    for cluster in clusters {
        let rendered = match flux_render::render_cluster(&opts.root, cluster, render_opts) {
            Ok(r) => r,
            Err(e) => {
                findings.push(Finding::error(
                    Check::Helm,
                    &format!("clusters/{cluster}"),
                    None,
                    format!("cannot render cluster {cluster} for --helm: {e}"),
                ));
                continue;
            }
        };
        findings.extend(helm_values::check_cluster(tree, cluster, &rendered, helm));
        for release in flux_render::helm::render_cluster(&rendered, helm) {
            let object = serde_json::json!({
                "apiVersion": "helm.toolkit.fluxcd.io/v2",
                "kind": "HelmRelease",
                "metadata": {"name": release.name, "namespace": release.namespace},
            });
            let (file, line) = tree.locate(&object, "", None, &format!("clusters/{cluster}"));
            match release.result {
                Ok(objects) => {
                    let start = items.len();
                    items.extend(objects.into_iter().map(|object| Item {
                        object,
                        file: file.clone(),
                        line,
                    }));
                    // Chart objects without a namespace land in the release's.
                    cluster_items.push(policies::ClusterItems {
                        cluster: cluster.clone(),
                        range: start..items.len(),
                        default_namespace: Some(release.namespace.clone()),
                    });
                }
                Err(e) => findings.push(
                    Finding::error(Check::Helm, &file, line, format!("cluster {cluster}: {e}"))
                        .with_object(format!(
                            "HelmRelease {}/{}",
                            release.namespace, release.name
                        )),
                ),
            }
        }
    }
    cluster_items
}

#[cfg(test)]
mod judge_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unexpanded_variables_are_found_by_path() {
        let o = json!({"metadata": {"labels": {"tier": "${tier}", "app.kubernetes.io/name": "x"}},
            "spec": {"containers": [{"args": ["--port", "${port}"]}]}});
        assert!(unresolved_at(&o, "metadata.labels[\"tier\"]"));
        assert!(!unresolved_at(
            &o,
            "metadata.labels[\"app.kubernetes.io/name\"]"
        ));
        assert!(unresolved_at(&o, "spec.containers[0].args[1]"));
        assert!(!unresolved_at(&o, "spec.containers[0].args[0]"));
        assert!(!unresolved_at(&o, "spec.nothing[3]"));
    }

    #[test]
    fn encrypted_values_are_blanked_for_judging() {
        let mut o = json!({"data": {"t": "ENC[AES256_GCM,data:AA==,iv:x,tag:y,type:str]", "plain": "aGk="}});
        blank_encrypted(&mut o);
        assert_eq!(o, json!({"data": {"t": "", "plain": "aGk="}}));
    }
}
