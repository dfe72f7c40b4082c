//! The one leak checker behind the ship gate (`package`, `publish`,
//! `reconcile`, `bootstrap`), `validate` and `secrets check`. It judges two
//! things:
//!
//! 1. **What the artifact carries** ([`files`]): every file that ships,
//!    whatever its name, read as kustomize reads it ([`read`]): every `---`
//!    variant, `List` kinds, a byte-order mark, UTF-16, JSON; and every file
//!    a kustomization's generators read, with its path normalised.
//! 2. **What Flux would apply** ([`rendered`]): every object the render
//!    produces for every cluster (generators, patches, components, postBuild
//!    substitution).
//!
//! A Secret value may ship only as an `ENC[...]` value of a SOPS file whose
//! governing `.sops.yaml` rule covers it, or when substitution from SOPS
//! sources produces all of it. Secret-looking values in ConfigMaps or
//! HelmRelease `values` are not judged: they are configuration by kind, and
//! a pattern that guessed at them would refuse half of every chart's values.

pub mod files;
pub mod read;
pub mod rendered;

use std::path::Path;

use sops::Config;

pub use files::ShippedFile;

/// One thing that must not ship, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// Relative to the packaged root, `/`-separated; for a rendered object,
    /// `cluster <name>` and the Kustomization.
    pub file: String,
    pub line: Option<usize>,
    /// What, and the fix.
    pub reason: String,
    /// `Secret <name>` when it is about one: a rendered object already
    /// refused in its file is not said twice.
    pub object: Option<String>,
}

/// Drops the rendered refusals about a Secret that a file refusal already
/// names (the file's is the more precise: it has the line).
pub fn merge(mut files: Vec<Refusal>, rendered: Vec<Refusal>) -> Vec<Refusal> {
    let named: std::collections::BTreeSet<String> =
        files.iter().filter_map(|r| r.object.clone()).collect();
    files.extend(
        rendered
            .into_iter()
            .filter(|r| r.object.as_ref().is_none_or(|o| !named.contains(o))),
    );
    files
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// The root's `.sops.yaml`, or the refusal that it cannot be read.
pub fn load_config(root: &Path) -> Result<Option<Config>, Refusal> {
    let path = root.join(".sops.yaml");
    if !path.is_file() {
        return Ok(None);
    }
    Config::load(&path).map(Some).map_err(|e| Refusal {
        file: ".sops.yaml".into(),
        line: None,
        reason: format!("cannot be read ({e}), so the files it governs cannot be checked"),
        object: None,
    })
}

/// True when substitution produces all of `value`: it is empty, or made of
/// `${var}` uses alone, without literal text around them and without a
/// default (`${x:=hunter2}` ships `hunter2`).
pub fn wholly_substituted(value: &str) -> bool {
    if value.trim().is_empty() {
        return true;
    }
    value.contains("${")
        && flux_render::substitute::literal_text(value).is_some_and(|t| t.trim().is_empty())
}

/// The key a Secret's refusals share, file or rendered: its name alone (a
/// file may leave the namespace to kustomize).
pub fn secret_key(v: &serde_json::Value) -> String {
    let name = v
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    format!("Secret {name}")
}

/// `namespace/name` (or `name`) of an object.
pub fn object_name(v: &serde_json::Value) -> String {
    let name = v
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("(unnamed)");
    match v
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str)
    {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_value_made_wholly_of_variables_is_substituted() {
        for ok in ["", "  ", "${a}", "${a}${b}", "${a:=}", "${a} "] {
            assert!(wholly_substituted(ok), "{ok:?}");
        }
        for leak in [
            "hunter2",
            "${db_password:=hunter2}",
            "${a:-x}",
            "${a=x}",
            "${a:+x}",
            "pre-${a}",
            "$${a}",
            "${a",
        ] {
            assert!(!wholly_substituted(leak), "{leak:?}");
        }
    }
}
