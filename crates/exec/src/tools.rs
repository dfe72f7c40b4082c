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

    /// A repository's own `xtask/tools.toml`.
    pub fn of_repo(root: &Path) -> Result<Self, ToolError> {
        Self::load(&root.join(MANIFEST_PATH))
    }

    pub fn get(&self, name: &str) -> Result<&Tool, ToolError> {
        self.tools
            .get(name)
            .ok_or_else(|| ToolError::Unknown(name.to_string()))
    }
}

/// Where a repository records its pinned tools.
pub const MANIFEST_PATH: &str = "xtask/tools.toml";

/// Where `cargo xtask tools install` puts a repository's pinned tools.
pub fn bin_dir(root: &Path) -> PathBuf {
    root.join(".tools/bin")
}

/// PATH with `dir` first: what the binary sets for itself and its children,
/// so that the pinned tools win over whatever else is installed.
pub fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|d| d != dir));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Finds `name` on PATH (the binary puts the repository's `.tools/bin` first).
pub fn find(name: &str) -> Result<PathBuf, ToolError> {
    find_on(std::env::var_os("PATH").as_deref(), name).ok_or_else(|| {
        ToolError::Run(RunError::NotFound {
            tool: name.to_string(),
        })
    })
}

pub(crate) fn find_on(path: Option<&std::ffi::OsStr>, name: &str) -> Option<PathBuf> {
    let path = path?;
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
    find("kubectl").map(Kustomize::Kubectl).map_err(|_| {
        ToolError::Run(RunError::NotFound {
            tool: "kustomize".into(),
        })
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
        .read()?;
    std::fs::write(&stamp, format!("{wanted}\n")).map_err(|source| ToolError::Read {
        path: stamp.clone(),
        source,
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[tools.kustomize]
module = "sigs.k8s.io/kustomize/kustomize/v5"
version = "v5.7.1"
why = "render"

[test]
tools = ["kustomize"]
apt = ["age"]
"#;

    #[test]
    fn manifest_parses_tools_and_test_prerequisites() {
        let manifest: Manifest = toml::from_str(MANIFEST).unwrap();
        let kustomize = manifest.get("kustomize").unwrap();
        assert_eq!(kustomize.version, "v5.7.1");
        assert_eq!(manifest.test.tools, ["kustomize"]);
        assert_eq!(manifest.test.apt, ["age"]);
        assert!(manifest.test.npm.is_empty());
    }

    #[test]
    fn a_broken_manifest_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tools.toml");
        std::fs::write(&path, "[tools.x]\nmodule = 1\n").unwrap();
        let err = Manifest::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} is not valid", path.display())),
            "{err}"
        );
        let missing = Manifest::of_repo(dir.path()).unwrap_err().to_string();
        assert!(missing.contains("xtask/tools.toml"), "{missing}");
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
        let path = path_with(dir.path());
        assert_eq!(find_on(Some(&path), "sh"), Some(fake));
        // Not in the local dir: falls back to the rest of PATH.
        let on_path = find_on(Some(&path), "cat").unwrap();
        assert!(on_path.ends_with("cat"));
        assert_eq!(find_on(Some(&path), "no-such-tool-xyz"), None);
    }

    #[test]
    fn unknown_tool_is_a_clear_error() {
        let manifest: Manifest = toml::from_str(MANIFEST).unwrap();
        let err = install(&manifest, "nope", Path::new("/nonexistent")).unwrap_err();
        assert_eq!(err.to_string(), "nope is not pinned in xtask/tools.toml");
    }
}
