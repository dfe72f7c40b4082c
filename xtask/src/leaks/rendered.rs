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
use flux_render::trace::{self, Trace, TracedBuild};
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
    collect(
        clusters
            .par_iter()
            .map(|cluster| render_and_check(root, cluster, allow, &opts))
            .collect(),
    )
}

/// Renders one cluster and judges what it would apply; `Err` when it does
/// not render.
fn render_and_check(
    root: &Path,
    cluster: &str,
    allow: &AllowList,
    opts: &RenderOptions,
) -> Result<Vec<Refusal>, Refusal> {
    match flux_render::render_cluster(root, cluster, opts) {
        Ok(rendered) => Ok(check_cluster(&rendered, allow)),
        Err(e) => Err(Refusal {
            file: format!("clusters/{cluster}"),
            line: None,
            reason: format!(
                "the cluster does not render ({e}), so what Flux would apply cannot be checked: fix it (`cargo xtask build --cluster {cluster}` shows the error)"
            ),
            object: None,
        }),
    }
}

/// The clusters' verdicts as one.
fn collect(results: Vec<Result<Vec<Refusal>, Refusal>>) -> Verdict {
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

/// [`check`], remembered at two levels. The render depends only on the
/// files that ship (the artifact is all Flux has), the clusters, kustomize
/// and this binary: a verdict is kept under a key of all of them in
/// `cache`, and a tree that did not change is not rendered again. When the
/// files changed, each cluster's own verdict is kept with the trace of its
/// render ([`flux_render::trace`]): if its cluster folder is as it was and
/// every build it read gives the same output again (a comment, a file no
/// build reaches, a change another cluster alone sees), the verdict stands
/// without a render. `files` are the shipped files' names and bytes.
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
    let builder = match kustomize {
        Some(builder) => builder,
        None => match flux_render::kustomize::Builder::find() {
            Ok(builder) => Arc::new(builder),
            // Each cluster then says that it does not render, and why.
            Err(_) => return check(root, clusters, allow, None),
        },
    };
    let identity = identity();
    let key = key(&identity, clusters, files);
    let path = cache.join(format!("{key}.json"));
    if let Some(hit) = read::<Verdict>(&path) {
        return hit;
    }
    // A thread per cluster, not the shared pool: a replay waits for the
    // builds it asks for, and the pool's workers are the caller's (validate
    // parses the tree on them meanwhile).
    let traces = traces_key(&identity, root);
    let results: Vec<Result<Vec<Refusal>, Refusal>> = std::thread::scope(|s| {
        let checks: Vec<_> = clusters
            .iter()
            .map(|cluster| {
                let (builder, traces) = (&builder, &traces);
                s.spawn(move || check_traced(root, cluster, allow, cache, traces, builder))
            })
            .collect();
        checks
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let verdict = collect(results);
    // A cluster that did not render may render with the same files later
    // (kustomize installed): only a full verdict is kept.
    if verdict.unrendered.is_empty() {
        store(&path, &verdict);
    }
    verdict
}

/// One cluster's verdict and what it was concluded from.
#[derive(serde::Serialize, serde::Deserialize)]
struct Traced {
    /// Every file of the cluster folder (where the sync root is found) and
    /// its digest.
    folder: Vec<(String, String)>,
    builds: Vec<TracedBuild>,
    refusals: Vec<Refusal>,
}

/// One cluster, from its kept trace when that still holds, else rendered
/// (and its trace kept). `traces` is [`traces_key`].
fn check_traced(
    root: &Path,
    cluster: &str,
    allow: &AllowList,
    cache: &Path,
    traces: &str,
    builder: &Arc<Builder>,
) -> Result<Vec<Refusal>, Refusal> {
    let mut slot = Key::new(traces.as_bytes());
    slot.add(cluster.as_bytes());
    let slot = cache.join("traces").join(format!("{}.json", slot.finish()));
    let folder = folder_digests(root, cluster);
    if let Some(kept) = read::<Traced>(&slot)
        && kept.folder == folder
        && kept.builds.iter().all(|b| trace::replays(root, builder, b))
    {
        return Ok(kept.refusals);
    }
    let trace = Arc::new(Trace::new(root));
    let opts = RenderOptions {
        kustomize: Some(builder.clone()),
        trace: Some(trace.clone()),
        ..Default::default()
    };
    let refusals = render_and_check(root, cluster, allow, &opts)?;
    if trace.opaque().is_none() {
        let traced = Traced {
            folder,
            builds: trace.builds(),
            refusals: refusals.clone(),
        };
        store(&slot, &traced);
    }
    Ok(refusals)
}

/// What every cluster's trace is kept under, with the cluster: this binary
/// and kustomize (`identity`), the allow-list's bytes and the checkout.
fn traces_key(identity: &[Vec<u8>], root: &Path) -> String {
    let mut key = Key::new(b"trace-1");
    identity.iter().for_each(|part| key.add(part));
    key.add(&std::fs::read(root.join(crate::validate::ALLOW_FILE)).unwrap_or_default());
    key.add(root.as_os_str().as_encoded_bytes());
    key.finish()
}

/// Every file under `clusters/<cluster>` (relative, sorted) and its digest.
fn folder_digests(root: &Path, cluster: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&entry.path(), out),
                Ok(_) => out.push(entry.path()),
                Err(_) => {}
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("clusters").join(cluster), &mut files);
    let mut out: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            (
                crate::validate::tree::rel_string(root, path),
                trace::digest(&bytes),
            )
        })
        .collect();
    out.sort();
    out
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// How many verdicts, and how many traces, a cache keeps (the newest).
const KEPT: usize = 32;

/// Writes `value` to `path` and removes the oldest files of its folder
/// past [`KEPT`].
fn store(path: &Path, value: &impl serde::Serialize) {
    let Ok(bytes) = serde_json::to_vec(value) else {
        return;
    };
    let Some(cache) = path.parent() else {
        return;
    };
    if std::fs::create_dir_all(cache).is_err()
        || exec::fsutil::write_atomic_unsynced(path, &bytes).is_err()
    {
        return; // a cache that cannot be written is only slower
    }
    exec::fsutil::keep_newest(cache, "json", KEPT);
}

/// This binary and kustomize, as key parts.
fn identity() -> Vec<Vec<u8>> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| crate::file_identity(&p));
    let kustomize = match exec::tools::kustomize() {
        Ok(exec::tools::Kustomize::Standalone(p) | exec::tools::Kustomize::Kubectl(p)) => {
            crate::file_identity(&p)
        }
        Err(_) => None,
    };
    vec![
        exe.unwrap_or_default().into_bytes(),
        kustomize.unwrap_or_default().into_bytes(),
    ]
}

fn key<'a>(
    identity: &[Vec<u8>],
    clusters: &[String],
    files: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> String {
    let mut key = Key::new(b"xtask-render-verdict-1");
    identity.iter().for_each(|part| key.add(part));
    clusters.iter().for_each(|c| key.add(c.as_bytes()));
    for (name, bytes) in files {
        key.add(name.as_bytes());
        key.add(bytes);
    }
    key.finish()
}

/// A hex SHA-256 over parts, each prefixed by its length.
struct Key(sha2::Sha256);

impl Key {
    fn new(first: &[u8]) -> Self {
        let mut key = Self(sha2::Digest::new());
        key.add(first);
        key
    }

    fn add(&mut self, part: &[u8]) {
        use sha2::Digest;
        self.0.update((part.len() as u64).to_le_bytes());
        self.0.update(part);
    }

    fn finish(self) -> String {
        use sha2::Digest;
        hex::encode(self.0.finalize())
    }
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
