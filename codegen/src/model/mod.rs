//! Model: one IR built once from the descriptors, holding every derived name and validated.
//! Emitters read names from here and never derive them again.
//!
//! Built in passes, each in its own module: `index` (where each type lives, Rust paths and
//! codecs), `options` (axion's custom options), `comments` (locations and docs), `messages`
//! and `service` (the IR of each package), `rust_names` (prost's Rust names and their
//! collisions), `validate` (checks across the whole input); `scheme` forms default patterns.

use std::collections::BTreeMap;

use crate::error::{Error, Location, Result};
use crate::load::Loaded;
use crate::names;

mod comments;
mod index;
mod messages;
mod options;
mod rust_names;
mod rust_path;
mod scheme;
mod service;
mod ts_names;
mod validate;

pub(crate) use comments::Comments;
use index::{fq, index_types, Resolver};
use messages::{collect_enum_types, collect_message, enum_type};
pub use options::AxionOptions;
use rust_names::check_rust_names;
pub use rust_path::{PathRoot, RpcType, RustPath};
pub use scheme::{PatternScheme, DEFAULT_TOPIC_PREFIX};
use service::{build_service, FileContext};
use validate::validate;

/// What the model needs from the user's configuration.
#[derive(Clone, Debug, Default)]
pub struct ModelOptions {
    /// Prefix of default patterns, unless a file sets `(axion.file).topic_prefix`; `None` is the
    /// scheme's default ([`PatternScheme::default_prefix`]).
    pub topic_prefix: Option<String>,
    /// How default patterns are formed, unless a file sets `(axion.file).pattern_scheme`.
    pub pattern_scheme: PatternScheme,
    /// Skip client/bidi-streaming rpcs with a warning instead of failing.
    pub skip_unsupported: bool,
}

/// The whole input, resolved.
#[derive(Debug)]
pub struct Model {
    /// One entry per proto package, by package name.
    pub packages: Vec<Package>,
}

impl Model {
    /// Every topic the contracts need, sorted: each rpc's request topic (its pattern), its
    /// reply topic unless it is an event, and the `.dlq` dead-letter topic its servers write
    /// poison messages to. The same set as the runtime's `ensure_topics`.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .packages
            .iter()
            .flat_map(|p| &p.services)
            .flat_map(|s| &s.methods)
            .flat_map(|m| {
                [Some(&m.pattern), Some(&m.dlq_topic), m.reply_topic.as_ref()]
                    .into_iter()
                    .flatten()
                    .cloned()
            })
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }
}

/// A proto package: one Rust module and one generated file.
#[derive(Debug)]
pub struct Package {
    /// `axion.graph.v1` (empty for files without a package).
    pub name: String,
    /// Rust module path, prost's way: `["axion", "graph", "v1"]`.
    pub module: Vec<String>,
    /// Generated file name: `axion.graph.v1.rs` (`_.rs` without a package).
    pub file_name: String,
    /// TypeScript module of the package: `axion/graph/v1.ts` (`_.ts` without a package).
    pub ts_file: String,
    /// Proto names of the package's files (`axion/graph/v1/graph.proto`).
    pub sources: Vec<String>,
    /// Messages with their JSON field mapping.
    pub messages: Vec<Message>,
    /// Rust paths of the package's enums.
    pub enums: Vec<RustPath>,
    /// The package's enums with their values (schema emitters).
    pub enum_types: Vec<EnumType>,
    /// Services declared in input files of this package.
    pub services: Vec<Service>,
}

/// A message, for the JSON emitter.
#[derive(Debug)]
pub struct Message {
    /// `axion.graph.v1.Project`.
    pub full_name: String,
    /// Rust path: `Project`, `project::Source`.
    pub rust_path: RustPath,
    /// Fields in declaration order.
    pub fields: Vec<Field>,
}

/// A field, for the JSON emitter.
#[derive(Debug)]
pub struct Field {
    /// `created_at`.
    pub proto_name: String,
    /// `createdAt`.
    pub json_name: String,
    /// prost's field identifier (`created_at`, `r#type`); for oneof members, the oneof's.
    pub rust_ident: String,
    /// How the field's value travels as JSON.
    pub codec: Codec,
    /// How prost stores the field.
    pub storage: Storage,
    /// The field number.
    pub number: i32,
    /// The proto name of the oneof this field belongs to (not for proto3 `optional`).
    pub oneof: Option<String>,
    /// The JSON shape the codec writes, for schema emitters (AsyncAPI).
    pub wire: Wire,
}

/// How a value travels as JSON: one codec of the runtime's JSON module each (the emitters
/// name them). Matches ts-proto's `toJSON`/`fromJSON` and protobuf's JSON mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Codec {
    /// `double`: a number, or `"NaN"`/`"Infinity"`/`"-Infinity"`.
    F64,
    /// `float`.
    F32,
    /// 64-bit signed integers: a decimal string.
    I64,
    /// 64-bit unsigned integers: a decimal string.
    U64,
    /// 32-bit signed integers: a number.
    I32,
    /// 32-bit unsigned integers: a number.
    U32,
    /// `bool`.
    Bool,
    /// `string`.
    Str,
    /// `bytes`: base64.
    Bytes,
    /// An enum: its value's name; the Rust path of the enum type.
    Enum(RustPath),
    /// A message with its own serde impls (generated next to it).
    Msg,
    /// A `google.protobuf` type without a JSON mapping in prost-types (descriptors, `Api`):
    /// base64 of its protobuf encoding.
    ProtoBytes,
    /// `google.protobuf.Timestamp`: RFC 3339.
    Timestamp,
    /// `google.protobuf.Duration`: `"1.5s"`.
    Duration,
    /// `google.protobuf.Empty`: `{}`.
    Empty,
    /// `google.protobuf.Struct`: a JSON object.
    Struct,
    /// `google.protobuf.Value`: any JSON value.
    Value,
    /// `google.protobuf.ListValue`: a JSON array.
    ListValue,
    /// `google.protobuf.Any`: `{"@type": .., ..}`.
    Any,
    /// `google.protobuf.FieldMask`: comma-separated camelCase paths.
    FieldMask,
    /// A field that may be absent (`Option<T>`): `null` or missing is `None`.
    Opt(Box<Codec>),
    /// `repeated`: a JSON array.
    List(Box<Codec>),
    /// `map<K, V>`: a JSON object, keys as text.
    Map(Box<Codec>, Box<Codec>),
}

/// The JSON shape of a field, for schema emitters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// One value.
    Single(WireType),
    /// `repeated`: a JSON array.
    List(WireType),
    /// `map<K, V>`: a JSON object (keys as text).
    Map(WireType, WireType),
}

/// The JSON shape of one value, as `axion_runtime::json` writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireType {
    /// `double`.
    F64,
    /// `float`.
    F32,
    /// `int64`, `sint64`, `sfixed64` (a JSON number).
    I64,
    /// `uint64`, `fixed64` (a JSON number).
    U64,
    /// `int32`, `sint32`, `sfixed32`.
    I32,
    /// `uint32`, `fixed32`.
    U32,
    /// `bool`.
    Bool,
    /// `string`.
    Str,
    /// `bytes` (a serialized `Uint8Array`: `{"0":1,"1":2}`).
    Bytes,
    /// An enum (its number), by full name: `axion.graph.v1.ProjectStatus`.
    Enum(String),
    /// A message, by full name.
    Message(String),
    /// A `google.protobuf` type with its own JSON shape, by full name:
    /// `google.protobuf.Timestamp`.
    WellKnown(String),
}

/// An enum with its values, for schema emitters.
#[derive(Debug)]
pub struct EnumType {
    /// `axion.graph.v1.ProjectStatus`.
    pub full_name: String,
    /// (proto name, number), in declaration order.
    pub values: Vec<(String, i32)>,
}

/// How prost stores a field.
#[derive(Debug, PartialEq, Eq)]
pub enum Storage {
    /// A plain value (scalars, lists, maps): always written.
    Plain,
    /// `Option<T>` (messages, proto3 `optional`, proto2 optionals): written when set.
    Optional,
    /// A member of a oneof: `Option<Enum>`, this field being `enum_path::variant`.
    Oneof {
        /// `project::Location`.
        enum_path: RustPath,
        /// `Git`.
        variant: String,
    },
}

/// How an rpc travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// send / @MessagePattern.
    RequestReply,
    /// send / @MessagePattern returning an Observable.
    ServerStreaming,
    /// emit / @EventPattern.
    Event,
}

impl MethodKind {
    /// `request-reply`, `server-streaming`, `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::RequestReply => "request-reply",
            MethodKind::ServerStreaming => "server-streaming",
            MethodKind::Event => "event",
        }
    }
}

/// A service with every name it needs.
#[derive(Debug)]
pub struct Service {
    /// `GraphService`.
    pub proto_name: String,
    /// `axion.graph.v1.GraphService`.
    pub full_name: String,
    /// Kafka-facing name: `graph-service`.
    pub kafka_name: String,
    /// `GRAPH_SERVICE_NAME`.
    pub name_const: String,
    /// `GRAPH_SERVICE_PATTERNS`.
    pub patterns_const: String,
    /// `GRAPH_SERVICE_REPLY_TOPICS`.
    pub reply_topics_const: String,
    /// `GRAPH_SERVICE_CONTRACT`.
    pub contract_const: String,
    /// `GRAPH_SERVICE_METHODS`: the contract of each rpc, by the rpc's key.
    pub methods_const: String,
    /// `GRAPH_SERVICE_TRUSTED_ORIGINS`.
    pub trusted_origins_const: String,
    /// `graph-service-server`.
    pub server_group: String,
    /// `GRAPH_SERVICE_SERVER_GROUP` (TS).
    pub server_group_const: String,
    /// `GraphServiceMessages` (TS): the pattern → request/response type map.
    pub messages_type: String,
    /// `GraphService`.
    pub trait_ident: String,
    /// `graph_service_client`.
    pub client_mod: String,
    /// `GraphServiceClient`.
    pub client_ident: String,
    /// `graph_service_server`.
    pub server_mod: String,
    /// `GraphServiceServer`.
    pub server_ident: String,
    /// Doc lines from the proto comment.
    pub docs: Vec<String>,
    /// The rpcs, in proto order (skipped ones left out).
    pub methods: Vec<Method>,
    /// Traefik routing, when the service has the option.
    pub traefik: Option<Traefik>,
    /// Origins the edge trusts: the http/https forms of the Traefik host, plus extras.
    pub trusted_origins: Vec<String>,
    /// Where the service is declared.
    pub location: Location,
    /// The proto file name (`axion/graph/v1/graph.proto`).
    pub proto_file: String,
}

/// An rpc with every name it needs.
#[derive(Debug)]
pub struct Method {
    /// `CreateProject`.
    pub proto_name: String,
    /// `CREATE_PROJECT`.
    pub key: String,
    /// `create_project`.
    pub rust_ident: String,
    /// `create_project_with`: the client method with per-call options.
    pub options_ident: String,
    /// The pattern (= request topic).
    pub pattern: String,
    /// `<pattern>.reply`; `None` for events, which are never answered.
    pub reply_topic: Option<String>,
    /// `<pattern>.dlq`, the dead-letter topic of the serving side.
    pub dlq_topic: String,
    /// How it travels.
    pub kind: MethodKind,
    /// The request type.
    pub input_type: RpcType,
    /// The response type (`()` for `google.protobuf.Empty`).
    pub output_type: RpcType,
    /// `axion.graph.v1.CreateProjectRequest`.
    pub input_proto: String,
    /// `axion.graph.v1.CreateProjectResponse`.
    pub output_proto: String,
    /// The request type as ts-proto names and places it.
    pub input_ts: TsType,
    /// The response type as ts-proto names and places it (`Empty` included).
    pub output_ts: TsType,
    /// Doc lines from the proto comment.
    pub docs: Vec<String>,
    /// Where the rpc is declared.
    pub location: Location,
    /// Where the pattern comes from: the `(axion.method).pattern` option when set, else the rpc.
    pub pattern_location: Location,
}

/// A message type in ts-proto's output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TsType {
    /// ts-proto's module: the proto file without `.proto` (`axion/graph/v1/graph`).
    pub module: String,
    /// ts-proto's type name: nested names joined by `_` (`Project_Source`).
    pub name: String,
}

/// Traefik routing of a service's edge.
#[derive(Debug, Clone)]
pub struct Traefik {
    /// Router, service and middleware stem.
    pub name: String,
    /// `<name>-headers`.
    pub middleware: String,
    /// Host rule.
    pub host: String,
    /// Container port.
    pub port: u32,
    /// Optional path prefix.
    pub path_prefix: Option<String>,
    /// Entrypoints.
    pub entrypoints: Vec<String>,
    /// Whether the edge speaks WebSocket.
    pub websocket: bool,
    /// Health-check path.
    pub health_path: String,
    /// Server URL for the file provider.
    pub server_url: String,
}

impl Package {
    /// An empty package named `name` (`axion.graph.v1`, empty for files without a package).
    fn named(name: &str) -> Self {
        let (file_name, ts_file) = if name.is_empty() {
            ("_.rs".to_owned(), "_.ts".to_owned())
        } else {
            (
                format!("{name}.rs"),
                format!("{}.ts", name.replace('.', "/")),
            )
        };
        Package {
            name: name.to_owned(),
            module: name
                .split('.')
                .filter(|s| !s.is_empty())
                .map(names::rust_snake)
                .collect(),
            file_name,
            ts_file,
            sources: Vec::new(),
            messages: Vec::new(),
            enums: Vec::new(),
            enum_types: Vec::new(),
            services: Vec::new(),
        }
    }
}

/// Builds and validates the model.
pub fn build(loaded: &Loaded, options: &ModelOptions, warnings: &mut Vec<String>) -> Result<Model> {
    if let Some(problem) = options
        .topic_prefix
        .as_deref()
        .filter(|p| !p.is_empty())
        .and_then(names::topic_problem)
    {
        return Err(Error::Usage(format!(
            "the topic prefix must be a legal Kafka topic part: {problem}"
        )));
    }
    let types = index_types(&loaded.files);
    let resolver = Resolver { types: &types };
    let ext = &loaded.options;

    let mut packages: BTreeMap<String, Package> = BTreeMap::new();
    let mut errors = Vec::new();
    for file in &loaded.files {
        let name = file.name();
        if name.starts_with("google/protobuf/") || name == crate::load::OPTIONS_PROTO_NAME {
            continue;
        }
        let package = packages
            .entry(file.package().to_owned())
            .or_insert_with(|| Package::named(file.package()));
        package.sources.push(name.to_owned());
        let proto2 = !matches!(file.syntax(), "proto3" | "editions");
        for m in &file.message_type {
            collect_message(
                proto2,
                file.package(),
                m,
                &[],
                &resolver,
                &mut package.messages,
                &mut package.enums,
            );
            collect_enum_types(file.package(), m, &[], &mut package.enum_types);
        }
        for e in &file.enum_type {
            package
                .enums
                .push(RustPath::local(vec![names::rust_upper_camel(e.name())]));
            package
                .enum_types
                .push(enum_type(&fq(file.package(), &[e.name().to_owned()]), e));
        }
        if loaded.inputs.contains(name) {
            let display = loaded
                .display
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_owned());
            let comments = Comments::new(file, &display);
            let ctx = FileContext {
                file,
                comments: &comments,
                resolver: &resolver,
                ext,
                options,
            };
            for (i, svc) in file.service.iter().enumerate() {
                match build_service(&ctx, i, svc, warnings) {
                    Ok(s) => package.services.push(s),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    validate(&packages, &mut errors);
    check_rust_names(loaded, &packages, &mut errors);
    warnings.extend(crate::envelope::warnings(loaded));
    // A file-wide problem (a bad topic prefix) is found once per service: report it once.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.to_string()));
    Error::from_list(errors)?;
    Ok(Model {
        packages: packages.into_values().collect(),
    })
}

#[cfg(test)]
mod tests;
