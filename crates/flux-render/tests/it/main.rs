//! The renderer against the flux CLI: `flux build kustomization --dry-run`
//! on every Kustomization of the tree must give the same objects.

mod common {
    pub use testkit::*;
}

mod build_cache;
mod build_helper;
mod flux_agreement;
mod flux_repos;
