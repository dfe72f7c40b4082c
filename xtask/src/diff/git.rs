//! The base side of a diff: which commit, and its manifest folders on disk.
//!
//! The tree is exported with `git archive` into a temporary folder rather than
//! checked out with `git worktree add`: it reads the object store only, so it
//! leaves no worktree metadata behind (even when interrupted) and never takes
//! the repository's locks while others work in it.

use std::path::Path;

use anyhow::{Context, bail};

use exec::runner::Cmd;

fn git(repo: &Path) -> Cmd {
    Cmd::new("git").dir(repo)
}

fn rev_parse(repo: &Path, rev: &str) -> Option<String> {
    git(repo)
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .read()
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Resolves the base: `base` as given, or the merge-base of HEAD with
/// `origin/main`, or (without origin/main) `HEAD~` with a notice. Returns a
/// name to show and the commit id.
pub fn resolve_base(repo: &Path, base: Option<&str>) -> anyhow::Result<(String, String)> {
    git(repo)
        .args(["rev-parse", "--git-dir"])
        .read()
        .with_context(|| format!("{} is not a git repository", repo.display()))?;
    if let Some(base) = base {
        let Some(commit) = rev_parse(repo, base) else {
            bail!(
                "base {base} is not a commit in {} (fetch it first, e.g. `git fetch origin main`)",
                repo.display()
            );
        };
        return Ok((base.to_string(), commit));
    }
    if rev_parse(repo, "origin/main").is_some() {
        let merge_base = git(repo)
            .args(["merge-base", "HEAD", "origin/main"])
            .read()
            .context("finding the merge-base of HEAD and origin/main")?;
        let commit = merge_base.trim().to_string();
        return Ok(("merge-base with origin/main".to_string(), commit));
    }
    match rev_parse(repo, "HEAD~") {
        Some(commit) => {
            eprintln!(
                "note: no origin/main here; comparing against HEAD~ (pass --base REF to choose)"
            );
            Ok(("HEAD~".to_string(), commit))
        }
        None => bail!(
            "no base to compare against: there is no origin/main and HEAD has no parent; pass --base REF"
        ),
    }
}

/// Writes the manifest folders of `commit` into `dest`.
pub fn export_tree(repo: &Path, commit: &str, dest: &Path) -> anyhow::Result<()> {
    let listing = git(repo)
        .args(["ls-tree", "--name-only", commit])
        .read()
        .context("listing the base tree")?;
    let present: Vec<&str> = listing
        .lines()
        .filter(|name| crate::MANIFEST_DIRS.contains(name))
        .collect();
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    if present.is_empty() {
        return Ok(());
    }
    let tar = git(repo)
        .args(["archive", "--format=tar", commit, "--"])
        .args(&present)
        .read_bytes()
        .context("git archive")?;
    tar::Archive::new(tar.as_slice())
        .unpack(dest)
        .with_context(|| format!("unpacking the base tree into {}", dest.display()))?;
    Ok(())
}
