//! The integration tests of `cargo xtask`, one binary: each module drives the
//! verbs (the built binary or the library) against real tools and fixtures.

mod common {
    pub use testkit::*;

    /// Copies the manifest folders and the root files that go with them
    /// (`.sops.yaml`, `.sourceignore`, `.validate-allow.yaml`).
    pub fn copy_manifests(from: &std::path::Path, to: &std::path::Path) {
        for dir in xtask::MANIFEST_DIRS {
            copy_tree(&from.join(dir), &to.join(dir));
        }
        for file in xtask::TREE_FILES {
            if from.join(file).is_file() {
                std::fs::copy(from.join(file), to.join(file)).unwrap();
            }
        }
    }
}
mod control_plane;
mod registry;
#[path = "../fixtures/helm/support.rs"]
mod support;

mod artifact_package;
mod bootstrap_existing;
mod bootstrap_flow;
mod bootstrap_schemas;
mod build_render;
mod cli_messages;
mod cosign_interop;
mod delivery;
mod diff_git;
mod diff_output;
mod e2e_existing;
mod e2e_reconcile;
mod flux_repos;
mod flux_substitute;
mod helm_flux_local;
mod helm_render;
mod leak_corpus;
mod platform_review;
mod policy_oracle;
mod promote_verify;
mod publish_registry;
mod render_trace;
mod renovate_config;
mod secrets_gate;
mod secrets_verb;
mod validate_checks;
mod validate_incremental;
mod validate_kubeconform;
mod validate_oracle;
mod validate_rules_corpus;
mod validate_server;
