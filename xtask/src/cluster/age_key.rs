//! The `sops-age` Secret: the raw age secret key line(s) of the user's
//! age identities whose public key is a recipient of the cluster's rule in
//! `.sops.yaml`. Read from the user's keys (as sops finds them), never from
//! the repository.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

use sops;

/// Key of the Secret entry Flux's kustomize-controller reads (`*.agekey`).
pub const SECRET_KEY: &str = "age.agekey";
pub const SECRET_NAME: &str = "sops-age";
pub const SECRET_NAMESPACE: &str = "flux-system";

/// The recipients `.sops.yaml` uses for the cluster's secrets
/// (`clusters/<cluster>/*.enc.yaml`).
pub fn recipients(root: &Path, cluster: &str) -> anyhow::Result<Vec<String>> {
    let (path, config) = sops::Config::find(root)?
        .ok_or_else(|| anyhow::anyhow!("no .sops.yaml found from {}", root.display()))?;
    let dir = path.parent().unwrap_or(root);
    let probe = dir.join(format!("clusters/{cluster}/secret.enc.yaml"));
    let rule = config.rule_for(dir, &probe)?;
    Ok(rule.age.clone())
}

/// Where the identities come from, as sops looks: `SOPS_AGE_KEY`,
/// `SOPS_AGE_KEY_FILE`, then the default keys file.
pub fn key_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(t) = std::env::var_os("SOPS_AGE_KEY") {
        out.push(("SOPS_AGE_KEY".into(), t.to_string_lossy().into_owned()));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        files.push(p.into());
    }
    if let Some(p) = sops::default_keys_file() {
        files.push(p);
    }
    for f in files {
        if let Ok(t) = std::fs::read_to_string(&f) {
            out.push((f.display().to_string(), t));
        }
    }
    out
}

/// The secret key lines in `text` whose public key is one of `recipients`.
pub fn matching_keys(text: &str, recipients: &[String]) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.starts_with("AGE-SECRET-KEY-"))
        .filter_map(|w| {
            let id: age::x25519::Identity = w.parse().ok()?;
            let public = id.to_public().to_string();
            recipients
                .iter()
                .any(|r| r.trim() == public)
                .then(|| w.to_string())
        })
        .collect()
}

/// The local identities for `cluster`, or an error saying how to make one.
pub fn local_keys(root: &Path, cluster: &str) -> anyhow::Result<Vec<String>> {
    let recipients = recipients(root, cluster)?;
    let sources = key_sources();
    select(&sources, &recipients, cluster).map_err(|e| {
        let looked: Vec<String> = if sources.is_empty() {
            vec![
                sops::default_keys_file()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the default keys file".into()),
            ]
        } else {
            e.looked.clone()
        };
        anyhow::anyhow!(
            "{}: run `cargo xtask secrets keygen --env {cluster}`",
            NoIdentity { looked, ..e }
        )
    })
}

/// No identity of the user matches the cluster's recipient. Names where
/// it looked and the recipient, never a key.
#[derive(Debug, thiserror::Error)]
#[error(
    "no age identity for the {cluster} environment (recipient {}) in {}",
    recipients.join(", "),
    if looked.is_empty() { "SOPS_AGE_KEY or SOPS_AGE_KEY_FILE (neither is set)".to_string() } else { looked.join(", ") }
)]
pub struct NoIdentity {
    pub cluster: String,
    pub recipients: Vec<String>,
    /// The sources looked at (names only).
    pub looked: Vec<String>,
}

/// The identities of `sources` ((name, text) pairs) whose public key is one
/// of `recipients`, each once; every other identity is left out.
pub fn select(
    sources: &[(String, String)],
    recipients: &[String],
    cluster: &str,
) -> Result<Vec<String>, NoIdentity> {
    let mut keys: Vec<String> = Vec::new();
    for (_, text) in sources {
        for k in matching_keys(text, recipients) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    if keys.is_empty() {
        return Err(NoIdentity {
            cluster: cluster.to_string(),
            recipients: recipients.to_vec(),
            looked: sources.iter().map(|(n, _)| n.clone()).collect(),
        });
    }
    Ok(keys)
}

/// `SOPS_AGE_KEY`, then the file `SOPS_AGE_KEY_FILE` names: where a
/// bootstrap of a shared cluster takes its identities (never the default
/// keys file, which may hold keys of other environments).
pub fn env_sources() -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(t) = std::env::var_os("SOPS_AGE_KEY").filter(|t| !t.is_empty()) {
        out.push(("SOPS_AGE_KEY".into(), t.to_string_lossy().into_owned()));
    }
    if let Some(p) = std::env::var_os("SOPS_AGE_KEY_FILE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(p);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!("SOPS_AGE_KEY_FILE={}: cannot read it: {e}", path.display())
        })?;
        out.push((format!("SOPS_AGE_KEY_FILE={}", path.display()), text));
    }
    Ok(out)
}

/// The `flux-system/sops-age` Secret holding `keys` under `age.agekey`.
pub fn sops_age_secret(keys: &[String]) -> Value {
    let mut text = keys.join("\n");
    text.push('\n');
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": SECRET_NAME, "namespace": SECRET_NAMESPACE },
        "type": "Opaque",
        "data": { SECRET_KEY: base64::engine::general_purpose::STANDARD.encode(text) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_of_the_environment_are_taken() {
        let (k1, p1) = sops::generate_identity();
        let (k2, _p2) = sops::generate_identity();
        let text = format!("# created: now\n# public key: {p1}\n{k1}\n\n{k2}\n");
        assert_eq!(
            matching_keys(&text, std::slice::from_ref(&p1)),
            vec![k1.clone()]
        );
        assert!(matching_keys(&text, &["age1nope".into()]).is_empty());
    }

    #[test]
    fn secret_carries_every_line_base64() {
        let (k1, _) = sops::generate_identity();
        let (k2, _) = sops::generate_identity();
        let s = sops_age_secret(&[k1.clone(), k2.clone()]);
        assert_eq!(s["metadata"]["name"], "sops-age");
        assert_eq!(s["metadata"]["namespace"], "flux-system");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s["data"]["age.agekey"].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), format!("{k1}\n{k2}\n"));
        // The decoded text is a valid keys file for our own sops engine.
        let text = format!("{k1}\n{k2}\n");
        assert_eq!(sops::Identities::from_keys_text(&text).unwrap().len(), 2);
    }

    #[test]
    fn only_the_identity_of_the_cluster_recipient_is_selected() {
        let (dev, dev_pub) = sops::generate_identity();
        let (prod, _) = sops::generate_identity();
        let sources = vec![
            ("SOPS_AGE_KEY".to_string(), format!("{prod}\n{dev}\n")),
            (
                "SOPS_AGE_KEY_FILE=/k".to_string(),
                format!("# dev\n{dev}\n"),
            ),
        ];
        let keys = select(&sources, std::slice::from_ref(&dev_pub), "dev").unwrap();
        assert_eq!(keys, vec![dev.clone()], "only dev's, once");
        let err = select(&sources[..1], &["age1other".into()], "prod").unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            "no age identity for the prod environment (recipient age1other) in SOPS_AGE_KEY"
        );
        assert!(!text.contains("AGE-SECRET-KEY"), "never prints a key");
        let none = select(&[], &["age1x".into()], "dev")
            .unwrap_err()
            .to_string();
        assert!(none.contains("neither is set"), "{none}");
    }

    #[test]
    fn repo_rule_for_local_has_a_recipient() {
        let r = recipients(&crate::test_checkout(), "local").unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].starts_with("age1"));
    }
}
