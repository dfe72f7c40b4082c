//! Secrets hygiene: every `kind: Secret` carries SOPS metadata (unless it
//! holds only `${var}` placeholders or the allow-list exempts it), and every
//! SOPS file is encrypted for exactly the age recipients `.sops.yaml` demands.

use std::collections::BTreeSet;

use serde_json::Value;

use std::path::Path;

use super::tree::{SourceDoc, SourceFile, Tree};
use super::{AllowList, Check, Finding};

/// The age recipients a SOPS document is encrypted for.
pub fn doc_recipients(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(sops) = doc.get("sops") else {
        return out;
    };
    let mut collect = |list: Option<&Value>| {
        for entry in list.and_then(Value::as_array).into_iter().flatten() {
            if let Some(r) = entry.get("recipient").and_then(Value::as_str) {
                out.insert(r.to_string());
            }
        }
    };
    collect(sops.get("age"));
    for g in sops
        .get("key_groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect(g.get("age"));
    }
    out
}

/// True when the document carries SOPS metadata.
pub fn is_sops(doc: &Value) -> bool {
    doc.get("sops")
        .is_some_and(|s| s.get("mac").is_some() || s.get("age").is_some())
}

/// A Secret that Flux fills from variables: some value holds a `${var}`
/// placeholder (its other values are then configuration such as a user
/// name), or it has no value at all.
fn only_placeholders(doc: &Value) -> bool {
    let mut values = Vec::new();
    for key in ["data", "stringData"] {
        if let Some(m) = doc.get(key).and_then(Value::as_object) {
            values.extend(m.values());
        }
    }
    values.is_empty()
        || values.iter().any(|v| match v {
            Value::String(s) => !super::substitute::references(s).is_empty(),
            _ => false,
        })
}

fn secret_doc(doc: &SourceDoc) -> bool {
    doc.value.get("kind").and_then(Value::as_str) == Some("Secret")
        && doc
            .value
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|a| a == "v1")
}

/// The integrity checker over one SOPS file: its structure always, every
/// value and the MAC where one of the user's identities opens it. A file
/// nobody here can open is not a finding: it is someone else's.
fn integrity(file: &SourceFile, line: usize, ids: Option<&sops::Identities>) -> Vec<Finding> {
    use sops::{Format, integrity};
    let rel = file.rel.as_str();
    integrity::check(file.text.as_bytes(), Format::from_path(Path::new(rel)), ids)
        .findings
        .into_iter()
        .map(|f| {
            let hint = if f.message.contains("MAC mismatch") {
                " (the file was changed without re-encrypting; `cargo xtask secrets edit` it)"
            } else {
                ""
            };
            Finding::error(
                Check::Secrets,
                rel,
                Some(f.line.unwrap_or(line)),
                format!("{}{hint}", f.message),
            )
        })
        .collect()
}

/// Runs the secrets checks over the parsed tree.
/// MACs are verified with `identities` where they open a file.
pub fn check(
    tree: &Tree,
    allow: &AllowList,
    identities: Option<&sops::Identities>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let sops_path = tree.root.join(".sops.yaml");
    let config = if sops_path.is_file() {
        match sops::Config::load(&sops_path) {
            Ok(c) => Some(c),
            Err(e) => {
                findings.push(Finding::error(
                    Check::Secrets,
                    ".sops.yaml",
                    None,
                    format!("cannot read .sops.yaml: {e}"),
                ));
                None
            }
        }
    } else {
        None
    };
    for file in &tree.files {
        let mut recipients = BTreeSet::new();
        let mut sops_line = None;
        for doc in &file.docs {
            if is_sops(&doc.value) {
                recipients.extend(doc_recipients(&doc.value));
                sops_line.get_or_insert(doc.start);
                continue;
            }
            if !secret_doc(doc) {
                continue;
            }
            let name = doc
                .value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let namespace = doc
                .value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str);
            if only_placeholders(&doc.value) || allow.allows_secret(&file.rel, name) {
                continue;
            }
            let mut f = Finding::error(
                Check::Secrets,
                &file.rel,
                Some(doc.start),
                "Secret is not SOPS-encrypted: encrypt it (`cargo xtask secrets encrypt`), use ${var} placeholders, or exempt it in .validate-allow.yaml".to_string(),
            );
            f.object = Some(match namespace {
                Some(ns) => format!("Secret {ns}/{name}"),
                None => format!("Secret {name}"),
            });
            findings.push(f);
        }
        let claims_sops = sops_line.is_some()
            || sops::looks_encrypted(
                file.text.as_bytes(),
                sops::Format::from_path(Path::new(&file.rel)),
            );
        if !claims_sops {
            let governed = config.as_ref().is_some_and(|c| {
                sops::files::is_managed(&tree.root, c, &tree.root.join(&file.rel))
            });
            if governed {
                findings.push(Finding::error(
                    Check::Secrets,
                    &file.rel,
                    None,
                    "a .sops.yaml rule governs this file but it is not SOPS-encrypted (run `cargo xtask secrets encrypt`)".into(),
                ));
            }
            continue;
        }
        let line = sops_line.unwrap_or(1);
        findings.extend(integrity(file, line, identities));
        let Some(config) = &config else {
            findings.push(Finding::error(
                Check::Secrets,
                &file.rel,
                Some(line),
                "SOPS-encrypted file but no .sops.yaml at the repository root".into(),
            ));
            continue;
        };
        let Some(rule) = config.matching_rule(&tree.root, &tree.root.join(&file.rel)) else {
            findings.push(Finding::error(
                Check::Secrets,
                &file.rel,
                Some(line),
                "no .sops.yaml creation rule matches this file".into(),
            ));
            continue;
        };
        let wanted: BTreeSet<String> = rule.age.iter().cloned().collect();
        if wanted != recipients {
            let missing: Vec<&String> = wanted.difference(&recipients).collect();
            let extra: Vec<&String> = recipients.difference(&wanted).collect();
            let mut msg = String::from("encrypted for the wrong age recipients:");
            if !missing.is_empty() {
                msg.push_str(&format!(" missing {}", join(&missing)));
            }
            if !extra.is_empty() {
                msg.push_str(&format!(
                    "{} not in .sops.yaml {}",
                    if missing.is_empty() { "" } else { ";" },
                    join(&extra)
                ));
            }
            msg.push_str(" (re-encrypt with `cargo xtask secrets rotate`)");
            findings.push(Finding::error(Check::Secrets, &file.rel, Some(line), msg));
        }
    }
    findings
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}
