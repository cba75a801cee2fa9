//! Load from an encoded `FileDescriptorSet` (`protoc --descriptor_set_out`, `protox -o`)
//! instead of `.proto` text: the same [`Loaded`] the model is built from.
//!
//! The well-known types and `axion/options.proto` are always there (copies in the set are
//! skipped), so a set only needs the contracts and their own imports.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use protox::prost_reflect::{DescriptorPool, FileDescriptor};

use crate::error::{Error, Location, Result};
use crate::load::{Loaded, OPTIONS_PROTO, OPTIONS_PROTO_NAME};

/// Files every set can import without carrying them.
const BUILT_IN: &[&str] = &[
    "google/protobuf/any.proto",
    "google/protobuf/api.proto",
    "google/protobuf/descriptor.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/field_mask.proto",
    "google/protobuf/source_context.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/type.proto",
    "google/protobuf/wrappers.proto",
    OPTIONS_PROTO_NAME,
];

/// Decodes `encoded` and resolves it against the built-in files. Every file of the set that
/// is not built in is an input. Editions files are an error (protox, and so the model, know
/// proto2 and proto3 only).
pub fn load(encoded: &[u8]) -> Result<Loaded> {
    check_syntax(encoded)?;
    let mut pool = base_pool().clone();
    let before: HashSet<String> = pool.files().map(|f| f.name().to_owned()).collect();
    pool.decode_file_descriptor_set(encoded).map_err(|e| {
        let file = e.file().unwrap_or(SET).to_owned();
        Error::at(Location::file(file), format!("invalid descriptor set: {e}"))
    })?;
    let inputs: BTreeSet<String> = pool
        .files()
        .filter(|f| !before.contains(f.name()))
        .map(|f| f.name().to_owned())
        .collect();
    if inputs.is_empty() {
        return Err(Error::Usage(
            "the descriptor set has no contracts to generate from (only built-in files)".into(),
        ));
    }
    let files = dependencies_first(&pool);
    let display: HashMap<String, String> = files
        .iter()
        .map(|f| (f.name().to_owned(), f.name().to_owned()))
        .collect();
    Ok(Loaded {
        files,
        pool,
        inputs,
        disk_files: Vec::new(),
        display,
    })
}

/// How errors name a set whose file has no name.
const SET: &str = "<descriptor set>";

/// Rejects a `syntax` other than proto2 and proto3 before prost-reflect sees it: prost-reflect
/// 0.16 panics (index out of bounds) building the error for an unknown syntax, editions included.
fn check_syntax(encoded: &[u8]) -> Result<()> {
    use protox::prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(encoded)
        .map_err(|e| Error::at(Location::file(SET), format!("invalid descriptor set: {e}")))?;
    for file in &set.file {
        let file_name = if file.name().is_empty() {
            SET
        } else {
            file.name()
        };
        match file.syntax.as_deref() {
            None | Some("proto2" | "proto3") => {}
            Some("editions") => {
                return Err(Error::at(
                    Location::file(file_name),
                    "editions (`edition = \"2023\"`) are not supported: axion-gen handles proto2 and proto3 only",
                ))
            }
            Some(other) => {
                return Err(Error::at(
                    Location::file(file_name),
                    format!("invalid descriptor set: unknown syntax {other:?} (proto2 or proto3)"),
                ))
            }
        }
    }
    Ok(())
}

/// Every file of the pool, each after the files it imports.
fn dependencies_first(pool: &DescriptorPool) -> Vec<prost_types::FileDescriptorProto> {
    fn visit(
        file: FileDescriptor,
        seen: &mut HashSet<String>,
        out: &mut Vec<prost_types::FileDescriptorProto>,
    ) {
        if !seen.insert(file.name().to_owned()) {
            return;
        }
        for dep in file.dependencies() {
            visit(dep, seen, out);
        }
        out.push(file.file_descriptor_proto().clone());
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for file in pool.files() {
        visit(file, &mut seen, &mut out);
    }
    out
}

/// The built-in files, compiled once.
fn base_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut chain = ChainFileResolver::new();
        chain.add(GoogleFileResolver::new());
        chain.add(ShippedOptions);
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(true);
        for name in BUILT_IN {
            compiler
                .open_file(name)
                .expect("the built-in files axion-gen ships compile");
        }
        compiler.descriptor_pool()
    })
}

struct ShippedOptions;

impl FileResolver for ShippedOptions {
    fn open_file(&self, name: &str) -> std::result::Result<File, protox::Error> {
        if name == OPTIONS_PROTO_NAME {
            File::from_source(name, OPTIONS_PROTO)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}
