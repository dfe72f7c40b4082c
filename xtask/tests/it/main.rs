//! The integration tests of `cargo xtask`, one binary: each module drives the
//! verbs (the built binary or the library) against real tools and fixtures.

mod common {
    pub use testkit::*;
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
mod platform_review;
mod policy_oracle;
mod publish_registry;
mod renovate_config;
mod secrets_gate;
mod secrets_verb;
mod validate_checks;
mod validate_kubeconform;
mod validate_oracle;
