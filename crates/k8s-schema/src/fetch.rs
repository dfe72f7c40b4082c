//! Fills the schema folder (`.schemas/`) from Go modules pinned in
//! `xtask/schemas.toml`: `go mod download -json <module>@<version>` in a
//! throw-away module, then a copy of the matching files. A source whose
//! `.pin` file already names its module@version is skipped.

use std::path::{Path, PathBuf};

use exec::runner::RunError;

/// Why filling `.schemas/` failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("go mod download {pin}: {reason}")]
    Download { pin: String, reason: String },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{pin}: no file matches {globs:?}")]
    NoFiles { pin: String, globs: Vec<String> },
    #[error("generating the CRDs of {pin}: {source}")]
    Generate {
        pin: String,
        source: Box<FetchError>,
    },
    #[error("fetching schemas failed:\n  {}", .0.join("\n  "))]
    Several(Vec<String>),
}

impl From<std::io::Error> for FetchError {
    fn from(source: std::io::Error) -> Self {
        FetchError::Io {
            what: "file system".into(),
            source,
        }
    }
}

type Result<T> = std::result::Result<T, FetchError>;
use rayon::prelude::*;
use serde::Deserialize;

use super::normalize_kubernetes_version;
use exec::runner::Cmd;

/// One pinned module and the files to take from it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModuleSource {
    #[serde(default)]
    pub name: String,
    pub module: String,
    pub version: String,
    #[serde(default)]
    pub files: Vec<String>,
    /// `controller-gen` module@version: generate CRDs from the module's Go types.
    #[serde(default)]
    pub generate: Option<String>,
}

/// The parsed `xtask/schemas.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaManifest {
    pub kubernetes: ModuleSource,
    #[serde(default)]
    pub source: Vec<ModuleSource>,
}

impl SchemaManifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| FetchError::Io {
            what: format!("cannot read {}", path.display()),
            source,
        })?;
        toml::from_str(&text).map_err(|e| FetchError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// A repository's own `xtask/schemas.toml`.
    pub fn of_repo(root: &Path) -> Result<Self> {
        Self::load(&root.join("xtask/schemas.toml"))
    }
}

/// What one fetch did.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub name: String,
    pub pin: String,
    pub files: usize,
    pub cached: bool,
}

/// Matches `path` (with `/`) against a glob with `*` and `**`.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn seg_match(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => seg_match(&p[1..], s) || (!s.is_empty() && seg_match(p, &s[1..])),
            (Some(a), Some(b)) if a == b => seg_match(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn parts_match(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => {
                parts_match(&p[1..], s) || (!s.is_empty() && parts_match(p, &s[1..]))
            }
            (Some(a), Some(b)) if seg_match(a.as_bytes(), b.as_bytes()) => {
                parts_match(&p[1..], &s[1..])
            }
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    parts_match(&p, &s)
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, base, out);
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push((rel.to_string_lossy().replace('\\', "/"), p));
        }
    }
}

/// A temporary Go module to run `go mod download` in.
fn go_workdir() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("go.mod"),
        "module xtask.local/schemas\n\ngo 1.22\n",
    )?;
    Ok(dir)
}

/// `go mod download -json module@version`: the module's directory.
pub fn go_mod_download(module: &str, version: &str) -> Result<PathBuf> {
    let work = go_workdir()?;
    let out = Cmd::new("go")
        .args(["mod", "download", "-json", &format!("{module}@{version}")])
        .dir(work.path())
        .env("GOFLAGS", "-mod=mod")
        .output()?;
    #[derive(Deserialize)]
    struct Info {
        #[serde(rename = "Dir")]
        dir: Option<PathBuf>,
        #[serde(rename = "Error")]
        error: Option<String>,
    }
    let pin = format!("{module}@{version}");
    let info: Info = serde_json::from_slice(&out.stdout).map_err(|_| FetchError::Download {
        pin: pin.clone(),
        reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })?;
    if let Some(reason) = info.error {
        return Err(FetchError::Download { pin, reason });
    }
    info.dir.ok_or_else(|| FetchError::Download {
        pin,
        reason: "it named no directory".into(),
    })
}

fn copy_matching(module_dir: &Path, globs: &[String], dest: &Path) -> Result<usize> {
    let mut files = Vec::new();
    walk(module_dir, module_dir, &mut files);
    files.sort();
    let mut n = 0;
    for (rel, path) in files {
        if globs.iter().any(|g| glob_match(g, &rel)) {
            let name = rel.replace('/', "__");
            std::fs::copy(&path, dest.join(&name)).map_err(|source| FetchError::Io {
                what: format!("cannot copy {}", path.display()),
                source,
            })?;
            n += 1;
        }
    }
    Ok(n)
}

/// Runs controller-gen on a copy of the module to generate its CRDs.
fn generate_crds(module_dir: &Path, controller_gen: &str, dest: &Path) -> Result<usize> {
    let work = tempfile::tempdir()?;
    let src = work.path().join("src");
    copy_dir_writable(module_dir, &src)?;
    Cmd::new("go")
        .args([
            "run",
            controller_gen,
            "crd",
            "paths=./...",
            &format!("output:crd:dir={}", dest.display()),
        ])
        .dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .read()?;
    Ok(std::fs::read_dir(dest)?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .count())
}

fn copy_dir_writable(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir_writable(&e.path(), &target)?;
        } else {
            std::fs::write(&target, std::fs::read(e.path())?)?;
        }
    }
    Ok(())
}

/// Fills `dest/<name>/` from one module unless its `.pin` already matches.
pub fn fetch_source(src: &ModuleSource, dest: &Path) -> Result<Fetched> {
    let pin = format!("{}@{}", src.module, src.version);
    let pin_file = dest.join(".pin");
    if std::fs::read_to_string(&pin_file).is_ok_and(|p| p.trim() == pin) {
        let files = std::fs::read_dir(dest)?
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count();
        return Ok(Fetched {
            name: src.name.clone(),
            pin,
            files,
            cached: true,
        });
    }
    let module_dir = go_mod_download(&src.module, &src.version)?;
    // Build into a fresh sibling folder, then swap it in.
    let staging = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let mut files = copy_matching(&module_dir, &src.files, &staging)?;
    if let Some(gen_tool) = &src.generate {
        files +=
            generate_crds(&module_dir, gen_tool, &staging).map_err(|e| FetchError::Generate {
                pin: pin.clone(),
                source: Box::new(e),
            })?;
    }
    if files == 0 {
        return Err(FetchError::NoFiles {
            pin,
            globs: src.files.clone(),
        });
    }
    std::fs::write(staging.join(".pin"), format!("{pin}\n"))?;
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&staging, dest)?;
    Ok(Fetched {
        name: src.name.clone(),
        pin,
        files,
        cached: false,
    })
}

/// Fills `schema_dir` (normally `.schemas/`) with every source of `manifest`,
/// the Kubernetes documents at `kubernetes_version` (default: the pin), in parallel.
pub fn fetch_all(
    manifest: &SchemaManifest,
    schema_dir: &Path,
    kubernetes_version: Option<&str>,
) -> Result<Vec<Fetched>> {
    std::fs::create_dir_all(schema_dir)?;
    let mut kube = manifest.kubernetes.clone();
    if let Some(v) = kubernetes_version {
        kube.version = normalize_kubernetes_version(v);
    }
    kube.name = "kubernetes".into();
    let mut jobs: Vec<(ModuleSource, PathBuf)> = vec![(
        kube.clone(),
        schema_dir.join("kubernetes").join(&kube.version),
    )];
    for s in &manifest.source {
        jobs.push((s.clone(), schema_dir.join(&s.name)));
    }
    let results: Vec<Result<Fetched>> = jobs.par_iter().map(|(s, d)| fetch_source(s, d)).collect();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(f) => out.push(f),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(FetchError::Several(errors));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "config/crd/bases/*.yaml",
            "config/crd/bases/a.yaml"
        ));
        assert!(!glob_match(
            "config/crd/bases/*.yaml",
            "config/crd/bases/x/a.yaml"
        ));
        assert!(glob_match(
            "config/crds/**/*.yaml",
            "config/crds/kyverno/a.yaml"
        ));
        assert!(glob_match("config/crds/**/*.yaml", "config/crds/a.yaml"));
        assert!(glob_match(
            "deploy/crds/crd-*.yaml",
            "deploy/crds/crd-issuers.yaml"
        ));
        assert!(!glob_match(
            "deploy/crds/crd-*.yaml",
            "deploy/crds/README.md"
        ));
    }

    #[test]
    fn manifest_parses_and_names_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schemas.toml");
        std::fs::write(
            &path,
            r#"
[kubernetes]
module = "k8s.io/kubernetes"
version = "v1.34.4"
files = ["api/openapi-spec/v3/*.json"]

[[source]]
name = "helm-controller"
module = "github.com/fluxcd/helm-controller/api"
version = "v1.4.0"
files = ["config/crd/bases/*.yaml"]
"#,
        )
        .unwrap();
        let m = SchemaManifest::load(&path).unwrap();
        assert_eq!(m.kubernetes.version, "v1.34.4");
        assert_eq!(m.source[0].name, "helm-controller");
        assert!(m.source[0].generate.is_none());
        std::fs::write(&path, "[kubernetes]\nmodule = 1\n").unwrap();
        let err = SchemaManifest::load(&path).unwrap_err().to_string();
        assert!(err.contains("schemas.toml is not valid"), "{err}");
    }
}
