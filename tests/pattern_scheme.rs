//! Two versions of one API side by side (`tests/fixtures/versions`: `acme.things.v1` and
//! `acme.things.v1beta1`, the same service): the service scheme refuses them (their default
//! patterns collide), the package scheme — `--pattern-scheme package` on every command that reads
//! contracts, `Builder::pattern_scheme`, or a file's `(axion.file).pattern_scheme` — puts the
//! package in every default pattern, and the generated modules of both versions compile
//! together (`tests/fixtures/versions_generated`, part of this test crate; `tests/golden.rs`
//! keeps it equal to a fresh run).

#[rustfmt::skip] // generated; formatted by axion-gen
#[path = "fixtures/versions_generated/mod.rs"]
mod versions;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use axion_gen::PatternScheme;

const BIN: &str = env!("CARGO_BIN_EXE_axion-gen");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/versions")
}

fn axion_gen(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run axion-gen")
}

fn stdout(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

/// `list --json` patterns, in list order.
fn patterns(args: &[&str]) -> Vec<(String, Option<String>)> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&axion_gen(args))).expect("list --json");
    rows.iter()
        .map(|r| {
            (
                r["pattern"].as_str().unwrap().to_owned(),
                r["reply_topic"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn two_versions_collide_under_the_service_scheme_and_the_error_names_the_way_out() {
    let dir = fixture();
    let out = axion_gen(&["list", "--proto-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("v1beta1/things.proto:10:1: error:")
            && err.contains("axion.thing-service.get-thing")
            && err.contains("--pattern-scheme package"),
        "{err}"
    );
}

#[test]
fn list_puts_the_package_in_every_default_pattern() {
    let dir = fixture();
    let got = patterns(&[
        "list",
        "--json",
        "--pattern-scheme",
        "package",
        "--proto-dir",
        dir.to_str().unwrap(),
    ]);
    let want: Vec<(String, Option<String>)> = [
        ("acme.things.v1.thing-service.get-thing", true),
        ("acme.things.v1.thing-service.list-things", true),
        ("acme.things.v1.thing-service.thing-changed", false),
        ("acme.things.v1beta1.thing-service.get-thing", true),
        ("acme.things.v1beta1.thing-service.list-things", true),
        ("acme.things.v1beta1.thing-service.thing-changed", false),
    ]
    .into_iter()
    .map(|(p, replies)| (p.to_owned(), replies.then(|| format!("{p}.reply"))))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn a_topic_prefix_goes_in_front_of_the_package() {
    let dir = fixture();
    let text = stdout(&axion_gen(&[
        "topics",
        "--pattern-scheme",
        "package",
        "--topic-prefix",
        "prod",
        "--proto-dir",
        dir.to_str().unwrap(),
    ]));
    let topics: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    // 2 versions × (3 request + 3 dead-letter + 2 reply topics); events have no reply topic.
    assert_eq!(topics.len(), 16, "{text}");
    assert!(topics.iter().all(|t| t.starts_with("prod.acme.things.v1")));
    assert!(topics.contains(&"prod.acme.things.v1beta1.thing-service.get-thing.reply"));
    assert!(!topics.contains(&"prod.acme.things.v1.thing-service.thing-changed.reply"));
}

#[test]
fn asyncapi_and_check_take_the_scheme_too() {
    let dir = fixture();
    let dir = dir.to_str().unwrap();
    let doc = stdout(&axion_gen(&[
        "asyncapi",
        "--json",
        "--pattern-scheme",
        "package",
        "--proto-dir",
        dir,
    ]));
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let channels = doc["channels"].as_object().unwrap();
    let addresses: Vec<&str> = channels
        .values()
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    assert!(addresses.contains(&"acme.things.v1.thing-service.get-thing"));
    assert!(addresses.contains(&"acme.things.v1beta1.thing-service.get-thing.reply"));

    // Without the scheme the contracts are refused before any comparison; with it, the tree
    // compared with itself has no breaking change.
    let refused = axion_gen(&["check", "--proto-dir", dir, "--against", dir]);
    assert_eq!(refused.status.code(), Some(2));
    let same = axion_gen(&[
        "check",
        "--pattern-scheme",
        "package",
        "--proto-dir",
        dir,
        "--against",
        dir,
    ]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
}

#[test]
fn both_versions_compile_side_by_side_with_contracts_by_name() {
    use versions::acme::things::{v1, v1beta1};
    assert_eq!(
        v1::THING_SERVICE_METHODS::GET_THING.pattern,
        "acme.things.v1.thing-service.get-thing"
    );
    assert_eq!(
        v1beta1::THING_SERVICE_METHODS::GET_THING.reply_topic,
        Some("acme.things.v1beta1.thing-service.get-thing.reply")
    );
    // An event is never answered: its contract has no reply topic.
    assert_eq!(v1::THING_SERVICE_METHODS::THING_CHANGED.reply_topic, None);
    assert_eq!(
        v1::THING_SERVICE_CONTRACT.methods,
        &[
            v1::THING_SERVICE_METHODS::GET_THING,
            v1::THING_SERVICE_METHODS::LIST_THINGS,
            v1::THING_SERVICE_METHODS::THING_CHANGED,
        ]
    );
    // The two versions' messages are distinct types.
    let beta = v1beta1::Thing {
        id: "t".into(),
        name: "n".into(),
        tags: vec!["x".into()],
    };
    let stable = v1::Thing {
        id: beta.id.clone(),
        name: beta.name.clone(),
    };
    assert_eq!(stable.id, "t");
}

#[test]
fn each_version_gets_its_own_typescript_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let ts = tmp.path().join("ts");
    stdout(&axion_gen(&[
        "generate",
        "--pattern-scheme",
        "package",
        "--proto-dir",
        fixture().to_str().unwrap(),
        "--out",
        tmp.path().join("rs").to_str().unwrap(),
        "--ts",
        ts.to_str().unwrap(),
    ]));
    let index = std::fs::read_to_string(ts.join("index.ts")).unwrap();
    assert!(
        index.contains("export * as acme_things_v1 from \"./acme/things/v1\";")
            && index.contains("export * as acme_things_v1beta1 from \"./acme/things/v1beta1\";"),
        "{index}"
    );
    let beta = std::fs::read_to_string(ts.join("acme/things/v1beta1.ts")).unwrap();
    assert!(
        beta.contains("\"acme.things.v1beta1.thing-service.get-thing\""),
        "{beta}"
    );
}

/// Writes `files` (name → text) into a fresh dir.
fn proto_tree(files: &[(&str, String)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = tmp.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    tmp
}

fn versioned(package: &str, file_option: &str) -> String {
    format!(
        "syntax = \"proto3\";\npackage {package};\nimport \"axion/options.proto\";\n{file_option}\nmessage M {{}}\nservice ThingService {{ rpc GetThing(M) returns (M); }}\n"
    )
}

#[test]
fn a_file_option_sets_the_scheme_of_its_file_only() {
    let tree = proto_tree(&[
        ("a/v1/a.proto", versioned("a.v1", "")),
        (
            "a/v2/a.proto",
            versioned(
                "a.v2",
                "option (axion.file).pattern_scheme = PATTERN_SCHEME_PACKAGE;",
            ),
        ),
    ]);
    let dir = tree.path().to_str().unwrap();
    let got = patterns(&["list", "--json", "--proto-dir", dir]);
    let got: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "axion.thing-service.get-thing",
            "a.v2.thing-service.get-thing"
        ]
    );

    // And the other way round: a file asking for the service scheme keeps the stack's topic
    // under `--pattern-scheme package`; a file prefix still applies to its own file.
    let tree = proto_tree(&[
        (
            "a/v1/a.proto",
            versioned(
                "a.v1",
                "option (axion.file).pattern_scheme = PATTERN_SCHEME_SERVICE;",
            ),
        ),
        (
            "a/v2/a.proto",
            versioned("a.v2", "option (axion.file).topic_prefix = \"edge\";"),
        ),
    ]);
    let dir = tree.path().to_str().unwrap();
    let got = patterns(&[
        "list",
        "--json",
        "--pattern-scheme",
        "package",
        "--proto-dir",
        dir,
    ]);
    let got: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "axion.thing-service.get-thing",
            "edge.a.v2.thing-service.get-thing"
        ]
    );
}

#[test]
fn the_builder_takes_the_scheme() {
    let generated = axion_gen::configure()
        .proto_dir(fixture())
        .pattern_scheme(PatternScheme::Package)
        .generate()
        .expect("generate");
    let topics = generated.model.topics();
    assert!(topics.contains(&"acme.things.v1beta1.thing-service.list-things.dlq".to_owned()));
    assert_eq!(topics.len(), 16);
    // The default stays the stack's: the same tree is refused, naming both versions.
    let err = axion_gen::configure()
        .proto_dir(fixture())
        .generate()
        .expect_err("the versions collide");
    assert!(
        err.to_string().contains("acme.things.v1.ThingService"),
        "{err}"
    );
}

#[test]
fn a_file_without_a_package_falls_back_to_the_service_name() {
    let tree = proto_tree(&[(
        "loose.proto",
        "syntax = \"proto3\";\nmessage M {}\nservice Loose { rpc Get(M) returns (M); }\n"
            .to_owned(),
    )]);
    let got = patterns(&[
        "list",
        "--json",
        "--pattern-scheme",
        "package",
        "--proto-dir",
        tree.path().to_str().unwrap(),
    ]);
    assert_eq!(got[0].0, "loose.get");
}
