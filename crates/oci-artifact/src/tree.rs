//! Which files of the tree go into the artifact, in Flux's walk order.

use std::path::{Path, PathBuf};

/// The matcher [`builtin_matcher`] gives.
pub use ignore::gitignore::Gitignore;
use ignore::gitignore::GitignoreBuilder;

use super::ArtifactError;

/// Always left out, whatever `.sourceignore` says: tooling, VCS, CI and Rust
/// build files, ignore files themselves, and plaintext secrets. Gitignore
/// syntax, anchored at the packaged root.
pub const BUILTIN_EXCLUDES: &[&str] = &[
    // version control and CI
    ".git",
    "/.github/",
    "/.ci/",
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    ".sourceignore",
    // the Rust workspace and its caches
    "/xtask/",
    "/target/",
    "/.cargo/",
    "/Cargo.toml",
    "/Cargo.lock",
    "/rust-toolchain",
    "/rust-toolchain.toml",
    // tools and caches the xtasks download
    "/.tools/",
    "/.schemas/",
    // never ship a decrypted secret or a private key
    "*.dec.yaml",
    "keys.txt",
    "*.agekey",
];

/// The kind of one walked entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file; `executable` when any execute bit is set on disk.
    File {
        executable: bool,
    },
}

/// One entry to archive: its name in the tarball and where it is on disk.
#[derive(Clone, Debug)]
pub struct TreeEntry {
    /// Relative, `/`-separated; the root itself is `.`.
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
}

pub fn builtin_matcher(root: &Path) -> Result<Gitignore, ArtifactError> {
    let mut b = GitignoreBuilder::new(root);
    for line in BUILTIN_EXCLUDES {
        b.add_line(None, line).map_err(|e| ArtifactError::Walk {
            root: root.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    b.build().map_err(|e| ArtifactError::Walk {
        root: root.to_path_buf(),
        message: e.to_string(),
    })
}

/// Walks `root` in Go `filepath.Walk` order (depth first, siblings sorted by
/// name bytes), root first as `.`, applying the built-in excludes,
/// `.gitignore` and `.sourceignore` files. Symlinks and other non-regular
/// files are skipped and never followed.
pub fn collect(root: &Path) -> Result<Vec<TreeEntry>, ArtifactError> {
    let meta = std::fs::metadata(root).map_err(ArtifactError::io(root))?;
    if !meta.is_dir() {
        return Err(ArtifactError::Walk {
            root: root.to_path_buf(),
            message: "not a directory".into(),
        });
    }
    let builtin = builtin_matcher(root)?;
    let filter_root = root.to_path_buf();
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .add_custom_ignore_filename(".sourceignore")
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            if e.depth() == 0 {
                return true;
            }
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            let rel = e.path().strip_prefix(&filter_root).unwrap_or(e.path());
            !builtin.matched_path_or_any_parents(rel, is_dir).is_ignore()
        })
        .build();

    let mut out = Vec::new();
    for item in walker {
        let entry = item.map_err(|e| ArtifactError::Walk {
            root: root.to_path_buf(),
            message: e.to_string(),
        })?;
        let Some(ft) = entry.file_type() else {
            continue; // stdin; cannot happen for a directory walk
        };
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File {
                executable: is_executable(entry.path())?,
            }
        } else {
            // symlinks, sockets, fifos, devices: skipped, as Flux does
            continue;
        };
        let rel = entry
            .path()
            .strip_prefix(root)
            .map_err(|_| ArtifactError::Walk {
                root: root.to_path_buf(),
                message: format!("{} is outside the root", entry.path().display()),
            })?;
        let name = if rel.as_os_str().is_empty() {
            ".".to_string()
        } else {
            let parts: Vec<String> =
                rel.components()
                    .map(|c| {
                        c.as_os_str().to_str().map(str::to_owned).ok_or_else(|| {
                            ArtifactError::Walk {
                                root: root.to_path_buf(),
                                message: format!("{} is not valid UTF-8", rel.display()),
                            }
                        })
                    })
                    .collect::<Result<_, _>>()?;
            parts.join("/")
        };
        out.push(TreeEntry {
            name,
            path: entry.path().to_path_buf(),
            kind,
        });
    }
    Ok(out)
}

#[cfg(unix)]
fn is_executable(path: &Path) -> Result<bool, ArtifactError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).map_err(ArtifactError::io(path))?;
    Ok(meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> Result<bool, ArtifactError> {
    Ok(false)
}
