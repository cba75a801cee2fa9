//! Dogfoods the generator on `proto/`: the examples include the result from OUT_DIR with
//! `axion_runtime::include_contracts!()`.
//!
//! A build script cannot depend on its own package's library, so it compiles the generator's
//! sources as modules of its own (the same files `src/lib.rs` declares).
#![allow(dead_code, missing_docs)]

#[path = "src/builder.rs"]
mod builder;
#[path = "src/docs.rs"]
mod docs;
#[path = "src/emit/mod.rs"]
mod emit;
#[path = "src/envelope.rs"]
mod envelope;
#[path = "src/error.rs"]
mod error;
#[path = "src/load.rs"]
mod load;
#[path = "src/model.rs"]
mod model;
#[path = "src/names.rs"]
mod names;
#[path = "src/writer.rs"]
mod writer;

fn main() {
    if let Err(e) = builder::configure().compile_dir("proto") {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
