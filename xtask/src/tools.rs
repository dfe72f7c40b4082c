//! The external CLIs the verbs use: where their pinned versions are recorded
//! (`xtask/tools.toml`), how to install them into `.tools/bin`, and how a verb
//! finds one (`.tools/bin` first, then PATH).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::runner::{Cmd, RunError};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0} is not pinned in xtask/tools.toml")]
    Unknown(String),
    #[error("{tool} not found: install it with `cargo xtask tools install` or put it on PATH")]
    NotFound { tool: String },
    #[error(transparent)]
    Run(#[from] RunError),
}

/// One pinned CLI.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    pub module: String,
    pub version: String,
    #[serde(default)]
    pub why: String,
}

/// What `cargo xtask test` installs before running the tests.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TestPrerequisites {
    #[serde(default)]
    pub apt: Vec<String>,
    #[serde(default)]
    pub pip: Vec<String>,
    #[serde(default)]
    pub npm: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
}

/// The parsed `xtask/tools.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub tools: BTreeMap<String, Tool>,
    #[serde(default)]
    pub test: TestPrerequisites,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, ToolError> {
        let text = std::fs::read_to_string(path).map_err(|source| ToolError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ToolError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The repository's own `xtask/tools.toml`.
    pub fn project() -> Result<Self, ToolError> {
        Self::load(&crate::project_root().join("xtask/tools.toml"))
    }

    pub fn get(&self, name: &str) -> Result<&Tool, ToolError> {
        self.tools
            .get(name)
            .ok_or_else(|| ToolError::Unknown(name.to_string()))
    }
}

/// `.tools/bin` of the repository.
pub fn bin_dir() -> PathBuf {
    crate::project_root().join(".tools/bin")
}

/// Finds `name` in `.tools/bin`, then on PATH.
pub fn find(name: &str) -> Result<PathBuf, ToolError> {
    find_in(&bin_dir(), name).ok_or_else(|| ToolError::NotFound {
        tool: name.to_string(),
    })
}

fn find_in(bin_dir: &Path, name: &str) -> Option<PathBuf> {
    let local = bin_dir.join(name);
    if is_executable(&local) {
        return Some(local);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// How to run kustomize: the standalone binary, or `kubectl kustomize`.
#[derive(Debug, Clone)]
pub enum Kustomize {
    Standalone(PathBuf),
    Kubectl(PathBuf),
}

impl Kustomize {
    /// The command that renders `dir` to a YAML stream on stdout.
    pub fn build(&self, dir: &Path) -> Cmd {
        match self {
            Kustomize::Standalone(bin) => Cmd::new(bin).arg("build").arg(dir),
            Kustomize::Kubectl(bin) => Cmd::new(bin).arg("kustomize").arg(dir),
        }
    }
}

/// Finds kustomize, accepting `kubectl kustomize` as a fallback.
pub fn kustomize() -> Result<Kustomize, ToolError> {
    if let Ok(bin) = find("kustomize") {
        return Ok(Kustomize::Standalone(bin));
    }
    find("kubectl")
        .map(Kustomize::Kubectl)
        .map_err(|_| ToolError::NotFound {
            tool: "kustomize".into(),
        })
}

/// Installs `name` at its pinned version into `bin_dir` with `go install`,
/// unless a stamp file says that exact version is already there.
/// Returns `true` when something was built.
pub fn install(manifest: &Manifest, name: &str, bin_dir: &Path) -> Result<bool, ToolError> {
    let tool = manifest.get(name)?;
    let stamp = bin_dir.join(format!(".{name}.version"));
    let wanted = format!("{}@{}", tool.module, tool.version);
    let current = std::fs::read_to_string(&stamp).unwrap_or_default();
    if current.trim() == wanted && bin_dir.join(name).is_file() {
        return Ok(false);
    }
    std::fs::create_dir_all(bin_dir).map_err(|source| ToolError::Read {
        path: bin_dir.to_path_buf(),
        source,
    })?;
    Cmd::new("go")
        .args(["install", &wanted])
        .env("GOBIN", bin_dir)
        .env("GOFLAGS", "-buildvcs=false")
        .read()
        .map_err(|err| match err {
            RunError::NotFound { .. } => ToolError::NotFound { tool: "go".into() },
            other => other.into(),
        })?;
    std::fs::write(&stamp, format!("{wanted}\n")).map_err(|source| ToolError::Read {
        path: stamp.clone(),
        source,
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_manifest_pins_every_test_tool() {
        let manifest = Manifest::project().unwrap();
        for name in &manifest.test.tools {
            let tool = manifest.get(name).unwrap();
            assert!(tool.version.starts_with('v'), "{name}: {}", tool.version);
            assert!(!tool.module.is_empty());
        }
        assert!(manifest.tools.contains_key("kustomize"));
    }

    #[test]
    fn local_bin_wins_over_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("sh");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(find_in(dir.path(), "sh"), Some(fake));
        // Not in the local dir: falls back to PATH.
        let on_path = find_in(dir.path(), "cat").unwrap();
        assert!(on_path.ends_with("cat"));
        assert_eq!(find_in(dir.path(), "no-such-tool-xyz"), None);
    }

    #[test]
    fn unknown_tool_is_a_clear_error() {
        let manifest = Manifest::project().unwrap();
        let err = install(&manifest, "nope", Path::new("/nonexistent")).unwrap_err();
        assert_eq!(err.to_string(), "nope is not pinned in xtask/tools.toml");
    }
}
