//! The last shipment of a clean tree, kept under `target/xtask/ship/` so that
//! shipping an unchanged commit again neither walks, gates nor compresses it.
//!
//! Why a hit is as safe as a fresh run: the artifact is a function of the
//! shipped bytes and the stamped metadata, and the gate a function of those
//! bytes, `.sops.yaml` and the age identities it may open files with. A hit
//! needs all of these to be the same as when the entry was written:
//! - the commit (which fixes the tree, `.sops.yaml`, `.gitignore` and
//!   `.sourceignore`) and a working tree that `git status` (untracked files
//!   included, file modes compared) calls clean, except in paths the walk
//!   always leaves out (`target/`, `xtask/`, ...). A changed or untracked
//!   `.gitignore` or `.sourceignore` anywhere is never clean: it changes the walk;
//! - the same set of git-ignored paths, none of which shipped when the entry
//!   was written: git may ignore a file the walk would ship (a global excludes
//!   file), so such a tree is never cached;
//! - a digest of every age identity source (`SOPS_AGE_KEY`, the key files):
//!   a new key can open a file the old run could only check for structure,
//!   so a changed key re-runs the gate;
//! - this binary (path, size, mtime): a changed gate or packer re-runs;
//! - the overrides and environment that feed the annotations.
//!
//! Only a clean tree is ever cached; a dirty one always goes the full way.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::artifact::{self, Artifact, tree};
use crate::runner::Cmd;

use super::ShipOptions;

/// Bumped when the entry's meaning changes.
const FORMAT: &str = "xtask-ship-cache-1";

/// What `git status` says about the tree, read once.
#[derive(Debug)]
pub struct Probe {
    /// The key, `None` when this tree cannot be cached (dirty, not a git
    /// top level, an ignore file git ignores, ...).
    key: Option<String>,
    /// Ignored paths that are not always left out: none may ship.
    ignored: Vec<String>,
    commit: String,
    dir: PathBuf,
}

/// The cached part of a [`super::Shipment`] of a clean tree.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    key: String,
    config: String,
    manifest: String,
    manifest_digest: String,
    layer_digest: String,
    config_digest: String,
    entries: Vec<String>,
    default_tags: Vec<String>,
    commit_tag: Option<String>,
    warnings: Vec<String>,
}

/// Where the entry for `root` lives: one per packaged root.
fn cache_dir(root: &Path) -> PathBuf {
    let id = hex::encode(Sha256::digest(root.to_string_lossy().as_bytes()));
    crate::project_root()
        .join("target/xtask/ship")
        .join(&id[..16])
}

/// Runs `git status` and reads the remote (at once), and computes the key.
pub fn probe(root: &Path, opts: &ShipOptions) -> Probe {
    let dir = cache_dir(root);
    let (status, remote) = std::thread::scope(|s| {
        let remote = s.spawn(|| {
            Cmd::new("git")
                .arg("-C")
                .arg(root)
                .args(["config", "--get", "remote.origin.url"])
                .read()
                .ok()
        });
        let status = Cmd::new("git")
            .args(["-c", "core.fileMode=true", "-C"])
            .arg(root)
            .args([
                "status",
                "--porcelain=v2",
                "-z",
                "--branch",
                "--untracked-files=normal",
                "--ignored=traditional",
                "--no-renames",
            ])
            .read()
            .ok();
        (status, remote.join().ok().flatten())
    });
    let (key, ignored, commit) = match status {
        Some(status) => key(root, opts, &status, remote.as_deref()),
        None => (None, Vec::new(), String::new()),
    };
    Probe {
        key,
        ignored,
        commit,
        dir,
    }
}

/// The key of a clean tree, and its ignored paths; `None` when not cacheable.
fn key(
    root: &Path,
    opts: &ShipOptions,
    status: &str,
    remote: Option<&str>,
) -> (Option<String>, Vec<String>, String) {
    // Porcelain paths are relative to the top level: only cache the top level.
    if !root.join(".git").exists() {
        return (None, Vec::new(), String::new());
    }
    let Ok(builtin) = tree::builtin_matcher(root) else {
        return (None, Vec::new(), String::new());
    };
    let always_out = |path: &str| {
        let is_dir = path.ends_with('/');
        let rel = Path::new(path.trim_end_matches('/'));
        builtin
            .matched_path_or_any_parents(rel, is_dir || root.join(rel).is_dir())
            .is_ignore()
    };
    let is_ignore_file = |path: &str| {
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        name == ".gitignore" || name == ".sourceignore"
    };
    let mut commit = None;
    let mut branch = None;
    let mut ignored = Vec::new();
    for record in status.split('\0').filter(|r| !r.is_empty()) {
        if let Some(oid) = record.strip_prefix("# branch.oid ") {
            commit = Some(oid.to_string());
        } else if let Some(head) = record.strip_prefix("# branch.head ") {
            branch = Some(head.to_string());
        } else if record.starts_with('#') {
            continue;
        } else if let Some(path) = record.strip_prefix("! ") {
            if is_ignore_file(path) {
                return (None, Vec::new(), String::new());
            }
            if !always_out(path) {
                ignored.push(path.trim_end_matches('/').to_string());
            }
        } else {
            // A changed, unmerged or untracked path: `1 XY ... path`,
            // `u XY ... path`, `? path`.
            let path = match record.split_at_checked(2) {
                Some(("? ", path)) => path,
                _ => record.splitn(9, ' ').nth(8).unwrap_or(record),
            };
            if is_ignore_file(path) || !always_out(path) {
                return (None, Vec::new(), String::new());
            }
        }
    }
    let Some(commit) = commit.filter(|c| c.len() == 40) else {
        return (None, Vec::new(), String::new()); // no commit yet
    };
    ignored.sort();
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| {
            let m = std::fs::metadata(&p).ok()?;
            let mtime = m
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?;
            Some(format!("{}:{}:{}", p.display(), m.len(), mtime.as_nanos()))
        })
        .unwrap_or_default();
    let material = serde_json::json!({
        "format": FORMAT,
        "root": root.to_string_lossy(),
        "exe": exe,
        "identities": identities_digest(),
        "commit": commit,
        "branch": branch,
        "remote": remote.map(str::trim),
        "env": [env("GITHUB_REF_NAME"), env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")],
        "source": opts.source,
        "revision": opts.revision,
        "created": opts.created,
        "ignored": ignored,
    });
    let key = hex::encode(Sha256::digest(material.to_string().as_bytes()));
    (Some(key), ignored, commit)
}

/// A digest over every place `Identities::from_env` reads keys from. Only
/// this digest, mixed into the key, is written: never a key.
fn identities_digest() -> String {
    let mut h = Sha256::new();
    h.update(b"xtask-ship-identities\0");
    let mut add = |label: &str, bytes: Option<Vec<u8>>| {
        h.update(label.as_bytes());
        match bytes {
            Some(b) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(&b);
            }
            None => h.update(b"-"),
        }
    };
    add(
        "env",
        std::env::var_os("SOPS_AGE_KEY").map(|v| v.as_encoded_bytes().to_vec()),
    );
    let file = std::env::var_os("SOPS_AGE_KEY_FILE");
    add(
        "file",
        file.as_ref()
            .map(|f| std::fs::read(f).unwrap_or_else(|_| b"unreadable".to_vec())),
    );
    add(
        "default",
        crate::sops::default_keys_file().and_then(|p| std::fs::read(p).ok()),
    );
    hex::encode(h.finalize())
}

impl Probe {
    /// The cached shipment for this key, when there is one and its layer is intact.
    pub fn hit(&self) -> Option<super::Shipment> {
        let key = self.key.as_ref()?;
        let text = std::fs::read(self.dir.join("entry.json")).ok()?;
        let e: Entry = serde_json::from_slice(&text).ok()?;
        if &e.key != key {
            return None;
        }
        let layer = std::fs::read(self.dir.join("layer.tar.gz")).ok()?;
        let (config, manifest) = (e.config.into_bytes(), e.manifest.into_bytes());
        // A torn or edited entry is a miss, never a wrong artifact.
        if artifact::sha256_digest(&layer) != e.layer_digest
            || artifact::sha256_digest(&config) != e.config_digest
            || artifact::sha256_digest(&manifest) != e.manifest_digest
        {
            return None;
        }
        Some(super::Shipment {
            artifact: Artifact {
                layer,
                config,
                manifest,
                manifest_digest: e.manifest_digest,
                layer_digest: e.layer_digest,
                config_digest: e.config_digest,
                entries: e.entries,
            },
            default_tags: e.default_tags,
            commit_tag: e.commit_tag,
            dirty_files: Vec::new(),
            warnings: e.warnings,
            packaged: false,
        })
    }

    /// Keeps a freshly packaged shipment of a clean tree. Best effort: a
    /// cache that cannot be written only costs time.
    pub fn store(&self, s: &super::Shipment) {
        let Some(key) = &self.key else { return };
        // Packaged from another commit than the one probed (a commit landed
        // meanwhile): not this key's artifact.
        if s.is_dirty() || s.commit_tag.as_deref() != self.commit.get(..7) {
            return;
        }
        // An ignored path that shipped anyway: its bytes are not fixed by
        // the commit, so this tree is not cacheable.
        let shipped_ignored = s.artifact.entries.iter().any(|name| {
            self.ignored
                .iter()
                .any(|i| name == i || name.starts_with(&format!("{i}/")))
        });
        if shipped_ignored {
            return;
        }
        let (Ok(config), Ok(manifest)) = (
            String::from_utf8(s.artifact.config.clone()),
            String::from_utf8(s.artifact.manifest.clone()),
        ) else {
            return;
        };
        let entry = Entry {
            key: key.clone(),
            config,
            manifest,
            manifest_digest: s.artifact.manifest_digest.clone(),
            layer_digest: s.artifact.layer_digest.clone(),
            config_digest: s.artifact.config_digest.clone(),
            entries: s.artifact.entries.clone(),
            default_tags: s.default_tags.clone(),
            commit_tag: s.commit_tag.clone(),
            warnings: s.warnings.clone(),
        };
        let Ok(json) = serde_json::to_vec(&entry) else {
            return;
        };
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        // The layer first: an entry never names a layer that is not there
        // (and a mismatch is a miss anyway).
        let _ = crate::fsutil::write_atomic(&self.dir.join("layer.tar.gz"), &s.artifact.layer)
            .and_then(|()| crate::fsutil::write_atomic(&self.dir.join("entry.json"), &json));
    }
}
