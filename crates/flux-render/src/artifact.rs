//! ExternalArtifacts that an ArtifactGenerator (fluxcd/source-watcher,
//! `source.extensions.fluxcd.io`) assembles from its sources, rebuilt on
//! disk so that a Kustomization whose `sourceRef` is one of them renders from
//! what Flux would fetch. The copy operations follow source-watcher's
//! cp-like rules:
//! - `from` is `@alias/pattern`, `to` is `@artifact/dest`;
//! - a pattern without glob characters copies that file (into `dest/` when
//!   `to` ends in `/` or names a folder already there, else as `dest`), or
//!   that folder as `dest/<folder name>`;
//! - a glob is matched one path segment at a time (Go's `fs.Glob`, where `**`
//!   is the same as `*`); a pattern ending in `/**` copies what it matches
//!   relative to the folder before it, any other keeps the matched path;
//! - `exclude` patterns (doublestar, `**` spans folders; a pattern without
//!   `/` also matches the file name) drop files and folders;
//! - `optional: true` lets a source that matches nothing pass.
//!
//! Not rebuilt here (an error that names them): the `Merge` and `Extract`
//! strategies and `{a,b}` alternatives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::str_at;

pub const GENERATOR_GROUP: &str = "source.extensions.fluxcd.io/";

/// True for an ArtifactGenerator object.
pub fn is_generator(object: &Value) -> bool {
    str_at(object, &["kind"]) == Some("ArtifactGenerator")
        && str_at(object, &["apiVersion"]).is_some_and(|v| v.starts_with(GENERATOR_GROUP))
}

/// The ExternalArtifacts a generator declares: `(namespace, name)` and the
/// artifact's spec.
pub fn declared(generator: &Value) -> Vec<((String, String), Value)> {
    let namespace = str_at(generator, &["metadata", "namespace"]).unwrap_or("default");
    generator
        .pointer("/spec/artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let name = a.get("name").and_then(Value::as_str)?;
            Some(((namespace.to_string(), name.to_string()), a.clone()))
        })
        .collect()
}

/// A generator's sources by alias: `(kind, namespace, name)`.
pub fn sources(generator: &Value) -> HashMap<String, (String, String, String)> {
    let namespace = str_at(generator, &["metadata", "namespace"]).unwrap_or("default");
    generator
        .pointer("/spec/sources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let alias = s.get("alias").and_then(Value::as_str)?;
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or_default();
            let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
            let ns = s
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace);
            Some((
                alias.to_string(),
                (kind.to_string(), ns.to_string(), name.to_string()),
            ))
        })
        .collect()
}

/// The folder of the source behind `path` of an artifact, when one copy
/// operation puts a whole folder of a source that `is_source` accepts (by
/// alias) there: `@alias/dir/**` or `@alias/dir` copied to a folder that
/// holds `path`. The last such operation wins, as its files overwrite.
/// For checks that read the source tree instead of assembling the artifact.
pub fn source_path(
    artifact: &Value,
    path: &str,
    is_source: impl Fn(&str) -> bool,
) -> Option<(String, String)> {
    let path = path.trim_start_matches("./").trim_end_matches('/');
    let ops = artifact.get("copy").and_then(Value::as_array)?;
    ops.iter().rev().find_map(|op| {
        let from = op.get("from").and_then(Value::as_str)?;
        let to = op.get("to").and_then(Value::as_str)?;
        let (alias, pattern) = from.strip_prefix('@')?.split_once('/')?;
        if !is_source(alias) {
            return None;
        }
        let dest = to.strip_prefix("@artifact/")?.trim_end_matches('/');
        let (folder, dest) = match pattern.strip_suffix("/**") {
            Some(folder) if !is_glob(folder) => (folder.to_string(), dest.to_string()),
            None if !is_glob(pattern) => {
                let folder = pattern.trim_end_matches('/');
                let name = folder.rsplit('/').next().unwrap_or(folder);
                let dest = if dest.is_empty() {
                    name.to_string()
                } else {
                    format!("{dest}/{name}")
                };
                (folder.to_string(), dest)
            }
            _ => return None,
        };
        let rest = if dest.is_empty() {
            Some(path)
        } else if path == dest {
            Some("")
        } else {
            path.strip_prefix(&format!("{dest}/"))
        }?;
        let joined = [folder.as_str(), rest]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        Some((alias.to_string(), joined))
    })
}

/// Why an artifact cannot be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("copy from {from:?} to {to:?}: {reason}")]
    Copy {
        from: String,
        to: String,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Assembles one artifact (its spec from the generator) into `into`, from
/// the source folders by alias.
pub fn assemble(
    artifact: &Value,
    sources: &HashMap<String, PathBuf>,
    into: &Path,
) -> Result<(), ArtifactError> {
    for op in artifact
        .get("copy")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        copy_operation(op, sources, into)?;
    }
    Ok(())
}

struct Op<'a> {
    from: &'a str,
    to: &'a str,
    exclude: Vec<&'a str>,
    optional: bool,
}

impl Op<'_> {
    fn fail(&self, reason: impl Into<String>) -> ArtifactError {
        ArtifactError::Copy {
            from: self.from.to_string(),
            to: self.to.to_string(),
            reason: reason.into(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn copy_operation(
    op: &Value,
    sources: &HashMap<String, PathBuf>,
    into: &Path,
) -> Result<(), ArtifactError> {
    let op = Op {
        from: op.get("from").and_then(Value::as_str).unwrap_or_default(),
        to: op.get("to").and_then(Value::as_str).unwrap_or_default(),
        exclude: op
            .get("exclude")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect(),
        optional: op.get("optional").and_then(Value::as_bool).unwrap_or(false),
    }
    .with_strategy(op)?;
    let Some((alias, pattern)) = op.from.strip_prefix('@').and_then(|f| f.split_once('/')) else {
        return Err(op.fail("the source must be @alias/pattern"));
    };
    let Some(dest) = op.to.strip_prefix("@artifact/") else {
        return Err(op.fail("the destination must start with @artifact/"));
    };
    if dest.starts_with('/') || dest.split('/').any(|p| p == "..") {
        return Err(op.fail("the destination must stay within the artifact"));
    }
    if op.exclude.iter().chain([&pattern]).any(|p| p.contains('{')) {
        return Err(op.fail("{a,b} alternatives are not rebuilt by this render"));
    }
    let Some(source) = sources.get(alias) else {
        return Err(op.fail(format!("source alias '{alias}' not found")));
    };
    let dest_dir = into.join(dest);
    if !is_glob(pattern) {
        let clean: PathBuf = Path::new(pattern)
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        let src = source.join(&clean);
        if !src.exists() {
            return if op.optional {
                Ok(())
            } else {
                Err(op.fail(format!("source '{}' does not exist", clean.display())))
            };
        }
        let base_name = clean.file_name().map(PathBuf::from).unwrap_or_default();
        if src.is_dir() {
            return copy_dir(&op, source, &clean, &clean, &dest_dir.join(base_name));
        }
        if excluded(&op.exclude, &clean, Path::new("")) {
            return Ok(());
        }
        let target = if op.to.ends_with('/') || dest_dir.is_dir() {
            dest_dir.join(base_name)
        } else {
            dest_dir
        };
        return copy_file(&src, &target);
    }
    let matches = glob(source, pattern).map_err(io(source))?;
    let base = selection_root(pattern);
    let kept: Vec<PathBuf> = matches
        .into_iter()
        .filter(|m| !excluded(&op.exclude, m, &base))
        .collect();
    if kept.is_empty() {
        return if op.optional {
            Ok(())
        } else {
            Err(op.fail(format!(
                "no files match pattern '{pattern}' in source '{alias}'"
            )))
        };
    }
    let prefix = pattern.strip_suffix("/**");
    for m in kept {
        let rel = prefix
            .and_then(|p| m.strip_prefix(p).ok())
            .filter(|r| !r.as_os_str().is_empty())
            .map_or_else(|| m.clone(), Path::to_path_buf);
        let target = dest_dir.join(rel);
        if source.join(&m).is_dir() {
            copy_dir(&op, source, &m, &base, &target)?;
        } else {
            copy_file(&source.join(&m), &target)?;
        }
    }
    Ok(())
}

impl<'a> Op<'a> {
    fn with_strategy(self, op: &Value) -> Result<Self, ArtifactError> {
        match op.get("strategy").and_then(Value::as_str) {
            None | Some("" | "Overwrite") => Ok(self),
            Some(other) => Err(self.fail(format!(
                "strategy {other} is not rebuilt by this render (only Overwrite is)"
            ))),
        }
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', ']'])
}

/// The literal folders before the first glob segment.
fn selection_root(pattern: &str) -> PathBuf {
    pattern
        .split('/')
        .take_while(|p| !is_glob(p))
        .filter(|p| !p.is_empty() && *p != ".")
        .collect()
}

/// Go's `fs.Glob`: each segment matched against the entries of the folders
/// matched so far, in name order.
fn glob(root: &Path, pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut found = vec![PathBuf::new()];
    for segment in pattern.split('/').filter(|s| !s.is_empty() && *s != ".") {
        let mut next = Vec::new();
        for dir in &found {
            let abs = root.join(dir);
            if !is_glob(segment) {
                if abs.join(segment).exists() {
                    next.push(dir.join(segment));
                }
                continue;
            }
            if !abs.is_dir() {
                continue;
            }
            let mut names: Vec<String> = std::fs::read_dir(&abs)?
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect();
            names.sort();
            next.extend(
                names
                    .into_iter()
                    .filter(|n| segment_match(segment, n))
                    .map(|n| dir.join(n)),
            );
        }
        found = next;
    }
    Ok(found
        .into_iter()
        .filter(|p| !p.as_os_str().is_empty())
        .collect())
}

/// Go's `path.Match` for one segment: `*`, `?`, `[...]` (ranges, `^`/`!`
/// negation) and `\` escapes.
fn segment_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| match_from(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(c) = n.first() else { return false };
            let Some(end) = p.iter().skip(1).position(|&x| x == ']').map(|e| e + 1) else {
                return false;
            };
            let class = &p[1..end];
            let (negate, class) = match class.first() {
                Some('^' | '!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != negate && match_from(&p[end + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && match_from(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && match_from(&p[1..], &n[1..]),
    }
}

/// doublestar's match of a whole path: `**` spans any number of folders.
fn path_match(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let n: Vec<&str> = path.split('/').collect();
    fn walk(p: &[&str], n: &[&str]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(&"**") => (0..=n.len()).any(|i| walk(&p[1..], &n[i..])),
            Some(seg) => !n.is_empty() && segment_match(seg, n[0]) && walk(&p[1..], &n[1..]),
        }
    }
    walk(&p, &n)
}

/// source-watcher's exclude test: the path from the source root, the path
/// from the selection root, and for a pattern without `/`, the file name.
fn excluded(patterns: &[&str], path: &Path, base: &Path) -> bool {
    let full = path.to_string_lossy();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let relative = path
        .strip_prefix(base)
        .ok()
        .filter(|r| !base.as_os_str().is_empty() && !r.as_os_str().is_empty())
        .map(|r| r.to_string_lossy().into_owned());
    patterns.iter().any(|p| {
        path_match(p, &full)
            || (!p.contains('/') && path_match(p, &name))
            || relative.as_deref().is_some_and(|r| path_match(p, r))
    })
}

fn copy_file(src: &Path, target: &Path) -> Result<(), ArtifactError> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::copy(src, target).map_err(io(target))?;
    Ok(())
}

/// Copies `rel` (a folder of `source`) to `target`, without excluded entries.
fn copy_dir(
    op: &Op,
    source: &Path,
    rel: &Path,
    base: &Path,
    target: &Path,
) -> Result<(), ArtifactError> {
    std::fs::create_dir_all(target).map_err(io(target))?;
    let dir = source.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let child = rel.join(entry.file_name());
        if excluded(&op.exclude, &child, base) {
            continue;
        }
        let to = target.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(op, source, &child, base, &to)?;
        } else {
            copy_file(&entry.path(), &to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = ignore::WalkBuilder::new(dir)
            .standard_filters(false)
            .build()
            .flatten()
            .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
            .map(|e| {
                e.path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        out.sort();
        out
    }

    fn run(copy: Value, files: &[&str]) -> Result<Vec<String>, ArtifactError> {
        let src = tree(files);
        let out = tempfile::tempdir().unwrap();
        let sources = HashMap::from([("repo".to_string(), src.path().to_path_buf())]);
        assemble(&json!({"name": "a", "copy": copy}), &sources, out.path())?;
        Ok(listing(out.path()))
    }

    #[test]
    fn a_trailing_double_star_copies_the_folder_contents() {
        let files = [
            "apps/base/podinfo/kustomization.yaml",
            "apps/base/podinfo/release.yaml",
            "apps/production/kustomization.yaml",
            "apps/staging/kustomization.yaml",
        ];
        let got = run(
            json!([
                {"from": "@repo/apps/base/**", "to": "@artifact/base/"},
                {"from": "@repo/apps/production/**", "to": "@artifact/production/"}
            ]),
            &files,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "base/podinfo/kustomization.yaml",
                "base/podinfo/release.yaml",
                "production/kustomization.yaml"
            ]
        );
    }

    #[test]
    fn plain_paths_copy_like_cp() {
        let files = ["deploy/a.yaml", "deploy/sub/b.yaml", "env/prod.yaml"];
        let got = run(
            json!([
                {"from": "@repo/deploy", "to": "@artifact/"},
                {"from": "@repo/env/prod.yaml", "to": "@artifact/env.yaml"},
                {"from": "@repo/env/prod.yaml", "to": "@artifact/deploy"}
            ]),
            &files,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "deploy/a.yaml",
                "deploy/prod.yaml",
                "deploy/sub/b.yaml",
                "env.yaml"
            ]
        );
    }

    #[test]
    fn other_globs_keep_the_matched_path_and_excludes_apply() {
        let files = ["deploy/a.yaml", "deploy/b.md", "deploy/c.yaml", "x/d.yaml"];
        let got = run(
            json!([{"from": "@repo/deploy/*.yaml", "to": "@artifact/out/", "exclude": ["c.*"]}]),
            &files,
        )
        .unwrap();
        assert_eq!(got, ["out/deploy/a.yaml"]);
    }

    #[test]
    fn no_match_fails_unless_optional() {
        let files = ["a.yaml"];
        let err = run(
            json!([{"from": "@repo/none/*.yaml", "to": "@artifact/"}]),
            &files,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no files match"), "{err}");
        let got = run(
            json!([{"from": "@repo/none/*.yaml", "to": "@artifact/", "optional": true}]),
            &files,
        )
        .unwrap();
        assert!(got.is_empty());
        let err = run(
            json!([{"from": "@repo/a.yaml", "to": "@artifact/", "strategy": "Merge"}]),
            &files,
        )
        .unwrap_err();
        assert!(err.to_string().contains("strategy Merge"), "{err}");
    }

    #[test]
    fn artifact_paths_map_back_to_source_folders() {
        let spec = json!({"copy": [
            {"from": "@repo/infrastructure/**", "to": "@artifact/"},
            {"from": "@repo/apps/base/**", "to": "@artifact/base/"},
            {"from": "@repo/apps/production", "to": "@artifact/envs/"},
            {"from": "@other/x/**", "to": "@artifact/x/"}
        ]});
        let repo = |a: &str| a == "repo";
        let map = |p| source_path(&spec, p, repo).map(|(_, p)| p);
        assert_eq!(
            map("./controllers").as_deref(),
            Some("infrastructure/controllers")
        );
        assert_eq!(map("./base/podinfo").as_deref(), Some("apps/base/podinfo"));
        assert_eq!(map("envs/production").as_deref(), Some("apps/production"));
        assert_eq!(map("./x/y").as_deref(), Some("infrastructure/x/y"));
    }

    #[test]
    fn segment_matching_is_go_path_match() {
        assert!(segment_match("*.yaml", "a.yaml"));
        assert!(!segment_match("*.yaml", "a.yml"));
        assert!(segment_match("[a-c]?", "bx"));
        assert!(!segment_match("[^a-c]?", "bx"));
        assert!(segment_match("**", "anything"));
        assert!(path_match("**/*.md", "a/b/c.md"));
        assert!(path_match("**/*.md", "c.md"));
    }
}
