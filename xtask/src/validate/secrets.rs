//! Secrets hygiene: every `kind: Secret` carries SOPS metadata (unless it
//! holds only `${var}` placeholders or the allow-list exempts it), and every
//! SOPS file is encrypted for exactly the age recipients `.sops.yaml` demands.

use std::collections::BTreeSet;

use serde_json::Value;

use super::tree::{SourceDoc, Tree};
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

/// Verifies a SOPS file's MAC when one of the user's identities opens it.
/// A file nobody here can open is not a finding: it is someone else's.
fn verify_mac(
    tree: &Tree,
    rel: &str,
    line: usize,
    ids: &crate::sops::Identities,
) -> Option<Finding> {
    use crate::sops::{DecryptOptions, Format, SopsError};
    let path = tree.root.join(rel);
    let bytes = std::fs::read(&path).ok()?;
    match crate::sops::decrypt(
        &bytes,
        Format::from_path(&path),
        ids,
        DecryptOptions::default(),
    ) {
        Err(e @ (SopsError::MacMismatch | SopsError::NoMac)) => Some(Finding::error(
            Check::Secrets,
            rel,
            Some(line),
            format!(
                "{e} (the file was changed without re-encrypting; `cargo xtask secrets edit` it)"
            ),
        )),
        Err(SopsError::Malformed { reason }) => Some(Finding::error(
            Check::Secrets,
            rel,
            Some(line),
            format!("malformed SOPS file: {reason}"),
        )),
        _ => None,
    }
}

/// Runs the secrets checks over the parsed tree.
/// MACs are verified with `identities` where they open a file.
pub fn check(
    tree: &Tree,
    allow: &AllowList,
    identities: Option<&crate::sops::Identities>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let sops_path = tree.root.join(".sops.yaml");
    let config = if sops_path.is_file() {
        match crate::sops::Config::load(&sops_path) {
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
        let Some(line) = sops_line else { continue };
        if let Some(ids) = identities
            && let Some(finding) = verify_mac(tree, &file.rel, line, ids)
        {
            findings.push(finding);
        }
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
