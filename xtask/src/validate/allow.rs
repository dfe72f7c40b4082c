//! The allow-list (`.validate-allow.yaml`): exemptions the owner wrote down,
//! each with a reason.

use std::path::Path;

use super::flux;

use anyhow::{Context, Result};
use serde::Deserialize;

/// `.validate-allow.yaml` at the root: exemptions, each with a reason.
///
/// ```yaml
/// secrets:                      # Secret values that may stay unencrypted
///   - file: apps/demo/secret.yaml
///     name: demo-public         # optional: only this Secret of the file
///     keys: [ca.crt]            # optional: only these keys of it
///     reason: holds a public CA bundle
/// sources:                      # Flux sources created outside the tree
///   - kind: OCIRepository
///     namespace: flux-system
///     name: flux-system
///     reason: created by bootstrap
/// ```
///
/// The `flux-system` OCIRepository/GitRepository/Bucket in `flux-system`,
/// which `flux bootstrap` (and our bootstrap) creates, is always allowed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowList {
    #[serde(default)]
    pub secrets: Vec<AllowedSecret>,
    #[serde(default)]
    pub sources: Vec<AllowedSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedSecret {
    pub file: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Only these keys of the Secret; every key when empty.
    #[serde(default)]
    pub keys: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedSource {
    pub kind: String,
    #[serde(default = "flux_system")]
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub reason: String,
}

fn flux_system() -> String {
    "flux-system".into()
}

/// The allow-list's file name at the root.
pub const ALLOW_FILE: &str = ".validate-allow.yaml";

impl AllowList {
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(ALLOW_FILE);
        if !path.is_file() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path)?;
        serde_yaml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    /// Whether `key` of the Secret `name` may hold plaintext. `file` is
    /// where the Secret is written; `None` for a rendered object, which
    /// only an entry that names the Secret matches.
    pub fn allows_secret_key(&self, file: Option<&str>, name: &str, key: &str) -> bool {
        self.secrets.iter().any(|s| {
            let place = match file {
                Some(file) => s.file == file && s.name.as_deref().is_none_or(|n| n == name),
                None => s.name.as_deref() == Some(name),
            };
            place && (s.keys.is_empty() || s.keys.iter().any(|k| k == key))
        })
    }

    pub fn is_external_source(&self, r: &flux::Ref) -> bool {
        let bootstrap = r.name == "flux-system"
            && r.namespace == "flux-system"
            && matches!(
                r.kind.as_str(),
                "OCIRepository" | "GitRepository" | "Bucket"
            );
        bootstrap
            || self
                .sources
                .iter()
                .any(|s| s.kind == r.kind && s.namespace == r.namespace && s.name == r.name)
    }
}
