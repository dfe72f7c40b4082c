//! The last shipment of a clean tree, kept under `target/xtask/ship/` so that
//! shipping an unchanged tree again neither walks, gates nor compresses it,
//! even from a new commit: the entry is keyed by the git tree ids of what
//! ships, and a new commit only re-stamps the config and manifest with its
//! own revision and time (a few hundred bytes; the layer is reused).
//!
//! Why a hit is safe: a hit hands out bytes that already passed the gate, so
//! it can only be wrong if the gate would now judge those bytes differently,
//! or if a fresh run would ship other bytes. The key therefore holds:
//! - a digest of every age identity source (`SOPS_AGE_KEY`, the key files):
//!   a new key can open a file the old run could only check for structure;
//! - this binary (path, size, mtime): a changed gate or packer re-runs;
//! - HEAD's tree, where it can matter: the names of the top-level entries
//!   the walk can enter, the ids (git hashes of content and modes) of those
//!   the last shipment took files from, and the ids of the root
//!   `.sops.yaml`, `.gitignore` and `.sourceignore`. A top-level entry that
//!   shipped nothing was pruned by those ignore files (nothing below it is
//!   read), so its content cannot change the artifact while they stay the
//!   same. Nested ignore files and `.sops.yaml` rules' targets sit inside
//!   the shipped trees. And a working tree that `git status` calls clean
//!   (file modes compared), with no untracked file that the `.gitignore`
//!   files alone (as in the walk) leave visible, except in paths the walk
//!   always leaves out (`target/`, `xtask/`, ...);
//! - the overrides and environment that feed the annotations.
//!
//! An entry is only written when every shipped file is tracked, so its bytes
//! are the commit's. What is left: a new file that a `.gitignore` hides from
//! git but a `.sourceignore` `!` rule brings back would be missing from a hit
//! until the next commit; it is never a file that escaped the gate.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use exec::runner::Cmd;
use oci_artifact::{Artifact, tree};

use super::ShipOptions;

/// Bumped when the entry's meaning changes.
const FORMAT: &str = "xtask-ship-cache-2";

/// Root files that steer the walk or the gate whether or not they ship.
const STEERING: [&str; 3] = [".sops.yaml", ".gitignore", ".sourceignore"];

/// A cache entry being written ([`Probe::keep`]); dropping it waits for
/// the write, so that a verb's process never exits halfway through it.
#[derive(Debug, Default)]
pub struct Keeping(Option<std::thread::JoinHandle<()>>);

impl Drop for Keeping {
    fn drop(&mut self) {
        if let Some(writing) = self.0.take() {
            // The write is best effort: a panic in it is not the verb's.
            let _ = writing.join();
        }
    }
}

/// What `git status` says about the tree, read once.
#[derive(Debug)]
pub struct Probe {
    /// The key, `None` when this tree cannot be cached (dirty, not a git
    /// top level, a changed or untracked ignore file, no commit, ...).
    key: Option<String>,
    commit: String,
    /// HEAD's committer time (unix seconds) and its top-level entries that
    /// can matter (see the module docs): `(name, "mode id")`.
    head: Option<Head>,
    dir: PathBuf,
    root: PathBuf,
    /// What git tracks (for [`Probe::store`]).
    tracked: Option<Vec<String>>,
    /// What git said, when `root` is the top level of a work tree.
    pub view: Option<GitView>,
}

/// The probe's git answers, reused by a miss so that git runs once.
#[derive(Clone, Debug, Default)]
pub struct GitView {
    /// HEAD's branch; `None` when detached.
    pub branch: Option<String>,
    pub remote: Option<String>,
    /// Changed, deleted and untracked paths (an untracked folder ends in
    /// `/`); untracked means not excluded by a `.gitignore`, as in the walk.
    pub uncommitted: Vec<String>,
}

/// The cached part of a [`super::Shipment`] of a clean tree.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    key: String,
    /// [`trees`] of the commit it was packaged from.
    trees: String,
    /// That commit: another one with the same trees re-stamps the manifest.
    commit: String,
    /// The layer's diff id, for a re-stamped config.
    diff_id: String,
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

/// Where a run keeps its entries: the checkout's `target/xtask/ship`, else
/// the user's cache; never inside the tree that ships.
pub fn location(checkout: Option<&Path>) -> PathBuf {
    match checkout {
        Some(root) => root.join("target/xtask/ship"),
        None => crate::user_cache("ship"),
    }
}

/// Where the entry for `root` lives under `base`: one per packaged root.
fn cache_dir(base: &Path, root: &Path) -> PathBuf {
    let id = hex::encode(Sha256::digest(root.to_string_lossy().as_bytes()));
    base.join(&id[..16])
}

/// True when `base` keeps an entry for `root` (it may not hit).
pub fn has_entry(base: &Path, root: &Path) -> bool {
    cache_dir(base, root).join("entry.json").is_file()
}

/// Drops the entry for `root`, so that the next ship packages it (for the
/// benchmark of a new commit).
pub fn forget(base: &Path, root: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(cache_dir(base, root)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Runs `git status` and reads the remote (at once), and computes the key.
pub fn probe(root: &Path, opts: &ShipOptions) -> Probe {
    let dir = cache_dir(&opts.cache, root);
    let git = |args: &[&str]| Cmd::new("git").arg("-C").arg(root).args(args).read().ok();
    // Small queries at once: the commit and the changed tracked files
    // (modes compared); in one listing, the tracked files, those marked
    // assume-unchanged or skip-worktree (status hides their changes, so they
    // count as changed) and the untracked files that only `.gitignore`
    // files exclude, as in the walk; the remote; HEAD.
    let (status, mut listing, remote, head) = std::thread::scope(|s| {
        let listing = s.spawn(|| oci_artifact::listing(root));
        let remote = s.spawn(|| oci_artifact::origin_url(root));
        let head = s.spawn(|| {
            Cmd::new("git")
                .arg("-C")
                .arg(root)
                .args(["cat-file", "--batch"])
                .stdin_bytes(b"HEAD\nHEAD^{tree}\n".to_vec())
                .read_bytes()
                .ok()
                .and_then(|out| parse_head(&out))
        });
        let status = git(&[
            "-c",
            "core.fileMode=true",
            "status",
            "--porcelain=v2",
            "-z",
            "--branch",
            // The branch's name and commit, never a walk to count how far
            // it is ahead of or behind its upstream.
            "--no-ahead-behind",
            "--untracked-files=no",
            "--no-renames",
        ]);
        (
            status,
            listing.join().ok().flatten(),
            remote.join().ok().flatten(),
            head.join().ok().flatten(),
        )
    });
    let tracked = listing.as_mut().map(|l| std::mem::take(&mut l.tracked));
    let status = status.zip(listing).map(|(status, listing)| {
        let untracked = listing
            .untracked
            .into_iter()
            .chain(listing.hidden)
            .map(|p| format!("? {p}"));
        status
            .split('\0')
            .map(str::to_string)
            .chain(untracked)
            .collect::<Vec<_>>()
    });
    let view = status
        .as_ref()
        .filter(|_| root.join(".git").exists())
        .map(|status| view(status, remote.clone()));
    // Compiled once for the key and HEAD's entries.
    let builtin = tree::builtin_matcher(root).ok();
    let (key, commit) = match (status, &head, &builtin) {
        (Some(status), Some(_), Some(builtin)) => {
            key(root, opts, &status, remote.as_deref(), builtin)
        }
        _ => (None, String::new()),
    };
    let head = head.zip(builtin).map(|(h, builtin)| h.filtered(&builtin));
    Probe {
        key,
        commit,
        head,
        dir,
        root: root.to_path_buf(),
        tracked,
        view,
    }
}

/// The path of a `git status --porcelain=v2` record (or our `? path`).
fn record_path(record: &str) -> &str {
    match record.split_at_checked(2) {
        Some(("? ", path)) => path,
        _ => record.splitn(9, ' ').nth(8).unwrap_or(record),
    }
}

fn view(status: &[String], remote: Option<String>) -> GitView {
    let mut out = GitView {
        remote: remote.map(|r| r.trim().to_string()),
        ..GitView::default()
    };
    for record in status.iter().filter(|r| !r.is_empty()) {
        if let Some(head) = record.strip_prefix("# branch.head ") {
            out.branch = (head != "(detached)").then(|| head.to_string());
        } else if !record.starts_with('#') {
            out.uncommitted.push(record_path(record).to_string());
        }
    }
    out
}

/// What `git cat-file --batch` says of `HEAD` and `HEAD^{tree}`.
#[derive(Debug)]
struct Head {
    /// The commit's id.
    commit: String,
    /// Committer time, unix seconds.
    time: String,
    /// Top-level entries: (name, is a tree, "mode id").
    top: Vec<(String, bool, String)>,
}

impl Head {
    /// Only the entries that can matter: those the walk may enter, and the
    /// steering files.
    fn filtered(self, builtin: &tree::Gitignore) -> Self {
        let top = self
            .top
            .into_iter()
            .filter(|(name, is_dir, _)| {
                STEERING.contains(&name.as_str())
                    || !builtin.matched(Path::new(name), *is_dir).is_ignore()
            })
            .collect();
        Self { top, ..self }
    }
}

/// Parses `git cat-file --batch` answering `HEAD` then `HEAD^{tree}`.
fn parse_head(out: &[u8]) -> Option<Head> {
    // `<oid> <type> <size>\n<content>\n`, twice.
    let object = |at: usize| -> Option<(&str, &[u8], usize)> {
        let nl = at + out.get(at..)?.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&out[at..nl]).ok()?;
        let mut parts = header.split(' ');
        let oid = parts.next()?;
        let size: usize = parts.nth(1)?.parse().ok()?;
        let body = out.get(nl + 1..nl + 1 + size)?;
        Some((oid, body, nl + 2 + size))
    };
    let (commit_id, commit, next) = object(0)?;
    let (tree_id, tree, _) = object(next)?;
    let raw_len = tree_id.len() / 2;
    let time = std::str::from_utf8(commit)
        .ok()?
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("committer "))?
        .split(' ')
        .rev()
        .nth(1)?
        .to_string();
    // Tree entries: `<mode> <name>\0<raw oid>`.
    let mut top = Vec::new();
    let mut rest = tree;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ')?;
        let nul = rest.iter().position(|&b| b == 0)?;
        let mode = std::str::from_utf8(&rest[..sp]).ok()?;
        let name = std::str::from_utf8(&rest[sp + 1..nul]).ok()?;
        let oid = rest.get(nul + 1..nul + 1 + raw_len)?;
        top.push((
            name.to_string(),
            mode == "40000",
            format!("{mode} {}", hex::encode(oid)),
        ));
        rest = &rest[nul + 1 + raw_len..];
    }
    Some(Head {
        commit: commit_id.to_string(),
        time,
        top,
    })
}

/// A digest of the tree material of the key (see the module docs): the
/// names in `head`, and the ids of `shipped` top-level names and the
/// steering files.
fn trees(head: &Head, shipped: &std::collections::BTreeSet<&str>) -> String {
    let mut h = Sha256::new();
    for (name, _, id) in &head.top {
        h.update(name.as_bytes());
        h.update(b"\0");
        if shipped.contains(name.as_str()) || STEERING.contains(&name.as_str()) {
            h.update(id.as_bytes());
        }
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The top-level names that `entries` (archive names) took files from.
fn shipped_tops(entries: &[String]) -> std::collections::BTreeSet<&str> {
    entries
        .iter()
        .filter(|e| e.as_str() != ".")
        .map(|e| e.split('/').next().unwrap_or(e))
        .collect()
}

/// The key and commit of a clean tree; no key when it cannot be cached.
fn key(
    root: &Path,
    opts: &ShipOptions,
    status: &[String],
    remote: Option<&str>,
    builtin: &tree::Gitignore,
) -> (Option<String>, String) {
    // Porcelain paths are relative to the top level: only cache the top level.
    if !root.join(".git").exists() {
        return (None, String::new());
    }
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
    for record in status.iter().filter(|r| !r.is_empty()) {
        if let Some(oid) = record.strip_prefix("# branch.oid ") {
            commit = Some(oid.to_string());
        } else if let Some(head) = record.strip_prefix("# branch.head ") {
            branch = Some(head.to_string());
        } else if record.starts_with('#') {
            continue;
        } else {
            // A changed, unmerged or untracked path: `1 XY ... path`,
            // `u XY ... path`, `? path`.
            let path = record_path(record);
            if is_ignore_file(path) || !always_out(path) {
                return (None, String::new());
            }
        }
    }
    let Some(commit) = commit.filter(|c| c.len() == 40) else {
        return (None, String::new()); // no commit yet (or not SHA-1: not cached)
    };
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| crate::file_identity(&p))
        .unwrap_or_default();
    let material = serde_json::json!({
        "format": FORMAT,
        "root": root.to_string_lossy(),
        "exe": exe,
        "identities": identities_digest(),
        "branch": branch,
        "remote": remote.map(str::trim),
        "env": [env("GITHUB_REF_NAME"), env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")],
        "source": opts.source,
        "revision": opts.revision,
        "created": opts.created,
    });
    let key = hex::encode(Sha256::digest(material.to_string().as_bytes()));
    (Some(key), commit)
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
        sops::default_keys_file().and_then(|p| std::fs::read(p).ok()),
    );
    hex::encode(h.finalize())
}

impl Probe {
    /// `"<commit> <unix time>"` (as `git log -1 --format='%H %ct'`) of
    /// HEAD, from what the probe already read.
    pub fn head_line(&self) -> Option<String> {
        let head = self.head.as_ref()?;
        Some(format!("{} {}", head.commit, head.time))
    }

    /// The cached shipment for this key, when there is one and its layer is intact.
    pub fn hit(&self) -> Option<Hit> {
        let key = self.key.as_ref()?;
        let head = self.head.as_ref()?;
        let text = std::fs::read(self.dir.join("entry.json")).ok()?;
        let e: Entry = serde_json::from_slice(&text).ok()?;
        if &e.key != key || e.trees != trees(head, &shipped_tops(&e.entries)) {
            return None;
        }
        let layer = std::fs::read(self.dir.join("layer.tar.gz")).ok()?;
        // A torn or edited entry is a miss, never a wrong artifact.
        if oci_artifact::sha256_digest(&layer) != e.layer_digest {
            return None;
        }
        if e.commit != self.commit {
            return Some(Hit::Layer {
                built: oci_artifact::tarball::Built {
                    gz: layer,
                    diff_id: e.diff_id,
                    entries: e.entries,
                },
                head: self.head_line()?,
            });
        }
        let (config, manifest) = (e.config.into_bytes(), e.manifest.into_bytes());
        if oci_artifact::sha256_digest(&config) != e.config_digest
            || oci_artifact::sha256_digest(&manifest) != e.manifest_digest
        {
            return None;
        }
        Some(Hit::Same(Box::new(super::Shipment {
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
            commit: Some(e.commit),
            dirty_files: Vec::new(),
            warnings: e.warnings,
            packaged: false,
            keeping: Keeping::default(),
        })))
    }

    /// [`Probe::store`] on a thread of its own, for a copy of `s`.
    pub fn keep(self, s: &super::Shipment) -> Keeping {
        if self.key.is_none() {
            return Keeping::default();
        }
        let copy = super::Shipment {
            artifact: s.artifact.clone(),
            default_tags: s.default_tags.clone(),
            commit_tag: s.commit_tag.clone(),
            commit: s.commit.clone(),
            dirty_files: s.dirty_files.clone(),
            warnings: s.warnings.clone(),
            packaged: s.packaged,
            keeping: Keeping::default(),
        };
        Keeping(Some(std::thread::spawn(move || self.store(&copy))))
    }

    /// Keeps a freshly packaged shipment of a clean tree. Best effort: a
    /// cache that cannot be written only costs time.
    fn store(&self, s: &super::Shipment) {
        let Some(key) = &self.key else { return };
        // Packaged from another commit than the one probed (a commit landed
        // meanwhile): not this key's artifact.
        if s.is_dirty() || s.commit_tag.as_deref() != self.commit.get(..7) {
            return;
        }
        // A shipped file git does not track (a `.sourceignore` `!` rule
        // can bring back what `.gitignore` hides): its bytes are not the
        // commit's, so this tree is not cached.
        let Some(tracked) = &self.tracked else { return };
        let tracked: std::collections::HashSet<&str> = tracked.iter().map(String::as_str).collect();
        let untracked_file = s.artifact.entries.iter().any(|name| {
            name != "." && !tracked.contains(name.as_str()) && !self.root.join(name).is_dir()
        });
        if untracked_file {
            return;
        }
        let (Ok(config), Ok(manifest)) = (
            String::from_utf8(s.artifact.config.clone()),
            String::from_utf8(s.artifact.manifest.clone()),
        ) else {
            return;
        };
        let Some(head) = &self.head else { return };
        let Some(diff_id) = diff_id(&s.artifact.config) else {
            return;
        };
        let entry = Entry {
            key: key.clone(),
            trees: trees(head, &shipped_tops(&s.artifact.entries)),
            commit: self.commit.clone(),
            diff_id,
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
        let _ =
            exec::fsutil::write_atomic_unsynced(&self.dir.join("layer.tar.gz"), &s.artifact.layer)
                .and_then(|()| {
                    exec::fsutil::write_atomic_unsynced(&self.dir.join("entry.json"), &json)
                });
        self.prune();
    }

    /// One entry per root, and only the most recent roots (tests package
    /// many temporary trees): the cache stays small.
    fn prune(&self) {
        const KEEP: usize = 16;
        let Some(parent) = self.dir.parent() else {
            return;
        };
        let Ok(read) = std::fs::read_dir(parent) else {
            return;
        };
        let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = read
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .filter(|(_, p)| p != &self.dir)
            .collect();
        if dirs.len() < KEEP {
            return;
        }
        dirs.sort();
        for (_, old) in &dirs[..dirs.len() + 1 - KEEP] {
            let _ = std::fs::remove_dir_all(old);
        }
    }
}

/// The layer's diff id, as the config records it.
fn diff_id(config: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    v.pointer("/rootfs/diff_ids/0")?
        .as_str()
        .map(str::to_string)
}

/// A cache hit.
pub enum Hit {
    /// The same commit: the shipment as it was.
    Same(Box<super::Shipment>),
    /// Another commit with the same trees: the layer (it passed the gate),
    /// to stamp with that commit (`head` is `"<commit> <unix time>"`).
    Layer {
        built: oci_artifact::tarball::Built,
        head: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_read_from_one_cat_file_batch() {
        let commit = b"tree 1111111111111111111111111111111111111111\nauthor a <a@x> 1700000000 +0000\ncommitter c <c@x> 1700000123 +0200\n\nmsg\n";
        let mut tree = Vec::new();
        tree.extend_from_slice(b"100644 .sops.yaml\0");
        tree.extend_from_slice(&[0xab; 20]);
        tree.extend_from_slice(b"40000 apps\0");
        tree.extend_from_slice(&[0x01; 20]);
        let mut out = format!("{} commit {}\n", "c".repeat(40), commit.len()).into_bytes();
        out.extend_from_slice(commit);
        out.extend_from_slice(format!("\n{} tree {}\n", "1".repeat(40), tree.len()).as_bytes());
        out.extend_from_slice(&tree);
        out.push(b'\n');
        let head = parse_head(&out).unwrap();
        assert_eq!(head.commit, "c".repeat(40));
        assert_eq!(head.time, "1700000123");
        assert_eq!(
            head.top,
            vec![
                (
                    ".sops.yaml".into(),
                    false,
                    format!("100644 {}", "ab".repeat(20))
                ),
                ("apps".into(), true, format!("40000 {}", "01".repeat(20))),
            ]
        );
        // A repository without a commit answers `HEAD missing`.
        assert!(parse_head(b"HEAD missing\nHEAD^{tree} missing\n").is_none());
    }
}
