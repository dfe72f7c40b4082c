//! Placeholder values that the owner must still replace.
//!
//! Every value of a dev/prod encrypted Secret that has no real value yet holds
//! [`MARKER`] (`REPLACE-ME-...`), shaped as its consumer demands where the
//! consumer checks the shape (oauth2-proxy's 32-byte cookie secret, hcloud's
//! 64-character token). A placeholder must never reach a cluster: a LUKS
//! passphrase becomes the permanent key of every volume created with it. So
//! `bootstrap --cluster dev|prod` refuses while one remains, naming each, and
//! `validate` warns about those it can decrypt.

use base64::Engine as _;
use serde_json::Value;

/// What every placeholder value contains.
pub const MARKER: &str = "REPLACE-ME";

/// One value still holding the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unset {
    /// `namespace/name` of the Secret.
    pub secret: String,
    /// The `data`/`stringData` key (for `variables-cluster`, the variable).
    pub key: String,
}

/// The keys of a decrypted Secret whose value holds the marker (`data`
/// values are decoded first).
pub fn unset_in(secret: &Value) -> Vec<Unset> {
    let name = |p: &str| secret.pointer(p).and_then(Value::as_str).unwrap_or("");
    let id = format!(
        "{}/{}",
        secret
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default"),
        name("/metadata/name")
    );
    let mut out = Vec::new();
    for (field, encoded) in [("stringData", false), ("data", true)] {
        let Some(map) = secret.get(field).and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in map {
            let Some(text) = v.as_str() else { continue };
            let holds = if encoded {
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains(MARKER))
            } else {
                text.contains(MARKER)
            };
            if holds {
                out.push(Unset {
                    secret: id.clone(),
                    key: k.clone(),
                });
            }
        }
    }
    out
}

/// Whether `object` is a SOPS-encrypted Secret.
pub fn is_encrypted_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret") && object.get("sops").is_some()
}

/// The placeholders among `objects` (as a cluster applies them, still
/// encrypted), decrypting each encrypted Secret with `ids`. A Secret `ids`
/// cannot open is an error: its values cannot be vouched for.
pub fn unset_among(
    objects: &[&Value],
    ids: &sops::Identities,
) -> Result<Vec<Unset>, (String, sops::SopsError)> {
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| is_encrypted_secret(o)) {
        let plain = sops::decrypt_object(o, ids).map_err(|e| {
            let n = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("");
            (
                format!("{}/{}", n("/metadata/namespace"), n("/metadata/name")),
                e,
            )
        })?;
        out.extend(unset_in(&plain));
    }
    Ok(out)
}

/// The refusal, one line per Secret, with the file that holds it when
/// `file_of` knows it: `Secret flux-system/variables-cluster
/// (clusters/dev/variables/variables-cluster-secret.enc.yaml): hcloud_token, ...`.
pub fn refusal(cluster: &str, unset: &[Unset], file_of: impl Fn(&str) -> Option<String>) -> String {
    let mut by_secret: Vec<(String, Vec<String>)> = Vec::new();
    for u in unset {
        match by_secret.iter_mut().find(|(s, _)| *s == u.secret) {
            Some((_, keys)) => keys.push(u.key.clone()),
            None => by_secret.push((u.secret.clone(), vec![u.key.clone()])),
        }
    }
    let mut m = format!(
        "clusters/{cluster} still has {} placeholder value(s) ({MARKER}-...); set each with `cargo xtask secrets edit <file>` before bootstrapping:",
        unset.len()
    );
    for (secret, keys) in by_secret {
        let file = file_of(&secret)
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        m.push_str(&format!("\n  Secret {secret}{file}: {}", keys.join(", ")));
    }
    m
}

/// The `*.enc.yaml` file of `tree` that declares Secret `namespace/name`.
pub fn file_of_secret(tree: &crate::validate::tree::Tree, secret: &str) -> Option<String> {
    let (namespace, name) = secret.split_once('/')?;
    tree.files
        .iter()
        .filter(|f| f.rel.ends_with(".enc.yaml") || f.rel.ends_with(".enc.yml"))
        .find(|f| {
            f.docs.iter().any(|d| {
                let v = &d.value;
                v.get("kind").and_then(Value::as_str) == Some("Secret")
                    && v.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                    && v.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        == namespace
            })
        })
        .map(|f| f.rel.clone())
}

/// What bootstrap says for `rendered` (the cluster as its Kustomizations
/// apply it, Secrets still encrypted) when a Secret that `keys` (the
/// cluster's age identities) open holds a placeholder, or cannot be opened;
/// `None` when every value is set.
pub fn refusal_for(
    root: &std::path::Path,
    cluster: &str,
    rendered: &flux_render::RenderedCluster,
    keys: &[String],
) -> Option<String> {
    let ids = match sops::Identities::from_keys_text(&keys.join("\n")) {
        Ok(ids) => ids,
        Err(e) => return Some(format!("the {cluster} age identity: {e}")),
    };
    let objects: Vec<&Value> = rendered
        .root_objects
        .iter()
        .chain(rendered.kustomizations.iter().flat_map(|k| &k.objects))
        .collect();
    match unset_among(&objects, &ids) {
        Ok(unset) if unset.is_empty() => None,
        Ok(unset) => {
            let (tree, _) = crate::validate::tree::Tree::load(root);
            Some(refusal(cluster, &unset, |s| file_of_secret(&tree, s)))
        }
        Err((secret, e)) => Some(format!(
            "Secret {secret} of clusters/{cluster}: the {cluster} identity cannot decrypt it: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markers_are_found_in_string_data_and_decoded_data() {
        let s = json!({"kind": "Secret", "metadata": {"name": "v", "namespace": "flux-system"},
            "stringData": {"a": "REPLACE-ME-a", "b": "set", "c": 3},
            "data": {"d": base64::engine::general_purpose::STANDARD.encode("REPLACE-ME-d"), "e": "c2V0"}});
        let got = unset_in(&s);
        assert_eq!(
            got,
            vec![
                Unset {
                    secret: "flux-system/v".into(),
                    key: "a".into()
                },
                Unset {
                    secret: "flux-system/v".into(),
                    key: "d".into()
                }
            ]
        );
        assert_eq!(
            refusal("dev", &got, |_| Some("clusters/dev/v.enc.yaml".into())),
            "clusters/dev still has 2 placeholder value(s) (REPLACE-ME-...); set each with `cargo xtask secrets edit <file>` before bootstrapping:\n  Secret flux-system/v (clusters/dev/v.enc.yaml): a, d"
        );
    }
}
