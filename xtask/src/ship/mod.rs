//! Everything that ships goes through here: `package`, `publish`,
//! `reconcile` and `bootstrap` all call [`prepare`]. It walks the tree once,
//! runs the secrets [`gate`] over exactly the files that go into the
//! artifact, finds out whether those files differ from the commit, and only
//! then packages them, stamped with the git metadata.
//!
//! A dirty tree never takes the commit's tag or its plain revision: it gets
//! `<sha>-dirty-<content12>` and `<branch>@sha1:<commit>-dirty-<content12>`,
//! where `content12` is the start of the layer's content digest, so that two
//! different dirty states never share a tag.

pub mod cache;
pub mod gate;

use std::path::PathBuf;

use oci_artifact::{Artifact, ArtifactError, PackageOptions, tarball, tree};
use sops::Identities;

pub use gate::Refusal;

/// What to do when shipped files differ from the commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirtyTree {
    /// Refuse (publish without `--allow-dirty`).
    Refuse,
    /// Ship it under a tag and revision that say dirty.
    Stamp,
}

/// What to ship and how to stamp it.
#[derive(Clone, Debug)]
pub struct ShipOptions {
    /// The tree to package (the repository root).
    pub root: PathBuf,
    pub dirty: DirtyTree,
    /// Overrides of the git-derived annotations.
    pub source: Option<String>,
    pub revision: Option<String>,
    pub created: Option<String>,
    /// Where packaged entries are kept ([`cache::location`]).
    pub cache: PathBuf,
}

/// A packaged artifact that passed the gate.
#[derive(Debug)]
pub struct Shipment {
    pub artifact: Artifact,
    /// The tags to use when none are given: the short sha and `latest` for a
    /// clean commit, the dirty tag alone for a dirty tree, `latest` outside git.
    pub default_tags: Vec<String>,
    /// The commit's own tag (its short sha), which a dirty tree may never take.
    pub commit_tag: Option<String>,
    /// The whole commit sha: no 7 to 40 digit prefix of it tags a dirty tree.
    pub commit: Option<String>,
    /// Shipped files that differ from the commit (empty when clean).
    pub dirty_files: Vec<String>,
    /// What fell back (no remote, no commit), for a warning.
    pub warnings: Vec<String>,
    /// False when this clean commit was shipped before and its artifact came
    /// from the cache (see [`cache`]): nothing was walked, gated or compressed.
    pub packaged: bool,
    /// The cache entry for this shipment, being written while the caller
    /// goes on (a push mostly waits on the registry); done by the time the
    /// shipment is dropped.
    pub keeping: cache::Keeping,
}

impl Shipment {
    pub fn is_dirty(&self) -> bool {
        !self.dirty_files.is_empty()
    }

    /// Refuses a tag that would pass a dirty tree off as the commit: the
    /// commit's tag, or any 7 to 40 hex digit prefix of its sha (the full sha
    /// is the tag a release promotes).
    pub fn check_tags(&self, tags: &[String]) -> Result<(), ShipError> {
        if !self.is_dirty() {
            return Ok(());
        }
        let names_commit = |tag: &String| {
            self.commit_tag.as_ref() == Some(tag)
                || self
                    .commit
                    .as_deref()
                    .is_some_and(|commit| is_sha_prefix(tag, commit))
        };
        match tags.iter().find(|t| names_commit(t)) {
            Some(tag) => Err(ShipError::CommitTagOnDirty { tag: tag.clone() }),
            None => Ok(()),
        }
    }
}

/// `tag` is 7 to 40 hex digits (either case) that start `commit`.
fn is_sha_prefix(tag: &str, commit: &str) -> bool {
    (7..=40).contains(&tag.len())
        && tag.bytes().all(|b| b.is_ascii_hexdigit())
        && commit
            .get(..tag.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(tag))
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(
        "refusing to ship: {} problem(s) in the files that would go into the artifact:\n{}\nNothing was written or pushed. No flag ships plaintext: encrypt the file (`cargo xtask secrets encrypt FILE`), re-create a broken one (`cargo xtask secrets edit FILE`), or delete the copy.",
        refusals.len(),
        list(refusals)
    )]
    Refused { refusals: Vec<Refusal> },
    #[error(
        "the tree has uncommitted changes in {} shipped file(s):\n{}\nCommit them, or pass --allow-dirty to publish under the tag {dirty_tag} (never the commit's tag).",
        files.len(),
        list(files)
    )]
    Dirty {
        files: Vec<String>,
        dirty_tag: String,
    },
    #[error(
        "the tag {tag} names the commit (its sha or a prefix of it), but the tree differs from that commit; use another tag or commit first"
    )]
    CommitTagOnDirty { tag: String },
    #[error(
        "--source {given:?} is not the URL of a repository: give its https URL (a local path never goes into an artifact)"
    )]
    Source { given: String },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = items.iter().take(SHOWN).map(|i| format!("  {i}")).collect();
    if items.len() > SHOWN {
        out.push(format!("  ... and {} more", items.len() - SHOWN));
    }
    out.join("\n")
}

/// The gate alone over the files that would ship: for a verb that wants to
/// fail before it creates anything (bootstrap).
pub fn gate_tree(root: &std::path::Path, ids: Option<&Identities>) -> Result<(), ShipError> {
    let cache = crate::user_cache("render");
    let refusals = gate::check_tree(root, ids, None, Some(&cache))?.all();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(ShipError::Refused { refusals })
    }
}

/// Walks, gates and packages the tree. `ids` open the SOPS files they can
/// for the full integrity check (every value and the MAC).
pub fn prepare(opts: &ShipOptions, ids: Option<&Identities>) -> Result<Shipment, ShipError> {
    let source = match &opts.source {
        Some(given) => {
            Some(
                oci_artifact::normalize_source(given).ok_or_else(|| ShipError::Source {
                    given: given.clone(),
                })?,
            )
        }
        None => None,
    };
    let root = &opts.root;
    if !cache::has_entry(&opts.cache, root) {
        // Nothing kept for this checkout (a fresh clone, a CI runner): no
        // probe can hit, so the tree is walked, gated and packaged while
        // git answers it.
        let (mut shipment, probe) = package_while_probing(opts, ids, source)?;
        shipment.keeping = probe.keep(&shipment);
        return Ok(shipment);
    }
    let probe = cache::probe(root, opts);
    match probe.hit() {
        Some(cache::Hit::Same(hit)) => return Ok(*hit),
        Some(cache::Hit::Layer { built, head }) => {
            let view = probe.view.clone().unwrap_or_default();
            let git = oci_artifact::defaults_from(Some(&head), view.remote, view.branch);
            let mut shipment = stamp(opts, source, &git, built, Vec::new())?;
            shipment.packaged = false;
            return Ok(shipment);
        }
        None => {}
    }
    let mut shipment = package(opts, ids, source, &probe)?;
    shipment.keeping = probe.keep(&shipment);
    Ok(shipment)
}

/// The full way: walk, gate, package; git's answers the probe lacks are
/// asked meanwhile.
fn package(
    opts: &ShipOptions,
    ids: Option<&Identities>,
    source: Option<String>,
    probe: &cache::Probe,
) -> Result<Shipment, ShipError> {
    let (gated, git) = std::thread::scope(|s| {
        let git = s.spawn(|| git_of(&opts.root, probe));
        let gated = walk_and_gate(opts, ids);
        (gated, git.join())
    });
    let git = git.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    stamp_gated(opts, source, gated?, git)
}

/// [`package`] beside the probe, for a checkout with nothing kept: the
/// probe's answers are needed only to stamp the layer.
fn package_while_probing(
    opts: &ShipOptions,
    ids: Option<&Identities>,
    source: Option<String>,
) -> Result<(Shipment, cache::Probe), ShipError> {
    let (probe, gated) = std::thread::scope(|s| {
        let probe = s.spawn(|| cache::probe(&opts.root, opts));
        let gated = walk_and_gate(opts, ids);
        (probe.join(), gated)
    });
    let probe = probe.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let git = git_of(&opts.root, &probe);
    Ok((stamp_gated(opts, source, gated?, git)?, probe))
}

/// The commit metadata and the uncommitted files: from what the probe read
/// at the top level of a work tree (HEAD's time too, for a clean one),
/// else asked of git.
fn git_of(
    root: &std::path::Path,
    probe: &cache::Probe,
) -> (oci_artifact::GitDefaults, Vec<String>) {
    match probe.view.clone() {
        Some(view) => {
            let head = probe.head_line().or_else(|| oci_artifact::head_line(root));
            let git = oci_artifact::defaults_from(head.as_deref(), view.remote, view.branch);
            (git, view.uncommitted)
        }
        None => (
            oci_artifact::git_defaults(root),
            oci_artifact::uncommitted_files(root).unwrap_or_default(),
        ),
    }
}

/// The gated layer stamped with `git`'s metadata, dirty when a shipped file
/// is among the uncommitted ones.
fn stamp_gated(
    opts: &ShipOptions,
    source: Option<String>,
    (entries, built): (Vec<tree::TreeEntry>, tarball::Built),
    (git, uncommitted): (oci_artifact::GitDefaults, Vec<String>),
) -> Result<Shipment, ShipError> {
    let dirty_files = dirty_shipped(&opts.root, &entries, uncommitted);
    stamp(opts, source, &git, built, dirty_files)
}

/// Walks the tree and reads each file once: the gate judges the very bytes
/// the tarball holds. The tarball is built in memory while the gate runs;
/// it is dropped unless the gate passes, so nothing leaves before its
/// verdict.
fn walk_and_gate(
    opts: &ShipOptions,
    ids: Option<&Identities>,
) -> Result<(Vec<tree::TreeEntry>, tarball::Built), ShipError> {
    let root = &opts.root;
    let entries = tree::collect(root)?;
    let contents = gate::Contents::read(&entries)?;
    let (refusals, built) = std::thread::scope(|s| {
        let built = s.spawn(|| tarball::build_with(root, &entries, |i| Ok(contents.get(i).into())));
        let render_cache = opts.cache.join("render");
        let refusals = gate::check(root, &entries, &contents, ids, Some(&render_cache)).all();
        (refusals, built.join())
    });
    if !refusals.is_empty() {
        return Err(ShipError::Refused { refusals });
    }
    let built = built.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    Ok((entries, built))
}

/// The shipment of a layer that passed the gate, stamped with `git`'s
/// metadata (or the overrides), dirty or not.
fn stamp(
    opts: &ShipOptions,
    source: Option<String>,
    git: &oci_artifact::GitDefaults,
    built: tarball::Built,
    dirty_files: Vec<String>,
) -> Result<Shipment, ShipError> {
    let root = &opts.root;
    let content12: String = built
        .diff_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    let commit_tag = git.short_sha.clone();
    let dirty_tag = format!(
        "{}-dirty-{content12}",
        commit_tag.as_deref().unwrap_or("local")
    );
    if !dirty_files.is_empty() && opts.dirty == DirtyTree::Refuse {
        return Err(ShipError::Dirty {
            files: dirty_files,
            dirty_tag,
        });
    }
    let mut warnings: Vec<String> = git
        .fallbacks
        .iter()
        .filter(|f| {
            !((f.starts_with("source:") && opts.source.is_some())
                || (f.starts_with("revision:") && opts.revision.is_some())
                || (f.starts_with("created:") && opts.created.is_some()))
        })
        .cloned()
        .collect();
    let (revision, default_tags) = if dirty_files.is_empty() {
        let mut tags: Vec<String> = commit_tag.iter().cloned().collect();
        tags.push("latest".into());
        (git.revision.clone(), tags)
    } else {
        warnings.push(format!(
            "{} shipped file(s) differ from the commit: the artifact is tagged {dirty_tag}",
            dirty_files.len()
        ));
        (
            format!("{}-dirty-{content12}", git.revision),
            vec![dirty_tag],
        )
    };
    let package = PackageOptions {
        root: root.clone(),
        source: source.or_else(|| git.source.clone()),
        revision: opts.revision.clone().unwrap_or(revision),
        created: opts.created.clone().unwrap_or(git.created.clone()),
    };
    let artifact = oci_artifact::assemble(&package, built)?;
    Ok(Shipment {
        artifact,
        default_tags,
        commit_tag,
        commit: git.commit.clone(),
        dirty_files,
        warnings,
        packaged: true,
        keeping: cache::Keeping::default(),
    })
}

/// The uncommitted paths that change what ships: shipped files that differ,
/// and deleted files that would have shipped (their top folder ships).
fn dirty_shipped(
    root: &std::path::Path,
    entries: &[tree::TreeEntry],
    uncommitted: Vec<String>,
) -> Vec<String> {
    let shipped: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e.name.as_str()).collect();
    let mut out: Vec<String> = uncommitted
        .into_iter()
        .flat_map(|path| match path.strip_suffix('/') {
            // An untracked folder: what would ship from it.
            Some(dir) => shipped
                .iter()
                .filter(|s| s.starts_with(dir) && s[dir.len()..].starts_with('/'))
                .map(|s| s.to_string())
                .collect(),
            None => vec![path],
        })
        .filter(|path| {
            shipped.contains(path.as_str())
                || (!root.join(path).exists()
                    && path
                        .split('/')
                        .next()
                        .is_some_and(|top| path.contains('/') && shipped.contains(top)))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::is_sha_prefix;

    #[test]
    fn seven_to_forty_hex_digits_of_the_commit_name_it() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        for tag in [&commit[..7], &commit[..12], commit, "0123456789ABCDEF"] {
            assert!(is_sha_prefix(tag, commit), "{tag}");
        }
        for tag in [&commit[..6], "0123457", "latest", "0123456-dirty"] {
            assert!(!is_sha_prefix(tag, commit), "{tag}");
        }
        assert!(!is_sha_prefix(&format!("{commit}0"), commit));
    }
}
