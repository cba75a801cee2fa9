//! Fuzz target bodies, shared with the workspace's tests/fuzz_regressions.rs (which includes
//! the same files with `#[path]`), so a crash input replays through exactly the fuzzed code.

// The edge fixture: every field kind, keywords, recursion, oneofs, maps, well-known types.
#[rustfmt::skip]
#[path = "../../tests/fixtures/edge_generated/mod.rs"]
pub mod edge_generated;

pub mod decode_message;
pub mod load_proto_text;
pub mod model_from_descriptors;
