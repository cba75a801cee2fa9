//! Fuzz body `load_proto_text`: arbitrary text as a `.proto` file through the real loader
//! (protox, located errors) and the generator. Shared by the fuzz target and
//! tests/fuzz_regressions.rs.

use std::path::PathBuf;

/// Runs one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let dir = scratch_dir();
    let file = dir.join("fuzz.proto");
    std::fs::write(&file, data).expect("write the input");
    match axion_gen::configure().proto_dir(&dir).generate() {
        Ok(generated) => crate::model_from_descriptors::check_generated(&generated),
        Err(e) => {
            crate::model_from_descriptors::check_error(&e);
            // A located error points into the input: line within it, column within the line.
            if let axion_gen::Error::Input { location, .. } = &e {
                if location.line > 0 {
                    let text = String::from_utf8_lossy(data);
                    let lines = text.split('\n').count() as u32;
                    assert!(
                        location.line <= lines,
                        "{e}: line past the end ({lines} lines)"
                    );
                }
            }
        }
    }
}

/// One dir per thread (fuzz jobs and test threads each get their own).
fn scratch_dir() -> PathBuf {
    thread_local! {
        static DIR: PathBuf = {
            let dir = std::env::temp_dir().join(format!(
                "axion-fuzz-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&dir).expect("create the scratch dir");
            dir
        };
    }
    DIR.with(PathBuf::clone)
}
