//! Kubernetes schemas, offline: load the official OpenAPI v3 documents of
//! `k8s.io/kubernetes` and the `openAPIV3Schema` of CRDs, resolve `$ref`s,
//! compile each kind once into a compact tree ([`Compiled`]), and validate
//! `serde_json` objects against it strictly, with a JSON path per finding.
//!
//! - [`compile`]: OpenAPI v3 / JSON-schema subset → [`Compiled`] arena.
//! - [`check`]: the validator (unknown fields, types, required, enums,
//!   int-or-string, preserve-unknown-fields, embedded resources, ...).
//! - [`registry`]: which schema serves which apiVersion/kind, from folders,
//!   in-tree CRDs and kubeconform-style URL templates; caches under `target/`.
//! - [`formats`]: `date-time`, `byte` and quantities, as the API server reads them.
//! - `fetch` (feature `fetch`): fills `.schemas/` from Go modules pinned in `xtask/schemas.toml`.
//! - [`jsonschema`]: exports a compiled kind as a standalone JSON schema (the
//!   format kubeconform reads), used by the agreement test and the bench.

pub mod check;
pub mod compile;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod formats;
pub mod jsonschema;
pub mod registry;

pub use check::{SchemaError, validate};
pub use compile::{Compiled, Node, Ty};
pub use registry::{Lookup, Registry, RegistryOptions};

use serde::{Deserialize, Serialize};

/// The Kubernetes version whose OpenAPI documents are used by default.
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.34.4";

/// An API group, version and kind. The core group is the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        }
    }

    /// Parses `apiVersion` (`apps/v1`, `v1`) and `kind`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        match api_version.split_once('/') {
            Some((group, version)) => Self::new(group, version, kind),
            None => Self::new("", api_version, kind),
        }
    }

    /// The `apiVersion` and `kind` of a Kubernetes object, if it has both.
    pub fn of(object: &serde_json::Value) -> Option<Self> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        Some(Self::from_api_version(api_version, kind))
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl std::fmt::Display for Gvk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.api_version(), self.kind)
    }
}

/// Normalises a Kubernetes version to `vX.Y.Z` (accepts `1.34.4`, `v1.34.4`).
pub fn normalize_kubernetes_version(version: &str) -> String {
    let v = version.trim();
    if v.starts_with('v') {
        v.to_string()
    } else {
        format!("v{v}")
    }
}

#[cfg(test)]
mod tests;

/// The compact JSON text of an object: the identity of what is judged (two
/// objects with the same text get the same verdict). Here, not in the
/// caller, so that it is compiled with this crate's optimisations.
pub fn object_text(object: &serde_json::Value) -> String {
    serde_json::to_string(object).unwrap_or_default()
}
