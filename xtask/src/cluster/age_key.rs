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
    let mut keys: Vec<String> = Vec::new();
    for (_, text) in &sources {
        for k in matching_keys(text, &recipients) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    if keys.is_empty() {
        let looked: Vec<String> = if sources.is_empty() {
            vec![
                sops::default_keys_file()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the default keys file".into()),
            ]
        } else {
            sources.into_iter().map(|(s, _)| s).collect()
        };
        anyhow::bail!(
            "no age identity for the {cluster} environment (recipient {}) in {}: run `cargo xtask secrets keygen --env {cluster}`",
            recipients.join(", "),
            looked.join(", ")
        );
    }
    Ok(keys)
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
    fn repo_rule_for_local_has_a_recipient() {
        let r = recipients(&crate::test_checkout(), "local").unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].starts_with("age1"));
    }
}
