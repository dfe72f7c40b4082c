//! The manifest tree as `validate` sees it: every YAML file of the manifest
//! folders parsed once (documents with their line ranges), the directories
//! kustomize can build, and where an object came from (file and line).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value;

use super::{Check, Finding, Severity};

/// The folders of the repository that hold manifests.
pub use crate::MANIFEST_DIRS;

/// Names kustomize accepts for its configuration file.
pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct SourceDoc {
    /// First line (1-based) of the document's text.
    pub start: usize,
    /// Last line (1-based, inclusive).
    pub end: usize,
    pub value: Value,
}

/// One parsed YAML file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the root, with `/`.
    pub rel: String,
    pub text: String,
    pub docs: Vec<SourceDoc>,
    /// The file claims to be SOPS-encrypted (a document with a `sops` block,
    /// or what [`sops::looks_encrypted`] finds): judged with the parse, in
    /// parallel, not in the secrets check at the end.
    pub claims_sops: bool,
}

/// The parsed tree.
#[derive(Debug, Default)]
pub struct Tree {
    pub root: PathBuf,
    pub files: Vec<SourceFile>,
    /// Directories (relative) with a kustomization file that is not a Component.
    pub kustomize_dirs: Vec<String>,
    /// Kustomize directory → the kustomize directories that list it in `resources`.
    pub included_by: HashMap<String, Vec<String>>,
    /// `(kind, name)` → `(file index, doc index)`.
    by_name: HashMap<(String, String), Vec<(usize, usize)>>,
}

/// `a/b` relative path string of `path` under `root`.
pub fn rel_string(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') && p.is_dir() {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else if name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization" {
            out.push(p);
        }
    }
}

/// Converts a YAML value to JSON; non-string keys become their YAML text.
pub use flux_render::yaml_value::to_json as yaml_to_json;

/// A YAML parse error at a 1-based line and column of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Splits a YAML stream into documents and parses each, keeping line ranges.
/// Every document is parsed even when an earlier one fails.
pub fn parse_stream(text: &str) -> (Vec<SourceDoc>, Vec<YamlError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut chunks: Vec<(usize, usize)> = Vec::new(); // [start, end) line indexes
    let mut start = 0;
    for (i, line) in lines.iter().enumerate() {
        let l = line.trim_end_matches('\r');
        let is_sep = l == "---" || l.starts_with("--- ") || l == "...";
        if is_sep {
            chunks.push((start, i));
            start = i + 1;
        }
    }
    chunks.push((start, lines.len()));
    for (s, e) in chunks {
        if s >= e {
            continue;
        }
        let chunk = lines[s..e].join("\n");
        // An alias bomb is refused by name before serde_yaml expands it.
        if let Err(err) = flux_render::yaml11::check_aliases(&chunk) {
            let line = match &err {
                flux_render::YamlError::ExcessiveAliasing { line, .. } => *line as usize,
                _ => 1,
            };
            errors.push(YamlError {
                line: s + line,
                column: 1,
                message: err.to_string().trim_start_matches("yaml: ").to_string(),
            });
            continue;
        }
        match flux_render::yaml_value::parse_document(&chunk) {
            Ok(None) => {}
            Ok(Some(value)) => docs.push(SourceDoc {
                start: s + 1,
                end: e,
                value,
            }),
            Err(err) => {
                let (line, column) = err
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                let message = err.to_string();
                // serde_yaml appends " at line L column C"; our position replaces it.
                let message = match message.find(" at line ") {
                    Some(i) => message[..i].to_string(),
                    None => message,
                };
                let (line, column, message) = explain_yaml_error(&chunk, line, column, message);
                errors.push(YamlError {
                    line: s + line,
                    column,
                    message,
                });
            }
        }
    }
    (docs, errors)
}

/// The parser's words for the two mistakes people make most, in plain
/// words and at the line to fix: a tab in the indentation, and a quote that
/// never closes (the parser only notices at the end of the file).
fn explain_yaml_error(
    chunk: &str,
    line: usize,
    column: usize,
    message: String,
) -> (usize, usize, String) {
    let lines: Vec<&str> = chunk.split('\n').collect();
    if message.contains("cannot start any token")
        && let Some(text) = lines.get(line.saturating_sub(1))
        && let Some(tab) = text.find('\t')
    {
        return (
            line,
            tab + 1,
            "a tab character: YAML indents with spaces only (replace the tab with spaces)".into(),
        );
    }
    if message.contains("unexpected end of stream")
        && let Some((idx, col, quote)) = unclosed_quote(&lines)
    {
        return (
            idx + 1,
            col + 1,
            format!("an unclosed {quote} quote: the string that opens here never ends"),
        );
    }
    (line, column, message)
}

/// The first line whose value opens a quoted string that the line does not close.
fn unclosed_quote(lines: &[&str]) -> Option<(usize, usize, char)> {
    for (idx, text) in lines.iter().enumerate() {
        let body = text.trim_start();
        let indent = text.len() - body.len();
        let value_at = if let Some(rest) = body.strip_prefix("- ") {
            indent + 2 + (rest.len() - rest.trim_start().len())
        } else if let Some(colon) = body.find(": ") {
            let after = &body[colon + 2..];
            indent + colon + 2 + (after.len() - after.trim_start().len())
        } else {
            continue;
        };
        let value = &text[value_at..];
        let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let rest = &value[1..];
        let closed = if quote == '"' {
            let mut escaped = false;
            rest.chars().any(|c| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
        } else {
            // '' is an escaped quote inside single quotes.
            rest.replace("''", "").contains('\'')
        };
        if !closed {
            return Some((idx, value_at, quote));
        }
    }
    None
}

fn kind_name(v: &Value) -> Option<(String, String)> {
    let kind = v.get("kind")?.as_str()?;
    let name = v.pointer("/metadata/name")?.as_str()?;
    Some((kind.to_string(), name.to_string()))
}

impl Tree {
    /// Reads and parses every YAML file under the manifest folders of `root`.
    pub fn load(root: &Path) -> (Self, Vec<Finding>) {
        Self::load_kept(root, None)
    }

    /// [`Tree::load`], taking the parse of a file whose bytes `kept` has
    /// seen parse cleanly before (the other files are parsed, and kept).
    pub fn load_kept(root: &Path, kept: Option<&Parses>) -> (Self, Vec<Finding>) {
        let (paths, earlier) = std::thread::scope(|s| {
            let earlier = s.spawn(|| kept.map(Parses::read).unwrap_or_default());
            let mut paths = Vec::new();
            for d in MANIFEST_DIRS {
                walk(&root.join(d), &mut paths);
            }
            let earlier = earlier
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (paths, earlier)
        });
        // Resolved once: each kustomization's resources are resolved against it.
        let canonical_root = root.canonicalize().ok();
        let parsed: Vec<Loaded> = paths
            .par_iter()
            .map(|p| {
                let rel = rel_string(root, p);
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let format = sops::Format::from_path(p);
                let digest = kept.map(|_| Parses::digest(format, &text));
                let (docs, claims_sops, findings) =
                    match digest.as_ref().and_then(|d| earlier.get(d)) {
                        Some(parse) => (parse.docs(), parse.claims_sops, Vec::new()),
                        None => {
                            let (docs, errors) = parse_stream(&text);
                            let findings = errors
                                .into_iter()
                                .map(|e| Finding {
                                    severity: Severity::Error,
                                    check: Check::Yaml,
                                    file: rel.clone(),
                                    line: Some(e.line),
                                    column: Some(e.column),
                                    object: None,
                                    path: None,
                                    message: e.message,
                                })
                                .collect();
                            let claims_sops =
                                docs.iter().any(|d| super::secrets::is_sops(&d.value))
                                    || sops::looks_encrypted(text.as_bytes(), format);
                            (docs, claims_sops, findings)
                        }
                    };
                let file = SourceFile {
                    rel,
                    text,
                    docs,
                    claims_sops,
                };
                // Which folders it includes, resolved beside the parse.
                let resources = match (&canonical_root, kustomization_dir(&file)) {
                    (Some(canonical_root), Some(dir)) => {
                        resource_dirs(root, canonical_root, dir, &file)
                    }
                    _ => Vec::new(),
                };
                Loaded {
                    file,
                    findings,
                    resources,
                    digest,
                }
            })
            .collect();
        if let Some(kept) = kept {
            // Only clean parses are kept: a file with a finding is parsed
            // again, so its findings are found again.
            kept.write_if_changed(
                &earlier,
                parsed
                    .iter()
                    .filter(|l| l.findings.is_empty())
                    .filter_map(|l| Some((l.digest.as_ref()?, &l.file))),
            );
        }
        let mut tree = Tree {
            root: root.to_path_buf(),
            ..Tree::default()
        };
        let mut findings = Vec::new();
        for (fi, loaded) in parsed.into_iter().enumerate() {
            let Loaded {
                file, resources, ..
            } = loaded;
            findings.extend(loaded.findings);
            for (di, doc) in file.docs.iter().enumerate() {
                if let Some(key) = kind_name(&doc.value) {
                    tree.by_name.entry(key).or_default().push((fi, di));
                }
            }
            if let Some(dir) = kustomization_dir(&file) {
                tree.kustomize_dirs.push(dir.to_string());
                for child in resources {
                    tree.included_by
                        .entry(child)
                        .or_default()
                        .push(dir.to_string());
                }
            }
            tree.files.push(file);
        }
        tree.kustomize_dirs.sort();
        tree.kustomize_dirs.dedup();
        (tree, findings)
    }

    /// The kustomize directories that no other one includes: building them
    /// builds everything they include.
    pub fn top_level_dirs(&self) -> Vec<String> {
        self.kustomize_dirs
            .iter()
            .filter(|d| !self.included_by.contains_key(*d))
            .cloned()
            .collect()
    }

    /// The kustomization file of a relative directory, if it has one.
    pub fn kustomization_file(&self, dir: &str) -> Option<String> {
        KUSTOMIZATION_FILES
            .iter()
            .map(|n| {
                if dir.is_empty() {
                    n.to_string()
                } else {
                    format!("{dir}/{n}")
                }
            })
            .find(|p| self.root.join(p).is_file())
    }

    /// Parsed documents of the files under `dir` (relative), recursively.
    pub fn docs_under(&self, dir: &str) -> impl Iterator<Item = (&SourceFile, &SourceDoc)> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.files
            .iter()
            .filter(move |f| f.rel.starts_with(&prefix))
            .flat_map(|f| f.docs.iter().map(move |d| (f, d)))
    }

    /// Where an object was written: the source document with the same kind
    /// and name, preferring one under `prefer_dir`, then one whose text holds
    /// `needle` (whose line is then returned). Falls back to `fallback`.
    pub fn locate(
        &self,
        object: &Value,
        prefer_dir: &str,
        needle: Option<&str>,
        fallback: &str,
    ) -> (String, Option<usize>) {
        let candidates: Vec<(usize, usize)> = kind_name(object)
            .and_then(|k| self.by_name.get(&k).cloned())
            .unwrap_or_default();
        let prefix = format!("{}/", prefer_dir.trim_end_matches('/'));
        let mut ranked: Vec<(usize, usize, usize)> = candidates
            .into_iter()
            .map(|(fi, di)| {
                let file = &self.files[fi];
                let doc = &file.docs[di];
                let mut score = 0;
                if file.rel.starts_with(&prefix) || prefer_dir.is_empty() {
                    score += 2;
                }
                if let Some(n) = needle
                    && self.needle_line(file, doc, n).is_some()
                {
                    score += 4;
                }
                (score, fi, di)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some((_, fi, di)) = ranked.first() {
            let file = &self.files[*fi];
            let doc = &file.docs[*di];
            let line = needle
                .and_then(|n| self.needle_line(file, doc, n))
                .unwrap_or(doc.start);
            return (file.rel.clone(), Some(line));
        }
        // Not written by name (generated or renamed): search the text.
        if let Some(n) = needle {
            for file in self.files.iter().filter(|f| f.rel.starts_with(&prefix)) {
                if let Some(i) = file
                    .text
                    .split('\n')
                    .position(|l| !l.trim_start().starts_with('#') && l.contains(n))
                {
                    return (file.rel.clone(), Some(i + 1));
                }
            }
        }
        (fallback.to_string(), None)
    }

    fn needle_line(&self, file: &SourceFile, doc: &SourceDoc, needle: &str) -> Option<usize> {
        file.text
            .split('\n')
            .enumerate()
            .skip(doc.start - 1)
            .take(doc.end + 1 - doc.start)
            .find(|(_, l)| !l.trim_start().starts_with('#') && l.contains(needle))
            .map(|(i, _)| i + 1)
    }
}

/// One file as [`Tree::load_kept`] read it.
struct Loaded {
    file: SourceFile,
    findings: Vec<Finding>,
    /// The folders it includes, when it is a kustomization.
    resources: Vec<String>,
    /// Its key among the kept parses, when they are kept.
    digest: Option<String>,
}

/// The parses of files kept between runs of one binary, by the file's bytes
/// (and the format its name gives), in one JSON file: after an edit, only
/// the edited files are parsed. A torn or foreign file is read as empty.
pub struct Parses {
    path: PathBuf,
    binary: String,
}

/// One file's parse as kept.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptParse {
    /// `(first line, last line, value)` of each document.
    docs: Vec<(usize, usize, Value)>,
    claims_sops: bool,
}

impl KeptParse {
    fn docs(&self) -> Vec<SourceDoc> {
        self.docs
            .iter()
            .map(|(start, end, value)| SourceDoc {
                start: *start,
                end: *end,
                value: value.clone(),
            })
            .collect()
    }
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct KeptParses {
    binary: String,
    files: HashMap<String, KeptParse>,
}

impl Parses {
    /// Kept in `dir`, for the binary `binary` names.
    pub fn new(dir: &Path, binary: &str) -> Self {
        Self {
            path: dir.join("sources-1.json"),
            binary: binary.to_string(),
        }
    }

    fn digest(format: sops::Format, text: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(format!("{format:?}").as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        hex::encode(h.finalize())
    }

    fn read(&self) -> HashMap<String, KeptParse> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<KeptParses>(&bytes).ok())
            .filter(|kept| kept.binary == self.binary)
            .map(|kept| kept.files)
            .unwrap_or_default()
    }

    /// Keeps exactly `now` (the files of this tree), unless that is what
    /// `earlier` already held. Best effort: a cache that cannot be written
    /// only costs time.
    fn write_if_changed<'a>(
        &self,
        earlier: &HashMap<String, KeptParse>,
        now: impl Iterator<Item = (&'a String, &'a SourceFile)>,
    ) {
        let now: Vec<(&String, &SourceFile)> = now.collect();
        if now.len() == earlier.len() && now.iter().all(|(d, _)| earlier.contains_key(*d)) {
            return;
        }
        let kept = KeptParses {
            binary: self.binary.clone(),
            files: now
                .into_iter()
                .map(|(digest, file)| {
                    let docs = file
                        .docs
                        .iter()
                        .map(|d| (d.start, d.end, d.value.clone()))
                        .collect();
                    let parse = KeptParse {
                        docs,
                        claims_sops: file.claims_sops,
                    };
                    (digest.clone(), parse)
                })
                .collect(),
        };
        if let (Ok(bytes), Some(dir)) = (serde_json::to_vec(&kept), self.path.parent()) {
            let _ = std::fs::create_dir_all(dir)
                .and_then(|()| exec::fsutil::write_cache_entry(&self.path, &bytes));
        }
    }
}

/// The folder of a kustomization file that is not a Component.
fn kustomization_dir(file: &SourceFile) -> Option<&str> {
    let name = file.rel.rsplit('/').next().unwrap_or_default();
    let is_component = file
        .docs
        .first()
        .and_then(|d| d.value.get("kind"))
        .and_then(Value::as_str)
        == Some("Component");
    (KUSTOMIZATION_FILES.contains(&name) && !is_component)
        .then(|| file.rel.rsplit_once('/').map_or("", |(d, _)| d))
}

/// The local directories a kustomization in `dir` lists in `resources`,
/// relative to the root (`canonical_root`, its symlinks resolved).
fn resource_dirs(root: &Path, canonical_root: &Path, dir: &str, file: &SourceFile) -> Vec<String> {
    let Some(resources) = file
        .docs
        .first()
        .and_then(|d| d.value.get("resources"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    resources
        .iter()
        .filter_map(Value::as_str)
        .filter(|r| !r.contains("://"))
        .filter_map(|r| {
            let canonical = root.join(dir).join(r).canonicalize().ok()?;
            canonical
                .is_dir()
                .then(|| rel_string(canonical_root, &canonical))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_is_parsed_with_lines() {
        let text = "a: 1\n---\nb: [\n---\nc: 3\n";
        let (docs, errors) = parse_stream(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].start, 5);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 4, "{errors:?}");
    }
}
