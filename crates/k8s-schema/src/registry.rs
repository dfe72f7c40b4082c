//! Which schema serves which apiVersion/kind, and compiling each kind once.
//!
//! Sources, in order of precedence:
//! 1. CRDs found in the rendered tree ([`Registry::add_crd`]);
//! 2. schema folders (default `.schemas/`): Kubernetes OpenAPI v3 documents
//!    (`*.json` with `components.schemas`; under a `kubernetes/` folder only
//!    the `v<version>` subfolder of the requested version is read) and CRD
//!    files (`*.yaml`, `*.yml`, `*.json`);
//! 3. kubeconform-style templates (`https://.../{{ .ResourceKind }}{{ .KindSuffix }}.json`
//!    or a local path with `{{ }}`) holding JSON schemas; downloads are cached.
//!
//! The index of a folder and every compiled kind are cached under the cache
//! directory (normally `target/xtask/validate`), keyed by the sources' size
//! and mtime, so a second run neither parses the 11 MB of OpenAPI JSON nor
//! compiles again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::compile::{COMPILER_VERSION, Compiled, Compiler, DocLoader, NodeId};
use super::{Gvk, normalize_kubernetes_version};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// How to build a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Folders and URL/path templates; relative folders resolve against `base`.
    pub locations: Vec<String>,
    pub base: PathBuf,
    pub kubernetes_version: String,
    /// Where the index, compiled kinds and downloads are cached; `None` disables.
    pub cache_dir: Option<PathBuf>,
}

impl RegistryOptions {
    /// `.schemas/` of `root`, the default version, cache under `root/target`.
    pub fn for_root(root: &Path) -> Self {
        Self {
            locations: vec![".schemas".into()],
            base: root.to_path_buf(),
            kubernetes_version: super::DEFAULT_KUBERNETES_VERSION.into(),
            cache_dir: Some(root.join("target/xtask/validate")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Source {
    OpenApi {
        file: PathBuf,
        name: String,
    },
    CrdFile {
        file: PathBuf,
        doc: usize,
        version: String,
    },
    #[serde(skip)]
    CrdInline {
        schema: Arc<Value>,
        hash: String,
    },
    Template {
        location: String,
    },
}

#[derive(Debug, Default)]
struct Index {
    kinds: Vec<(Gvk, Source)>,
    object_meta: Option<PathBuf>,
    openapi_docs: usize,
    crd_files: usize,
}

/// What a run needs of the index besides its kinds, kept beside it.
#[derive(Serialize, Deserialize)]
struct IndexMeta {
    object_meta: Option<PathBuf>,
    kinds: usize,
}

/// The index as kept in the cache: each file named once (a Kubernetes
/// version's OpenAPI documents hold thousands of kinds), a kind as a tuple.
#[derive(Serialize, Deserialize)]
struct StoredIndex {
    files: Vec<PathBuf>,
    kinds: Vec<(String, String, String, StoredSource)>,
    object_meta: Option<PathBuf>,
    openapi_docs: usize,
    crd_files: usize,
}

#[derive(Serialize, Deserialize)]
enum StoredSource {
    OpenApi(usize, String),
    CrdFile(usize, usize, String),
}

impl StoredIndex {
    fn of(index: &Index) -> Self {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut numbers: HashMap<PathBuf, usize> = HashMap::new();
        let mut number = |file: &PathBuf| -> usize {
            *numbers.entry(file.clone()).or_insert_with(|| {
                files.push(file.clone());
                files.len() - 1
            })
        };
        let kinds = index
            .kinds
            .iter()
            .filter_map(|(gvk, source)| {
                let stored = match source {
                    Source::OpenApi { file, name } => {
                        StoredSource::OpenApi(number(file), name.clone())
                    }
                    Source::CrdFile { file, doc, version } => {
                        StoredSource::CrdFile(number(file), *doc, version.clone())
                    }
                    // Not indexed from files: never in an index.
                    Source::CrdInline { .. } | Source::Template { .. } => return None,
                };
                Some((
                    gvk.group.clone(),
                    gvk.version.clone(),
                    gvk.kind.clone(),
                    stored,
                ))
            })
            .collect();
        Self {
            files,
            kinds,
            object_meta: index.object_meta.clone(),
            openapi_docs: index.openapi_docs,
            crd_files: index.crd_files,
        }
    }

    /// The index; `None` when a kind names a file that is not listed.
    fn into_index(self) -> Option<Index> {
        let files = self.files;
        let kinds = self
            .kinds
            .into_iter()
            .map(|(group, version, kind, stored)| {
                let source = match stored {
                    StoredSource::OpenApi(file, name) => Source::OpenApi {
                        file: files.get(file)?.clone(),
                        name,
                    },
                    StoredSource::CrdFile(file, doc, version) => Source::CrdFile {
                        file: files.get(file)?.clone(),
                        doc,
                        version,
                    },
                };
                Some((
                    Gvk {
                        group,
                        version,
                        kind,
                    },
                    source,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Index {
            kinds,
            object_meta: self.object_meta,
            openapi_docs: self.openapi_docs,
            crd_files: self.crd_files,
        })
    }
}

/// The result of looking up a kind.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Arc<Compiled>),
    Missing,
}

/// Counters for the summary and the bench.
#[derive(Debug, Default, Clone, Copy)]
pub struct RegistryStats {
    pub kinds_indexed: usize,
    pub compiled: usize,
    pub from_cache: usize,
    pub index_from_cache: bool,
}

pub struct Registry {
    opts: RegistryOptions,
    /// The schema folders' kinds: read from the cached index the first time
    /// one is looked up (a run whose verdicts are all kept reads none).
    indexed: OnceLock<HashMap<Gvk, Source>>,
    /// Where the index is kept, and the files it indexes.
    index_path: Option<PathBuf>,
    files: Vec<PathBuf>,
    /// CRDs of the rendered tree: they win over the folders.
    inline: HashMap<Gvk, Source>,
    /// Every schema file's stamp and the compiler's version: what a kind
    /// from the folders depends on.
    folders_key: String,
    object_meta: Option<PathBuf>,
    templates: Vec<String>,
    compiled: RwLock<HashMap<Gvk, Option<Arc<Compiled>>>>,
    docs: Mutex<HashMap<PathBuf, Arc<Value>>>,
    stats: Mutex<RegistryStats>,
    /// Each schema file's stamp, as read when indexing: every verdict and
    /// compiled kind of the run keys by the same stamps.
    sigs: HashMap<PathBuf, String>,
}

fn file_sig(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}:{len}:{mtime}", path.display())
}

/// Writes a cache file whole or not at all (a temp file beside it, then a
/// rename), its folder created: a run beside never reads half of one.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn hash_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

fn is_template(location: &str) -> bool {
    location.contains("{{") || location.starts_with("http://") || location.starts_with("https://")
}

/// Renders a kubeconform schema-location template for `gvk`.
pub fn render_template(
    template: &str,
    gvk: &Gvk,
    kubernetes_version: &str,
    strict: bool,
) -> String {
    let api_version = gvk.api_version();
    let group_parts: Vec<&str> = api_version.split('/').collect();
    let first = group_parts[0]
        .split('.')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    let mut kind_suffix = format!("-{first}");
    if group_parts.len() > 1 {
        kind_suffix.push('-');
        kind_suffix.push_str(&group_parts[1].to_lowercase());
    }
    let re = regex::Regex::new(r"\{\{-?\s*\.(\w+)\s*-?\}\}").expect("static regex");
    re.replace_all(template, |caps: &regex::Captures| match &caps[1] {
        "NormalizedKubernetesVersion" => normalize_kubernetes_version(kubernetes_version),
        "StrictSuffix" => {
            if strict {
                "-strict".into()
            } else {
                String::new()
            }
        }
        "ResourceKind" => gvk.kind.to_lowercase(),
        "ResourceAPIVersion" => group_parts[group_parts.len() - 1].to_string(),
        "Group" => group_parts[0].to_string(),
        "KindSuffix" => kind_suffix.clone(),
        _ => String::new(),
    })
    .into_owned()
}

/// Collects schema files of a folder; under `kubernetes/` only `v<version>/`.
fn collect_files(dir: &Path, version: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if name == "kubernetes" {
                collect_files(&path.join(version), version, out);
            } else {
                collect_files(&path, version, out);
            }
        } else if name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
}

/// Parses every YAML document of a file (to JSON values); bad ones are skipped.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|doc| serde_json::Value::deserialize(doc).ok())
        .filter(|v| !v.is_null())
        .collect()
}

/// The `(gvk, version name, openAPIV3Schema)` entries of a CRD object.
pub fn crd_versions(crd: &Value) -> Vec<(Gvk, Value)> {
    if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        return Vec::new();
    }
    let Some(spec) = crd.get("spec") else {
        return Vec::new();
    };
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut out = Vec::new();
    for v in spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        let schema = v
            .pointer("/schema/openAPIV3Schema")
            .or_else(|| spec.pointer("/validation/openAPIV3Schema"));
        if let Some(schema) = schema {
            out.push((Gvk::new(group, name, kind), schema.clone()));
        }
    }
    out
}

fn index_file(path: &Path) -> (Vec<(Gvk, Source)>, bool, bool) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), false, false);
    };
    let mut kinds = Vec::new();
    if path.extension().is_some_and(|e| e == "json") {
        let Ok(doc) = serde_json::from_str::<Value>(&text) else {
            return (kinds, false, false);
        };
        if let Some(schemas) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            let has_meta = schemas.contains_key(OBJECT_META);
            for (name, schema) in schemas {
                let gvks = schema
                    .get("x-kubernetes-group-version-kind")
                    .and_then(Value::as_array);
                for g in gvks.into_iter().flatten() {
                    let s = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or_default();
                    kinds.push((
                        Gvk::new(s("group"), s("version"), s("kind")),
                        Source::OpenApi {
                            file: path.to_path_buf(),
                            name: name.clone(),
                        },
                    ));
                }
            }
            return (kinds, true, has_meta);
        }
        for (gvk, _) in crd_versions(&doc) {
            let version = gvk.version.clone();
            kinds.push((
                gvk,
                Source::CrdFile {
                    file: path.to_path_buf(),
                    doc: 0,
                    version,
                },
            ));
        }
        return (kinds, false, false);
    }
    for (i, doc) in yaml_documents(&text).iter().enumerate() {
        for (gvk, _) in crd_versions(doc) {
            let version = gvk.version.clone();
            kinds.push((
                gvk,
                Source::CrdFile {
                    file: path.to_path_buf(),
                    doc: i,
                    version,
                },
            ));
        }
    }
    (kinds, false, false)
}

/// Loads `$ref`ed JSON documents from files or URLs (downloads cached).
struct FileLoader {
    #[cfg_attr(not(feature = "fetch"), allow(dead_code))]
    cache_dir: Option<PathBuf>,
}

impl FileLoader {
    fn fetch(&self, location: &str) -> Option<Value> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return self.download(location);
        }
        let text =
            std::fs::read_to_string(location.strip_prefix("file://").unwrap_or(location)).ok()?;
        serde_json::from_str(&text).ok()
    }

    #[cfg(not(feature = "fetch"))]
    fn download(&self, _location: &str) -> Option<Value> {
        None
    }

    /// Downloads with curl, cached by URL.
    #[cfg(feature = "fetch")]
    fn download(&self, location: &str) -> Option<Value> {
        {
            let cached = self.cache_dir.as_ref().map(|d| {
                d.join("http")
                    .join(format!("{}.json", hash_hex(&[location])))
            });
            if let Some(c) = &cached
                && let Ok(text) = std::fs::read_to_string(c)
            {
                return serde_json::from_str(&text).ok();
            }
            let bytes = exec::runner::Cmd::new("curl")
                .args(["-fsSL", "--max-time", "30", location])
                .read_bytes()
                .ok()?;
            let value: Value = serde_json::from_slice(&bytes).ok()?;
            if let Some(c) = cached {
                let _ = write_atomic(&c, &bytes);
            }
            Some(value)
        }
    }
}

impl DocLoader for FileLoader {
    fn load(&self, base: &str, reference: &str) -> Option<(String, Arc<Value>)> {
        let id = if reference.contains("://") || reference.starts_with('/') {
            reference.to_string()
        } else {
            match base.rfind('/') {
                Some(i) => format!("{}/{}", &base[..i], reference),
                None => reference.to_string(),
            }
        };
        let value = self.fetch(&id)?;
        Some((id, Arc::new(value)))
    }
}

/// The cached index at `path`, else `files` indexed (and the index kept);
/// true when it came from the cache.
fn read_or_index(path: Option<&Path>, files: &[PathBuf]) -> (Index, bool) {
    let cached = path
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<StoredIndex>(&b).ok())
        .and_then(StoredIndex::into_index);
    if let Some(index) = cached {
        return (index, true);
    }
    let per_file: Vec<_> = files
        .par_iter()
        .map(|f| (f.clone(), index_file(f)))
        .collect();
    let mut index = Index::default();
    for (file, (kinds, is_openapi, has_meta)) in per_file {
        if is_openapi {
            index.openapi_docs += 1;
        } else if !kinds.is_empty() {
            index.crd_files += 1;
        }
        let core_doc = file
            .file_name()
            .is_some_and(|n| n == "api__v1_openapi.json");
        if has_meta && (index.object_meta.is_none() || core_doc) {
            index.object_meta = Some(file.clone());
        }
        index.kinds.extend(kinds);
    }
    if let Some(p) = path
        && let Ok(bytes) = serde_json::to_vec(&StoredIndex::of(&index))
    {
        let _ = write_atomic(p, &bytes);
    }
    (index, false)
}

/// Each kind's source: the first file that defines it.
fn kind_map(index: Index) -> HashMap<Gvk, Source> {
    let mut kinds = HashMap::new();
    for (gvk, source) in index.kinds {
        kinds.entry(gvk).or_insert(source);
    }
    kinds
}

impl Registry {
    /// Indexes every location (from the cache when nothing changed).
    /// Indexes the schema locations. Only the cache write can fail, and that
    /// is not an error (the next run indexes again).
    pub fn load(opts: RegistryOptions) -> std::io::Result<Self> {
        let version = normalize_kubernetes_version(&opts.kubernetes_version);
        let mut files = Vec::new();
        let mut templates = Vec::new();
        for loc in &opts.locations {
            if is_template(loc) {
                templates.push(loc.clone());
            } else {
                let dir = opts.base.join(loc);
                if dir.is_file() {
                    files.push(dir);
                } else {
                    collect_files(&dir, &version, &mut files);
                }
            }
        }
        let sigs: Vec<String> = files.iter().map(|f| file_sig(f)).collect();
        let mut key_parts: Vec<&str> = sigs.iter().map(String::as_str).collect();
        let cv = COMPILER_VERSION.to_string();
        key_parts.push(&cv);
        let folders_key = hash_hex(&key_parts);
        let index_path = opts
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("index-2-{folders_key}.json")));
        let meta: Option<IndexMeta> = index_path
            .as_ref()
            .and_then(|p| std::fs::read(p.with_extension("meta")).ok())
            .and_then(|b| serde_json::from_slice(&b).ok());
        let indexed = OnceLock::new();
        let (object_meta, kinds_indexed, from_cache) = match meta {
            Some(meta) => (meta.object_meta, meta.kinds, true),
            None => {
                let (index, from_cache) = read_or_index(index_path.as_deref(), &files);
                let object_meta = index.object_meta.clone();
                let kinds = kind_map(index);
                if let Some(p) = &index_path {
                    let meta = IndexMeta {
                        object_meta: object_meta.clone(),
                        kinds: kinds.len(),
                    };
                    if let Ok(bytes) = serde_json::to_vec(&meta) {
                        let _ = write_atomic(&p.with_extension("meta"), &bytes);
                    }
                }
                let count = kinds.len();
                let _ = indexed.set(kinds);
                (object_meta, count, from_cache)
            }
        };
        let stats = RegistryStats {
            kinds_indexed,
            index_from_cache: from_cache,
            ..RegistryStats::default()
        };
        Ok(Self {
            opts,
            indexed,
            index_path,
            inline: HashMap::new(),
            folders_key,
            object_meta,
            templates,
            compiled: RwLock::new(HashMap::new()),
            docs: Mutex::new(HashMap::new()),
            stats: Mutex::new(stats),
            sigs: files.iter().cloned().zip(sigs).collect(),
            files,
        })
    }

    /// The folders' kinds, read (or indexed again) on first use.
    fn indexed(&self) -> &HashMap<Gvk, Source> {
        self.indexed
            .get_or_init(|| kind_map(read_or_index(self.index_path.as_deref(), &self.files).0))
    }

    /// True when the Kubernetes OpenAPI documents of the version were found.
    pub fn has_kubernetes(&self) -> bool {
        self.object_meta.is_some()
    }

    pub fn kubernetes_version(&self) -> &str {
        &self.opts.kubernetes_version
    }

    pub fn stats(&self) -> RegistryStats {
        *self.stats.lock().expect("stats lock")
    }

    /// Every kind with a schema in the folders or added CRDs.
    pub fn kinds(&self) -> impl Iterator<Item = &Gvk> {
        self.inline.keys().chain(
            self.indexed()
                .keys()
                .filter(|g| !self.inline.contains_key(*g)),
        )
    }

    /// True when the API server serves the kind itself: its schema comes
    /// from the Kubernetes OpenAPI documents, not from a CRD.
    pub fn is_builtin(&self, gvk: &Gvk) -> bool {
        !self.inline.contains_key(gvk)
            && matches!(self.indexed().get(gvk), Some(Source::OpenApi { .. }))
    }

    /// Registers a CRD found in the rendered tree; it wins over folders.
    pub fn add_crd(&mut self, crd: &Value) {
        for (gvk, schema) in crd_versions(crd) {
            let hash = hash_hex(&[&schema.to_string()]);
            self.compiled.get_mut().expect("lock").remove(&gvk);
            self.inline.insert(
                gvk,
                Source::CrdInline {
                    schema: Arc::new(schema),
                    hash,
                },
            );
        }
    }

    /// Compiles every kind of `gvks` in parallel (each at most once).
    pub fn prepare(&self, gvks: &[Gvk]) {
        gvks.par_iter().for_each(|g| {
            let _ = self.get(g);
        });
    }

    /// The compiled schema of `gvk`.
    pub fn get(&self, gvk: &Gvk) -> Lookup {
        if let Some(found) = self.compiled.read().expect("lock").get(gvk) {
            return match found {
                Some(c) => Lookup::Found(c.clone()),
                None => Lookup::Missing,
            };
        }
        let compiled = self.compile(gvk).map(Arc::new);
        self.compiled
            .write()
            .expect("lock")
            .insert(gvk.clone(), compiled.clone());
        match compiled {
            Some(c) => Lookup::Found(c),
            None => Lookup::Missing,
        }
    }

    fn doc(&self, file: &Path) -> Option<Arc<Value>> {
        if let Some(d) = self.docs.lock().expect("lock").get(file) {
            return Some(d.clone());
        }
        let text = std::fs::read_to_string(file).ok()?;
        let value: Value = if file.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).ok()?
        } else {
            Value::Array(yaml_documents(&text))
        };
        let value = Arc::new(value);
        self.docs
            .lock()
            .expect("lock")
            .insert(file.to_path_buf(), value.clone());
        Some(value)
    }

    fn source_for(&self, gvk: &Gvk) -> Option<Source> {
        if let Some(s) = self.inline.get(gvk).or_else(|| self.indexed().get(gvk)) {
            return Some(s.clone());
        }
        self.templates.first().map(|_| Source::Template {
            location: String::new(),
        })
    }

    /// What a verdict on an object of `gvk` depends on here: its schema's
    /// source and the stamps of the files it comes from, or its absence.
    /// A kind of the folders (or of a template, or none) keys by every
    /// schema file's stamp, so that the index need not be read for it.
    pub fn schema_key(&self, gvk: &Gvk) -> String {
        match self.inline.get(gvk) {
            Some(source) => self.cache_key(gvk, source),
            None => hash_hex(&[
                &COMPILER_VERSION.to_string(),
                &gvk.to_string(),
                &self.folders_key,
                &self.templates.join("|"),
            ]),
        }
    }

    fn sig(&self, file: &Path) -> String {
        self.sigs
            .get(file)
            .cloned()
            .unwrap_or_else(|| file_sig(file))
    }

    fn cache_key(&self, gvk: &Gvk, source: &Source) -> String {
        let src = match source {
            Source::OpenApi { file, name } => format!("openapi:{}:{name}", self.sig(file)),
            Source::CrdFile { file, doc, version } => {
                format!("crd:{}:{doc}:{version}", self.sig(file))
            }
            Source::CrdInline { hash, .. } => format!("inline:{hash}"),
            Source::Template { .. } => format!("tpl:{}", self.templates.join("|")),
        };
        let meta = self
            .object_meta
            .as_deref()
            .map(|f| self.sig(f))
            .unwrap_or_default();
        hash_hex(&[&COMPILER_VERSION.to_string(), &gvk.to_string(), &src, &meta])
    }

    fn compile(&self, gvk: &Gvk) -> Option<Compiled> {
        let source = self.source_for(gvk)?;
        if let Source::Template { .. } = source {
            return self.compile_template(gvk);
        }
        let key = self.cache_key(gvk, &source);
        let cache_file = self
            .opts
            .cache_dir
            .as_ref()
            .map(|d| d.join("kinds").join(format!("{key}.json")));
        if let Some(cf) = &cache_file
            && let Ok(bytes) = std::fs::read(cf)
            && let Ok(c) = serde_json::from_slice::<Compiled>(&bytes)
        {
            self.stats.lock().expect("lock").from_cache += 1;
            return Some(c);
        }
        let loader = FileLoader { cache_dir: None };
        let mut compiler = Compiler::new(&loader);
        let compiled = match &source {
            Source::OpenApi { file, name } => {
                let doc = self.doc(file)?;
                let id = file.display().to_string();
                compiler.add_document(&id, doc);
                compiler.builtin = true;
                let pointer = format!(
                    "/components/schemas/{}",
                    name.replace('~', "~0").replace('/', "~1")
                );
                let root = compiler.compile_pointer(&id, &pointer)?;
                compiler.finish(root)
            }
            Source::CrdFile { file, doc, version } => {
                let docs = self.doc(file)?;
                let crd = match docs.as_ref() {
                    Value::Array(a) => a.get(*doc)?.clone(),
                    other => other.clone(),
                };
                let schema = crd_versions(&crd)
                    .into_iter()
                    .find(|(g, _)| &g.version == version)?
                    .1;
                self.compile_crd(compiler, &schema)
            }
            Source::CrdInline { schema, .. } => self.compile_crd(compiler, schema),
            Source::Template { .. } => unreachable!("handled above"),
        };
        self.stats.lock().expect("lock").compiled += 1;
        if let Some(cf) = cache_file
            && let Ok(bytes) = serde_json::to_vec(&compiled)
        {
            let _ = write_atomic(&cf, &bytes);
        }
        Some(compiled)
    }

    /// A CRD's schema, with `metadata` validated as ObjectMeta (as the API
    /// server does) and `apiVersion`/`kind` always admitted.
    fn compile_crd(&self, mut compiler: Compiler, schema: &Value) -> Compiled {
        compiler.add_document("crd", Arc::new(schema.clone()));
        let root: NodeId = compiler.compile_pointer("crd", "").unwrap_or(0);
        let string = compiler.compile_value(&serde_json::json!({"type": "string"}), "crd");
        compiler.set_property(root, "apiVersion", string);
        compiler.set_property(root, "kind", string);
        if let Some(meta_file) = &self.object_meta
            && let Some(doc) = self.doc(meta_file)
        {
            let id = meta_file.display().to_string();
            compiler.add_document(&id, doc);
            compiler.builtin = true;
            if let Some(meta) =
                compiler.compile_pointer(&id, &format!("/components/schemas/{OBJECT_META}"))
            {
                compiler.set_property(root, "metadata", meta);
            }
            compiler.builtin = false;
        }
        compiler.finish(root)
    }

    fn compile_template(&self, gvk: &Gvk) -> Option<Compiled> {
        let loader = FileLoader {
            cache_dir: self.opts.cache_dir.clone(),
        };
        for tpl in &self.templates {
            let mut location = render_template(tpl, gvk, &self.opts.kubernetes_version, true);
            if !location.contains("://") && !location.starts_with('/') {
                location = self.opts.base.join(&location).display().to_string();
            }
            let Some(doc) = loader.fetch(&location) else {
                continue;
            };
            let mut compiler = Compiler::new(&loader);
            compiler.add_document(&location, Arc::new(doc));
            let root = compiler.compile_pointer(&location, "")?;
            self.stats.lock().expect("lock").compiled += 1;
            return Some(compiler.finish(root));
        }
        None
    }
}
