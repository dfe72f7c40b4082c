//! The secrets gate: what may never leave the repository in an artifact.
//!
//! It looks at exactly the files that go into the artifact and refuses:
//! - a Kubernetes Secret (or a kustomize `secretGenerator` literal or file)
//!   holding plaintext values, and any file a `.sops.yaml` rule governs that
//!   is not SOPS-encrypted;
//! - a decrypted copy (`*.dec.*`, `*.decrypted*`);
//! - anything that looks like a private key (age identities, PEM private keys);
//! - a SOPS file that fails the integrity checker (truncated, tampered, a
//!   wrong MAC where the user's key opens it).
//!
//! There is no way around it: no flag ships plaintext.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use oci_artifact::tree::{Kind, TreeEntry};
use sops::{self, Config, Format, Identities, integrity};

/// One file the gate refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Relative to the packaged root, `/`-separated.
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// The first part of an age identity line, spelled in two halves so that
/// this source file itself holds no key-shaped text.
const AGE_IDENTITY_PREFIX: &str = concat!("AGE-SECRET", "-KEY-1");
const AGE_PLUGIN_IDENTITY_PREFIX: &str = concat!("AGE-PLUGIN", "-");

/// Checks the entries that go into the artifact (from
/// [`oci_artifact::tree::collect`] over `root`). `ids` open the SOPS files
/// they can for a full check; the others get the structural one.
pub fn check(root: &Path, entries: &[TreeEntry], ids: Option<&Identities>) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let config_path = root.join(".sops.yaml");
    let config = if config_path.is_file() {
        match Config::load(&config_path) {
            Ok(config) => Some(config),
            Err(e) => {
                refusals.push(Refusal {
                    file: ".sops.yaml".into(),
                    line: None,
                    reason: format!(
                        "cannot be read ({e}), so the files it governs cannot be checked"
                    ),
                });
                None
            }
        }
    } else {
        None
    };
    let shipped: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    // Files are independent: check them on a few threads, in entry order.
    let files: Vec<&TreeEntry> = entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::File { .. }))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = files.len().div_ceil(threads).max(1);
    let config = config.as_ref();
    let shipped = &shipped;
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .flat_map(|entry| check_file(root, entry, config, shipped, ids))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(found) => refusals.extend(found),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    refusals
}

/// The refusals for one shipped file.
fn check_file(
    root: &Path,
    entry: &TreeEntry,
    config: Option<&Config>,
    shipped: &BTreeSet<&str>,
    ids: Option<&Identities>,
) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    if !matches!(entry.kind, Kind::File { .. }) {
        return refusals;
    }
    let refuse = |line, reason: String| Refusal {
        file: entry.name.clone(),
        line,
        reason,
    };
    if let Some(why) = decrypted_copy(&entry.name) {
        refusals.push(refuse(None, why));
        return refusals;
    }
    let bytes = match std::fs::read(&entry.path) {
        Ok(bytes) => bytes,
        Err(e) => {
            refusals.push(refuse(None, format!("cannot be read: {e}")));
            return refusals;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    if let Some((line, what)) = private_key(&text) {
        refusals.push(refuse(
            Some(line),
            format!("holds {what}: private keys never leave your machine"),
        ));
        return refusals;
    }
    let format = Format::from_path(&entry.path);
    let manifest = matches!(format, Format::Yaml | Format::Json);
    if sops::looks_encrypted(&bytes, format) {
        let report = integrity::check(&bytes, format, ids);
        refusals.extend(
            report
                .findings
                .into_iter()
                .map(|f| refuse(f.line, format!("a broken SOPS file: {}", f.message))),
        );
        return refusals;
    }
    let governed = config
        .as_ref()
        .is_some_and(|c| sops::files::is_managed(root, c, &entry.path));
    if governed {
        refusals.push(refuse(
            None,
            "a .sops.yaml rule governs this file but it is not SOPS-encrypted: run `cargo xtask secrets encrypt` on it".into(),
        ));
        return refusals;
    }
    // Only a file that can spell `Secret` or `secretGenerator` can hold
    // either: the others are not parsed.
    if manifest && sops::might_hold_secret(&bytes) {
        refusals.extend(
            plaintext_secrets(&text, &entry.name, shipped)
                .into_iter()
                .map(|(line, reason)| refuse(line, reason)),
        );
    }
    refusals
}

/// `*.dec.*`, `*.dec`, `*.decrypted`, `*.decrypted.*`: the names decrypted
/// copies get (`sops -d x.enc.yaml > x.dec.yaml`).
fn decrypted_copy(name: &str) -> Option<String> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let parts: Vec<&str> = file.split('.').skip(1).collect();
    parts
        .iter()
        .any(|p| matches!(*p, "dec" | "decrypted"))
        .then(|| "a decrypted copy of a secret: plaintext never ships; delete it".to_string())
}

/// The line and kind of the first private key in the text.
fn private_key(text: &str) -> Option<(usize, &'static str)> {
    for (idx, line) in text.lines().enumerate() {
        if line.contains(AGE_IDENTITY_PREFIX) || line.contains(AGE_PLUGIN_IDENTITY_PREFIX) {
            return Some((idx + 1, "an age private key"));
        }
        let Some(begin) = line.find("-----BEGIN ") else {
            continue;
        };
        let label = line[begin + 11..].split("-----").next().unwrap_or("");
        if label.contains("PRIVATE KEY") {
            return Some((idx + 1, "a PEM private key"));
        }
    }
    None
}

/// Plaintext values in Secrets and in kustomize secretGenerators of one
/// manifest file. A Secret whose every value holds a `${var}` placeholder is
/// filled by Flux from an encrypted Secret and passes.
fn plaintext_secrets(
    text: &str,
    name: &str,
    shipped: &BTreeSet<&str>,
) -> Vec<(Option<usize>, String)> {
    let (docs, _) = crate::validate::tree::parse_stream(text);
    let mut out = Vec::new();
    for doc in &docs {
        let v = &doc.value;
        if v.get("kind").and_then(Value::as_str) == Some("Secret") {
            let leaked: Vec<String> = ["data", "stringData"]
                .iter()
                .filter_map(|field| v.get(*field).and_then(Value::as_object).map(|m| (field, m)))
                .flat_map(|(field, m)| {
                    m.iter()
                        .filter(|(_, value)| !placeholder(value))
                        .map(move |(key, _)| format!("{field}.{key}"))
                })
                .collect();
            if !leaked.is_empty() {
                let id = object_name(v);
                out.push((
                    Some(doc.start),
                    format!(
                        "Secret {id} holds plaintext values ({}): SOPS-encrypt it (`cargo xtask secrets encrypt`) or use ${{var}} placeholders",
                        leaked.join(", ")
                    ),
                ));
            }
        }
        let is_kustomization = name.rsplit('/').next().is_some_and(|f| {
            matches!(
                f,
                "kustomization.yaml" | "kustomization.yml" | "Kustomization"
            )
        });
        if !is_kustomization {
            continue;
        }
        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
        for generator in v
            .get("secretGenerator")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let gen_name = generator.get("name").and_then(Value::as_str).unwrap_or("?");
            let literals = generator
                .get("literals")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|l| !l.as_str().is_some_and(|l| l.contains("${")))
                .count();
            if literals > 0 {
                out.push((
                    Some(doc.start),
                    format!("secretGenerator {gen_name} has {literals} plaintext literal(s)"),
                ));
            }
            for source in ["files", "envs"] {
                for file in generator
                    .get(source)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    // `key=path` or `path`, relative to the kustomization.
                    let path = file.rsplit_once('=').map_or(file, |(_, p)| p);
                    let rel = if dir.is_empty() {
                        path.to_string()
                    } else {
                        format!("{dir}/{path}")
                    };
                    if shipped.contains(rel.as_str()) {
                        out.push((
                            Some(doc.start),
                            format!(
                                "secretGenerator {gen_name} reads plaintext from {rel}, which would ship"
                            ),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// An empty value, or one that Flux fills from a `${var}`.
fn placeholder(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty() || s.contains("${"),
        Value::Null => true,
        _ => false,
    }
}

fn object_name(v: &Value) -> String {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)");
    match v.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_about_the_sops_format_is_not_a_sops_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("NOTES.md"),
            "Values look like `ENC[AES256_GCM,data:...,type:str]` under a `sops:` block.\n",
        )
        .unwrap();
        let entries = oci_artifact::tree::collect(dir.path()).unwrap();
        assert!(check(dir.path(), &entries, None).is_empty());
    }

    #[test]
    fn decrypted_copies_are_named_so() {
        assert!(decrypted_copy("clusters/local/x.dec.yaml").is_some());
        assert!(decrypted_copy("a/x.enc.yaml.dec").is_some());
        assert!(decrypted_copy("a/x.decrypted.json").is_some());
        assert!(decrypted_copy("a/x.enc.yaml").is_none());
        assert!(decrypted_copy("a/decoder.yaml").is_none());
    }

    #[test]
    fn private_keys_are_found_by_their_armour() {
        let age = format!("# created: now\n{}QQQ\n", AGE_IDENTITY_PREFIX);
        assert_eq!(private_key(&age), Some((2, "an age private key")));
        let pem = "a: |\n  -----BEGIN EC PRIVATE KEY-----\n";
        assert_eq!(private_key(pem), Some((2, "a PEM private key")));
        let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----";
        assert!(private_key(openssh).is_some());
        assert!(private_key("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----").is_some());
        assert_eq!(private_key("-----BEGIN PUBLIC KEY-----\n"), None);
        assert_eq!(private_key("-----BEGIN CERTIFICATE-----\n"), None);
    }

    #[test]
    fn placeholder_secrets_pass_and_plaintext_ones_do_not() {
        let shipped = BTreeSet::new();
        let ok = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  user: ${user:=admin}\n  password: ${password}\n";
        assert!(plaintext_secrets(ok, "a.yaml", &shipped).is_empty());
        let leak = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  namespace: n\nstringData:\n  user: admin\n  password: ${password}\n";
        let found = plaintext_secrets(leak, "a.yaml", &shipped);
        assert_eq!(found.len(), 1);
        assert!(found[0].1.contains("Secret n/a") && found[0].1.contains("stringData.user"));
    }

    #[test]
    fn only_files_that_can_spell_a_secret_are_parsed_and_no_spelling_is_missed() {
        let spells = |t: &str| sops::might_hold_secret(t.as_bytes());
        // Each spelling passes the filter, and the parser then finds the leak.
        for (t, name) in [
            ("kind: Secret\nstringData:\n  a: b\n", "a.yaml"),
            (
                "{\"kind\":\"Secret\",\"stringData\":{\"a\":\"b\"}}",
                "a.json",
            ),
            ("kind: 'Secret'\nstringData:\n  a: b\n", "a.yaml"),
            ("kind: \"\\x53ecret\"\nstringData:\n  a: b\n", "a.yaml"),
            ("kind: \"\\u0053ecret\"\nstringData:\n  a: b\n", "a.yaml"),
            ("kind: !!str Secret\nstringData:\n  a: b\n", "a.yaml"),
            (
                "secretGenerator:\n- name: s\n  literals: [a=b]\n",
                "kustomization.yaml",
            ),
        ] {
            assert!(spells(t), "{t}");
            assert!(
                !plaintext_secrets(t, name, &BTreeSet::new()).is_empty(),
                "{t}"
            );
        }
        // The same pre-check before a file is read as SOPS.
        assert!(!sops::might_be_sops(b"kind: ConfigMap\ndata:\n  a: b\n"));
        for t in [
            "sops:\n  mac: x\n",
            "{\"a\":\"ENC[AES256_GCM,data:x]\"}",
            "sops_mac=x\n",
            "\"\\x73ops\": {}\n",
        ] {
            assert!(sops::might_be_sops(t.as_bytes()), "{t}");
        }
        let utf16: Vec<u8> = "kind: Secret"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(sops::might_hold_secret(&utf16));
        for t in [
            "existingSecret: x\nsecretRef:\n  name: s\n",
            "kind: ConfigMap\n",
            "kind: SecretStore\n",
        ] {
            assert!(!spells(t), "{t}");
        }
    }

    #[test]
    fn secret_generators_with_plaintext_are_found() {
        let shipped: BTreeSet<&str> = ["app/pw.txt"].into_iter().collect();
        let k = "secretGenerator:\n  - name: s\n    literals: [\"a=b\", \"c=${c}\"]\n    files: [\"pw=pw.txt\"]\n";
        let found = plaintext_secrets(k, "app/kustomization.yaml", &shipped);
        assert_eq!(found.len(), 2, "{found:?}");
    }
}
