//! The AsyncAPI document: `asyncapi.yaml` is exactly what the CLI writes for `proto/`
//! (`AXION_GEN_BLESS=1 cargo test --test asyncapi` rewrites it), and the real AsyncAPI parser
//! (`@asyncapi/parser` in tests/asyncapi/, installed by scripts/setup.sh) accepts it and the
//! edge fixture's document, rejects a corrupted one, and sees one channel per pattern and reply
//! topic and the send/receive operations of every rpc.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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
    if std::env::var_os("AXION_GEN_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &fresh_text).unwrap();
    }
    assert!(
        std::fs::read_to_string(&golden).unwrap() == fresh_text,
        "{GOLDEN} differs from a fresh run; regenerate with\n  cargo run -- asyncapi --proto-dir proto --out {GOLDEN}"
    );

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
