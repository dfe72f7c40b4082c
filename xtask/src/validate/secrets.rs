//! Secrets hygiene: the shared leak checker ([`crate::leaks`]: no plaintext
//! Secret value in what ships or in what Flux would apply, every SOPS file
//! sound), and every SOPS file encrypted for exactly the age recipients
//! `.sops.yaml` demands.

use std::collections::BTreeSet;

use serde_json::Value;

use super::tree::Tree;
use super::{Check, Finding};

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

/// Runs the secrets checks: `gate` is the ship gate's verdict (the shared
/// leak checker over every file that would ship and every object the
/// render of each cluster produces, [`crate::leaks`]; MACs verified where
/// the user's keys open a file), then the recipients of each SOPS file
/// against its `.sops.yaml` rule. A cluster that does not render is
/// reported by the other checks, with its cause.
pub fn check(
    tree: &Tree,
    gate: Result<crate::ship::gate::Judged, oci_artifact::ArtifactError>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    match gate {
        Ok(judged) => findings.extend(
            judged
                .refusals
                .into_iter()
                .map(|r| Finding::error(Check::Secrets, &r.file, r.line, r.reason)),
        ),
        Err(e) => findings.push(Finding::error(
            Check::Secrets,
            "",
            None,
            format!("cannot read the files that would ship: {e}"),
        )),
    }
    let config = match crate::leaks::load_config(&tree.root) {
        Ok(config) => config,
        Err(_) => return findings, // the leak checker said why
    };
    for file in &tree.files {
        let mut recipients = BTreeSet::new();
        let mut sops_line = None;
        for doc in &file.docs {
            if is_sops(&doc.value) {
                recipients.extend(doc_recipients(&doc.value));
                sops_line.get_or_insert(doc.start);
            }
        }
        if !file.claims_sops {
            continue;
        }
        let line = sops_line.unwrap_or(1);
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
