//! The configuration every front end goes through, and the pipeline it runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost_types::FileDescriptorProto;

use crate::breaking::{self, Finding};
use crate::error::{Error, Result};
use crate::load::{self, Inputs};
use crate::model::{self, Model, ModelOptions, PatternScheme};
use crate::writer::{self, Drift};
use crate::{descriptor_set, emit, render};

/// Where [`Builder::compile_dir`] writes below `OUT_DIR` when no [`Builder::out_dir`] is set:
/// what `axion_runtime::include_contracts!()` reads.
pub const OUT_DIR_SUBDIR: &str = "axion";

/// Starts a build-script/CLI configuration, in the spirit of `tonic_build::configure()`.
pub fn configure() -> Builder {
    Builder::default()
}

/// The one configuration of a generation: its inputs, the options of the model, and the
/// outputs chosen (Rust modules with Traefik snippets, TypeScript contracts). Every front end
/// (build scripts, the CLI, the fuzzers) fills one and runs it.
#[derive(Clone, Debug)]
pub struct Builder {
    proto_dir: Option<PathBuf>,
    files: Vec<PathBuf>,
    includes: Vec<PathBuf>,
    model: ModelOptions,
    out_dir: Option<PathBuf>,
    emit_rerun_if_changed: Option<bool>,
    traefik_server_url: Option<String>,
    ts_out: Option<PathBuf>,
    ts_proto_import: String,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            proto_dir: None,
            files: Vec::new(),
            includes: Vec::new(),
            model: ModelOptions::default(),
            out_dir: None,
            emit_rerun_if_changed: None,
            traefik_server_url: None,
            ts_out: None,
            ts_proto_import: emit::typescript::DEFAULT_TS_PROTO_IMPORT.to_owned(),
        }
    }
}

/// What one generation produced.
#[derive(Debug)]
pub struct Generated {
    /// Output files: path relative to the output dir → content.
    pub files: BTreeMap<String, String>,
    /// The model the files came from.
    pub model: Model,
    /// Warnings (skipped rpcs and files).
    pub warnings: Vec<String>,
    /// Every input read from disk.
    pub inputs: Vec<PathBuf>,
    /// TypeScript contracts (path relative to [`Generated::ts_dir`] → content), when asked for.
    pub ts_files: BTreeMap<String, String>,
    /// Where the TypeScript contracts go ([`Builder::ts_out`]).
    pub ts_dir: Option<PathBuf>,
}

/// The files with their contents borrowed.
fn borrowed(files: &BTreeMap<String, String>) -> BTreeMap<String, &str> {
    files.iter().map(|(k, v)| (k.clone(), v.as_str())).collect()
}

impl Generated {
    /// Every output dir with its files: the Rust files below `out_dir`, the TypeScript files
    /// below [`Generated::ts_dir`]. A TypeScript dir inside `out_dir` is merged into it, so
    /// neither write removes the other's files as stale. The contents are borrowed.
    pub fn outputs(&self, out_dir: &Path) -> Vec<(PathBuf, BTreeMap<String, &str>)> {
        let mut rust = (out_dir.to_owned(), borrowed(&self.files));
        let Some(ts_dir) = &self.ts_dir else {
            return vec![rust];
        };
        let clean = |p: &Path| -> PathBuf {
            p.components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect()
        };
        match clean(ts_dir).strip_prefix(clean(out_dir)) {
            Ok(sub) => {
                let prefix: Vec<String> = sub
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                for (rel, text) in &self.ts_files {
                    let path = prefix
                        .iter()
                        .map(String::as_str)
                        .chain(std::iter::once(rel.as_str()))
                        .collect::<Vec<_>>()
                        .join("/");
                    rust.1.insert(path, text.as_str());
                }
                vec![rust]
            }
            Err(_) => vec![rust, (ts_dir.clone(), borrowed(&self.ts_files))],
        }
    }
}

impl Builder {
    /// Every `.proto` below `dir` is a contract, and `dir` is the first include dir.
    pub fn proto_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.proto_dir = Some(dir.into());
        self
    }

    /// Adds a contract file: a path on disk, or a name relative to an include dir.
    pub fn proto_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.files.push(file.into());
        self
    }

    /// Adds an include dir for imports (after the proto dir).
    pub fn include(mut self, dir: impl Into<PathBuf>) -> Self {
        self.includes.push(dir.into());
        self
    }

    /// Prefix of default patterns; `""` drops it. A file's `option (axion.file).topic_prefix`
    /// wins over this. Default: the scheme's ([`PatternScheme::default_prefix`]): `axion` with
    /// the service scheme, none with the package scheme.
    pub fn topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.model.topic_prefix = Some(prefix.into());
        self
    }

    /// How default patterns are formed ([`PatternScheme`]); a file's
    /// `option (axion.file).pattern_scheme` wins over this. Default: [`PatternScheme::Service`].
    pub fn pattern_scheme(mut self, scheme: PatternScheme) -> Self {
        self.model.pattern_scheme = scheme;
        self
    }

    /// Skip client/bidi-streaming rpcs, edition files and copies of well-known types, with a
    /// warning, instead of failing. Default: false.
    pub fn skip_unsupported(mut self, yes: bool) -> Self {
        self.model.skip_unsupported = yes;
        self
    }

    /// Where the Rust modules (and Traefik snippets) go. Default in a build script:
    /// `$OUT_DIR/axion` (what `axion_runtime::include_contracts!()` reads).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines. Default: when run by Cargo
    /// (`OUT_DIR` is set).
    pub fn emit_rerun_if_changed(mut self, yes: bool) -> Self {
        self.emit_rerun_if_changed = Some(yes);
        self
    }

    /// Server URL of every Traefik file-provider snippet (`traefik/<name>.dynamic.yml`),
    /// overriding the services' `server_url` options; `{name}` becomes the Traefik service
    /// name and `{port}` the edge's port, e.g. `http://127.0.0.1:{port}` when Traefik runs on
    /// the host. Default: each service's option, else `http://<service name>:<port>`.
    pub fn traefik_server_url(mut self, template: impl Into<String>) -> Self {
        self.traefik_server_url = Some(template.into());
        self
    }

    /// Also writes TypeScript contracts for NestJS into `dir` (one module per proto package
    /// with services, `axion-kafka.ts` and `index.ts`); a relative `dir` is relative to the
    /// current directory. Default: none.
    pub fn ts_out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.ts_out = Some(dir.into());
        self
    }

    /// Where the TypeScript contracts import ts-proto's message types from: ts-proto's output
    /// dir relative to the [`Builder::ts_out`] dir when it starts with `.`, else a module
    /// specifier prefix used as is (a path alias or package). Default: `../gen`.
    pub fn ts_proto_import(mut self, path: impl Into<String>) -> Self {
        self.ts_proto_import = path.into();
        self
    }

    /// Generates from every `.proto` under `proto_dir` and writes the output (build scripts).
    pub fn compile_dir(self, proto_dir: impl AsRef<Path>) -> Result<Generated> {
        self.proto_dir(proto_dir.as_ref()).run()
    }

    /// Generates from `protos` (paths below one of `includes`) and writes the output
    /// (build scripts), like `tonic_build::compile_protos`.
    pub fn compile(
        mut self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<Generated> {
        let given: Vec<PathBuf> = includes.iter().map(|i| i.as_ref().to_owned()).collect();
        self.includes.splice(0..0, given);
        self.files
            .extend(protos.iter().map(|p| p.as_ref().to_owned()));
        self.run()
    }

    /// Generates from the configured inputs and writes every output: the build-script entry
    /// point (prints `cargo:rerun-if-changed` and warnings when run by Cargo).
    pub fn run(&self) -> Result<Generated> {
        let in_cargo = std::env::var_os("OUT_DIR").is_some();
        let rerun = self.emit_rerun_if_changed.unwrap_or(in_cargo);
        let result = self.generate();
        if rerun {
            // Even on failure, rerun when the inputs change.
            let mut paths: Vec<PathBuf> = match &result {
                Ok(g) => g.inputs.clone(),
                Err(_) => Vec::new(),
            };
            paths.extend(self.proto_dir.iter().cloned());
            paths.extend(self.files.iter().cloned());
            paths.sort();
            paths.dedup();
            for path in paths.iter().filter(|p| p.exists()) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        let generated = result?;
        if in_cargo {
            for warning in &generated.warnings {
                println!("cargo:warning={warning}");
            }
        }
        self.write(&generated)?;
        Ok(generated)
    }

    /// Writes every output of `generated` (from [`Builder::generate`]) where this
    /// configuration puts it, rewriting only changed files and removing stale ones. Returns
    /// the paths written.
    pub fn write(&self, generated: &Generated) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (dir, files) in generated.outputs(&self.resolved_out_dir()?) {
            written.extend(writer::write(&dir, &files)?);
        }
        Ok(written)
    }

    /// Compares every output of `generated` with what is on disk, writing nothing: the
    /// drifted files (path below the output dirs, how they differ).
    pub fn check(&self, generated: &Generated) -> Result<Vec<(PathBuf, Drift)>> {
        let mut drift = Vec::new();
        for (dir, files) in generated.outputs(&self.resolved_out_dir()?) {
            for (path, kind) in writer::check(&dir, &files)? {
                drift.push((dir.join(path), kind));
            }
        }
        Ok(drift)
    }

    /// The breaking changes of the configured contracts against an earlier version of them
    /// in `reference_dir` (read with the same include dirs and options).
    pub fn breaking_changes(&self, reference_dir: impl Into<PathBuf>) -> Result<Vec<Finding>> {
        let reference = Inputs {
            proto_dir: Some(reference_dir.into()),
            files: Vec::new(),
            ..self.inputs()
        };
        breaking::check(&self.inputs(), &reference, &self.model)
    }

    /// Loads the configured inputs and builds their model, without emitting anything: what
    /// listing rpcs, topics or an AsyncAPI document needs. Warnings go to `warnings`.
    pub fn model(&self, warnings: &mut Vec<String>) -> Result<Model> {
        let loaded = load::load(&self.inputs(), warnings)?;
        model::build(&loaded, &self.model, warnings)
    }

    /// Runs the pipeline on the configured inputs without writing: load → model → emit →
    /// format.
    pub fn generate(&self) -> Result<Generated> {
        let mut warnings = Vec::new();
        let loaded = load::load(&self.inputs(), &mut warnings)?;
        self.generate_loaded(loaded, warnings)
    }

    /// Runs the pipeline without writing on an encoded `FileDescriptorSet`
    /// (`protoc --include_imports --descriptor_set_out`, `protox -o`) instead of `.proto`
    /// files: every file of the set that is not a well-known type or `axion/options.proto`
    /// is a contract. Without source info, errors name the file but no line.
    pub fn generate_from_descriptor_set(&self, encoded: &[u8]) -> Result<Generated> {
        let mut warnings = Vec::new();
        let loaded = descriptor_set::load(encoded, &mut warnings)?;
        self.generate_loaded(loaded, warnings)
    }

    fn inputs(&self) -> Inputs {
        Inputs {
            proto_dir: self.proto_dir.clone(),
            files: self.files.clone(),
            includes: self.includes.clone(),
            skip_unsupported: self.model.skip_unsupported,
        }
    }

    fn resolved_out_dir(&self) -> Result<PathBuf> {
        match &self.out_dir {
            Some(dir) => Ok(dir.clone()),
            None => std::env::var_os("OUT_DIR")
                .map(|dir| PathBuf::from(dir).join(OUT_DIR_SUBDIR))
                .ok_or_else(|| {
                    Error::Usage(
                        "OUT_DIR is not set: call out_dir(..) outside a build script".into(),
                    )
                }),
        }
    }

    fn generate_loaded(
        &self,
        loaded: load::Loaded,
        mut warnings: Vec<String>,
    ) -> Result<Generated> {
        let model = model::build(&loaded, &self.model, &mut warnings)?;
        // The descriptors move on to prost-build.
        let load::Loaded {
            files, disk_files, ..
        } = loaded;
        let files = emit_files(&model, files, self.traefik_server_url.as_deref())?;
        let ts_files = match &self.ts_out {
            Some(_) => emit::typescript::emit(&model.packages, &self.ts_proto_import),
            None => BTreeMap::new(),
        };
        Ok(Generated {
            files,
            model,
            warnings,
            inputs: disk_files,
            ts_files,
            ts_dir: self.ts_out.clone(),
        })
    }
}

fn header(comment: &str, sources: &[String]) -> String {
    format!(
        "{comment} {} from {}. Do not edit.\n",
        writer::MARKER,
        sources.join(", ")
    )
}

fn emit_files(
    model: &Model,
    descriptors: Vec<FileDescriptorProto>,
    server_url: Option<&str>,
) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for (package, code) in model
        .packages
        .iter()
        .zip(render::packages(model, descriptors)?)
    {
        files.insert(
            package.file_name.clone(),
            format!("{}\n{code}", header("//", &package.sources)),
        );
        for svc in &package.services {
            let yml_header = header("#", std::slice::from_ref(&svc.proto_file));
            files.extend(emit::traefik::emit(svc, &yml_header, server_url));
        }
    }
    files.insert(
        "mod.rs".to_owned(),
        emit::module_tree::emit(
            &model.packages,
            &format!("// {}. Do not edit.\n", writer::MARKER),
        ),
    );
    Ok(files)
}
