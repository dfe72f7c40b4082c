//! The folder `build --out` writes into. build owns only the files it wrote:
//! their names are kept in a manifest inside the folder, so that a later run
//! removes the stale ones it wrote (a renamed Kustomization) and nothing
//! else. A folder that holds files and no manifest was not made by build,
//! and is refused: `build --out ~` never touches `~/dev`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest of the files build wrote, relative to the out folder.
pub const MANIFEST: &str = ".xtask-build.json";

#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    #[error(
        "refusing to write into {}: it is not empty and build did not make it (it has no {MANIFEST}); give --out a new or empty folder",
        .dir.display()
    )]
    Foreign { dir: PathBuf },
    #[error(
        "refusing to overwrite {}: build did not write it (it is not in {MANIFEST}); move it away or give another --out",
        .file.display()
    )]
    ForeignFile { file: PathBuf },
    #[error("{} is not a folder", .dir.display())]
    NotADir { dir: PathBuf },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is damaged ({source}); delete the folder and build again", .path.display())]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Default, Serialize, Deserialize)]
struct Manifest {
    /// `/`-separated paths relative to the out folder.
    files: BTreeSet<String>,
}

/// An out folder that build may write into.
#[derive(Debug)]
pub struct OutDir {
    dir: PathBuf,
    owned: BTreeSet<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutDirError + '_ {
    move |source| OutDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl OutDir {
    /// Opens `dir`: a new or empty folder, or one with build's manifest.
    /// `adopt` takes over an existing folder without a manifest as build's
    /// own (only for the default under the checkout's `target/`, which
    /// older builds wrote without one).
    pub fn open(dir: &Path, adopt: bool) -> Result<OutDir, OutDirError> {
        let manifest = dir.join(MANIFEST);
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(OutDir {
                    dir: dir.to_path_buf(),
                    owned: BTreeSet::new(),
                });
            }
            Err(e) => return Err(io(dir)(e)),
            Ok(meta) if !meta.is_dir() => {
                return Err(OutDirError::NotADir {
                    dir: dir.to_path_buf(),
                });
            }
            Ok(_) => {}
        }
        match std::fs::read(&manifest) {
            Ok(bytes) => {
                let m: Manifest =
                    serde_json::from_slice(&bytes).map_err(|source| OutDirError::Manifest {
                        path: manifest.clone(),
                        source,
                    })?;
                Ok(OutDir {
                    dir: dir.to_path_buf(),
                    owned: m.files.into_iter().filter(|f| safe(f)).collect(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let empty = std::fs::read_dir(dir).map_err(io(dir))?.next().is_none();
                if empty {
                    Ok(OutDir {
                        dir: dir.to_path_buf(),
                        owned: BTreeSet::new(),
                    })
                } else if adopt {
                    let mut owned = BTreeSet::new();
                    files_under(dir, dir, &mut owned).map_err(io(dir))?;
                    Ok(OutDir {
                        dir: dir.to_path_buf(),
                        owned,
                    })
                } else {
                    Err(OutDirError::Foreign {
                        dir: dir.to_path_buf(),
                    })
                }
            }
            Err(e) => Err(io(&manifest)(e)),
        }
    }

    /// Replaces what build wrote under `prefix` (a cluster's folder) with
    /// `files` (paths relative to the out folder): each is written
    /// atomically, then the files build wrote there before and not now are
    /// removed, and the manifest is updated. Files build did not write are
    /// never touched, and one in the way of a new file is an error.
    pub fn replace(
        &mut self,
        prefix: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<(), OutDirError> {
        for (name, _) in files {
            let path = self.dir.join(name);
            if !self.owned.contains(name) && std::fs::symlink_metadata(&path).is_ok() {
                return Err(OutDirError::ForeignFile { file: path });
            }
        }
        let prefix = format!("{}/", prefix.trim_end_matches('/'));
        let fresh: BTreeSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
        for (name, bytes) in files {
            let path = self.dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            // Recorded before the write: a write killed halfway leaves a
            // file that the next run knows as its own.
            if self.owned.insert(name.clone()) {
                self.save()?;
            }
            // Output that can be rendered again: not fsynced, and a file
            // that already holds these bytes is left as it is.
            if std::fs::read(&path).ok().as_deref() != Some(bytes.as_ref()) {
                exec::fsutil::write_atomic_unsynced(&path, bytes).map_err(io(&path))?;
            }
        }
        let stale: Vec<String> = self
            .owned
            .iter()
            .filter(|f| f.starts_with(&prefix) && !fresh.contains(*f))
            .cloned()
            .collect();
        for name in &stale {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            self.owned.remove(name);
            // Folders it emptied go too; a folder with anything else stays.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != self.dir) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        // New files were recorded as they were written.
        if !stale.is_empty() || !self.dir.join(MANIFEST).is_file() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), OutDirError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let manifest = Manifest {
            files: self.owned.clone(),
        };
        let mut text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        text.push('\n');
        let path = self.dir.join(MANIFEST);
        exec::fsutil::write_atomic(&path, text.as_bytes()).map_err(io(&path))
    }
}

/// A manifest entry build may act on: relative, no `..`, no empty parts.
fn safe(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

fn files_under(root: &Path, dir: &Path, out: &mut BTreeSet<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files_under(root, &entry.path(), out)?;
        } else if let Ok(rel) = entry.path().strip_prefix(root)
            && let Some(rel) = rel.to_str()
        {
            out.insert(rel.replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> (String, Vec<u8>) {
        (name.to_string(), text.as_bytes().to_vec())
    }

    #[test]
    fn a_folder_build_did_not_make_is_refused_and_untouched() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("dev")).unwrap();
        std::fs::write(home.path().join("dev/thesis.txt"), "mine").unwrap();
        let err = OutDir::open(home.path(), false).unwrap_err();
        assert!(matches!(err, OutDirError::Foreign { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(home.path().join("dev/thesis.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn only_stale_files_build_wrote_are_removed() {
        let out = tempfile::tempdir().unwrap();
        let mut dir = OutDir::open(out.path(), false).unwrap();
        dir.replace(
            "dev",
            &[file("dev/apps.yaml", "a"), file("dev/old.yaml", "o")],
        )
        .unwrap();
        std::fs::write(out.path().join("dev/notes.txt"), "mine").unwrap();
        let mut dir = OutDir::open(out.path(), false).unwrap();
        dir.replace("dev", &[file("dev/apps.yaml", "b")]).unwrap();
        assert!(!out.path().join("dev/old.yaml").exists());
        assert_eq!(
            std::fs::read_to_string(out.path().join("dev/apps.yaml")).unwrap(),
            "b"
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join("dev/notes.txt")).unwrap(),
            "mine"
        );
        // A foreign file where build wants to write is an error, not overwritten.
        let err = dir
            .replace("dev", &[file("dev/notes.txt", "x")])
            .unwrap_err();
        assert!(matches!(err, OutDirError::ForeignFile { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(out.path().join("dev/notes.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn a_manifest_cannot_point_outside_the_folder() {
        assert!(safe("dev/apps.yaml"));
        for bad in ["../x", "/etc/passwd", "dev/../../x", "", "dev//x"] {
            assert!(!safe(bad), "{bad}");
        }
    }
}
