//! Verdicts on objects, kept between runs: an object judged under the same
//! schema (source and file stamps), strictness and binary (which holds the
//! rules) is not judged again. One JSON file in validate's cache folder,
//! written atomically; one that does not read is empty (a miss, never an
//! error).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Verdict;

const FILE: &str = "verdicts-1.json";
/// Past this many entries, only the last run's are kept.
const KEPT: usize = 50_000;

pub struct Store {
    path: Option<PathBuf>,
    old: HashMap<String, Verdict>,
}

impl Store {
    /// The verdicts in `cache_dir`; none without one.
    pub fn load(cache_dir: Option<&Path>) -> Self {
        let path = cache_dir.map(|d| d.join(FILE));
        let old = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { path, old }
    }

    pub fn get(&self, key: &str) -> Option<Verdict> {
        self.old.get(key).cloned()
    }

    /// Adds this run's new verdicts; `used` are every key the run needed.
    pub fn save(self, new: Vec<(String, Verdict)>, used: &[String]) {
        let Some(path) = self.path else {
            return;
        };
        if new.is_empty() {
            return;
        }
        let mut all = self.old;
        if all.len() + new.len() > KEPT {
            all.retain(|k, _| used.contains(k));
        }
        all.extend(new);
        let Ok(bytes) = serde_json::to_vec(&all) else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // A cache that cannot be written is only slower.
        let _ = exec::fsutil::write_atomic_unsynced(&path, &bytes);
    }
}

/// The key of judging `object` (its JSON text) under `schema_key`.
pub fn key(binary: &str, schema_key: &str, strict: bool, object_text: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        binary,
        schema_key,
        if strict { "strict" } else { "lax" },
        object_text,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}
