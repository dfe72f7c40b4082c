//! The sops crate against the real world: the public test vectors, sops 3.11
//! and the npm `sops-age` decryptor both ways, mutations, and speed.

mod common {
    pub use testkit::*;
}

mod sops_config_edit;
mod sops_fixtures;
mod sops_mutation;
mod sops_npm;
mod sops_oracle;
mod sops_speed;
