//! Builds every kustomize directory once (in parallel) and keeps the result
//! for the schema and Flux checks. Flux builds with load restrictions off, and
//! so do we.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde_json::Value;

use flux_render::kustomize::Builder;

/// Why a kustomize directory did not build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// kustomize's own message, on one line.
    #[error("{0}")]
    Kustomize(String),
    /// kustomize printed something that is not a YAML stream of objects.
    #[error("line {line}: {message}")]
    Output { line: usize, message: String },
    #[error(transparent)]
    Run(#[from] exec::RunError),
    /// A reached file is an alias bomb: refused before kustomize ran.
    #[error("{0}")]
    Refused(String),
}

/// The objects of a build, or why it failed.
pub type BuildResult = Result<Vec<Value>, BuildError>;

/// Parses a multi-document YAML stream of objects.
pub fn parse_objects(text: &str) -> BuildResult {
    let (docs, errors) = super::tree::parse_stream(text);
    if let Some(e) = errors.first() {
        return Err(BuildError::Output {
            line: e.line,
            message: e.message.clone(),
        });
    }
    Ok(docs
        .into_iter()
        .map(|d| d.value)
        .filter(Value::is_object)
        .collect())
}

/// Cleans kustomize's stderr into one message.
fn clean_error(stderr: &str) -> String {
    let s = stderr.trim();
    let s = s.strip_prefix("Error: ").unwrap_or(s);
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Memoised kustomize builds of relative directories.
pub struct Builds {
    root: PathBuf,
    builder: Arc<Builder>,
    map: Mutex<HashMap<String, Arc<BuildResult>>>,
    /// Directories not built alone because a successful build included them.
    covered: Mutex<std::collections::HashSet<String>>,
    /// Where the objects of outputs parsed before are kept ([`Parsed`]).
    parsed: Option<Parsed>,
}

/// The objects of build outputs parsed by earlier runs, one JSON file per
/// output (by its digest and this binary's): a cached build's output is
/// read back as JSON, three times faster than its YAML. A file that does
/// not read is a miss.
struct Parsed {
    dir: PathBuf,
    binary: String,
    /// A file was written this run: the folder is pruned once, when done.
    wrote: std::sync::atomic::AtomicBool,
}

/// Outputs whose objects are kept (the newest).
const PARSED_KEPT: usize = 256;

impl Parsed {
    fn path(&self, output: &[u8]) -> PathBuf {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.binary.as_bytes());
        h.update([0]);
        h.update(output);
        self.dir.join(format!("{}.json", hex::encode(h.finalize())))
    }

    fn parse(&self, output: &[u8]) -> BuildResult {
        let path = self.path(output);
        if let Some(objects) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
        {
            return Ok(objects);
        }
        let parsed = parse_objects(&String::from_utf8_lossy(output));
        if let Ok(objects) = &parsed
            && let Ok(bytes) = serde_json::to_vec(objects)
            && std::fs::create_dir_all(&self.dir).is_ok()
            && exec::fsutil::write_cache_entry(&path, &bytes).is_ok()
        {
            self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        parsed
    }
}

impl Drop for Parsed {
    /// Keeps the newest [`PARSED_KEPT`] files, once per run that wrote one
    /// (an output not seen before: after an edit, not on every run).
    fn drop(&mut self) {
        if *self.wrote.get_mut() {
            exec::fsutil::remove_leftovers_in(&self.dir);
            exec::fsutil::keep_newest(&self.dir, "json", PARSED_KEPT);
        }
    }
}

impl Builds {
    pub fn new(root: PathBuf, builder: Arc<Builder>) -> Self {
        Self {
            root,
            builder,
            map: Mutex::new(HashMap::new()),
            covered: Mutex::new(Default::default()),
            parsed: None,
        }
    }

    /// Keeps the objects of parsed outputs in `dir` between runs of the
    /// binary `binary` names.
    pub fn with_parsed_cache(mut self, dir: Option<PathBuf>, binary: &str) -> Self {
        self.parsed = dir.map(|dir| Parsed {
            dir,
            binary: binary.to_string(),
            wrote: Default::default(),
        });
        self
    }

    fn run(&self, dir: &str) -> BuildResult {
        use flux_render::kustomize::BuildError as E;
        let out = self
            .builder
            .build(
                &self.root.join(dir),
                &["--load-restrictor", "LoadRestrictionsNone"],
            )
            .map_err(|err| match err {
                E::Failed(stderr) => BuildError::Kustomize(clean_error(&stderr)),
                E::Run(e) => BuildError::Run(e),
                E::Tool(exec::ToolError::Run(e)) => BuildError::Run(e),
                E::Aliases { file, source } => BuildError::Refused(format!(
                    "{}: {source}",
                    super::tree::rel_string(&self.root, &file)
                )),
                other => BuildError::Kustomize(other.to_string()),
            })?;
        match &self.parsed {
            Some(parsed) => parsed.parse(&out),
            None => parse_objects(&String::from_utf8_lossy(&out)),
        }
    }

    /// The build of `dir`, running kustomize the first time only.
    pub fn get(&self, dir: &str) -> Arc<BuildResult> {
        if let Some(r) = self.map.lock().expect("lock").get(dir) {
            return r.clone();
        }
        let r = Arc::new(self.run(dir));
        self.map
            .lock()
            .expect("lock")
            .entry(dir.to_string())
            .or_insert(r)
            .clone()
    }

    /// The kustomize these builds run, for folders outside the tree.
    pub fn builder(&self) -> &Builder {
        &self.builder
    }

    pub fn is_built(&self, dir: &str) -> bool {
        self.map.lock().expect("lock").contains_key(dir)
    }

    pub fn is_covered(&self, dir: &str) -> bool {
        self.covered.lock().expect("lock").contains(dir)
    }

    pub fn mark_covered(&self, dir: &str) {
        self.covered.lock().expect("lock").insert(dir.to_string());
    }

    /// `Some(true)` when `dir` built (alone or inside a successful build),
    /// `Some(false)` when its build failed, `None` when not known yet.
    pub fn succeeded(&self, dir: &str) -> Option<bool> {
        if self.is_covered(dir) {
            return Some(true);
        }
        self.map.lock().expect("lock").get(dir).map(|r| r.is_ok())
    }

    /// Builds all of `dirs` in parallel.
    pub fn build_all(&self, dirs: &[String], on_done: &(dyn Fn() + Sync)) {
        dirs.par_iter().for_each(|d| {
            self.get(d);
            on_done();
        });
    }

    /// Every build so far, sorted by directory.
    pub fn all(&self) -> Vec<(String, Arc<BuildResult>)> {
        let mut v: Vec<_> = self
            .map
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// One kustomize failure, said once and at its root cause.
#[derive(Debug, PartialEq, Eq)]
pub enum Cause {
    /// A file the YAML check already reports: its kustomize chain adds nothing.
    BrokenYaml,
    /// A resource that a kustomization lists does not exist.
    Missing {
        /// The kustomization file that lists it, and the line.
        file: String,
        line: Option<usize>,
        /// The missing path, relative to the root (the key to fold repeats).
        missing: String,
    },
    /// Anything else: kustomize's own words.
    Other,
}

/// Finds the root cause in a kustomize error chain. `yaml_failed`: files
/// (relative to `root`) that did not parse as YAML.
pub fn cause(
    root: &std::path::Path,
    msg: &str,
    yaml_failed: &std::collections::HashSet<String>,
) -> Cause {
    static IN_FILE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"MalformedYAMLError: .* in File: (\S+)").expect("regex")
    });
    static MISSING: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"evalsymlink failure on '([^']+)'|open ([^:']+): no such file or directory",
        )
        .expect("regex")
    });
    if let Some(c) = IN_FILE.captures(msg) {
        let name = c[1].rsplit('/').next().unwrap_or(&c[1]).to_string();
        if yaml_failed
            .iter()
            .any(|f| f.rsplit('/').next() == Some(name.as_str()))
        {
            return Cause::BrokenYaml;
        }
    }
    // An alias bomb refused in a file the YAML check already names.
    if let Some((file, _)) = msg.split_once(": yaml: document contains excessive aliasing")
        && yaml_failed.contains(file)
    {
        return Cause::BrokenYaml;
    }
    if let Some(c) = MISSING.captures(msg) {
        let path = std::path::Path::new(c.get(1).or(c.get(2)).map_or("", |m| m.as_str()));
        let Ok(rel) = path.strip_prefix(root) else {
            return Cause::Other;
        };
        let missing = rel.to_string_lossy().replace('\\', "/");
        let (dir, name) = missing.rsplit_once('/').unwrap_or(("", &missing));
        let listing = super::tree::KUSTOMIZATION_FILES
            .iter()
            .map(|k| {
                if dir.is_empty() {
                    k.to_string()
                } else {
                    format!("{dir}/{k}")
                }
            })
            .find(|k| root.join(k).is_file());
        let Some(file) = listing else {
            return Cause::Other;
        };
        let line = std::fs::read_to_string(root.join(&file))
            .ok()
            .and_then(|text| text.lines().position(|l| l.contains(name)).map(|i| i + 1));
        return Cause::Missing {
            file,
            line,
            missing,
        };
    }
    Cause::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_objects_read_back_as_parsed_and_a_torn_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let parsed = Parsed {
            dir: dir.path().join("objects"),
            binary: "test".into(),
            wrote: Default::default(),
        };
        let output = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  ratio: \"0.1\"\nspec:\n  weights: [0.1, 0.30000000000000004, 1e-7, 3, -0.0]\n  z: true\n  a: null\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n";
        let fresh = parse_objects(std::str::from_utf8(output).unwrap()).unwrap();
        let first = parsed.parse(output).unwrap();
        assert_eq!(first, fresh);
        let files: Vec<_> = std::fs::read_dir(&parsed.dir).unwrap().collect();
        assert_eq!(files.len(), 1, "kept once");
        let again = parsed.parse(output).unwrap();
        assert_eq!(again, fresh, "read back");
        // Key order and every number as parsed.
        assert_eq!(
            serde_json::to_string(&again).unwrap(),
            serde_json::to_string(&fresh).unwrap()
        );
        std::fs::write(parsed.path(output), b"[{\"trunc").unwrap();
        assert_eq!(
            parsed.parse(output).unwrap(),
            fresh,
            "a torn file is a miss"
        );
        // Another binary keeps its own.
        let other = Parsed {
            dir: parsed.dir.clone(),
            binary: "other".into(),
            wrote: Default::default(),
        };
        assert_ne!(other.path(output), parsed.path(output));

        // Pruned once, when dropped after a run that wrote: the newest
        // PARSED_KEPT files stay, the one written last among them.
        for i in 0..PARSED_KEPT {
            std::fs::write(parsed.dir.join(format!("old-{i}.json")), b"[]").unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for entry in std::fs::read_dir(&parsed.dir).unwrap() {
            let file = std::fs::File::options()
                .write(true)
                .open(entry.unwrap().path())
                .unwrap();
            file.set_modified(old).unwrap();
        }
        let other_output = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: c\n";
        other.parse(other_output).unwrap();
        let newest = other.path(other_output);
        let count = || std::fs::read_dir(&parsed.dir).unwrap().count();
        assert_eq!(count(), PARSED_KEPT + 2, "nothing pruned while running");
        drop(other);
        assert_eq!(count(), PARSED_KEPT);
        assert!(newest.is_file());
    }
}
