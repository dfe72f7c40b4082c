//! Builds every kustomize directory once (in parallel) and keeps the result
//! for the schema and Flux checks. Flux builds with load restrictions off, and
//! so do we.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde_json::Value;

use crate::tools::Kustomize;

/// The objects of a build, or kustomize's error message.
pub type BuildResult = Result<Vec<Value>, String>;

/// Parses a multi-document YAML stream of objects.
pub fn parse_objects(text: &str) -> Result<Vec<Value>, String> {
    let (docs, errors) = super::tree::parse_stream(text);
    if let Some(e) = errors.first() {
        return Err(format!("line {}: {}", e.line, e.message));
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
    tool: Kustomize,
    map: Mutex<HashMap<String, Arc<BuildResult>>>,
    /// Directories not built alone because a successful build included them.
    covered: Mutex<std::collections::HashSet<String>>,
}

impl Builds {
    pub fn new(root: PathBuf, tool: Kustomize) -> Self {
        Self {
            root,
            tool,
            map: Mutex::new(HashMap::new()),
            covered: Mutex::new(Default::default()),
        }
    }

    fn run(&self, dir: &str) -> BuildResult {
        let cmd = self
            .tool
            .build(&self.root.join(dir))
            .args(["--load-restrictor", "LoadRestrictionsNone"]);
        let out = cmd.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(clean_error(&String::from_utf8_lossy(&out.stderr)));
        }
        parse_objects(&String::from_utf8_lossy(&out.stdout))
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
