//! TypeScript contracts (`generate --ts`): they compile with `tsc` in strict mode next to
//! ts-proto's message types, and the NestJS test app is built on them, so an rpc renamed in a
//! proto breaks the app's compile. Needs the NestJS peer's node_modules (bash scripts/setup.sh)
//! and protoc.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use axion_runtime::prost::Message as _;

/// The Rust side of the contracts (the checked-in goldens; rustfmt must not rewrite them).
#[rustfmt::skip]
#[path = "../generated/mod.rs"]
mod contracts;

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

/// One env map through the generated helpers (the NestJS peer's build of them) and through
/// the Rust runtime's `KafkaConfig::from_lookup`: same brokers, ids, groups, SASL, TLS and
/// consumer timings, or an error naming the same variable.
#[test]
fn kafka_options_mirror_the_rust_runtime_config() {
    use axion_runtime::kafka::{KafkaConfig, SaslMechanism};
    use serde_json::{json, Value};

    let dist = nest().join("dist/contracts");
    assert!(
        dist.join("axion-kafka.js").is_file(),
        "{} is missing: build the NestJS peer (cd tests/nest && npm run build)",
        dist.display()
    );
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![
            ("KAFKA_BROKERS", "a:1, b:2"),
            ("KAFKA_SASL_USERNAME", "svc"),
            ("KAFKA_SASL_PASSWORD", "hunter2"),
        ],
        vec![
            ("KAFKA_SASL_USERNAME", "svc"),
            ("KAFKA_SASL_PASSWORD", "pw"),
            ("KAFKA_SASL_MECHANISM", "SCRAM_SHA_256"),
            ("KAFKA_SSL", "true"),
        ],
        vec![
            ("KAFKA_GROUP_ID", "custom"),
            ("KAFKA_CLIENT_ID", "caller"),
            ("KAFKA_FETCH_WAIT_MS", "25"),
            ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ("KAFKA_SSL", "off"),
            ("KAFKA_REQUEST_TIMEOUT_MS", " "),
        ],
        vec![
            ("KAFKA_SASL_MECHANISM", "md5"),
            ("KAFKA_SASL_USERNAME", "u"),
            ("KAFKA_SASL_PASSWORD", "p"),
        ],
        vec![("KAFKA_SASL_MECHANISM", "md5")],
        vec![("KAFKA_REQUEST_TIMEOUT_MS", "-5")],
        vec![("KAFKA_FETCH_WAIT_MS", "0")],
        vec![("KAFKA_SESSION_TIMEOUT_MS", "ten")],
        vec![("KAFKA_TOPIC_PARTITIONS", "0")],
        vec![("KAFKA_BROKERS", "nohost")],
        vec![("KAFKA_BROKERS", " , ")],
        vec![("KAFKA_SASL_USERNAME", "u")],
        vec![("KAFKA_SASL_PASSWORD", "p")],
        vec![("KAFKA_SSL", "maybe")],
        vec![("KAFKA_SSL_CA_LOCATION", "/etc/ssl/ca.pem")],
        vec![
            ("KAFKA_SASL_USERNAME", "u"),
            ("KAFKA_SASL_PASSWORD", "hunter2"),
            ("KAFKA_SASL_MECHANISM", "plain"),
        ],
        vec![
            ("KAFKA_SASL_USERNAME", "u"),
            ("KAFKA_SASL_PASSWORD", "hunter2"),
            ("KAFKA_SASL_MECHANISM", "PLAIN"),
            ("KAFKA_SSL", "true"),
        ],
    ];
    let maps: Vec<Value> = cases
        .iter()
        .map(|c| Value::Object(c.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()))
        .collect();
    let script = r#"
const k = require(process.argv[1] + "/axion-kafka.js");
const g = require(process.argv[1] + "/axion/graph/v1.js");
for (const env of JSON.parse(process.argv[2])) {
  try {
    const s = k.readKafkaSettings(env);
    const server = k.createKafkaServerOptions(g.GRAPH_SERVICE_CONTRACT, s).options;
    const client = k.createKafkaClientOptions(s).options;
    console.log(JSON.stringify({ ok: true, server, client }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, variable: e.variable ?? null, message: String(e.message) }));
  }
}"#;
    let out = Command::new("node")
        .current_dir(nest())
        .arg("-e")
        .arg(script)
        .arg(&dist)
        .arg(Value::Array(maps).to_string())
        .output()
        .expect("node must be installed");
    assert!(out.status.success(), "node: {}", text(&out));
    let results: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), cases.len());

    let contract = &contracts::axion::graph::v1::GRAPH_SERVICE_CONTRACT;
    for (case, ts) in cases.iter().zip(&results) {
        let rust = KafkaConfig::from_lookup(|name| {
            case.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        });
        let config = match rust {
            Err(e) => {
                assert_eq!(
                    ts["ok"], false,
                    "{case:?}: Rust fails ({e}), TS accepts: {ts}"
                );
                assert_eq!(ts["variable"], e.name.as_str(), "{case:?}: {ts}");
                assert!(!ts["message"].as_str().unwrap().contains("hunter2"));
                continue;
            }
            Ok(c) => c,
        };
        assert_eq!(ts["ok"], true, "{case:?}: Rust accepts, TS fails: {ts}");
        let server_group = config
            .server_group
            .as_ref()
            .map(|g| format!("{g}-server"))
            .unwrap_or_else(|| contract.server_group.to_owned());
        let id = |side: &Value, key: &str, field: &str| {
            format!(
                "{}{}",
                side[key][field].as_str().unwrap(),
                side["postfixId"].as_str().unwrap()
            )
        };
        let (server, client) = (&ts["server"], &ts["client"]);
        assert_eq!(id(server, "client", "clientId"), server_group, "{case:?}");
        assert_eq!(id(server, "consumer", "groupId"), server_group, "{case:?}");
        assert_eq!(
            id(client, "client", "clientId"),
            config.client_group(),
            "{case:?}"
        );
        assert_eq!(
            id(client, "consumer", "groupId"),
            config.client_group(),
            "{case:?}"
        );
        for side in [server, client] {
            assert_eq!(side["client"]["brokers"], json!(config.brokers), "{case:?}");
            assert_eq!(
                side["consumer"]["maxWaitTimeInMs"],
                json!(config.fetch_wait.as_millis() as u64),
                "{case:?}"
            );
            assert_eq!(
                side["consumer"]["sessionTimeout"],
                json!(config.session_timeout.as_millis() as u64),
                "{case:?}"
            );
            assert_eq!(
                side["client"]["ssl"] == json!(true),
                config.ssl,
                "{case:?}: {side}"
            );
            match &config.sasl {
                None => assert!(side["client"]["sasl"].is_null(), "{case:?}"),
                Some(sasl) => {
                    let mechanism = match sasl.mechanism {
                        SaslMechanism::ScramSha512 => "scram-sha-512",
                        SaslMechanism::ScramSha256 => "scram-sha-256",
                        SaslMechanism::Plain => "plain",
                    };
                    assert_eq!(side["client"]["sasl"]["mechanism"], mechanism, "{case:?}");
                    assert_eq!(side["client"]["sasl"]["username"], sasl.username.as_str());
                    assert_eq!(
                        side["client"]["sasl"]["password"],
                        sasl.password.expose(),
                        "{case:?}"
                    );
                }
            }
        }
        // A new server group starts at the beginning, like the Rust server's earliest.
        assert_eq!(server["subscribe"]["fromBeginning"], true);
    }
}

/// `contractTopics(...)` on the NestJS side creates exactly the topics `axion-gen topics` (and
/// the Rust `ensure_topics`) do: request, reply and dead-letter topics.
#[test]
fn ts_contract_topics_match_the_cli_manifest() {
    let dist = nest().join("dist/contracts");
    assert!(
        dist.join("axion-kafka.js").is_file(),
        "{} is missing: build the NestJS peer (cd tests/nest && npm run build)",
        dist.display()
    );
    let script = r#"
const k = require(process.argv[1] + "/axion-kafka.js");
const g = require(process.argv[1] + "/index.js");
const contracts = Object.entries(g).filter(([n]) => n.endsWith("_CONTRACT")).map(([, c]) => c);
console.log(k.contractTopics(...contracts).join("\n"));"#;
    let ts = Command::new("node")
        .current_dir(nest())
        .arg("-e")
        .arg(script)
        .arg(&dist)
        .output()
        .expect("node must be installed");
    assert!(ts.status.success(), "node: {}", text(&ts));
    let cli = Command::new(BIN)
        .current_dir(root())
        .args(["topics", "--proto-dir", "proto"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", text(&cli));
    let mut from_cli: Vec<String> = String::from_utf8(cli.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    from_cli.sort();
    let from_ts: Vec<String> = String::from_utf8(ts.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(from_ts.iter().any(|t| t.ends_with(".dlq")), "{from_ts:?}");
    assert_eq!(from_ts, from_cli);
}
