//! The AsyncAPI document: `asyncapi.yaml` is exactly what the CLI writes for `proto/`
//! (a diff on mismatch; `AXION_GEN_BLESS=1 cargo test --test asyncapi` rewrites it), and the real AsyncAPI parser
//! (`@asyncapi/parser` in tests/asyncapi/, installed by scripts/setup.sh) accepts it and the
//! edge fixture's document, rejects a corrupted one, and sees one channel per pattern and reply
//! topic and the send/receive operations of every rpc. Payloads written by the runtime's JSON
//! codec validate against the document's schemas (ajv), and shapes the codec never writes do
//! not.

// Generated code is formatted by prettyplease; rustfmt must not rewrite the goldens.
#[rustfmt::skip]
#[path = "../generated/mod.rs"]
mod contracts;
#[rustfmt::skip]
#[path = "fixtures/edge_generated/mod.rs"]
mod edge_generated;
mod support {
    #[allow(dead_code)]
    #[path = "../support/golden.rs"]
    pub mod golden;
}

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use axion_runtime::prost_types;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_axion-gen");
const GOLDEN: &str = "asyncapi.yaml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], out: &Path) -> std::process::Output {
    let output = Command::new(BIN)
        .current_dir(root())
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "axion-gen {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs tests/asyncapi/validate.js: (exit code, report).
fn validate(file: &Path) -> (i32, Value) {
    let dir = root().join("tests/asyncapi");
    assert!(
        dir.join("node_modules/@asyncapi/parser").is_dir(),
        "tests/asyncapi/node_modules is missing: run bash scripts/setup.sh (or cd tests/asyncapi && npm ci)"
    );
    let out = Command::new("node")
        .current_dir(&dir)
        .arg("validate.js")
        .arg(file)
        .output()
        .expect("node on PATH (bash scripts/setup.sh installs it)");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "validate.js printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn errors(report: &Value) -> Vec<&Value> {
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect()
}

/// The model's rpcs as `list --json` prints them.
fn rpcs(proto_dir: &str) -> Vec<Value> {
    let out = Command::new(BIN)
        .current_dir(root())
        .args(["list", "--json", "--proto-dir", proto_dir])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array().unwrap().clone()
}

/// Every pattern and reply topic is a channel (and nothing else is); every rpc has a send and
/// a receive operation on its pattern, replying on its reply topic unless it is an event.
fn assert_matches_model(report: &Value, proto_dir: &str) {
    let rows = rpcs(proto_dir);
    assert!(!rows.is_empty());
    let mut topics = BTreeSet::new();
    for r in &rows {
        topics.insert(r["pattern"].as_str().unwrap().to_owned());
        if let Some(reply) = r["reply_topic"].as_str() {
            topics.insert(reply.to_owned());
        }
    }
    let addresses: BTreeSet<String> = report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(addresses, topics, "channels vs the model's topics");

    let operations = report["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 2 * rows.len());
    for r in &rows {
        for action in ["send", "receive"] {
            let id = format!(
                "{}.{}.{action}",
                r["service"].as_str().unwrap(),
                r["rpc"].as_str().unwrap()
            );
            let op = operations
                .iter()
                .find(|o| o["id"] == id.as_str())
                .unwrap_or_else(|| panic!("no operation {id}"));
            assert_eq!(op["action"], action, "{id}");
            assert_eq!(op["channels"], serde_json::json!([r["pattern"]]), "{id}");
            assert_eq!(op["reply"], r["reply_topic"], "{id}: reply channel");
        }
    }
}

#[test]
fn golden_matches_a_fresh_run_and_check_detects_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("asyncapi.yaml");
    run(&["asyncapi", "--proto-dir", "proto"], &fresh);
    let fresh_text = std::fs::read_to_string(&fresh).unwrap();
    let golden = root().join(GOLDEN);
    support::golden::assert_file(&golden, fresh_text.as_bytes());

    // A second run is byte-identical (deterministic), and --check agrees with it.
    let again = tmp.path().join("again.yaml");
    run(&["asyncapi", "--proto-dir", "proto"], &again);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), fresh_text);
    let check = |file: &Path| {
        Command::new(BIN)
            .current_dir(root())
            .args(["asyncapi", "--proto-dir", "proto", "--check", "--out"])
            .arg(file)
            .output()
            .unwrap()
    };
    assert_eq!(check(&golden).status.code(), Some(0));
    std::fs::write(&again, format!("{fresh_text}# hand edit\n")).unwrap();
    let drift = check(&again);
    assert_eq!(drift.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&drift.stdout).contains("Changed"));
    assert!(
        std::fs::read_to_string(&again)
            .unwrap()
            .ends_with("# hand edit\n"),
        "--check must write nothing"
    );
}

#[test]
fn golden_is_valid_asyncapi_and_matches_the_model() {
    let golden = root().join(GOLDEN);
    let (code, report) = validate(&golden);
    assert_eq!(errors(&report), Vec::<&Value>::new(), "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_matches_model(&report, "proto");
}

#[test]
fn edge_fixture_document_is_valid_asyncapi_and_matches_the_model() {
    // Recursive messages, maps, oneofs, well-known types, proto2 groups, Rust keywords.
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("edge.json");
    run(&["asyncapi", "--proto-dir", "tests/fixtures/edge"], &doc);
    let (code, report) = validate(&doc);
    assert_eq!(errors(&report), Vec::<&Value>::new(), "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_matches_model(&report, "tests/fixtures/edge");
    // Recursion stays a $ref cycle in components.schemas, not an expansion.
    let text: Value = serde_json::from_slice(&std::fs::read(&doc).unwrap()).unwrap();
    let tree = &text["components"]["schemas"]["edge.everything.v1.Tree"];
    assert!(
        tree.to_string()
            .contains("#/components/schemas/edge.everything.v1.Tree"),
        "{tree:#}"
    );
}

#[test]
fn a_corrupted_document_is_rejected() {
    let text = std::fs::read_to_string(root().join(GOLDEN)).unwrap();
    // AsyncAPI 2's verb, and a reference to a channel that does not exist.
    let corrupted = text
        .replacen("action: send", "action: publish", 1)
        .replacen(
            "$ref: '#/channels/axion.graph-service.create-project'",
            "$ref: '#/channels/no-such-channel'",
            1,
        );
    assert_ne!(corrupted, text);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("corrupted.yaml");
    std::fs::write(&file, corrupted).unwrap();
    let (code, report) = validate(&file);
    assert_eq!(code, 1, "{report:#}");
    assert!(!errors(&report).is_empty(), "{report:#}");
}

/// A payload case: a name, the schema (proto full name), the JSON.
fn case(name: &str, schema: &str, payload: Value) -> Value {
    json!({ "name": name, "schema": schema, "payload": payload })
}

/// The JSON the runtime's codec writes for `value`.
fn encoded<T: serde::Serialize + 'static>(value: &T) -> Value {
    serde_json::from_slice(&axion_runtime::json::encode(value).unwrap()).unwrap()
}

/// Runs tests/asyncapi/payloads.js: (exit code, name → (valid, errors)).
fn validate_payloads(doc: &Path, cases: &[Value]) -> (i32, HashMap<String, (bool, Value)>) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(cases).unwrap()).unwrap();
    let out = Command::new("node")
        .current_dir(root().join("tests/asyncapi"))
        .arg("payloads.js")
        .arg(doc)
        .arg(&file)
        .output()
        .expect("node on PATH (bash scripts/setup.sh installs it)");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "payloads.js printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let results = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                (r["valid"].as_bool().unwrap(), r["errors"].clone()),
            )
        })
        .collect();
    (out.status.code().unwrap_or(-1), results)
}

fn graph_cases() -> Vec<Value> {
    use contracts::axion::graph::v1::{
        project, CreateProjectRequest, Project, ProjectCreatedEvent,
    };
    let full = Project {
        id: "p1".into(),
        name: "alpha".into(),
        description: "d".into(),
        labels: HashMap::from([("team".into(), "core".into())]),
        status: 2,
        created_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        }),
        size_bytes: -9_007_199_254_740_991,
        checksum: vec![0, 1, 255],
        location: Some(project::Location::Git(project::Source {
            url: "https://git.example/a".into(),
            revision: "main".into(),
        })),
        tags: vec!["x".into(), "y".into()],
    };
    let in_workspace = Project {
        location: Some(project::Location::WorkspacePath("/w/alpha".into())),
        ..full.clone()
    };
    let event = ProjectCreatedEvent {
        project: Some(full.clone()),
    };
    let request = CreateProjectRequest {
        name: "alpha".into(),
        description: String::new(),
        labels: HashMap::from([("a".into(), "b".into())]),
    };
    let p = "axion.graph.v1.Project";
    vec![
        case("project, every field", p, encoded(&full)),
        case("project, other oneof member", p, encoded(&in_workspace)),
        case("project, defaults", p, encoded(&Project::default())),
        case(
            "event",
            "axion.graph.v1.ProjectCreatedEvent",
            encoded(&event),
        ),
        case(
            "create request",
            "axion.graph.v1.CreateProjectRequest",
            encoded(&request),
        ),
        case("empty", "google.protobuf.Empty", encoded(&())),
    ]
}

/// Shapes canonical proto3 JSON (or a careless peer) would send, which the codec never writes.
fn foreign_cases() -> Vec<Value> {
    use contracts::axion::graph::v1::{project, Project};
    let full = encoded(&Project {
        location: Some(project::Location::WorkspacePath("/w".into())),
        ..Project::default()
    });
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v = full.clone();
        f(v.as_object_mut().unwrap());
        v
    };
    let p = "axion.graph.v1.Project";
    vec![
        case(
            "enum as name",
            p,
            edit(&|m| {
                m.insert("status".into(), json!("PROJECT_STATUS_ACTIVE"));
            }),
        ),
        case(
            "int64 as string",
            p,
            edit(&|m| {
                m.insert("sizeBytes".into(), json!("12"));
            }),
        ),
        case(
            "bytes as base64",
            p,
            edit(&|m| {
                m.insert("checksum".into(), json!("AAH/"));
            }),
        ),
        case(
            "two oneof members",
            p,
            edit(&|m| {
                m.insert("git".into(), json!({ "url": "u", "revision": "r" }));
            }),
        ),
        case(
            "a list field left out",
            p,
            edit(&|m| {
                m.remove("tags");
            }),
        ),
        case(
            "timestamp as RFC 3339",
            p,
            edit(&|m| {
                m.insert("createdAt".into(), json!("2024-01-01T00:00:00Z"));
            }),
        ),
    ]
}

fn edge_cases() -> Vec<Value> {
    use edge_generated::edge::everything::v1::{tree, Maps, Tree, WellKnown};
    use edge_generated::edge::shared::{Id, Tagged};
    let leaf = Tree {
        name: "leaf".into(),
        link: Some(tree::Link::SiblingName("other".into())),
        ..Tree::default()
    };
    let tree = Tree {
        name: "root".into(),
        parent: Some(Box::new(leaf.clone())),
        children: vec![leaf.clone(), Tree::default()],
        by_name: HashMap::from([("leaf".into(), leaf.clone())]),
        link: Some(tree::Link::Sibling(Box::new(leaf))),
        forest: None,
    };
    let value = |kind| prost_types::Value { kind: Some(kind) };
    use prost_types::value::Kind;
    let well_known = WellKnown {
        any: Some(prost_types::Any {
            type_url: "type.googleapis.com/x.Y".into(),
            value: vec![1, 2],
        }),
        duration: Some(prost_types::Duration {
            seconds: -1,
            nanos: -500,
        }),
        empty: Some(()),
        mask: Some(prost_types::FieldMask {
            paths: vec!["a.b".into()],
        }),
        r#struct: Some(prost_types::Struct {
            fields: [("k".to_owned(), value(Kind::BoolValue(true)))].into(),
        }),
        value: Some(value(Kind::StringValue("s".into()))),
        list: Some(prost_types::ListValue {
            values: vec![value(Kind::NumberValue(1.5)), value(Kind::NullValue(0))],
        }),
        timestamp: Some(prost_types::Timestamp::default()),
        bool_value: Some(true),
        bytes_value: Some(vec![7]),
        double_value: Some(f64::NAN),
        float_value: Some(f32::NEG_INFINITY),
        int32_value: Some(-1),
        int64_value: Some(i64::MIN),
        string_value: Some("s".into()),
        uint32_value: Some(u32::MAX),
        uint64_value: Some(u64::MAX),
        timestamps: vec![prost_types::Timestamp::default()],
        null: 0,
        maybe: Some(String::new()),
        maybe_color: Some(2),
    };
    let maps = Maps {
        colors: HashMap::from([("r".into(), 1)]),
        outers: HashMap::from([(-3, Default::default())]),
        flags: HashMap::from([(true, vec![1]), (false, vec![])]),
        values: HashMap::from([(4, value(Kind::NumberValue(2.0)))]),
        levels: HashMap::from([("l".into(), 0)]),
        numbers: HashMap::from([(-1, f64::INFINITY), (2, 0.5)]),
        tagged: HashMap::from([(
            9,
            Tagged {
                id: Some(Id::default()),
                colors: vec![1, 2],
            },
        )]),
    };
    vec![
        case("recursive tree", "edge.everything.v1.Tree", encoded(&tree)),
        case(
            "well-known types",
            "edge.everything.v1.WellKnown",
            encoded(&well_known),
        ),
        case(
            "well-known defaults",
            "edge.everything.v1.WellKnown",
            encoded(&WellKnown::default()),
        ),
        case("maps", "edge.everything.v1.Maps", encoded(&maps)),
        case(
            "file without a package",
            "Loose",
            encoded(&edge_generated::Loose { value: "v".into() }),
        ),
    ]
}

#[test]
fn payloads_the_codec_writes_match_the_schemas() {
    let tmp = tempfile::tempdir().unwrap();
    let graph_doc = tmp.path().join("graph.json");
    run(&["asyncapi", "--proto-dir", "proto"], &graph_doc);
    let edge_doc = tmp.path().join("edge.json");
    run(
        &["asyncapi", "--proto-dir", "tests/fixtures/edge"],
        &edge_doc,
    );

    for (doc, cases) in [(&graph_doc, graph_cases()), (&edge_doc, edge_cases())] {
        let (code, results) = validate_payloads(doc, &cases);
        assert_eq!(results.len(), cases.len());
        for (name, (valid, errors)) in &results {
            assert!(valid, "{name}: {errors:#}");
        }
        assert_eq!(code, 0);
    }

    // The validator can fail: every foreign shape is rejected.
    let foreign = foreign_cases();
    let (code, results) = validate_payloads(&graph_doc, &foreign);
    assert_eq!(code, 1);
    assert_eq!(results.len(), foreign.len());
    for (name, (valid, _)) in &results {
        assert!(!valid, "{name} must not match the schema");
    }
}
