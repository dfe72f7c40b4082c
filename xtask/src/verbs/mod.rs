//! One module per `cargo xtask` verb: a clap `Args` struct with `run`.

pub mod bench;
pub mod bootstrap;
pub mod build;
pub mod diff;
pub mod down;
pub mod e2e;
pub mod package;
pub mod promote;
pub mod publish;
pub mod reconcile;
pub mod secrets;
pub mod status;
pub mod test;
pub mod tools;
pub mod validate;
pub mod verify;
