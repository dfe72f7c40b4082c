//! One module per `cargo xtask` verb: a clap `Args` struct with `run`.

pub mod build;
pub mod package;
pub mod publish;
pub mod secrets;
pub mod test;
pub mod tools;
