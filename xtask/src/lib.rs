//! Library behind `cargo xtask`. Verbs live in [`verbs`]; everything else is a
//! library module that the verbs compose and that tests use directly.

pub mod artifact;
pub mod cluster;
pub mod diff;
pub mod fsutil;
pub mod helm;
pub mod render;
pub mod runner;
pub mod schema;
pub mod ship;
pub mod sops;
pub mod tools;
pub mod validate;
pub mod verbs;
pub mod yaml_out;

use std::path::{Path, PathBuf};

/// The workspace root: the parent of the `xtask` crate.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The folders that hold the platform's manifests.
pub const MANIFEST_DIRS: [&str; 4] = ["clusters", "platform", "infrastructure", "apps"];
