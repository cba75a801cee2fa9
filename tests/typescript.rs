//! TypeScript contracts (`generate --ts`): they compile with `tsc` in strict mode next to
//! ts-proto's message types, and the NestJS test app is built on them, so an rpc renamed in a
//! proto breaks the app's compile. Needs the NestJS peer's node_modules (bash scripts/setup.sh)
//! and protoc.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use axion_runtime::prost::Message as _;

const BIN: &str = env!("CARGO_BIN_EXE_axion-gen");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn nest() -> PathBuf {
    root().join("tests/nest")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every `.proto` below `dir`, relative to it, sorted.
fn protos(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                out.push(rel.replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// ts-proto's output (the NestJS peer's options) for every proto below `proto_dir` into `out`.
/// protox compiles the files (protoc rejects some names protox accepts, e.g. an rpc and its
/// message both called `Self`); protoc only runs the ts-proto plugin on the descriptor set.
fn ts_proto(proto_dir: &Path, out: &Path) {
    let files = protos(proto_dir);
    let set = protox::Compiler::new([proto_dir.to_owned(), root().join("proto")])
        .unwrap()
        .include_source_info(true)
        .include_imports(true)
        .open_files(&files)
        .unwrap_or_else(|e| panic!("protox: {e}"))
        .file_descriptor_set();
    let set_path = out.with_extension("pb");
    std::fs::write(&set_path, set.encode_to_vec()).unwrap();
    std::fs::create_dir_all(out).unwrap();
    let result = Command::new("protoc")
        .arg(format!(
            "--plugin=protoc-gen-ts_proto={}",
            nest()
                .join("node_modules/.bin/protoc-gen-ts_proto")
                .display()
        ))
        .arg(format!("--descriptor_set_in={}", set_path.display()))
        .arg(format!("--ts_proto_out={}", out.display()))
        .arg("--ts_proto_opt=nestJs=true,outputPartialMethods=true")
        .args(&files)
        .output()
        .expect("protoc must be installed (bash scripts/setup.sh)");
    assert!(result.status.success(), "ts-proto: {}", text(&result));
}

/// `axion-gen generate --ts <app>/src/contracts` (Rust output into a scratch dir).
fn generate_ts(proto_dir: &Path, app: &Path) {
    let result = Command::new(BIN)
        .arg("generate")
        .arg("--proto-dir")
        .arg(proto_dir)
        .arg("--out")
        .arg(app.join("rust"))
        .arg("--ts")
        .arg(app.join("src/contracts"))
        .output()
        .unwrap();
    assert!(result.status.success(), "generate: {}", text(&result));
}

/// A scratch TypeScript project at `app` using the NestJS peer's node_modules.
fn project(app: &Path, tsconfig: &str) {
    std::fs::create_dir_all(app.join("src")).unwrap();
    let modules = nest().join("node_modules");
    assert!(
        modules.join("typescript").is_dir(),
        "{} has no typescript: cd tests/nest && npm ci",
        modules.display()
    );
    #[cfg(unix)]
    std::os::unix::fs::symlink(&modules, app.join("node_modules")).unwrap();
    std::fs::write(app.join("tsconfig.json"), tsconfig).unwrap();
}

/// `tsc --noEmit -p <app>`.
fn tsc(app: &Path) -> Output {
    Command::new("node")
        .arg(nest().join("node_modules/typescript/bin/tsc"))
        .arg("--noEmit")
        .arg("-p")
        .arg(app.join("tsconfig.json"))
        .output()
        .expect("node must be installed")
}

/// Stricter than the NestJS peer: what a careful consumer of `@axion/contracts` may turn on.
const STRICT: &str = r#"{
  "compilerOptions": {
    "target": "ES2022", "module": "commonjs", "lib": ["ES2022"], "types": ["node"],
    "strict": true, "noUnusedLocals": true, "noUnusedParameters": true,
    "noImplicitReturns": true, "noImplicitOverride": true,
    "exactOptionalPropertyTypes": true, "noUncheckedIndexedAccess": true,
    "skipLibCheck": true, "esModuleInterop": true
  },
  "include": ["src/**/*.ts"]
}"#;

fn compiles_strict(proto_dir: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    project(&app, STRICT);
    ts_proto(proto_dir, &app.join("src/gen"));
    // ts-proto's nestJs output registers Struct wrappers with protobufjs (NestJS gRPC's
    // runtime), which the Kafka peer does not install; type-checking needs only its shape.
    std::fs::write(
        app.join("src/protobufjs.d.ts"),
        "declare module \"protobufjs\" {\n  export const wrappers: Record<string, unknown>;\n}\n",
    )
    .unwrap();
    generate_ts(proto_dir, &app);
    assert!(app.join("src/contracts/index.ts").is_file());
    let out = tsc(&app);
    assert!(
        out.status.success(),
        "tsc failed on the contracts of {}:\n{}",
        proto_dir.display(),
        text(&out)
    );
}

#[test]
fn contracts_of_the_example_protos_compile_strict() {
    compiles_strict(&root().join("proto"));
}

#[test]
fn contracts_of_the_edge_fixture_compile_strict() {
    compiles_strict(&root().join("tests/fixtures/edge"));
}

/// The NestJS peer's sources (not its generated dirs) in a scratch project, with its tsconfig,
/// ts-proto types of the checked-in protos and contracts generated from `proto_dir`.
fn nest_app_against(proto_dir: &Path) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    let tsconfig = std::fs::read_to_string(nest().join("tsconfig.json")).unwrap();
    project(&app, &tsconfig);
    for entry in std::fs::read_dir(nest().join("src")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ts") && path.is_file() {
            std::fs::copy(&path, app.join("src").join(path.file_name().unwrap())).unwrap();
        }
    }
    ts_proto(&root().join("proto"), &app.join("src/gen"));
    generate_ts(proto_dir, &app);
    tsc(&app)
}

#[test]
fn a_renamed_rpc_breaks_the_nest_app_compile() {
    // Control: the app compiles against contracts of the protos as they are.
    let out = nest_app_against(&root().join("proto"));
    assert!(
        out.status.success(),
        "the NestJS app does not compile against fresh contracts:\n{}",
        text(&out)
    );

    // CreateProject renamed: its constant is gone, and every use of it fails to compile.
    let tmp = tempfile::tempdir().unwrap();
    let protos = tmp.path().join("proto");
    for rel in self::protos(&root().join("proto")) {
        let to = protos.join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join("proto").join(&rel), to).unwrap();
    }
    let graph = protos.join("axion/graph/v1/graph.proto");
    let source = std::fs::read_to_string(&graph).unwrap();
    let renamed = source.replace("rpc CreateProject(", "rpc MakeProject(");
    assert_ne!(source, renamed, "graph.proto has no rpc CreateProject");
    std::fs::write(&graph, renamed).unwrap();
    let out = nest_app_against(&protos);
    let log = text(&out);
    assert!(!out.status.success(), "tsc accepted a renamed rpc:\n{log}");
    assert!(
        log.contains("Property 'CREATE_PROJECT' does not exist"),
        "tsc failed, but not on the old constant:\n{log}"
    );
}
