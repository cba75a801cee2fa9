//! Load: `.proto` files → descriptors (protox), with source info, and located errors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use prost::Message as _;
use prost_types::FileDescriptorSet;
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

use crate::error::{Error, Location, Result};
use crate::model::AxionOptions;

/// The options file axion-gen ships; it resolves even when no include dir has it.
pub const OPTIONS_PROTO_NAME: &str = "axion/options.proto";
/// The text of [`OPTIONS_PROTO_NAME`].
pub const OPTIONS_PROTO: &str = include_str!("../../proto/axion/options.proto");

/// protox's built-in well-known types; copies of these in an input dir are not compiled.
pub(crate) const WELL_KNOWN: &[&str] = &[
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
    "google/protobuf/compiler/plugin.proto",
];

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Every `.proto` below this dir is an input; the dir is also the first include dir.
    pub proto_dir: Option<PathBuf>,
    /// Extra input files (paths on disk, or names relative to an include dir).
    pub files: Vec<PathBuf>,
    /// Include dirs for imports, after `proto_dir`.
    pub includes: Vec<PathBuf>,
    /// Skip what axion-gen cannot handle (edition files, copies of well-known types) with a
    /// warning instead of failing.
    pub skip_unsupported: bool,
}

/// Loaded descriptors.
pub struct Loaded {
    /// Every file, imports included, dependencies first.
    pub files: Vec<prost_types::FileDescriptorProto>,
    /// axion's custom options of the files (read from protox's reflection pool).
    pub options: AxionOptions,
    /// Proto names of the input files (services are generated for these only).
    pub inputs: BTreeSet<String>,
    /// Every file read from disk (inputs and imports), for `cargo:rerun-if-changed`.
    pub disk_files: Vec<PathBuf>,
    /// proto name → the path to show in messages.
    pub display: std::collections::HashMap<String, String>,
}

impl Inputs {
    fn include_dirs(&self) -> Vec<PathBuf> {
        self.proto_dir
            .iter()
            .chain(self.includes.iter())
            .cloned()
            .collect()
    }

    /// The path to show for a proto name: the first include dir that has it.
    pub fn display_path(&self, name: &str) -> String {
        self.disk_path(name)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| name.to_owned())
    }

    /// The first include dir entry named `name`: a file, or anything else there (a directory,
    /// a dangling symlink) that would shadow later dirs and that the user must hear about.
    fn disk_path(&self, name: &str) -> Option<PathBuf> {
        let candidates: Vec<PathBuf> = self.include_dirs().iter().map(|d| d.join(name)).collect();
        candidates
            .iter()
            .find(|p| p.is_file())
            .or_else(|| candidates.iter().find(|p| p.symlink_metadata().is_ok()))
            .cloned()
    }
}

/// Loads the inputs.
pub fn load(inputs: &Inputs, warnings: &mut Vec<String>) -> Result<Loaded> {
    let names = input_names(inputs)?;
    let mut accepted = Vec::new();
    for name in names {
        let path = inputs.display_path(&name);
        if WELL_KNOWN.contains(&name.as_str()) {
            let message = format!(
                "this file shadows protox's built-in well-known type {name}; axion-gen always uses the built-in"
            );
            if inputs.skip_unsupported {
                warnings.push(format!("{path}: warning: {message}; skipped"));
                continue;
            }
            return Err(Error::at(
                Location::file(path),
                format!("{message} (remove the copy, or pass --skip-unsupported to skip it)"),
            ));
        }
        if name == OPTIONS_PROTO_NAME {
            // The options file configures generation; it is not a contract.
            continue;
        }
        let text = match inputs.disk_path(&name) {
            Some(disk) => Some(read_input(&disk)?),
            None => None,
        };
        if let Some(location) = text.as_deref().and_then(|t| edition_line(&path, t)) {
            let message = "editions (`edition = \"2023\"`) are not supported: protox 0.10 parses proto2 and proto3 only";
            if inputs.skip_unsupported {
                warnings.push(format!("{location}: warning: {message}; skipped"));
                continue;
            }
            return Err(Error::at(location, message));
        }
        accepted.push(name);
    }
    if accepted.is_empty() {
        return Err(Error::Usage(
            "no .proto contracts to generate from (after skipping unsupported files)".into(),
        ));
    }

    let mut chain = ChainFileResolver::new();
    // Built-ins first: a copy of descriptor.proto in an include dir must not shadow them.
    chain.add(GoogleFileResolver::new());
    for dir in inputs.include_dirs() {
        chain.add(IncludeDir {
            inner: IncludeFileResolver::new(dir.clone()),
            dir,
        });
    }
    chain.add(ShippedOptions);

    let mut compiler = protox::Compiler::with_file_resolver(chain);
    compiler.include_source_info(true).include_imports(true);
    for name in &accepted {
        if let Err(e) = compiler.open_file(name) {
            return Err(convert_error(&e, inputs, name));
        }
    }

    // Files read by `IncludeDir` without a BOM have no path in protox: find them again.
    let on_disk = |f: &protox::file::FileMetadata| {
        f.path().map(Path::to_path_buf).or_else(|| {
            let name = f.name();
            let builtin = name == OPTIONS_PROTO_NAME || name.starts_with("google/protobuf/");
            (!builtin).then(|| inputs.disk_path(name)).flatten()
        })
    };
    let mut disk_files: Vec<PathBuf> = compiler.files().filter_map(on_disk).collect();
    disk_files.sort();
    let display = compiler
        .files()
        .map(|f| {
            let shown = on_disk(f)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| f.name().to_owned());
            (f.name().to_owned(), shown)
        })
        .collect();
    let inputs: BTreeSet<String> = accepted.into_iter().collect();
    let options = AxionOptions::read(&compiler.descriptor_pool(), &inputs);
    // The pool (with its indexes, about twice the descriptors' size) is encoded and freed before
    // the descriptors are decoded again, so it and a copy of them never live together.
    let encoded = compiler.encode_file_descriptor_set();
    drop(compiler);
    let files = FileDescriptorSet::decode(encoded.as_slice())
        .map_err(|e| Error::Usage(format!("internal error: protox's descriptors: {e}")))?
        .file;
    Ok(Loaded {
        files,
        options,
        inputs,
        disk_files,
        display,
    })
}

/// Proto names of the inputs: every `.proto` below `proto_dir`, then the listed files.
fn input_names(inputs: &Inputs) -> Result<Vec<String>> {
    let mut names = BTreeSet::new();
    if let Some(dir) = &inputs.proto_dir {
        if !dir.is_dir() {
            return Err(Error::at(
                Location::file(dir.display().to_string()),
                "the proto dir does not exist or is not a directory",
            ));
        }
        let mut found = Vec::new();
        walk(dir, &mut found)?;
        for path in found {
            let rel = path.strip_prefix(dir).unwrap_or(&path);
            names.insert(proto_name(rel));
        }
        if names.is_empty() && inputs.files.is_empty() {
            return Err(Error::at(
                Location::file(dir.display().to_string()),
                "no .proto files found below the proto dir",
            ));
        }
    }
    for file in &inputs.files {
        names.insert(resolve_listed(file, inputs)?);
    }
    if names.is_empty() {
        return Err(Error::Usage(
            "no input: give a proto dir or at least one .proto file".into(),
        ));
    }
    Ok(names.into_iter().collect())
}

/// A listed file as a proto name: a path below an include dir, or already a name.
fn resolve_listed(file: &Path, inputs: &Inputs) -> Result<String> {
    for dir in inputs.include_dirs() {
        if let Ok(rel) = file.strip_prefix(&dir) {
            return Ok(proto_name(rel));
        }
    }
    if file.is_relative() && inputs.include_dirs().iter().any(|d| d.join(file).is_file()) {
        return Ok(proto_name(file));
    }
    if file.is_file() {
        return Err(Error::at(
            Location::file(file.display().to_string()),
            "this file is not below the proto dir or any include dir; add its root with --include",
        ));
    }
    Err(Error::at(
        Location::file(file.display().to_string()),
        "file not found",
    ))
}

fn proto_name(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads an input file, turning what protox reports vaguely (or not at all) into located
/// errors: unreadable entries (dangling symlinks, directories named `*.proto`, permissions)
/// and invalid UTF-8, with the line and column of the first bad byte.
fn read_input(path: &Path) -> Result<String> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(Error::at(
            Location::file(shown),
            "this is a directory, not a .proto file; rename it or pass the files inside it",
        ));
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            let dangling = path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
                && std::fs::metadata(path).is_err();
            let message = if dangling {
                let target = std::fs::read_link(path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "?".into());
                format!("cannot read this file: it is a symlink to {target}, which does not exist")
            } else {
                format!("cannot read this file: {e}")
            };
            return Err(Error::at(Location::file(shown), message));
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let before = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        let (line, col) = line_col(&before, before.len());
        Error::at(
            Location {
                file: shown,
                line,
                col,
            },
            format!(
                "this file is not valid UTF-8 (byte 0x{:02x}); .proto files must be UTF-8",
                e.as_bytes()[valid]
            ),
        )
    })?;
    Ok(match text.strip_prefix(BOM) {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// Where a file declares an edition, if it does (protox would fail on it less clearly).
fn edition_line(path: &str, text: &str) -> Option<Location> {
    let mut in_block = false;
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        if in_block {
            match rest.find("*/") {
                Some(end) => {
                    rest = &rest[end + 2..];
                    in_block = false;
                }
                None => continue,
            }
        }
        let trimmed = rest.trim_start();
        if trimmed.starts_with("/*") {
            in_block = !trimmed.contains("*/");
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        if let Some(after) = trimmed.strip_prefix("edition") {
            if after.trim_start().starts_with('=') {
                let col = line.len() - trimmed.len() + 1;
                return Some(Location {
                    file: path.to_owned(),
                    line: i as u32 + 1,
                    col: col as u32,
                });
            }
        }
        // The first statement decides: syntax/edition must come first.
        return None;
    }
    None
}

/// UTF-8's byte-order mark, which protoc skips and protox does not.
const BOM: char = '\u{feff}';

/// An include dir: protox's resolver, except that a file starting with a byte-order mark is
/// served without it (as protoc does; editors on Windows write them).
struct IncludeDir {
    inner: IncludeFileResolver,
    dir: PathBuf,
}

impl FileResolver for IncludeDir {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.inner.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> std::result::Result<File, protox::Error> {
        let path = self.dir.join(name);
        let has_bom = std::fs::read(&path).is_ok_and(|b| b.starts_with("\u{feff}".as_bytes()));
        if has_bom {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return File::from_source(name, text.trim_start_matches(BOM));
            }
        }
        self.inner.open_file(name)
    }
}

/// Serves the shipped `axion/options.proto` when no include dir has one.
pub(crate) struct ShippedOptions;

impl FileResolver for ShippedOptions {
    fn open_file(&self, name: &str) -> std::result::Result<File, protox::Error> {
        if name == OPTIONS_PROTO_NAME {
            File::from_source(name, OPTIONS_PROTO)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// A protox error as a located [`Error`].
///
/// protox's labels come in its own order (for a duplicate: "first defined here", then the
/// duplicate); the error is placed at the label that is the problem, and a "first defined"
/// label becomes a note in the message.
fn convert_error(err: &protox::Error, inputs: &Inputs, opened: &str) -> Error {
    let mut message = err.to_string();
    if let Some(cycle) = message.strip_prefix("import cycle detected: ") {
        if let Some(location) = cycle_location(cycle, inputs) {
            return Error::at(location, message);
        }
    }
    let name = err.file().unwrap_or(opened).to_owned();
    let file = inputs.display_path(&name);
    let mut location = Location::file(file.clone());

    // Parse errors carry their source; check errors only the span: read the file ourselves.
    let text = std::fs::read_to_string(&file)
        .ok()
        .map(|t| t.trim_start_matches(BOM).to_owned());
    let locate = |span: &miette::SourceSpan| -> Option<(u32, u32)> {
        if let Some(text) = &text {
            return Some(line_col(text, span.offset()));
        }
        let contents = err.source_code()?.read_span(span, 0, 0).ok()?;
        Some((contents.line() as u32 + 1, contents.column() as u32 + 1))
    };
    let labels: Vec<miette::LabeledSpan> = err.labels().map(Iterator::collect).unwrap_or_default();
    let is_secondary = |l: &miette::LabeledSpan| {
        l.label()
            .is_some_and(|t| t.starts_with("first defined") || t.ends_with("range defined here"))
    };
    let primary = labels
        .iter()
        .position(|l| !is_secondary(l))
        .or((!labels.is_empty()).then_some(0));
    if let Some(primary) = primary {
        if let Some((line, col)) = locate(labels[primary].inner()) {
            location.line = line;
            location.col = col;
        }
        for (i, other) in labels.iter().enumerate() {
            if i == primary {
                continue;
            }
            if let Some((line, col)) = locate(other.inner()) {
                let what = other.label().unwrap_or("see");
                message = format!("{message} ({what} at {file}:{line}:{col})");
            }
        }
    }
    if err.is_file_not_found() && !message.contains("not found") {
        message = format!("{message} (not found in any include dir)");
    }
    if let Some(help) = err.help() {
        message = format!("{message} ({help})");
    }
    Error::at(location, message)
}

/// Where a cycle closes: the import, in the last file of `a.proto -> b.proto -> a.proto`, of
/// the file that starts it again.
fn cycle_location(cycle: &str, inputs: &Inputs) -> Option<Location> {
    let parts: Vec<&str> = cycle.split(" -> ").collect();
    let [.., importer, imported] = parts.as_slice() else {
        return None;
    };
    let file = inputs.display_path(importer);
    let text = std::fs::read_to_string(&file).ok()?;
    let quoted = format!("\"{imported}\"");
    let offset = text.match_indices(&quoted).map(|(i, _)| i).find(|&i| {
        text[..i]
            .rsplit(';')
            .next()
            .is_some_and(|s| s.contains("import"))
    })?;
    let statement = text[..offset].rfind("import").unwrap_or(offset);
    let (line, col) = line_col(&text, statement);
    Some(Location { file, line, col })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}
