//! kustomize builds, once per content. [`Builder`] runs `kustomize build`
//! under a time and memory bound, after refusing any YAML alias bomb among
//! the files the build reaches; with a [`BuildCache`] it returns the bytes a
//! build gave before whenever nothing it reaches changed.
//!
//! The key of a build ([`reach`]) is the hash of every file the
//! kustomization reaches: the kustomization files themselves and their
//! `resources`, `bases`, `components`, `crds`, `configurations`, patches
//! (`patches[].path`, `patchesStrategicMerge`, `patchesJson6902`),
//! `replacements[].path`, `openapi.path`, the generators' `files`, `envs`
//! and `env`, and file-based generators, transformers and validators,
//! followed into every folder they name (`../` included). Paths are relative
//! to the built folder, so a copy of the tree (the generator step builds in
//! one) hits the same entries. The key also holds the kustomize binary
//! (path, size, modification time), the flags and [`RENDER_VERSION`]. A
//! build that reaches a remote resource, a Helm chart or a path that does
//! not exist (kustomize would try it as a URL) is never cached, nor is a
//! failed one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};

use exec::runner::{Bounds, RunError};
use exec::tools::{self, Kustomize, ToolError};

use crate::YamlError;

/// Bumped whenever what a cached build means changes.
pub const RENDER_VERSION: &str = "flux-render-kustomize-1";

/// The cache's default size bound.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;
/// Default bounds on one kustomize process.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MEMORY_BYTES: u64 = 4 << 30;

const ENTRY_MAGIC: &[u8; 8] = b"kbuild1\n";
/// The cache folder's size in bytes, as last counted (not an entry).
const SIZE_FILE: &str = ".size";
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The long-lived build helper (`tools/kustomize-build`): `kustomize build`
/// over the kustomize api the pinned CLI is built from, one process for many
/// builds.
pub const HELPER: &str = "kustomize-build";
/// The flags the helper builds with; builds with others run the CLI.
const HELPER_FLAGS: [&str; 2] = ["--load-restrictor", "LoadRestrictionsNone"];

/// The helper processes: one taken per build in flight.
struct Helper {
    bin: PathBuf,
    pool: Mutex<Pool>,
    /// Signalled when a process is given back or ends.
    freed: std::sync::Condvar,
    /// Builds it answered (a build it could not answer runs the CLI).
    answered: AtomicUsize,
}

#[derive(Default)]
struct Pool {
    idle: Vec<exec::Session>,
    /// Processes started and not ended: idle or building.
    live: usize,
}

impl Helper {
    /// A process for one build: an idle one, else a new one. A second
    /// process starts only once one has answered: the first build of a
    /// process pays its start-up (kustomize loads its schemas), so one or
    /// two misses (an edit) cost less in one process than in two; more
    /// misses (a cold cache) soon build side by side. `None` when no
    /// process starts.
    fn take(&self, bounds: &Bounds) -> Option<exec::Session> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(session) = pool.idle.pop() {
                return Some(session);
            }
            let limit = if self.answered.load(Ordering::Relaxed) == 0 {
                1
            } else {
                std::thread::available_parallelism().map_or(2, |n| n.get())
            };
            if pool.live < limit {
                pool.live += 1;
                drop(pool);
                let started = exec::Cmd::new(&self.bin).session(bounds).ok();
                if started.is_none() {
                    self.ended();
                }
                return started;
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give_back(&self, session: exec::Session) {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .idle
            .push(session);
        self.freed.notify_one();
    }

    /// A process taken ended (it failed or was stopped).
    fn ended(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.live = pool.live.saturating_sub(1);
        drop(pool);
        self.freed.notify_one();
    }
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper").field("bin", &self.bin).finish()
    }
}

/// Whether `dir`, or a file or folder under it (dot names left out), was
/// modified after `since`.
fn written_after(dir: &Path, since: SystemTime) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| modified_after(&m, since))
        || under_written_after(dir, since)
}

/// [`written_after`] for what is under `dir`: each entry stat'ed once.
fn under_written_after(dir: &Path, since: SystemTime) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            return false;
        }
        entry.metadata().is_ok_and(|meta| {
            modified_after(&meta, since)
                || (meta.is_dir() && under_written_after(&entry.path(), since))
        })
    })
}

fn modified_after(meta: &std::fs::Metadata, since: SystemTime) -> bool {
    meta.modified().is_ok_and(|m| m > since)
}

/// One request to a helper: the folder on a line; the answer is
/// `ok <n>` or `error <n>` on a line, then n bytes.
fn helper_request(session: &mut exec::Session, dir: &str) -> std::io::Result<(bool, Vec<u8>)> {
    use std::io::{BufRead, Write};
    session.stdin.write_all(format!("{dir}\n").as_bytes())?;
    session.stdin.flush()?;
    let mut header = String::new();
    session.stdout.read_line(&mut header)?;
    let bad = || std::io::Error::other(format!("unexpected answer {header:?}"));
    let (status, len) = header.trim_end().split_once(' ').ok_or_else(bad)?;
    let len: usize = len.parse().map_err(|_| bad())?;
    let ok = match status {
        "ok" => true,
        "error" => false,
        _ => return Err(bad()),
    };
    let mut body = vec![0; len];
    session.stdout.read_exact(&mut body)?;
    Ok((ok, body))
}

/// Why a build gave no output.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file the build reaches is an alias bomb: refused before kustomize runs.
    #[error("{}: {source}", file.display())]
    Aliases { file: PathBuf, source: YamlError },
    /// kustomize's own message (stderr).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// Every file a kustomization reaches, by path relative to the built folder.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Relative path (`../base/app.yaml`) → SHA-256 of the content.
    pub files: BTreeMap<String, [u8; 32]>,
    /// Why the build cannot be cached (a remote resource, ...), if so.
    pub uncacheable: Option<String>,
}

/// Walks the kustomization in `dir` and everything it reaches, hashing each
/// file once and checking every YAML file for alias bombs.
pub fn reach(dir: &Path) -> Result<Reach, BuildError> {
    reach_with(dir, &FileMemo::default())
}

/// [`reach`], reusing what `memo` read before of files whose size and
/// modification time did not change (a run reaches the same files from many
/// builds).
pub fn reach_with(dir: &Path, memo: &FileMemo) -> Result<Reach, BuildError> {
    let mut walk = Walk {
        reach: Reach::default(),
        seen_dirs: HashSet::new(),
        memo,
    };
    walk.dir(dir, "")?;
    Ok(walk.reach)
}

/// A file as read: its size and modification time when read, its digest,
/// and, for a kustomization file, its parsed content (`None` when it does
/// not parse).
type FileRead = (
    u64,
    Option<SystemTime>,
    [u8; 32],
    Option<Option<Arc<Value>>>,
);

/// Files read by earlier walks of one run.
#[derive(Debug, Default)]
pub struct FileMemo(Mutex<HashMap<PathBuf, FileRead>>);

struct Walk<'a> {
    reach: Reach,
    seen_dirs: HashSet<String>,
    memo: &'a FileMemo,
}

impl Walk<'_> {
    fn uncacheable(&mut self, why: String) {
        self.reach.uncacheable.get_or_insert(why);
    }

    /// Hashes one file (and refuses it when it is an alias bomb); parses it
    /// too when `parse`. `None` when it cannot be read.
    /// `meta` is the caller's stat of the file, which found it a file: one
    /// stat per file (the kernel walks every component of a `../..` path).
    fn read(
        &mut self,
        path: &Path,
        rel: &str,
        parse: bool,
        meta: std::fs::Metadata,
    ) -> Result<Option<FileRead>, BuildError> {
        let (len, mtime) = (meta.len(), meta.modified().ok());
        if let Some(seen) = self.memo.0.lock().expect("lock").get(path)
            && (seen.0, seen.1) == (len, mtime)
            && (!parse || seen.3.is_some())
        {
            self.reach.files.insert(rel.to_string(), seen.2);
            return Ok(Some(seen.clone()));
        }
        let Ok(bytes) = std::fs::read(path) else {
            self.uncacheable(format!("{rel} cannot be read"));
            return Ok(None);
        };
        if let Ok(text) = std::str::from_utf8(&bytes) {
            yaml_guard(path, text)?;
        }
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let parsed = parse.then(|| serde_yaml::from_slice::<Value>(&bytes).ok().map(Arc::new));
        let read = (len, mtime, digest, parsed);
        self.memo
            .0
            .lock()
            .expect("lock")
            .insert(path.to_path_buf(), read.clone());
        self.reach.files.insert(rel.to_string(), digest);
        Ok(Some(read))
    }

    fn file(&mut self, path: &Path, rel: &str, meta: std::fs::Metadata) -> Result<(), BuildError> {
        self.read(path, rel, false, meta).map(|_| ())
    }

    /// A kustomization folder: its kustomization file and what it names.
    fn dir(&mut self, dir: &Path, rel: &str) -> Result<(), BuildError> {
        if !self.seen_dirs.insert(rel.to_string()) {
            return Ok(());
        }
        let Some((name, meta)) = KUSTOMIZATION_FILES.iter().find_map(|name| {
            std::fs::metadata(dir.join(name))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| (name, m))
        }) else {
            self.uncacheable(format!("{rel} has no kustomization file"));
            return Ok(());
        };
        let Some(read) = self.read(&dir.join(name), &join(rel, name), true, meta)? else {
            return Ok(());
        };
        let Some(Some(k)) = read.3 else {
            // kustomize reports it; nothing to cache.
            self.uncacheable(format!("{rel}/{name} does not parse"));
            return Ok(());
        };
        for field in ["helmCharts", "helmChartInflationGenerator", "helmGlobals"] {
            if k.get(field).is_some() {
                self.uncacheable(format!("{field} (charts are fetched)"));
            }
        }
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        // Files or folders (kustomizations).
        for field in [
            "resources",
            "bases",
            "components",
            "generators",
            "transformers",
            "validators",
        ] {
            for entry in strings(k.get(field)) {
                // An inline plugin config is part of this file already.
                if !entry.contains('\n') {
                    self.entry(dir, rel, &entry)?;
                }
            }
        }
        // Files only.
        let mut files: Vec<String> = Vec::new();
        files.extend(strings(k.get("crds")));
        files.extend(strings(k.get("configurations")));
        files.extend(
            strings(k.get("patchesStrategicMerge"))
                .into_iter()
                .filter(|p| !p.contains('\n')),
        );
        for field in ["patches", "patchesJson6902", "replacements"] {
            for item in k.get(field).and_then(Value::as_array).into_iter().flatten() {
                if let Some(path) = item.get("path").and_then(Value::as_str) {
                    files.push(path.to_string());
                }
            }
        }
        if let Some(path) = k.pointer("/openapi/path").and_then(Value::as_str) {
            files.push(path.to_string());
        }
        for field in ["configMapGenerator", "secretGenerator"] {
            for generator in k.get(field).and_then(Value::as_array).into_iter().flatten() {
                for source in strings(generator.get("files")) {
                    // `key=path` or `path`.
                    let path = source.split_once('=').map_or(source.as_str(), |(_, p)| p);
                    files.push(path.to_string());
                }
                files.extend(strings(generator.get("envs")));
                if let Some(env) = generator.get("env").and_then(Value::as_str) {
                    files.push(env.to_string());
                }
            }
        }
        for path in files {
            let child = dir.join(&path);
            let child_rel = join(rel, &path);
            if let Some(meta) = std::fs::metadata(&child).ok().filter(|m| m.is_file()) {
                self.file(&child, &child_rel, meta)?;
            } else {
                self.uncacheable(format!("{child_rel} is not a file"));
            }
        }
        Ok(())
    }

    /// A `resources`-like entry: remote, a file, or a kustomization folder.
    fn entry(&mut self, dir: &Path, rel: &str, entry: &str) -> Result<(), BuildError> {
        if is_remote(entry) {
            self.uncacheable(format!("remote resource {entry}"));
            return Ok(());
        }
        let path = dir.join(entry);
        let child_rel = join(rel, entry);
        let meta = std::fs::metadata(&path).ok();
        if meta.as_ref().is_some_and(|m| m.is_dir()) {
            self.dir(&path, &child_rel)
        } else if let Some(meta) = meta.filter(|m| m.is_file()) {
            self.file(&path, &child_rel, meta)
        } else {
            // kustomize tries a path it cannot find as a URL.
            self.uncacheable(format!(
                "{child_rel} does not exist (kustomize tries it as a URL)"
            ));
            Ok(())
        }
    }
}

/// A resource kustomize fetches: a URL or a git/host-style address.
fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.starts_with("github.com/")
        || entry.starts_with("gitlab.com/")
        || entry.starts_with("bitbucket.org/")
        || entry.contains("?ref=")
        || entry.contains(".git//")
}

/// `rel/entry` normalised lexically (`a/../b` is `b`; leading `..` kept).
fn join(rel: &str, entry: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(rel).join(entry).components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                if parts.last().is_some_and(|p| p != "..") {
                    parts.pop();
                } else {
                    parts.push("..".into());
                }
            }
            Component::RootDir => parts.push(String::new()),
            _ => {}
        }
    }
    parts.join("/")
}

/// Refuses an alias bomb in a YAML file, naming the file (`a/b/../c` said
/// as `a/c`).
fn yaml_guard(path: &Path, text: &str) -> Result<(), BuildError> {
    crate::yaml11::check_aliases(text).map_err(|source| {
        let mut file = PathBuf::new();
        for component in path.components() {
            match component {
                Component::ParentDir if file.file_name().is_some() => {
                    file.pop();
                }
                Component::CurDir => {}
                other => file.push(other),
            }
        }
        BuildError::Aliases { file, source }
    })
}

/// Finished builds by content, in a folder: one file per key holding a
/// header (magic, length, SHA-256 of the body) and kustomize's output. A
/// short, long or mismatched entry is a miss (and is removed); entries are
/// written to a temporary file and renamed, so concurrent runs only ever see
/// whole entries. Past `max_bytes`, the least recently used go first (a hit
/// refreshes an entry's modification time).
#[derive(Debug, Clone)]
pub struct BuildCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl BuildCache {
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The bytes stored under `key`, when the entry is whole.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.path(key);
        let mut raw = Vec::new();
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut raw))
            .ok()?;
        match decode_entry(&raw) {
            Some(body) => {
                // LRU: a hit is recent use. Best effort.
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(body.to_vec())
            }
            None => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `body` under `key` (best effort: a cache that cannot be
    /// written is a slower run, not a failed one).
    pub fn put(&self, key: &str, body: &[u8]) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let mut entry = Vec::with_capacity(body.len() + 48);
        entry.extend_from_slice(ENTRY_MAGIC);
        entry.extend_from_slice(&(body.len() as u64).to_le_bytes());
        entry.extend_from_slice(&Sha256::digest(body));
        entry.extend_from_slice(body);
        if exec::fsutil::write_cache_entry(&self.path(key), &entry).is_ok() {
            // The folder's size is kept in a small file, so that a put does
            // not stat every entry; it is counted again whenever it is
            // unknown or past the bound (a count lost to a concurrent run
            // only delays that).
            let size_file = self.dir.join(SIZE_FILE);
            let known = std::fs::read_to_string(&size_file)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok());
            let total = match known {
                Some(total) if total + entry.len() as u64 <= self.max_bytes => {
                    total + entry.len() as u64
                }
                _ => self.evict(),
            };
            let _ = exec::fsutil::write_cache_entry(&size_file, total.to_string().as_bytes());
        }
    }

    /// Removes the least recently used entries until the folder fits;
    /// returns the bytes left.
    fn evict(&self) -> u64 {
        // The folder is read here anyway: the temp files of killed writes go too.
        exec::fsutil::remove_leftovers_in(&self.dir);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if total <= self.max_bytes {
            return total;
        }
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
            }
        }
        total
    }
}

fn decode_entry(raw: &[u8]) -> Option<&[u8]> {
    let rest = raw.strip_prefix(ENTRY_MAGIC)?;
    let (len, rest) = rest.split_at_checked(8)?;
    let len = u64::from_le_bytes(len.try_into().ok()?);
    let (digest, body) = rest.split_at_checked(32)?;
    (body.len() as u64 == len && Sha256::digest(body).as_slice() == digest).then_some(body)
}

/// Runs kustomize builds: bounded, alias-checked, and cached when given a
/// [`BuildCache`].
#[derive(Debug)]
pub struct Builder {
    tool: Kustomize,
    tool_id: String,
    cache: Option<BuildCache>,
    bounds: Bounds,
    hits: AtomicUsize,
    misses: AtomicUsize,
    /// One lock per key being built: threads of one run that need the same
    /// build (validate's own and the render beside it) run it once.
    building: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    files: FileMemo,
    helper: Option<Helper>,
    /// [`Builder::prestart_if_changed`] expected a miss.
    expected_miss: std::sync::atomic::AtomicBool,
}

impl Builder {
    /// The kustomize on `.tools/bin` or PATH, default bounds, no cache.
    pub fn find() -> Result<Self, ToolError> {
        Ok(Self::new(tools::kustomize()?))
    }

    pub fn new(tool: Kustomize) -> Self {
        let bin = match &tool {
            Kustomize::Standalone(bin) | Kustomize::Kubectl(bin) => bin.clone(),
        };
        // The binary stands for its version without running it.
        let tool_id = match std::fs::metadata(&bin) {
            Ok(meta) => format!(
                "{} {} {:?}",
                bin.display(),
                meta.len(),
                meta.modified().ok()
            ),
            Err(_) => bin.display().to_string(),
        };
        Self {
            tool,
            tool_id,
            cache: None,
            bounds: Bounds {
                timeout: Some(DEFAULT_TIMEOUT),
                memory_bytes: Some(DEFAULT_MEMORY_BYTES),
                raise: String::new(),
            },
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
            building: Mutex::new(HashMap::new()),
            files: FileMemo::default(),
            helper: None,
            expected_miss: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn with_cache(mut self, cache: Option<BuildCache>) -> Self {
        self.cache = cache;
        self
    }

    /// Runs misses in long-lived [`HELPER`] processes instead of one
    /// kustomize process per build, when one was built for this kustomize:
    /// beside it, its stamp naming the same pinned version as kustomize's
    /// own (the install writes both). Else builds stay with the CLI.
    pub fn with_helper(mut self) -> Self {
        let Kustomize::Standalone(bin) = &self.tool else {
            return self;
        };
        let Some(dir) = bin.parent() else {
            return self;
        };
        let stamp = |name: &str| std::fs::read_to_string(dir.join(format!(".{name}.version")));
        let helper = dir.join(HELPER);
        let for_this = match (stamp("kustomize"), stamp(HELPER)) {
            (Ok(cli), Ok(built)) => built.lines().next() == cli.lines().next(),
            _ => false,
        };
        if for_this && helper.is_file() {
            // Its output is the CLI's byte for byte (tested), but a build it
            // made is kept under its own key all the same.
            if let Ok(meta) = std::fs::metadata(&helper) {
                self.tool_id.push_str(&format!(
                    " {HELPER} {} {:?}",
                    meta.len(),
                    meta.modified().ok()
                ));
            }
            self.helper = Some(Helper {
                bin: helper,
                pool: Mutex::default(),
                freed: std::sync::Condvar::new(),
                answered: AtomicUsize::new(0),
            });
        }
        self
    }

    /// Starts one [`HELPER`] process now, for a caller that expects misses:
    /// it starts up while the caller does its other work, and the first
    /// build waits only for what is left of that.
    pub fn prestart(&self) {
        let Some(helper) = &self.helper else {
            return;
        };
        if let Some(session) = helper.take(&self.bounds) {
            helper.give_back(session);
        }
    }

    /// [`Builder::prestart`] for a run that is likely to miss: one that
    /// finds a file or folder under `dirs` written after the build cache
    /// last changed, or has no cache. A run over an unchanged tree then
    /// starts no process (its start-up costs about 10 ms of CPU); a wrong
    /// guess costs a start-up, or a first build that waits for one, never
    /// a wrong build: the cache is keyed by content, not by time.
    pub fn prestart_if_changed(&self, dirs: &[PathBuf]) {
        if self.helper.is_none() {
            return;
        }
        let cache_changed = self
            .cache
            .as_ref()
            .and_then(|c| std::fs::metadata(&c.dir).ok())
            .and_then(|m| m.modified().ok());
        let likely_miss = match cache_changed {
            Some(since) => dirs.iter().any(|d| written_after(d, since)),
            None => true,
        };
        if likely_miss {
            self.expected_miss.store(true, Ordering::Relaxed);
            self.prestart();
        }
    }

    /// For the end of a run: when [`Builder::prestart_if_changed`] expected
    /// a miss and every build hit (an edit undone, a file touched), the
    /// cache is marked as changed now, so that the next run over the same
    /// tree does not expect one again.
    pub fn settle(&self) {
        let all_hit = self.misses.load(Ordering::Relaxed) == 0;
        if let Some(cache) = &self.cache
            && all_hit
            && self.expected_miss.swap(false, Ordering::Relaxed)
        {
            let _ =
                std::fs::File::open(&cache.dir).and_then(|dir| dir.set_modified(SystemTime::now()));
        }
    }

    /// True when misses run in the [`HELPER`].
    pub fn uses_helper(&self) -> bool {
        self.helper.is_some()
    }

    /// How many builds the [`HELPER`] answered so far (the others ran the CLI).
    pub fn helper_builds(&self) -> usize {
        self.helper
            .as_ref()
            .map_or(0, |h| h.answered.load(Ordering::Relaxed))
    }

    pub fn with_bounds(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }

    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// `(hits, misses)` of the cache so far.
    pub fn stats(&self) -> (usize, usize) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The cache key of building `dir` with `flags`, or `None` when the
    /// build cannot be cached. Refuses alias bombs.
    pub fn key(&self, dir: &Path, flags: &[&str]) -> Result<Option<String>, BuildError> {
        let reach = reach_with(dir, &self.files)?;
        if reach.uncacheable.is_some() {
            return Ok(None);
        }
        let mut h = Sha256::new();
        for part in [RENDER_VERSION, &self.tool_id, &flags.join("\x1f")] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for (rel, digest) in &reach.files {
            h.update(rel.as_bytes());
            h.update([0]);
            h.update(digest);
        }
        Ok(Some(hex::encode(h.finalize())))
    }

    /// `kustomize build dir flags...`: its stdout, from the cache when the
    /// same content was built before.
    pub fn build(&self, dir: &Path, flags: &[&str]) -> Result<Vec<u8>, BuildError> {
        let key = self.key(dir, flags)?;
        let cache = self.cache.as_ref().zip(key.as_deref());
        let lock = cache.map(|(_, key)| {
            self.building
                .lock()
                .expect("lock")
                .entry(key.to_string())
                .or_default()
                .clone()
        });
        // Held until this build is stored: a second thread then hits.
        let _building = lock
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some((cache, key)) = cache
            && let Some(bytes) = cache.get(key)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(bytes);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let stdout = match self.build_in_helper(dir, flags) {
            Some(answer) => answer?,
            None => {
                let out = self
                    .tool
                    .build(dir)
                    .args(flags)
                    .output_bounded(&self.bounds)?;
                if !out.status.success() {
                    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                    return Err(BuildError::Failed(self.explain_memory(stderr)));
                }
                out.stdout
            }
        };
        if let Some((cache, key)) = cache {
            cache.put(key, &stdout);
        }
        Ok(stdout)
    }

    /// The build in a [`HELPER`] process: `None` when there is none, the
    /// flags are not the ones it builds with, or it stopped (the CLI then
    /// builds, and says what went wrong in its own words).
    fn build_in_helper(&self, dir: &Path, flags: &[&str]) -> Option<Result<Vec<u8>, BuildError>> {
        let helper = self.helper.as_ref()?;
        let dir_text = dir.to_str().filter(|d| !d.contains('\n'))?;
        if flags != HELPER_FLAGS {
            return None;
        }
        let mut session = helper.take(&self.bounds)?;
        let watchdog = session.watchdog(self.bounds.timeout);
        let answer = helper_request(&mut session, dir_text);
        if !watchdog.finish() {
            let tool = session.tool().to_string();
            drop(session);
            helper.ended();
            return Some(Err(BuildError::Run(RunError::TimedOut {
                tool,
                after: self.bounds.timeout.unwrap_or_default(),
                raise: self.bounds.raise.clone(),
            })));
        }
        let Ok((ok, body)) = answer else {
            drop(session);
            helper.ended();
            return None;
        };
        helper.answered.fetch_add(1, Ordering::Relaxed);
        helper.give_back(session);
        Some(if ok {
            Ok(body)
        } else {
            let stderr = String::from_utf8_lossy(&body).trim().to_string();
            Err(BuildError::Failed(self.explain_memory(stderr)))
        })
    }

    /// Says so when kustomize died at the memory bound.
    fn explain_memory(&self, stderr: String) -> String {
        let at_bound = stderr.contains("out of memory")
            || stderr.contains("cannot allocate memory")
            || stderr.contains("failed to reserve");
        match (&self.bounds.memory_bytes, at_bound) {
            (Some(limit), true) => format!(
                "kustomize ran out of its memory bound of {} MiB{}: {}",
                limit >> 20,
                if self.bounds.raise.is_empty() {
                    String::new()
                } else {
                    format!(" (raise it with {})", self.bounds.raise)
                },
                stderr.lines().next().unwrap_or_default()
            ),
            _ => stderr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_or_folder_written_after_a_time_is_found_and_dot_names_are_not() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("apps/web")).unwrap();
        std::fs::create_dir_all(root.path().join(".git")).unwrap();
        std::fs::write(root.path().join("apps/web/a.yaml"), "a: 1\n").unwrap();
        let set = |path: &Path, at: SystemTime| {
            std::fs::File::open(path).unwrap().set_modified(at).unwrap();
        };
        let old = SystemTime::now() - Duration::from_secs(3600);
        for path in ["", "apps", "apps/web", "apps/web/a.yaml", ".git"] {
            set(&root.path().join(path), old);
        }
        let since = old + Duration::from_secs(60);
        assert!(!written_after(root.path(), since));
        // Only a dot name is newer: not a manifest.
        std::fs::write(root.path().join(".git/index"), "x").unwrap();
        set(&root.path().join(".git"), old);
        assert!(!written_after(root.path(), since));
        // A file edited in place (its folder unchanged).
        std::fs::write(root.path().join("apps/web/a.yaml"), "a: 2\n").unwrap();
        assert!(written_after(root.path(), since));
        // A file removed: only its folder says so.
        std::fs::remove_file(root.path().join("apps/web/a.yaml")).unwrap();
        assert!(written_after(root.path(), since));
        set(&root.path().join("apps/web"), old);
        assert!(!written_after(root.path(), since));
    }

    #[test]
    fn relative_paths_are_normalised_lexically() {
        assert_eq!(join("", "a.yaml"), "a.yaml");
        assert_eq!(join("", "../base"), "../base");
        assert_eq!(join("../base", "./x/../y.yaml"), "../base/y.yaml");
        assert_eq!(join("../../b", "../../c"), "../../../c");
    }

    #[test]
    fn remote_resources_are_recognised() {
        for remote in [
            "https://example.com/x.yaml",
            "github.com/org/repo//deploy?ref=v1",
            "git@github.com:org/repo.git",
            "ssh://git@host/repo.git//x",
        ] {
            assert!(is_remote(remote), "{remote}");
        }
        for local in ["../base", "deploy.yaml", "./x"] {
            assert!(!is_remote(local), "{local}");
        }
    }

    #[test]
    fn a_torn_entry_is_a_miss_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BuildCache::new(dir.path(), DEFAULT_CACHE_BYTES);
        cache.put("k", b"apiVersion: v1\n");
        assert_eq!(cache.get("k").as_deref(), Some(&b"apiVersion: v1\n"[..]));
        let path = dir.path().join("k");
        let whole = std::fs::read(&path).unwrap();
        for torn in [
            whole[..whole.len() - 1].to_vec(),
            whole[..10].to_vec(),
            Vec::new(),
            [whole.clone(), b"x".to_vec()].concat(),
            {
                let mut flipped = whole.clone();
                *flipped.last_mut().unwrap() ^= 1;
                flipped
            },
        ] {
            std::fs::write(&path, &torn).unwrap();
            assert_eq!(cache.get("k"), None);
            assert!(!path.exists());
        }
    }

    #[test]
    fn the_least_recently_used_entries_go_first() {
        let dir = tempfile::tempdir().unwrap();
        // Room for two entries of 100 bytes (plus headers), not three.
        let cache = BuildCache::new(dir.path(), 2 * (100 + 48) + 10);
        let old = SystemTime::now() - Duration::from_secs(60);
        cache.put("a", &[b'a'; 100]);
        cache.put("b", &[b'b'; 100]);
        for (name, age) in [("a", 30), ("b", 20)] {
            std::fs::File::options()
                .append(true)
                .open(dir.path().join(name))
                .unwrap()
                .set_modified(old + Duration::from_secs(age))
                .unwrap();
        }
        // Reading a makes b the least recently used.
        assert!(cache.get("a").is_some());
        cache.put("c", &[b'c'; 100]);
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some());
        assert!(cache.get("c").is_some());
    }
}
