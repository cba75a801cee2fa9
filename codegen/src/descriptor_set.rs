//! Load from an encoded `FileDescriptorSet` (`protoc --descriptor_set_out`, `protox -o`)
//! instead of `.proto` text: the same [`Loaded`] the model is built from.
//!
//! The well-known types and `axion/options.proto` are always there (copies in the set are
//! skipped), so a set only needs the contracts and their own imports.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use protox::file::{ChainFileResolver, GoogleFileResolver};
use protox::prost_reflect::{DescriptorPool, FileDescriptor};

use crate::error::{Error, Location, Result};
use crate::load::{Loaded, ShippedOptions, OPTIONS_PROTO_NAME, WELL_KNOWN};
use crate::model::AxionOptions;

/// Decodes `encoded` and resolves it against the built-in files. Every file of the set that
/// is not built in is an input. Editions files are an error (protox, and so the model, know
/// proto2 and proto3 only).
pub fn load(encoded: &[u8], warnings: &mut Vec<String>) -> Result<Loaded> {
    check_set(encoded)?;
    let mut pool = base_pool().clone();
    let before: HashSet<String> = pool.files().map(|f| f.name().to_owned()).collect();
    pool.decode_file_descriptor_set(encoded).map_err(|e| {
        let file = e.file().filter(|f| !f.is_empty()).unwrap_or(SET).to_owned();
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
    let mut files = dependencies_first(&pool);
    for file in files.iter_mut().filter(|f| inputs.contains(f.name())) {
        if !has_complete_source_info(file) {
            // prost-build panics on a declaration without a location; protoc and protox
            // always write them all, so this set was made by hand: drop docs and lines.
            warnings.push(format!(
                "{}: warning: incomplete source info (a declaration has no location); generating without comments or line numbers",
                file.name()
            ));
            file.source_code_info = None;
        }
    }
    let display: HashMap<String, String> = files
        .iter()
        .map(|f| (f.name().to_owned(), f.name().to_owned()))
        .collect();
    Ok(Loaded {
        files,
        options: AxionOptions::read(&pool, &inputs),
        inputs,
        disk_files: Vec::new(),
        display,
    })
}

/// How errors name a set whose file has no name.
const SET: &str = "<descriptor set>";

/// Rejects what prost-reflect does not report cleanly: a file without a name (errors could
/// not say where), names that are not identifiers, and a `syntax` other than proto2 and proto3
/// (prost-reflect 0.16 panics, index out of bounds, building the error for an unknown syntax,
/// editions included).
fn check_set(encoded: &[u8]) -> Result<()> {
    use protox::prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(encoded)
        .map_err(|e| Error::at(Location::file(SET), format!("invalid descriptor set: {e}")))?;
    for file in &set.file {
        if file.name().is_empty() {
            return Err(Error::at(
                Location::file(SET),
                "invalid descriptor set: a file without a name",
            ));
        }
        let file_name = file.name();
        // The name goes into every generated file's header comment and the output path: a
        // line break there ends the comment (found by fuzzing: a `.rs` that is not Rust).
        if file_name.chars().any(char::is_control) {
            return Err(Error::at(
                Location::file(SET),
                format!("invalid descriptor set: file name {file_name:?} has control characters"),
            ));
        }
        if let Some(bad) = first_bad_name(file) {
            return Err(Error::at(
                Location::file(file_name),
                format!("invalid descriptor set: {bad:?} is not a valid name (identifiers: letters, digits, `_`; protoc rejects it too)"),
            ));
        }
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

/// The first declared name that is not a protobuf identifier (the package: dotted ones).
/// protox checks this in `.proto` text; prost-reflect does not, and the names become Rust
/// modules, types and file names.
fn first_bad_name(file: &prost_types::FileDescriptorProto) -> Option<String> {
    fn ident(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
    fn message(m: &prost_types::DescriptorProto, names: &mut Vec<String>) {
        names.push(m.name().to_owned());
        // prost-build asserts a map entry's shape (panics otherwise): `key = 1; value = 2;`.
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            let shape: Vec<(&str, i32)> = m.field.iter().map(|f| (f.name(), f.number())).collect();
            if shape != [("key", 1), ("value", 2)] {
                names.push(format!(
                    "{} (a map entry needs fields key = 1 and value = 2)",
                    m.name()
                ));
            }
        }
        names.extend(m.field.iter().map(|f| f.name().to_owned()));
        names.extend(m.oneof_decl.iter().map(|o| o.name().to_owned()));
        m.nested_type.iter().for_each(|n| message(n, names));
        m.enum_type.iter().for_each(|e| enumeration(e, names));
    }
    fn enumeration(e: &prost_types::EnumDescriptorProto, names: &mut Vec<String>) {
        names.push(e.name().to_owned());
        names.extend(e.value.iter().map(|v| v.name().to_owned()));
    }
    if !file.package().is_empty() && !file.package().split('.').all(ident) {
        return Some(file.package().to_owned());
    }
    let mut names = Vec::new();
    file.message_type
        .iter()
        .for_each(|m| message(m, &mut names));
    file.enum_type
        .iter()
        .for_each(|e| enumeration(e, &mut names));
    for svc in &file.service {
        names.push(svc.name().to_owned());
        names.extend(svc.method.iter().map(|m| m.name().to_owned()));
    }
    names.into_iter().find(|n| !ident(n))
}

/// Whether every message (but map entries), field, oneof, enum and enum value has a location:
/// what prost-build looks up for doc comments, unwrapping.
fn has_complete_source_info(file: &prost_types::FileDescriptorProto) -> bool {
    fn message(path: Vec<i32>, m: &prost_types::DescriptorProto, need: &mut Vec<Vec<i32>>) {
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            return;
        }
        let at = |tail: &[i32]| [path.as_slice(), tail].concat();
        (0..m.field.len()).for_each(|i| need.push(at(&[2, i as i32])));
        // Synthetic oneofs (proto3 `optional`) have no location.
        let synthetic = |i: usize| {
            m.field
                .iter()
                .any(|f| f.oneof_index == Some(i as i32) && f.proto3_optional())
        };
        (0..m.oneof_decl.len())
            .filter(|&i| !synthetic(i))
            .for_each(|i| need.push(at(&[8, i as i32])));
        for (i, nested) in m.nested_type.iter().enumerate() {
            message(at(&[3, i as i32]), nested, need);
        }
        for (i, e) in m.enum_type.iter().enumerate() {
            enumeration(at(&[4, i as i32]), e, need);
        }
        need.push(path);
    }
    fn enumeration(path: Vec<i32>, e: &prost_types::EnumDescriptorProto, need: &mut Vec<Vec<i32>>) {
        (0..e.value.len()).for_each(|i| need.push([path.as_slice(), &[2, i as i32]].concat()));
        need.push(path);
    }
    let Some(info) = &file.source_code_info else {
        return true;
    };
    let mut need = Vec::new();
    for (i, m) in file.message_type.iter().enumerate() {
        message(vec![4, i as i32], m, &mut need);
    }
    for (i, e) in file.enum_type.iter().enumerate() {
        enumeration(vec![5, i as i32], e, &mut need);
    }
    let have: HashSet<&[i32]> = info.location.iter().map(|l| l.path.as_slice()).collect();
    need.iter().all(|p| have.contains(p.as_slice()))
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
        // Every set can import these without carrying them.
        for name in WELL_KNOWN.iter().chain([&OPTIONS_PROTO_NAME]) {
            compiler
                .open_file(name)
                .expect("the built-in files axion-gen ships compile");
        }
        compiler.descriptor_pool()
    })
}
