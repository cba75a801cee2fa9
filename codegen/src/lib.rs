//! axion-gen: typed Rust service traits, pattern constants, Kafka clients and dispatchers, and
//! Traefik labels from `.proto` contracts, wire-compatible with NestJS services.
//!
//! One core behind every front end (the `axion-gen` CLI and `build.rs`):
//! [`load`] (protox) → [`model`] (names resolved once, validated) → [`emit`] (Rust, Traefik)
//! → [`writer`] (format, write, `--check`).
//!
//! # From `build.rs`
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     axion_gen::configure().compile_dir("proto")?;
//!     Ok(())
//! }
//! ```
//!
//! ```ignore
//! // src/lib.rs
//! pub mod contracts {
//!     axion_runtime::include_contracts!();
//! }
//! ```
#![warn(missing_docs)]

pub mod breaking;
pub mod builder;
mod descriptor_set;
pub mod docs;
pub mod emit;
mod envelope;
pub mod error;
pub mod load;
pub mod model;
pub mod names;
mod render;
pub mod writer;

pub use builder::{configure, Builder, Generated, OUT_DIR_SUBDIR};
pub use error::{Error, Location, Result};
pub use model::{Model, PatternScheme, DEFAULT_TOPIC_PREFIX};
