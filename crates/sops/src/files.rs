//! The files a `.sops.yaml` manages, and the `secrets check` rules over them.

use std::path::{Path, PathBuf};

use super::integrity::{self, Opened};
use super::{Config, Format, Identities};

/// Directories never searched for secrets.
const SKIP_DIRS: &[&str] = &[".git", "target", ".tools", "node_modules"];

/// Every file under `config_dir` that the config manages: a rule with a
/// `path_regex` matches it, or (for a catch-all rule) it is `*.enc.yaml`/`*.enc.yml`.
///
/// Skipped: `.git/`, `target/`, `.tools/`, `node_modules/`, test data under
/// `tests/fixtures/` (deliberately broken files), and any subdirectory with its
/// own `.sops.yaml` (a separate SOPS scope).
pub fn managed_files(config_dir: &Path, config: &Config) -> Vec<PathBuf> {
    walk(config_dir)
        .into_iter()
        .filter(|p| is_managed(config_dir, config, p))
        .collect()
}

/// Every file below `dir` that claims to be SOPS-encrypted (see
/// [`super::looks_encrypted`]), with the same skips as [`managed_files`].
pub fn encrypted_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|bytes| super::looks_encrypted(&bytes, Format::from_path(p)))
        })
        .collect()
}

/// The SOPS files below `dirs` that are broken: malformed, truncated, or
/// failing their MAC or a value where `ids` open them. A file nobody here can
/// open is not broken: it is someone else's (`build` and `diff` then render
/// placeholders).
pub fn broken_files(dirs: &[PathBuf], ids: Option<&Identities>) -> Vec<CheckProblem> {
    let mut out = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        for file in encrypted_files(dir) {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let report = integrity::check(&bytes, Format::from_path(&file), ids);
            out.extend(report.findings.into_iter().map(|f| CheckProblem {
                file: file.clone(),
                line: f.line,
                reason: f.message,
            }));
        }
    }
    out
}

/// The files below `dir`, sorted, minus the skipped folders.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let walker = ignore::WalkBuilder::new(dir)
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
        out.push(p.to_path_buf());
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
    pub line: Option<usize>,
    pub reason: String,
}

/// What `check` found over every managed file.
#[derive(Debug, Default)]
pub struct CheckSummary {
    pub files: usize,
    /// Files an identity opened: every value and the MAC verified.
    pub verified: usize,
    pub problems: Vec<CheckProblem>,
}

/// Every managed file must be a sound SOPS file (the integrity checker, with
/// `ids` where they open it) encrypted for exactly the recipients its rule demands.
pub fn check(config_dir: &Path, config: &Config, ids: Option<&Identities>) -> CheckSummary {
    let files = managed_files(config_dir, config);
    let mut summary = CheckSummary {
        files: files.len(),
        ..CheckSummary::default()
    };
    for f in &files {
        match check_file(config_dir, config, f, ids) {
            Ok(Opened::Verified) => summary.verified += 1,
            Ok(Opened::NoKey) => {}
            Err(problems) => summary.problems.extend(problems),
        }
    }
    summary
}

/// The check for one file.
pub fn check_file(
    config_dir: &Path,
    config: &Config,
    f: &Path,
    ids: Option<&Identities>,
) -> Result<Opened, Vec<CheckProblem>> {
    let problem = |line, reason: String| CheckProblem {
        file: f.to_path_buf(),
        line,
        reason,
    };
    let bytes = std::fs::read(f).map_err(|e| vec![problem(None, format!("cannot read: {e}"))])?;
    let format = Format::from_path(f);
    if !super::looks_encrypted(&bytes, format) {
        return Err(vec![problem(
            None,
            "not SOPS-encrypted (plaintext secrets must never be committed; run `cargo xtask secrets encrypt`)".into(),
        )]);
    }
    let report = integrity::check(&bytes, format, ids);
    let Some(opened) = report.opened else {
        return Err(report
            .findings
            .into_iter()
            .map(|f| problem(f.line, f.message))
            .collect());
    };
    let rule = config
        .rule_for(config_dir, f)
        .map_err(|e| vec![problem(None, e.to_string())])?;
    let mut have =
        super::recipients(&bytes, format).map_err(|e| vec![problem(None, e.to_string())])?;
    let mut want = rule.age.clone();
    have.sort();
    have.dedup();
    want.sort();
    want.dedup();
    if have != want {
        return Err(vec![problem(
            None,
            format!(
                "encrypted for [{}] but .sops.yaml wants [{}] (run `cargo xtask secrets updatekeys`)",
                have.join(", "),
                want.join(", ")
            ),
        )]);
    }
    Ok(opened)
}
