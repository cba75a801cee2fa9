//! Fuzz body `model_from_descriptors`: arbitrary bytes as an encoded `FileDescriptorSet`
//! through the generator (model building, every emitter, formatting). Shared by the fuzz target
//! and tests/fuzz_regressions.rs.

use std::path::{Component, Path};

/// Runs one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    match axion_gen::configure().generate_from_descriptor_set(data) {
        Ok(generated) => check_generated(&generated),
        Err(e) => check_error(&e),
    }
}

/// The output stays below the output dir, and every Rust file is valid Rust.
pub fn check_generated(generated: &axion_gen::Generated) {
    assert!(generated.files.contains_key("mod.rs"), "no mod.rs");
    for (path, text) in &generated.files {
        let p = Path::new(path);
        assert!(
            !path.is_empty()
                && p.components().all(|c| matches!(c, Component::Normal(_)))
                && !path.contains('\\'),
            "output path {path:?} leaves the output dir"
        );
        if path.ends_with(".rs") {
            syn::parse_file(text).unwrap_or_else(|e| panic!("{path} is not Rust: {e}\n{text}"));
        }
    }
}

/// An error says something, and an input error names a file.
pub fn check_error(e: &axion_gen::Error) {
    let shown = e.to_string();
    assert!(shown.contains("error"), "{shown}");
    if let axion_gen::Error::Input { location, message } = e {
        assert!(!location.file.is_empty(), "unlocated: {message}");
        assert!(!message.is_empty(), "empty message at {location}");
    }
}
