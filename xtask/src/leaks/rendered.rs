//! What Flux would apply: every object the render (`flux-render`, the engine
//! behind `build`) produces for every cluster, after generators, patches,
//! components and postBuild substitution. It renders without keys, so a
//! variable that comes from a SOPS-encrypted Secret renders as its
//! `sops-redacted-<name>` token: a Secret value made of such tokens alone
//! was produced by substitution from SOPS sources; anything else in it is
//! plaintext that ships.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Value;

use flux_render::kustomize::Builder;
use flux_render::{REDACTED_PREFIX, RenderOptions, RenderedCluster};

use super::files::plaintext_keys;
use super::{Refusal, object_name};
use crate::validate::AllowList;

/// What the render of every cluster says.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    /// Plaintext that Flux would apply.
    pub refusals: Vec<Refusal>,
    /// The clusters that do not render, so were not judged (the gate
    /// refuses them; `validate` reports their cause on its own).
    pub unrendered: Vec<Refusal>,
}

/// Renders each of `clusters` of `root` and judges what it would apply;
/// `kustomize` runs the builds (the shared cache), else a plain kustomize.
pub fn check(
    root: &Path,
    clusters: &[String],
    allow: &AllowList,
    kustomize: Option<Arc<Builder>>,
) -> Verdict {
    let opts = RenderOptions {
        kustomize,
        ..Default::default()
    };
    let results: Vec<Result<Vec<Refusal>, Refusal>> = clusters
        .par_iter()
        .map(|cluster| match flux_render::render_cluster(root, cluster, &opts) {
            Ok(rendered) => Ok(check_cluster(&rendered, allow)),
            Err(e) => Err(Refusal {
                file: format!("clusters/{cluster}"),
                line: None,
                reason: format!(
                    "the cluster does not render ({e}), so what Flux would apply cannot be checked: fix it (`cargo xtask build --cluster {cluster}` shows the error)"
                ),
                object: None,
            }),
        })
        .collect();
    let mut verdict = Verdict::default();
    for r in results {
        match r {
            Ok(found) => verdict.refusals.extend(found),
            Err(unrendered) => verdict.unrendered.push(unrendered),
        }
    }
    verdict.refusals.sort();
    verdict.refusals.dedup();
    verdict
}

/// [`check`], remembered: the render depends only on the files that ship
/// (the artifact is all Flux has), the clusters, kustomize and this binary,
/// so a verdict is kept under a key of all of them in `cache` and a tree
/// that did not change is not rendered again. `files` are the shipped
/// files' names and bytes.
pub fn check_cached<'a>(
    root: &Path,
    clusters: &[String],
    allow: &AllowList,
    files: impl Iterator<Item = (&'a str, &'a [u8])>,
    cache: Option<&Path>,
    kustomize: Option<Arc<Builder>>,
) -> Verdict {
    let Some(cache) = cache else {
        return check(root, clusters, allow, kustomize);
    };
    let key = key(clusters, files);
    let path = cache.join(format!("{key}.json"));
    if let Some(hit) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Verdict>(&b).ok())
    {
        return hit;
    }
    let verdict = check(root, clusters, allow, kustomize);
    // A cluster that did not render may render with the same files later
    // (kustomize installed): only a full verdict is kept.
    if verdict.unrendered.is_empty() {
        store(cache, &path, &verdict);
    }
    verdict
}

/// How many verdicts a cache keeps (the newest).
const KEPT: usize = 32;

fn store(cache: &Path, path: &Path, verdict: &Verdict) {
    let Ok(bytes) = serde_json::to_vec(verdict) else {
        return;
    };
    if std::fs::create_dir_all(cache).is_err()
        || exec::fsutil::write_atomic_unsynced(path, &bytes).is_err()
    {
        return; // a cache that cannot be written is only slower
    }
    let mut entries: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() > KEPT {
        entries.sort();
        for (_, old) in &entries[..entries.len() - KEPT] {
            let _ = std::fs::remove_file(old);
        }
    }
}

fn key<'a>(clusters: &[String], files: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut add = |part: &[u8]| {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    };
    add(b"xtask-render-verdict-1");
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| crate::file_identity(&p));
    add(exe.unwrap_or_default().as_bytes());
    let kustomize = match exec::tools::kustomize() {
        Ok(exec::tools::Kustomize::Standalone(p) | exec::tools::Kustomize::Kubectl(p)) => {
            crate::file_identity(&p)
        }
        Err(_) => None,
    };
    add(kustomize.unwrap_or_default().as_bytes());
    for c in clusters {
        add(c.as_bytes());
    }
    for (name, bytes) in files {
        add(name.as_bytes());
        add(bytes);
    }
    hex::encode(h.finalize())
}

/// Where an object comes from, for the message.
struct Origin<'a> {
    place: String,
    /// The redaction tokens of the variables that came from SOPS Secrets,
    /// longest first (so that `-ab` is not read as `-a` and `b`).
    tokens: Vec<String>,
    objects: &'a [Value],
}

/// The refusals for one rendered cluster.
pub fn check_cluster(rendered: &RenderedCluster, allow: &AllowList) -> Vec<Refusal> {
    let cluster = &rendered.name;
    let mut origins = vec![Origin {
        place: format!("clusters/{cluster}"),
        tokens: Vec::new(),
        objects: &rendered.root_objects,
    }];
    for k in &rendered.kustomizations {
        origins.push(Origin {
            place: format!(
                "{} (cluster {cluster}, Kustomization {}/{})",
                k.flux.path.display(),
                k.flux.namespace,
                k.flux.name
            ),
            tokens: sops_tokens(&k.variables),
            objects: &k.objects,
        });
    }
    let mut out = Vec::new();
    // Secret `namespace/name` -> its plaintext keys, for valuesFrom.
    let mut plaintext: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for origin in &origins {
        for object in origin.objects.iter().filter(|o| kind(o) == Some("Secret")) {
            let keys = secret_plaintext(object, &origin.tokens, allow);
            if keys.is_empty() {
                continue;
            }
            let fix = if object.get("sops").is_some() {
                "re-encrypt it with the repository's rule (`cargo xtask secrets encrypt`)"
            } else {
                "SOPS-encrypt the values, or let Flux fill each one wholly from a SOPS-encrypted Secret with a `${var}` (no literal default)"
            };
            out.push(Refusal {
                file: origin.place.clone(),
                line: None,
                reason: format!(
                    "Flux would apply Secret {} with plaintext values ({}): {fix}",
                    object_name(object),
                    keys.join(", ")
                ),
                object: Some(super::secret_key(object)),
            });
            plaintext.insert(namespaced(object), keys);
        }
    }
    for origin in &origins {
        for release in origin
            .objects
            .iter()
            .filter(|o| kind(o) == Some("HelmRelease"))
        {
            let namespace = namespace(release);
            for from in release
                .pointer("/spec/valuesFrom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|f| f.get("kind").and_then(Value::as_str) == Some("Secret"))
            {
                let name = from.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some(keys) = plaintext.get(&format!("{namespace}/{name}")) {
                    out.push(Refusal {
                        file: origin.place.clone(),
                        line: None,
                        reason: format!(
                            "HelmRelease {} takes values from Secret {namespace}/{name}, which holds plaintext values ({}): SOPS-encrypt that Secret",
                            object_name(release),
                            keys.join(", ")
                        ),
                        object: None,
                    });
                }
            }
        }
    }
    out
}

/// The plaintext keys of a rendered Secret: in a SOPS object every value
/// must be an `ENC[...]` token; otherwise a value must be made of the
/// redaction tokens of SOPS-sourced variables alone.
fn secret_plaintext(object: &Value, tokens: &[String], allow: &AllowList) -> Vec<String> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let allowed = |key: &str| allow.allows_secret_key(None, name, key);
    if object.get("sops").is_some() {
        return plaintext_keys(object, allowed, |s| {
            s.is_empty() || (s.starts_with("ENC[") && s.ends_with(']'))
        });
    }
    plaintext_keys(object, allowed, |s| {
        let mut rest = s.to_string();
        for t in tokens {
            rest = rest.replace(t.as_str(), "");
        }
        rest.trim().is_empty()
    })
}

/// The values a render without keys gives the variables of SOPS Secrets.
fn sops_tokens(variables: &BTreeMap<String, String>) -> Vec<String> {
    let unique: BTreeSet<&String> = variables
        .iter()
        .filter(|(k, v)| **v == format!("{REDACTED_PREFIX}{}", k.replace('_', "-")))
        .map(|(_, v)| v)
        .collect();
    let mut tokens: Vec<String> = unique.into_iter().cloned().collect();
    tokens.sort_by_key(|t| std::cmp::Reverse(t.len()));
    tokens
}

fn kind(o: &Value) -> Option<&str> {
    o.get("kind").and_then(Value::as_str)
}

fn namespace(o: &Value) -> &str {
    o.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
}

fn namespaced(o: &Value) -> String {
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{}/{name}", namespace(o))
}
