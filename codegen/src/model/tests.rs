//! One test (or a few) per pass of the model, in process: the proto text is compiled with the
//! real load (protox) from a scratch dir, then the model is built and read.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::load::{self, Inputs};

/// The model of `files` (proto name → text), or its error's text.
fn model_of(files: &[(&str, &str)], options: &ModelOptions) -> std::result::Result<Model, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "axion-gen-model-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let inputs = Inputs {
        proto_dir: Some(dir.clone()),
        files: Vec::new(),
        includes: Vec::new(),
        skip_unsupported: false,
    };
    let mut warnings = Vec::new();
    let result = load::load(&inputs, &mut warnings)
        .and_then(|loaded| build(&loaded, options, &mut warnings))
        .map_err(|e| e.to_string());
    std::fs::remove_dir_all(&dir).unwrap();
    result
}

fn model(files: &[(&str, &str)]) -> Model {
    model_of(files, &ModelOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn package<'m>(model: &'m Model, name: &str) -> &'m Package {
    model.packages.iter().find(|p| p.name == name).unwrap()
}

fn message<'m>(package: &'m Package, full_name: &str) -> &'m Message {
    package
        .messages
        .iter()
        .find(|m| m.full_name == full_name)
        .unwrap()
}

fn field<'m>(message: &'m Message, name: &str) -> &'m Field {
    message
        .fields
        .iter()
        .find(|f| f.proto_name == name)
        .unwrap()
}

const COMMON: &str = r#"syntax = "proto3";
package acme.common.v1;
message Actor { string id = 1; }
enum Level { LEVEL_UNSPECIFIED = 0; LEVEL_HIGH = 1; }
"#;

const THINGS: &str = r#"syntax = "proto3";
package acme.things.v1;
import "acme/common/v1/common.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/empty.proto";

// A thing.
message Thing {
  message Part { string name = 1; }
  acme.common.v1.Actor owner = 1;
  acme.common.v1.Level level = 2;
  google.protobuf.NullValue nothing = 3;
  Part part = 4;
  optional int64 size = 5;
  string display_name = 6 [json_name = "label"];
  oneof source {
    string url = 7;
    Part inline = 8;
  }
}

// Things, over the bus.
service ThingService {
  // Makes a thing.
  rpc MakeThing(Thing) returns (Thing);
  rpc Forget(Thing) returns (google.protobuf.Empty);
}
"#;

fn things() -> Model {
    model(&[
        ("acme/common/v1/common.proto", COMMON),
        ("acme/things/v1/things.proto", THINGS),
    ])
}

/// index: Rust paths from the naming package — another package through `super`, a nested
/// type through its message's module, a well-known enum through prost-types.
#[test]
fn index_resolves_rust_paths_from_the_naming_package() {
    let model = things();
    let thing = message(package(&model, "acme.things.v1"), "acme.things.v1.Thing");
    let Codec::Enum(level) = &field(thing, "level").codec else {
        panic!("level is not an enum");
    };
    assert_eq!(level.to_string(), "super::super::common::v1::Level");
    let Codec::Enum(nothing) = &field(thing, "nothing").codec else {
        panic!("nothing is not an enum");
    };
    assert_eq!(nothing.root, PathRoot::ProstTypes);
    assert_eq!(nothing.to_string(), "prost_types::NullValue");
    let part = message(
        package(&model, "acme.things.v1"),
        "acme.things.v1.Thing.Part",
    );
    assert_eq!(part.rust_path.to_string(), "thing::Part");
}

/// messages: how prost stores each field and the JSON name it travels under.
#[test]
fn messages_know_storage_and_json_names() {
    let model = things();
    let thing = message(package(&model, "acme.things.v1"), "acme.things.v1.Thing");
    assert_eq!(field(thing, "owner").storage, Storage::Optional);
    assert_eq!(field(thing, "size").storage, Storage::Optional);
    assert_eq!(field(thing, "size").codec, Codec::Opt(Box::new(Codec::I64)));
    assert_eq!(field(thing, "level").storage, Storage::Plain);
    assert_eq!(field(thing, "display_name").json_name, "label");
    let Storage::Oneof { enum_path, variant } = &field(thing, "inline").storage else {
        panic!("inline is not a oneof member");
    };
    assert_eq!(enum_path.to_string(), "thing::Source");
    assert_eq!(variant, "Inline");
    assert_eq!(field(thing, "inline").rust_ident, "source");
}

/// service + comments: names, default patterns, reply topics, `()` for Empty, docs.
#[test]
fn services_get_names_patterns_and_docs() {
    let model = things();
    let svc = &package(&model, "acme.things.v1").services[0];
    assert_eq!(svc.kafka_name, "thing-service");
    assert_eq!(svc.docs, vec!["Things, over the bus."]);
    let make = &svc.methods[0];
    assert_eq!(make.pattern, "axion.thing-service.make-thing");
    assert_eq!(
        make.reply_topic.as_deref(),
        Some("axion.thing-service.make-thing.reply")
    );
    assert_eq!(make.kind, MethodKind::RequestReply);
    assert_eq!(make.docs, vec!["Makes a thing."]);
    assert_eq!(make.input_type.to_string(), "Thing");
    assert_eq!(svc.methods[1].output_type, RpcType::Unit);
}

/// scheme: the package scheme puts the proto package in default patterns, with no prefix.
#[test]
fn the_package_scheme_puts_the_package_in_patterns() {
    let options = ModelOptions {
        pattern_scheme: PatternScheme::Package,
        ..ModelOptions::default()
    };
    let files = [
        ("acme/common/v1/common.proto", COMMON),
        ("acme/things/v1/things.proto", THINGS),
    ];
    let model = model_of(&files, &options).unwrap();
    let svc = &package(&model, "acme.things.v1").services[0];
    assert_eq!(
        svc.methods[0].pattern,
        "acme.things.v1.thing-service.make-thing"
    );
}

/// options: axion's options, read at load, reach the model (name, event, pattern, Traefik).
#[test]
fn axion_options_reach_the_model() {
    let proto = r#"syntax = "proto3";
package acme.edge.v1;
import "axion/options.proto";
message Ping { string id = 1; }
service EdgeService {
  option (axion.service).name = "edge";
  option (axion.service).traefik = { host: "edge.localhost" port: 8080 trusted_origins: "https://app.localhost" };
  rpc Seen(Ping) returns (Ping) { option (axion.method).event = true; }
  rpc Echo(Ping) returns (Ping) { option (axion.method).pattern = "edge.echo.v2"; }
}
"#;
    let model = model(&[("acme/edge/v1/edge.proto", proto)]);
    let svc = &package(&model, "acme.edge.v1").services[0];
    assert_eq!(svc.kafka_name, "edge");
    assert_eq!(svc.methods[0].kind, MethodKind::Event);
    assert_eq!(svc.methods[0].reply_topic, None);
    assert_eq!(svc.methods[1].pattern, "edge.echo.v2");
    let traefik = svc.traefik.as_ref().expect("a Traefik edge");
    assert_eq!(
        (traefik.host.as_str(), traefik.port),
        ("edge.localhost", 8080)
    );
    assert_eq!(
        svc.trusted_origins,
        vec![
            "http://edge.localhost",
            "https://edge.localhost",
            "https://app.localhost"
        ]
    );
}

/// options + comments: a bad option value is reported where the option is written.
#[test]
fn a_bad_option_is_located_where_it_is_written() {
    let proto = r#"syntax = "proto3";
package acme.edge.v1;
import "axion/options.proto";
message Ping { string id = 1; }
service EdgeService {
  rpc Echo(Ping) returns (Ping) {
    option (axion.method).pattern = "no spaces allowed";
  }
}
"#;
    let error = model_of(
        &[("acme/edge/v1/edge.proto", proto)],
        &ModelOptions::default(),
    )
    .unwrap_err();
    assert!(error.contains("edge.proto:7:5"), "{error}");
    assert!(error.contains("not a legal Kafka topic"), "{error}");
}

/// rust_names: two proto names that prost turns into one Rust name are refused.
#[test]
fn rust_name_collisions_are_refused() {
    let proto = r#"syntax = "proto3";
package acme.names.v1;
message FooBar { string a = 1; }
message Foo_Bar { string b = 1; }
"#;
    let error = model_of(
        &[("acme/names/v1/names.proto", proto)],
        &ModelOptions::default(),
    )
    .unwrap_err();
    assert!(
        error.contains("both become the Rust type `FooBar`"),
        "{error}"
    );
}

/// validate: one pattern served by two rpcs is refused, across files.
#[test]
fn a_pattern_taken_twice_is_refused() {
    let service = |package: &str| {
        format!(
            "syntax = \"proto3\";\npackage {package};\nimport \"axion/options.proto\";\nmessage M {{ string id = 1; }}\nservice S {{\n  rpc Go(M) returns (M) {{ option (axion.method).pattern = \"shared.go\"; }}\n}}\n"
        )
    };
    let (a, b) = (service("acme.a.v1"), service("acme.b.v1"));
    let error = model_of(
        &[("acme/a/v1/a.proto", &a), ("acme/b/v1/b.proto", &b)],
        &ModelOptions::default(),
    )
    .unwrap_err();
    assert!(error.contains("pattern shared.go"), "{error}");
}
