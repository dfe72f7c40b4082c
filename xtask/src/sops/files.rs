//! The files a `.sops.yaml` manages, and the `secrets check` rules over them.

use std::path::{Path, PathBuf};

use super::{Config, Format};

/// Directories never searched for secrets.
const SKIP_DIRS: &[&str] = &[".git", "target", ".tools", "node_modules"];

/// Every file under `config_dir` that the config manages: a rule with a
/// `path_regex` matches it, or (for a catch-all rule) it is `*.enc.yaml`/`*.enc.yml`.
///
/// Skipped: `.git/`, `target/`, `.tools/`, `node_modules/`, test data under
/// `tests/fixtures/` (deliberately broken files), and any subdirectory with its
/// own `.sops.yaml` (a separate SOPS scope).
pub fn managed_files(config_dir: &Path, config: &Config) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let walker = ignore::WalkBuilder::new(config_dir)
        .hidden(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .ignore(false)
        .parents(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            if !is_dir || e.depth() == 0 {
                return true;
            }
            let p = e.path();
            let test_data = e.file_name() == "fixtures"
                && p.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "tests");
            !(SKIP_DIRS.iter().any(|d| e.file_name() == *d)
                || test_data
                || p.join(".sops.yaml").is_file())
        })
        .build();
    for entry in walker.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let p = entry.path();
        if p.file_name().is_some_and(|n| n == ".sops.yaml") {
            continue;
        }
        if is_managed(config_dir, config, p) {
            out.push(p.to_path_buf());
        }
    }
    out
}

/// See [`managed_files`].
pub fn is_managed(config_dir: &Path, config: &Config, file: &Path) -> bool {
    match config.matching_rule(config_dir, file) {
        Some(rule) if rule.path_regex.as_deref().is_some_and(|r| !r.is_empty()) => true,
        Some(_) => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            name.ends_with(".enc.yaml") || name.ends_with(".enc.yml")
        }
        None => false,
    }
}

/// One failed `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckProblem {
    pub file: PathBuf,
    pub reason: String,
}

/// Every managed file must be SOPS-encrypted for exactly the recipients its rule demands.
pub fn check(config_dir: &Path, config: &Config) -> (usize, Vec<CheckProblem>) {
    let files = managed_files(config_dir, config);
    let mut problems = Vec::new();
    for f in &files {
        if let Err(reason) = check_file(config_dir, config, f) {
            problems.push(CheckProblem {
                file: f.clone(),
                reason,
            });
        }
    }
    (files.len(), problems)
}

/// The check for one file.
pub fn check_file(config_dir: &Path, config: &Config, f: &Path) -> Result<(), String> {
    let bytes = std::fs::read(f).map_err(|e| format!("cannot read: {e}"))?;
    let format = Format::from_path(f);
    let mut have = match super::recipients(&bytes, format) {
        Ok(r) => r,
        Err(super::SopsError::NotEncrypted) => {
            return Err("not SOPS-encrypted (plaintext secrets must never be committed; run `cargo xtask secrets encrypt`)".into());
        }
        Err(e) => return Err(e.to_string()),
    };
    let rule = config.rule_for(config_dir, f).map_err(|e| e.to_string())?;
    let mut want = rule.age.clone();
    have.sort();
    have.dedup();
    want.sort();
    want.dedup();
    if have != want {
        return Err(format!(
            "encrypted for [{}] but .sops.yaml wants [{}] (run `cargo xtask secrets updatekeys`)",
            have.join(", "),
            want.join(", ")
        ));
    }
    Ok(())
}
