//! Bad input through the real CLI: every case exits 2 with a located, panic-free message on
//! stderr and writes nothing to `--out`.
//!
//! Each case writes a small proto tree into a temp dir (`<tmp>/proto`), runs
//! `axion-gen generate --proto-dir <tmp>/proto --out <tmp>/out`, and asserts on the result.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_axion-gen");

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// A proto dir holding `files` (proto name → text).
    fn new(files: &[(&str, &str)]) -> Case {
        let case = Case {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir_all(case.proto()).expect("proto dir");
        for (name, text) in files {
            case.write(name, text.as_bytes());
        }
        case
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        let path = self.proto().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, bytes).expect("write fixture");
    }

    fn proto(&self) -> PathBuf {
        self.dir.path().join("proto")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// `<proto dir>/<name>` as the CLI prints it.
    fn shown(&self, name: &str) -> String {
        self.proto().join(name).display().to_string()
    }

    fn run(&self, extra: &[&str]) -> Output {
        self.run_with_dir(&self.proto(), extra)
    }

    fn run_with_dir(&self, proto_dir: &Path, extra: &[&str]) -> Output {
        Command::new(BIN)
            .arg("generate")
            .arg("--proto-dir")
            .arg(proto_dir)
            .arg("--out")
            .arg(self.out())
            .args(extra)
            .output()
            .expect("run axion-gen")
    }

    /// Runs and asserts a clean failure: exit 2, no panic, nothing written, and every
    /// `expected` fragment in stderr. Returns stderr.
    fn fails(&self, extra: &[&str], expected: &[&str]) -> String {
        let out = self.run(extra);
        self.assert_failed(&out, expected)
    }

    fn assert_failed(&self, out: &Output, expected: &[&str]) -> String {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{stderr}");
        assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
        assert!(stderr.contains("error:"), "no error line:\n{stderr}");
        for e in expected {
            assert!(stderr.contains(e), "stderr lacks {e:?}:\n{stderr}");
        }
        self.assert_columns(&stderr, expected);
        assert!(
            !self.out().exists(),
            "--out was written on failure:\n{stderr}"
        );
        stderr
    }

    /// Every `file:line:` of `expected` is followed in `stderr` by a column that points at
    /// code on that line of the fixture (not past its end, not at its indentation): the
    /// README's `file:line:col`, checked against the file itself.
    fn assert_columns(&self, stderr: &str, expected: &[&str]) {
        let prefix = format!("{}/", self.proto().display());
        for e in expected {
            let Some(place) = e.strip_prefix(&prefix).and_then(|p| p.strip_suffix(':')) else {
                continue;
            };
            let Some((name, line)) = place.rsplit_once(':') else {
                continue;
            };
            let Ok(line) = line.parse::<usize>() else {
                continue;
            };
            if name
                .rsplit_once(':')
                .is_some_and(|(_, l)| l.parse::<usize>().is_ok())
            {
                continue; // already `file:line:col`: pinned
            }
            let bytes = std::fs::read(self.proto().join(name)).expect("fixture");
            let text = String::from_utf8_lossy(&bytes);
            let source_line: Vec<char> = text
                .lines()
                .nth(line - 1)
                .unwrap_or_else(|| panic!("{name} has no line {line}"))
                .chars()
                .collect();
            for (at, _) in stderr.match_indices(*e) {
                let rest = &stderr[at + e.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let col: usize = digits
                    .parse()
                    .unwrap_or_else(|_| panic!("no column after {e:?}:\n{stderr}"));
                assert!(
                    col >= 1 && col <= source_line.len() + 1,
                    "{e}{col}: column outside line {line} of {name}:\n{stderr}"
                );
                if let Some(c) = source_line.get(col - 1) {
                    assert!(
                        !c.is_whitespace() || source_line[..col - 1].iter().any(|c| !c.is_whitespace()),
                        "{e}{col}: column points at the indentation of line {line} of {name}:\n{stderr}"
                    );
                }
            }
        }
    }

    /// Runs with `--skip-unsupported` and asserts success with a warning naming `expected`.
    fn skips(&self, expected: &[&str]) -> String {
        let out = self.run(&["--skip-unsupported"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "exit code; stderr:\n{stderr}");
        assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
        assert!(stderr.contains("warning:"), "no warning:\n{stderr}");
        for e in expected {
            assert!(stderr.contains(e), "stderr lacks {e:?}:\n{stderr}");
        }
        self.assert_columns(&stderr, expected);
        assert!(self.out().join("mod.rs").is_file(), "nothing generated");
        stderr
    }
}

/// `file:line:`; [`Case::assert_columns`] checks the column that follows it in the message,
/// and [`at_col`] pins one.
fn at(case: &Case, name: &str, line: u32) -> String {
    format!("{}:{line}:", case.shown(name))
}

/// `file:line:col:` exactly.
fn at_col(case: &Case, name: &str, line: u32, col: u32) -> String {
    format!("{}:{line}:{col}:", case.shown(name))
}

const OK: &str = "syntax = \"proto3\";\npackage ok;\nmessage Ping {}\nservice PingService { rpc Ping(Ping) returns (Ping); }\n";

#[test]
fn syntax_error() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\n\nmessage M {\n  string x = 1\n}\n",
    )]);
    case.fails(&[], &[&at_col(&case, "a.proto", 6, 1), "expected ';'"]);
}

#[test]
fn unknown_import() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"nope/missing.proto\";\nmessage M {}\n",
    )]);
    case.fails(
        &[],
        &[&at(&case, "a.proto", 3), "nope/missing.proto", "not found"],
    );
}

#[test]
fn unknown_type() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {\n  Nope x = 1;\n}\n",
    )]);
    // At the type name, after the indentation.
    case.fails(&[], &[&at_col(&case, "a.proto", 4, 3), "Nope"]);
}

#[test]
fn duplicate_pattern_across_files() {
    let case = Case::new(&[
        (
            "a.proto",
            "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice One {\n  rpc Do(M) returns (M) {\n    option (axion.method).pattern = \"shared.topic\";\n  }\n}\n",
        ),
        (
            "b.proto",
            "syntax = \"proto3\";\npackage b;\nimport \"axion/options.proto\";\nimport \"a.proto\";\n\nservice Two {\n  rpc Other(a.M) returns (a.M) {\n    option (axion.method).pattern = \"shared.topic\";\n  }\n}\n",
        ),
    ]);
    // Placed at the second option, naming both rpcs and the first option's place.
    case.fails(
        &[],
        &[
            &at(&case, "b.proto", 8),
            "shared.topic",
            "b.Two.Other",
            "a.One.Do",
            &at(&case, "a.proto", 7),
        ],
    );
}

#[test]
fn default_patterns_collide() {
    // Two services whose kafka names coincide through the `name` option.
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice One {\n  option (axion.service).name = \"same\";\n  rpc Do(M) returns (M);\n}\nservice Two {\n  option (axion.service).name = \"same\";\n  rpc Do(M) returns (M);\n}\n",
    )]);
    case.fails(
        &[],
        &[
            &at(&case, "a.proto", 11),
            "axion.same.do",
            "a.One.Do",
            "a.Two.Do",
        ],
    );
}

#[test]
fn illegal_topic_character() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice S {\n  rpc Do(M) returns (M) {\n    option (axion.method).pattern = \"bad topic!\";\n  }\n}\n",
    )]);
    case.fails(
        &[],
        &[&at(&case, "a.proto", 7), "bad topic!", "[a-zA-Z0-9._-]"],
    );
}

#[test]
fn illegal_service_name_in_topic() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice S {\n  option (axion.service).name = \"my service\";\n\n  rpc Do(M) returns (M);\n}\n",
    )]);
    // At the option that sets the name, once (not once per rpc).
    let stderr = case.fails(&[], &[&at(&case, "a.proto", 6), "my service"]);
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
}

#[test]
fn illegal_file_topic_prefix() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\n\noption (axion.file).topic_prefix = \"my/prefix\";\nmessage M {}\nservice S { rpc Do(M) returns (M); }\nservice T { rpc Do(M) returns (M); }\n",
    )]);
    let stderr = case.fails(&[], &[&at(&case, "a.proto", 5), "my/prefix", "'/'"]);
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
}

#[test]
fn illegal_cli_topic_prefix() {
    let case = Case::new(&[("ok.proto", OK)]);
    case.fails(&["--topic-prefix", "a b"], &["topic prefix", "' '"]);
}

#[test]
fn topic_too_long() {
    let long = "t".repeat(250);
    let text = format!(
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {{}}\nservice S {{\n\n  rpc Do(M) returns (M) {{\n    option (axion.method).pattern = \"{long}\";\n  }}\n}}\n"
    );
    let case = Case::new(&[("a.proto", &text)]);
    case.fails(&[], &[&at(&case, "a.proto", 8), "250 characters", "249"]);
}

#[test]
fn reply_topic_too_long() {
    // 245 + ".reply" = 251: the pattern is legal, its reply topic is not.
    let long = "t".repeat(245);
    let text = format!(
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {{}}\nservice S {{\n  rpc Do(M) returns (M) {{\n    option (axion.method).pattern = \"{long}\";\n  }}\n}}\n"
    );
    let case = Case::new(&[("a.proto", &text)]);
    case.fails(&[], &[&at(&case, "a.proto", 7), ".reply", "251 characters"]);
}

#[test]
fn client_streaming() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice S {\n  rpc Ok(M) returns (M);\n  rpc Up(stream M) returns (M);\n}\n",
    )]);
    case.fails(
        &[],
        &[
            &at(&case, "a.proto", 6),
            "rpc Up",
            "client streaming",
            "--skip-unsupported",
        ],
    );
    let stderr = case.skips(&[&at(&case, "a.proto", 6), "rpc Up", "skipped"]);
    assert!(!stderr.contains("error:"), "{stderr}");
    let code = std::fs::read_to_string(case.out().join("a.rs")).expect("a.rs");
    assert!(code.contains("fn ok"), "the supported rpc is generated");
    assert!(!code.contains("fn up"), "the skipped rpc is not");
}

#[test]
fn bidi_streaming() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice S {\n  rpc Ok(M) returns (M);\n\n  rpc Chat(stream M) returns (stream M);\n}\n",
    )]);
    case.fails(
        &[],
        &[&at(&case, "a.proto", 7), "rpc Chat", "bidirectional"],
    );
    case.skips(&[&at(&case, "a.proto", 7), "rpc Chat", "skipped"]);
}

#[test]
fn descriptor_proto_copy_shadows_builtin() {
    let case = Case::new(&[
        (
            "google/protobuf/descriptor.proto",
            "syntax = \"proto2\";\npackage google.protobuf;\nmessage FileDescriptorSet {}\n",
        ),
        ("ok.proto", OK),
    ]);
    let name = case.shown("google/protobuf/descriptor.proto");
    case.fails(&[], &[&name, "shadows", "--skip-unsupported"]);
    case.skips(&[&name, "skipped"]);
}

#[test]
fn edition_2023() {
    let case = Case::new(&[(
        "a.proto",
        "// An editions file.\nedition = \"2023\";\npackage a;\nmessage M {}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 2), "edition"]);
}

#[test]
fn empty_proto_dir() {
    let case = Case::new(&[]);
    case.fails(
        &[],
        &[&case.proto().display().to_string(), "no .proto files"],
    );
}

#[test]
fn missing_proto_dir() {
    let case = Case::new(&[]);
    let missing = case.dir.path().join("does-not-exist");
    let out = case.run_with_dir(&missing, &[]);
    case.assert_failed(&out, &[&missing.display().to_string(), "does not exist"]);
}

#[cfg(unix)]
#[test]
fn dangling_symlink() {
    let case = Case::new(&[("ok.proto", OK)]);
    std::os::unix::fs::symlink(
        case.dir.path().join("gone.proto"),
        case.proto().join("a.proto"),
    )
    .expect("symlink");
    case.fails(
        &[],
        &[&case.shown("a.proto"), "cannot read", "does not exist"],
    );
}

#[test]
fn directory_named_like_a_proto_file() {
    let case = Case::new(&[("ok.proto", OK)]);
    std::fs::create_dir_all(case.proto().join("x.proto")).expect("dir");
    let listed = case.proto().join("x.proto").display().to_string();
    case.fails(&[&listed], &[&listed, "directory"]);
}

#[test]
fn invalid_utf8() {
    let case = Case::new(&[]);
    case.write(
        "a.proto",
        b"syntax = \"proto3\";\npackage a;\n// \xff\xfe oops\nmessage M {}\n",
    );
    case.fails(&[], &[&format!("{}:3:4:", case.shown("a.proto")), "UTF-8"]);
}

#[test]
fn duplicate_message_in_one_file() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\n\nmessage M {}\n",
    )]);
    // At the second definition, pointing back at the first.
    case.fails(
        &[],
        &[&at(&case, "a.proto", 5), "a.M", &at(&case, "a.proto", 3)],
    );
}

#[test]
fn duplicate_message_across_files() {
    let case = Case::new(&[
        (
            "a.proto",
            "syntax = \"proto3\";\npackage a;\nmessage M {}\n",
        ),
        (
            "b.proto",
            "syntax = \"proto3\";\npackage a;\n\nmessage M {}\n",
        ),
    ]);
    case.fails(&[], &[&at(&case, "b.proto", 4), "a.M", "a.proto"]);
}

#[test]
fn duplicate_field_number() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {\n  string a = 1;\n  string b = 1;\n}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 5), &at(&case, "a.proto", 4)]);
}

#[test]
fn event_with_stream_reply() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice S {\n  rpc Do(M) returns (stream M) {\n    option (axion.method).event = true;\n  }\n}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 6), "rpc Do", "event"]);
}

#[test]
fn traefik_without_host_or_port() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice S {\n  rpc Do(M) returns (M);\n  option (axion.service).traefik = { path_prefix: \"/x\" };\n}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 7), "traefik", "host", "port"]);
}

#[test]
fn traefik_port_out_of_range() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice S {\n  option (axion.service).traefik = {\n    host: \"s.localhost\"\n    port: 70000\n  };\n  rpc Do(M) returns (M);\n}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 6), "70000"]);
}

#[test]
fn services_share_a_constant() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice Graph { rpc Do(M) returns (M); }\n\nservice GraphService { rpc Do2(M) returns (M); }\n",
    )]);
    case.fails(
        &[],
        &[
            &at(&case, "a.proto", 6),
            "Graph ",
            "GraphService",
            "GRAPH_SERVICE_NAME",
            &at(&case, "a.proto", 4),
        ],
    );
}

#[test]
fn rpcs_share_a_rust_method() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice S {\n  rpc GetX(M) returns (M);\n  rpc get_x(M) returns (M);\n}\n",
    )]);
    case.fails(
        &[],
        &[
            &at(&case, "a.proto", 6),
            "GetX",
            "get_x",
            &at(&case, "a.proto", 5),
        ],
    );
}

#[test]
fn bad_option_value_type() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice S {\n  rpc Do(M) returns (M) {\n    option (axion.method).event = \"yes\";\n  }\n}\n",
    )]);
    case.fails(
        &[],
        &[&at(&case, "a.proto", 7), "bool", "(axion.method).event"],
    );
}

#[test]
fn unknown_option_field() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"axion/options.proto\";\nmessage M {}\nservice S {\n  rpc Do(M) returns (M) {\n    option (axion.method).topic = \"x\";\n  }\n}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 7), "topic"]);
}

#[test]
fn option_without_import() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice S {\n  rpc Do(M) returns (M) {\n    option (axion.method).event = true;\n  }\n}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 6), "axion.method"]);
}

#[test]
fn import_cycle() {
    let case = Case::new(&[
        (
            "a.proto",
            "syntax = \"proto3\";\npackage a;\nimport \"b.proto\";\nmessage A {}\n",
        ),
        (
            "b.proto",
            "syntax = \"proto3\";\npackage a;\n\nimport \"a.proto\";\nmessage B {}\n",
        ),
    ]);
    // At the import that closes the cycle.
    case.fails(
        &[],
        &[
            &at(&case, "b.proto", 4),
            "cycle",
            "a.proto -> b.proto -> a.proto",
        ],
    );
}

#[test]
fn listed_file_outside_include_dirs() {
    let case = Case::new(&[("ok.proto", OK)]);
    let outside = case.dir.path().join("elsewhere.proto");
    std::fs::write(&outside, OK).expect("write");
    let listed = outside.display().to_string();
    case.fails(&[&listed], &[&listed, "--include"]);
}

#[test]
fn errors_in_several_files_are_all_reported() {
    let case = Case::new(&[
        (
            "a.proto",
            "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice S {\n  rpc Up(stream M) returns (M);\n}\n",
        ),
        (
            "b.proto",
            "syntax = \"proto3\";\npackage b;\nmessage M {}\nservice T {\n\n  rpc Chat(stream M) returns (stream M);\n}\n",
        ),
    ]);
    case.fails(&[], &[&at(&case, "a.proto", 5), &at(&case, "b.proto", 6)]);
}

#[test]
fn wrapper_as_rpc_type() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"google/protobuf/wrappers.proto\";\nmessage M {}\nservice S {\n  rpc Ok(M) returns (M);\n  rpc Name(M) returns (google.protobuf.StringValue);\n}\n",
    )]);
    case.fails(
        &[],
        &[
            &at(&case, "a.proto", 7),
            "rpc Name",
            "google.protobuf.StringValue",
            "{\"value\"",
        ],
    );
    case.skips(&[&at(&case, "a.proto", 7), "rpc Name", "skipped"]);
}

#[test]
fn well_known_type_as_rpc_type() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nimport \"google/protobuf/struct.proto\";\nmessage M {}\nservice S {\n  rpc Ok(M) returns (M);\n\n  rpc Raw(google.protobuf.Struct) returns (M);\n}\n",
    )]);
    case.fails(
        &[],
        &[
            &at(&case, "a.proto", 8),
            "rpc Raw",
            "google.protobuf.Struct",
        ],
    );
    case.skips(&[&at(&case, "a.proto", 8), "rpc Raw", "skipped"]);
}

// ---------------------------------------------------------------------------------------------
// Control: a valid but awkward tree (tests/fixtures/edge: Rust keywords everywhere, a keyword
// package segment, nested/recursive types, oneofs of messages and enums, maps of enums and
// messages, every well-known type, proto2 groups/defaults/extensions, one package over two
// dirs, a file without a package, deprecations) generates cleanly, and its committed output
// (tests/fixtures/edge_generated) compiles warning-free as part of this test crate.
// `tests/golden.rs` keeps it equal to a fresh run (`AXION_GEN_BLESS=1 cargo test --test golden`
// rewrites it).

#[deny(warnings)]
#[rustfmt::skip] // generated; formatted by axion-gen
#[path = "fixtures/edge_generated/mod.rs"]
mod edge_generated;

#[test]
fn edge_fixture_json_round_trips() {
    use edge_generated::edge::everything::v1 as e;
    use edge_generated::edge::legacy as l;
    use edge_generated::edge::r#type::v1 as k;
    use edge_generated::edge::shared as s;

    fn round_trip<T>(value: &T) -> serde_json::Value
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_value(value).expect("serialize");
        let back: T = serde_json::from_value(json.clone()).expect("deserialize");
        assert_eq!(&back, value, "{json}");
        json
    }

    let tree = e::Tree {
        name: "root".into(),
        parent: Some(Box::new(e::Tree {
            name: "up".into(),
            ..Default::default()
        })),
        children: vec![e::Tree::default()],
        by_name: [("x".to_owned(), e::Tree::default())].into_iter().collect(),
        link: Some(e::tree::Link::Sibling(Box::default())),
        forest: None,
    };
    let json = round_trip(&tree);
    assert_eq!(json["parent"]["name"], "up");
    assert!(json.get("byName").is_some(), "{json}");

    let keywords = k::Self_ {
        r#type: "t".into(),
        self_: "s".into(),
        r#async: "a".into(),
        ..Default::default()
    };
    let json = round_trip(&keywords);
    // The wire keeps the proto names, not the escaped Rust ones.
    assert_eq!(json["type"], "t");
    assert_eq!(json["self"], "s");
    assert_eq!(json["async"], "a");

    let shapes = e::Shapes {
        shape: Some(e::shapes::Shape::Color(s::Color::Blue as i32)),
        second: Some(e::shapes::Second::Keywords(keywords)),
    };
    round_trip(&shapes);

    let mut maps = e::Maps::default();
    maps.colors.insert("a".into(), s::Color::Red as i32);
    maps.outers.insert(-5, e::Outer::default());
    maps.levels
        .insert("l".into(), e::outer::middle::inner::Level::Deep as i32);
    round_trip(&maps);

    round_trip(&e::WellKnown {
        mask: Some(prost_types::FieldMask {
            paths: vec!["a.b".into()],
        }),
        int64_value: Some(7),
        string_value: Some("s".into()),
        maybe: Some(String::new()),
        maybe_color: Some(s::Color::Blue as i32),
        ..Default::default()
    });

    round_trip(&l::Legacy {
        name: "n".into(),
        count: Some(3),
        extra: Some(l::legacy::Extra {
            note: Some("x".into()),
        }),
        item: vec![l::legacy::Item { id: 4 }],
        kind: Some(l::legacy::Kind::B as i32),
        ..Default::default()
    });
    round_trip(&k::Result {
        r#type: Some(k::result::Type::String("x".into())),
    });
    round_trip(&edge_generated::Loose { value: "v".into() });
}

#[test]
fn same_service_in_two_versions() {
    // v1 and v2 of one API: every default pattern collides; one error per service pair.
    let v = |n: u32| {
        format!(
            "syntax = \"proto3\";\npackage api.v{n};\nmessage M {{}}\n\nservice Things {{\n  rpc Get(M) returns (M);\n  rpc List(M) returns (M);\n}}\n"
        )
    };
    let (v1, v2) = (v(1), v(2));
    let case = Case::new(&[("api/v1/things.proto", &v1), ("api/v2/things.proto", &v2)]);
    let stderr = case.fails(
        &[],
        &[
            &at(&case, "api/v2/things.proto", 5),
            "api.v2.Things",
            "api.v1.Things",
            &at(&case, "api/v1/things.proto", 5),
            "Get, List",
            "(axion.service).name",
        ],
    );
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
}

#[test]
fn field_without_rust_name() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {\n  string ok = 1;\n  string _ = 2;\n}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 5), "field _", "no Rust name"]);
}

#[test]
fn messages_share_a_rust_type() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage Thing {}\n\nmessage THING {}\n",
    )]);
    case.fails(
        &[],
        &[
            &at(&case, "a.proto", 5),
            "THING",
            "Thing",
            &at(&case, "a.proto", 3),
            "`Thing`",
        ],
    );
}

#[test]
fn enum_values_share_a_rust_variant() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nenum Kind {\n  KIND_UNSPECIFIED = 0;\n  KIND_A = 1;\n  A = 2;\n}\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 6), "KIND_A", "`A`"]);
}

#[test]
fn message_named_like_a_generated_client() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice Graph { rpc Do(M) returns (M); }\nmessage GraphClient {}\n",
    )]);
    case.fails(
        &[],
        &[&at(&case, "a.proto", 5), "GraphClient", "service Graph"],
    );
}

#[test]
fn message_module_named_like_a_sub_package() {
    let case = Case::new(&[
        (
            "a.proto",
            "syntax = \"proto3\";\npackage a;\n\nmessage Thing {\n  enum Kind { KIND_UNSPECIFIED = 0; }\n}\n",
        ),
        ("thing.proto", "syntax = \"proto3\";\npackage a.thing;\nmessage Z {}\n"),
    ]);
    case.fails(&[], &[&at(&case, "a.proto", 4), "`thing`", "a.thing"]);
}

#[test]
fn byte_order_mark_is_skipped_like_protoc() {
    // A BOM (Visual Studio writes one) is accepted, and positions after it stay right.
    let case = Case::new(&[]);
    case.write(
        "a.proto",
        b"\xef\xbb\xbfsyntax = \"proto3\";\npackage a;\nmessage M {\n  Nope x = 1;\n}\n",
    );
    case.fails(&[], &[&at(&case, "a.proto", 4), "Nope"]);

    let ok = Case::new(&[]);
    ok.write(
        "a.proto",
        b"\xef\xbb\xbfsyntax = \"proto3\";\npackage a;\nmessage M {}\nservice S { rpc Do(M) returns (M); }\n",
    );
    let out = ok.run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn crlf_line_endings_keep_lines_right() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\r\npackage a;\r\n\r\nmessage M {}\r\nservice S {\r\n  rpc Up(stream M) returns (M);\r\n}\r\n",
    )]);
    case.fails(&[], &[&at(&case, "a.proto", 6), "rpc Up"]);
}

#[test]
fn rpc_named_like_a_client_method() {
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice S {\n  rpc Get(M) returns (M);\n  rpc New(M) returns (M);\n}\n",
    )]);
    case.fails(
        &[],
        &[&at(&case, "a.proto", 6), "rpc New", "`new`", "SClient"],
    );
}

// rpcs named like methods every `Arc` has (`clone`, `into`, `as_ref`, `to_owned`): the
// dispatcher calls the trait's method, not the `Arc`'s, and the client's inherent methods win
// over `Clone::clone` and friends.
#[tokio::test]
async fn rpcs_named_like_arc_methods_reach_the_trait() {
    use axion_runtime::{Request as Req, Response as Resp, RpcError};
    use edge_generated::edge::r#type::v1 as k;

    struct Echo;
    impl k::Service for Echo {
        async fn self_(&self, r: Req<k::Self_>) -> Result<Resp<k::Self_>, RpcError> {
            Ok(tagged(r.into_inner(), "self").into())
        }
        async fn clone(&self, r: Req<k::Self_>) -> Result<Resp<k::Self_>, RpcError> {
            Ok(tagged(r.into_inner(), "clone").into())
        }
        async fn into(&self, r: Req<k::Self_>) -> Result<Resp<k::Self_>, RpcError> {
            Ok(tagged(r.into_inner(), "into").into())
        }
        async fn as_ref(&self, r: Req<k::Self_>) -> Result<Resp<k::Self_>, RpcError> {
            Ok(tagged(r.into_inner(), "as_ref").into())
        }
        async fn to_owned(&self, r: Req<k::Self_>) -> Result<Resp<k::Self_>, RpcError> {
            Ok(tagged(r.into_inner(), "to_owned").into())
        }
    }
    fn tagged(mut r: k::Self_, tag: &str) -> k::Self_ {
        r.r#match = tag.to_owned();
        r
    }

    let transport = axion_runtime::MemoryTransport::new();
    transport
        .serve(k::service_server::ServiceServer::new(Echo))
        .unwrap();
    let client = k::service_client::ServiceClient::new(transport.client());
    let req = k::Self_ {
        r#type: "t".into(),
        ..Default::default()
    };
    assert_eq!(client.clone(&req).await.unwrap().r#match, "clone");
    // `Into::into` takes `self` by value, so plain `client.into(..)` would pick it.
    let into = k::service_client::ServiceClient::into(&client, &req).await;
    assert_eq!(into.unwrap().r#match, "into");
    assert_eq!(client.as_ref(&req).await.unwrap().r#match, "as_ref");
    assert_eq!(client.to_owned(&req).await.unwrap().r#match, "to_owned");
    assert_eq!(client.self_(&req).await.unwrap().r#match, "self");
    let with = client.self_with(&req, Default::default()).await.unwrap();
    assert_eq!(with.into_inner().r#match, "self");
}

/// A request or event message with a top-level `key` or `value` field: a NestJS caller's
/// `send`/`emit` would take it as a Kafka envelope. Generation succeeds with one warning per
/// message (not per rpc), at the field; other messages are not named.
#[test]
fn envelope_shaped_messages_are_warned_about_once_at_the_field() {
    let case = Case::new(&[
        (
            "labels.proto",
            "syntax = \"proto3\";\npackage labels;\nmessage Label {\n  string name = 1;\n  string value = 2;\n}\nmessage Outer {\n  message Keyed {\n    bytes key = 1;\n  }\n}\nmessage Plain {\n  string keys = 1;\n  string my_value = 2;\n}\n",
        ),
        (
            "svc.proto",
            "syntax = \"proto3\";\npackage svc;\nimport \"labels.proto\";\nservice Tags {\n  rpc Set(labels.Label) returns (labels.Plain);\n  rpc Again(labels.Label) returns (labels.Plain);\n  rpc Keyed(labels.Outer.Keyed) returns (labels.Label);\n  rpc Fine(labels.Plain) returns (labels.Label);\n}\n",
        ),
    ]);
    let out = case.run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "exit code; stderr:\n{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 2, "one per message:\n{stderr}");
    let label = format!(
        "{}:5:3: warning: message labels.Label",
        case.shown("labels.proto")
    );
    assert!(warnings[0].starts_with(&label), "{stderr}");
    assert!(
        warnings[0].contains("`value`") && warnings[0].contains("Tags.Set"),
        "{stderr}"
    );
    let keyed = format!(
        "{}:9:5: warning: message labels.Outer.Keyed",
        case.shown("labels.proto")
    );
    assert!(warnings[1].starts_with(&keyed), "{stderr}");
    assert!(warnings[1].contains("`key`"), "{stderr}");
    assert!(
        !stderr.contains("labels.Plain"),
        "a plain message is not named:\n{stderr}"
    );
    assert!(case.out().join("mod.rs").is_file(), "generated anyway");
}

#[test]
fn rpc_named_like_another_rpcs_per_call_options_method() {
    // `GetWith` becomes `get_with`, the name of `Get`'s form with per-call options.
    let case = Case::new(&[(
        "a.proto",
        "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice S {\n  rpc Get(M) returns (M);\n  rpc GetWith(M) returns (M);\n}\n",
    )]);
    case.fails(
        &[],
        &[
            &at(&case, "a.proto", 6),
            "rpc GetWith",
            "`get_with`",
            "for rpc Get (at",
        ],
    );
}
