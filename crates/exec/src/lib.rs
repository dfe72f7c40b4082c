//! Running the external tools: the [`Cmd`] runner and its typed error, the
//! pinned-tools manifest (`xtask/tools.toml`) with one lookup, and atomic
//! writes for user files.

pub mod fsutil;
pub mod runner;
pub mod session;
pub mod tools;

pub use fsutil::{write_atomic, write_atomic_unsynced};
pub use runner::{Bounds, Cmd, RunError};
pub use session::Session;
pub use tools::{Manifest, ToolError};
