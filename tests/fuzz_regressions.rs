//! Fuzzing, replayed in the normal test suite:
//! - every input of a fuzz target's committed corpus (fuzz/corpus/<target>/) and every one under
//!   fuzz/regressions/<target>/ (inputs that crashed it, fixed since) runs through the same body
//!   the fuzz target runs (fuzz/src/<target>.rs);
//! - the descriptor-set entry point the `model_from_descriptors` target fuzzes generates exactly
//!   what the `.proto` path generates, for proto/ and the edge fixture (the sets also seed the
//!   fuzz corpus: `AXION_FUZZ_SEEDS=fuzz/seeds cargo test --test fuzz_regressions`).

use std::path::{Path, PathBuf};

#[allow(unused_imports)] // the bodies use only the edge packages
#[rustfmt::skip] // generated; formatted by axion-gen
#[path = "fixtures/edge_generated/mod.rs"]
mod edge_generated;

#[path = "../fuzz/src/decode_message.rs"]
mod decode_message;
#[path = "../fuzz/src/load_proto_text.rs"]
mod load_proto_text;
#[path = "../fuzz/src/model_from_descriptors.rs"]
mod model_from_descriptors;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The inputs in `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
}

/// Runs `target`'s committed corpus (`fuzz/corpus/<target>`, what its fuzzing runs kept) and
/// its regression inputs (`fuzz/regressions/<target>`, inputs that once crashed it) through
/// the body the fuzz target runs; names each input that panics. Returns how many of each ran.
fn replay(target: &str, run: fn(&[u8])) -> (usize, usize) {
    let corpus = inputs(&root().join("fuzz/corpus").join(target));
    let regressions = inputs(&root().join("fuzz/regressions").join(target));
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("read a fuzz input");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "fuzz inputs fail again: {failed:#?}");
    // A corpus that vanished (a moved directory) would make this test replay nothing.
    assert!(
        corpus.len() >= 100,
        "fuzz/corpus/{target} holds {} inputs: the committed corpus is missing",
        corpus.len()
    );
    eprintln!(
        "{target}: {} corpus inputs and {} regressions replayed",
        corpus.len(),
        regressions.len()
    );
    (corpus.len(), regressions.len())
}

#[test]
fn decode_message_corpus_replays() {
    replay("decode_message", decode_message::run);
}

#[test]
fn model_from_descriptors_corpus_and_regressions_replay() {
    // The crashes found so far (the first: prost-reflect panicked on an unknown `syntax`).
    let (_, regressions) = replay("model_from_descriptors", model_from_descriptors::run);
    assert!(regressions >= 7, "regression inputs missing: {regressions}");
}

#[test]
fn load_proto_text_corpus_replays() {
    replay("load_proto_text", load_proto_text::run);
}

/// Every `.proto` below `dir`, as proto names.
fn proto_names(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let rel = path.strip_prefix(base).expect("below the dir");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// `names` below `dir` (and their imports) as an encoded descriptor set, with source info and
/// custom options, like `protoc --include_imports --include_source_info -o`.
fn descriptor_set(dir: &Path, names: &[String]) -> Vec<u8> {
    let mut compiler = protox::Compiler::new([dir, &root().join("proto")]).expect("includes");
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(names).expect("the fixture compiles");
    compiler.encode_file_descriptor_set()
}

#[test]
fn descriptor_sets_generate_what_proto_files_generate() {
    let seeds = std::env::var_os("AXION_FUZZ_SEEDS").map(PathBuf::from);
    for (label, dir) in [
        ("proto", root().join("proto")),
        ("edge", root().join("tests/fixtures/edge")),
    ] {
        let names: Vec<String> = proto_names(&dir)
            .into_iter()
            .filter(|n| n != "axion/options.proto")
            .collect();
        let from_files = axion_gen::configure()
            .proto_dir(&dir)
            .generate()
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let set = descriptor_set(&dir, &names);
        let from_set = axion_gen::configure()
            .generate_from_descriptor_set(&set)
            .unwrap_or_else(|e| panic!("{label} as a descriptor set: {e}"));
        assert_eq!(
            from_set.files.keys().collect::<Vec<_>>(),
            from_files.files.keys().collect::<Vec<_>>(),
            "{label}"
        );
        for (path, text) in &from_files.files {
            assert!(
                from_set.files[path] == *text,
                "{label}: {path} differs; warnings: {:?}",
                from_set.warnings
            );
        }
        if let Some(seeds) = &seeds {
            std::fs::create_dir_all(seeds).expect("seed dir");
            std::fs::write(seeds.join(format!("{label}.all")), &set).expect("write seed");
            for name in &names {
                let one = descriptor_set(&dir, std::slice::from_ref(name));
                let file = format!("{label}.{}", name.replace('/', "_"));
                std::fs::write(seeds.join(file), one).expect("write seed");
            }
        }
    }
}

#[test]
fn descriptor_set_errors_are_clean() {
    let configure = axion_gen::configure;
    // Not a descriptor set at all.
    let e = configure()
        .generate_from_descriptor_set(b"\xff\xff\xff")
        .unwrap_err();
    assert!(e.to_string().contains("invalid descriptor set"), "{e}");
    // Only built-in files: nothing to generate.
    let e = configure().generate_from_descriptor_set(b"").unwrap_err();
    assert!(e.to_string().contains("no contracts"), "{e}");
}
