//! Verdicts on objects, kept between runs: an object judged under the same
//! inputs (for the schema check: its schema's source and file stamps and
//! the strictness; for policies: the cluster's policies and namespaces) by
//! the same binary (which holds the rules) is not judged again. One JSON
//! file per kind of verdict and binary in validate's cache folder, written
//! atomically and kept small (a run reads it whole); one that does not read
//! is empty (a miss, never an error).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Verdicts kept per binary: the most recently used first.
const KEPT: usize = 4096;
/// Another binary's store unused this long is removed.
const STALE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The schema check's store; [`POLICIES`] is the policies'.
pub const SCHEMAS: &str = "verdicts-2-";
pub const POLICIES: &str = "policy-verdicts-1-";
/// The ship gate's verdicts on single files.
pub const FILES: &str = "file-verdicts-1-";

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "V: Serialize + DeserializeOwned")]
struct Entry<V> {
    /// Unix seconds of the last run that needed it.
    used: u64,
    verdict: V,
}

pub struct Store<V> {
    path: Option<PathBuf>,
    prefix: &'static str,
    old: HashMap<String, Entry<V>>,
}

/// This binary's store of `prefix` in `cache_dir`, e.g. `verdicts-2-<16 hex>.json`.
fn file_name(prefix: &str, binary: &str) -> String {
    let id = hex::encode(Sha256::digest(binary.as_bytes()));
    format!("{prefix}{}.json", &id[..16])
}

impl<V: Serialize + DeserializeOwned + Clone> Store<V> {
    /// The verdicts of `prefix` that `binary` kept in `cache_dir`; none
    /// without one.
    pub fn load(cache_dir: Option<&Path>, prefix: &'static str, binary: &str) -> Self {
        let path = cache_dir.map(|d| d.join(file_name(prefix, binary)));
        let old = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { path, prefix, old }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        self.old.get(key).map(|e| e.verdict.clone())
    }

    /// Adds this run's new verdicts; `used` are every key the run needed.
    /// A run that judged nothing writes nothing.
    pub fn save(self, new: Vec<(String, V)>, used: &[String]) {
        let Some(path) = self.path else {
            return;
        };
        if new.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut all = self.old;
        for key in used {
            if let Some(e) = all.get_mut(key) {
                e.used = now;
            }
        }
        all.extend(
            new.into_iter()
                .map(|(k, verdict)| (k, Entry { used: now, verdict })),
        );
        if all.len() > KEPT {
            let mut stamps: Vec<u64> = all.values().map(|e| e.used).collect();
            stamps.sort_unstable_by(|a, b| b.cmp(a));
            let cutoff = stamps[KEPT - 1];
            all.retain(|_, e| e.used >= cutoff);
        }
        let Ok(bytes) = serde_json::to_vec(&all) else {
            return;
        };
        let Some(dir) = path.parent() else {
            return;
        };
        let _ = std::fs::create_dir_all(dir);
        // A cache that cannot be written is only slower.
        let _ = exec::fsutil::write_atomic_unsynced(&path, &bytes);
        remove_stale(dir, self.prefix, &path);
    }
}

/// Removes other binaries' stores of `prefix` left unused, and the first
/// format's.
fn remove_stale(dir: &Path, prefix: &str, own: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = if name == "verdicts-1.json" {
            true
        } else if name.starts_with(prefix) && path != own {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE)
        } else {
            false
        };
        if stale {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The key of judging an object (its JSON text, the last part) under the
/// other parts (the binary first).
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}
