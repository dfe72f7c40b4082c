//! What one render read, so that a caller can tell later, from kustomize
//! builds alone, whether the same render would give the same result (a
//! verifying trace, as build systems keep one): each build's folder and
//! flags, the digest of the kustomization file the generator step read, and
//! the digest of kustomize's output. A render that read what builds cannot
//! name again (a generated copy of the tree, an assembled ExternalArtifact)
//! says so, and cannot be replayed.
//!
//! The render is a function of its builds' outputs: the Flux Kustomizations,
//! their sources and postBuild variables all come from them. What chose the
//! sync root (the cluster folder) is the caller's to keep.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::generate;
use crate::kustomize::Builder;

/// One kustomize build of a render.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TracedBuild {
    /// The folder built, relative to the render's root, with `/`.
    pub dir: String,
    pub flags: Vec<String>,
    /// The digest of the folder's kustomization file, which decides how the
    /// generator step builds it; `None` when it has none.
    pub kustomization: Option<String>,
    /// The digest of kustomize's output.
    pub output: String,
}

/// The builds of one render, recorded as it makes them.
#[derive(Debug)]
pub struct Trace {
    root: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    builds: Vec<TracedBuild>,
    opaque: Option<String>,
}

impl Trace {
    /// A trace of a render of the repository at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            inner: Mutex::default(),
        }
    }

    /// Every build the render made, each once, sorted.
    pub fn builds(&self) -> Vec<TracedBuild> {
        let mut builds = self.lock().builds.clone();
        builds.sort();
        builds.dedup();
        builds
    }

    /// Why the render cannot be replayed from its builds, if it cannot.
    pub fn opaque(&self) -> Option<String> {
        self.lock().opaque.clone()
    }

    /// Records a build of `dir` (a folder of the repository, or a copy
    /// that `copied` names) that gave `output`.
    pub(crate) fn record(&self, dir: &Path, copied: Option<&str>, flags: &[&str], output: &[u8]) {
        let rel = match (copied, dir.strip_prefix(&self.root)) {
            (None, Ok(rel)) => rel.to_string_lossy().replace('\\', "/"),
            (Some(what), _) => return self.mark_opaque(what),
            (None, Err(_)) => {
                return self.mark_opaque(&format!("{} is outside the root", dir.display()));
            }
        };
        let build = TracedBuild {
            kustomization: kustomization_digest(dir),
            dir: rel,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            output: digest(output),
        };
        self.lock().builds.push(build);
    }

    fn mark_opaque(&self, why: &str) {
        let mut inner = self.lock();
        if inner.opaque.is_none() {
            inner.opaque = Some(why.to_string());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// True when `build` of the repository at `root` gives the same output
/// again, under the same kustomization file (a build kept in `builder`'s
/// cache is not run again). A build that fails does not replay.
pub fn replays(root: &Path, builder: &Builder, build: &TracedBuild) -> bool {
    let dir = root.join(&build.dir);
    if kustomization_digest(&dir) != build.kustomization {
        return false;
    }
    let flags: Vec<&str> = build.flags.iter().map(String::as_str).collect();
    builder
        .build(&dir, &flags)
        .is_ok_and(|output| digest(&output) == build.output)
}

/// The hex SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn kustomization_digest(dir: &Path) -> Option<String> {
    let file = generate::find_kustomization_file(dir)?;
    Some(std::fs::read(&file).map_or_else(|e| format!("unreadable: {e}"), |b| digest(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_names_each_build_once_and_says_what_it_cannot_replay() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("apps")).unwrap();
        std::fs::write(root.join("apps/kustomization.yaml"), "resources: []\n").unwrap();
        let trace = Trace::new(root);
        trace.record(&root.join("apps"), None, &["--x"], b"out");
        trace.record(&root.join("apps"), None, &["--x"], b"out");
        assert_eq!(
            trace.builds(),
            [TracedBuild {
                dir: "apps".into(),
                flags: vec!["--x".into()],
                kustomization: Some(digest(b"resources: []\n")),
                output: digest(b"out"),
            }]
        );
        assert_eq!(trace.opaque(), None);
        let elsewhere = tempfile::tempdir().unwrap();
        trace.record(elsewhere.path(), None, &[], b"");
        trace.record(&root.join("apps"), Some("a copy"), &[], b"");
        let why = trace.opaque().unwrap();
        assert!(why.ends_with("is outside the root"), "{why}");
    }
}
