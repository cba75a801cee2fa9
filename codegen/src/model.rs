//! Model: one IR built once from the descriptors, holding every derived name and validated.
//! Emitters read names from here and never derive them again.

use std::collections::{BTreeMap, HashMap};

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorProto};
use protox::prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};

use crate::error::{Error, Location, Result};
use crate::load::Loaded;
use crate::names;

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

/// How the default pattern (request topic) of an rpc is formed. An rpc's
/// `(axion.method).pattern` is used verbatim whatever the scheme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PatternScheme {
    /// `<prefix>.<service name>.<rpc>` (`axion.graph-service.create-project`): the stack's
    /// topics, one version of each service on the bus. The prefix defaults to `axion`.
    #[default]
    Service,
    /// `[<prefix>.]<proto package>.<service name>.<rpc>`
    /// (`axion.graph.v1.graph-service.create-project` for package `axion.graph.v1`): the
    /// package names the namespace, so `v1` and `v1beta1` of one API live side by side. There
    /// is no prefix unless one is set; a file without a package falls back to
    /// `[<prefix>.]<service name>.<rpc>`.
    Package,
}

impl PatternScheme {
    /// Every scheme, in the order `--help` lists them.
    pub const ALL: [PatternScheme; 2] = [PatternScheme::Service, PatternScheme::Package];

    /// The name used by `--pattern-scheme` and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PatternScheme::Service => "service",
            PatternScheme::Package => "package",
        }
    }

    /// The prefix of default patterns when none is configured.
    pub fn default_prefix(self) -> &'static str {
        match self {
            PatternScheme::Service => DEFAULT_TOPIC_PREFIX,
            PatternScheme::Package => "",
        }
    }

    /// The default pattern of rpc `rpc` of service `service` (its Kafka name) in `package`.
    pub fn default_pattern(self, prefix: &str, package: &str, service: &str, rpc: &str) -> String {
        let namespace = match self {
            PatternScheme::Service => None,
            PatternScheme::Package => Some(package).filter(|p| !p.is_empty()),
        };
        let parts = [Some(prefix).filter(|p| !p.is_empty()), namespace];
        let head: Vec<&str> = parts.into_iter().flatten().collect();
        names::default_pattern(&head.join("."), service, rpc)
    }
}

impl std::str::FromStr for PatternScheme {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        PatternScheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == s)
            .ok_or_else(|| format!("unknown pattern scheme {s:?}: expected service or package"))
    }
}

/// The prefix of default patterns of the service scheme: the stack's topics read
/// `axion.graph-service....`.
pub const DEFAULT_TOPIC_PREFIX: &str = "axion";

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
    /// The package's files, for prost.
    pub files: Vec<FileDescriptorProto>,
    /// Messages with their JSON field mapping.
    pub messages: Vec<Message>,
    /// Rust paths of the package's enums, relative to the package module.
    pub enums: Vec<String>,
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
    /// Rust path relative to the package module: `Project`, `project::Source`.
    pub rust_path: String,
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
    /// The codec type from `axion_runtime::json` (as Rust source, `j::` prefixed).
    pub codec: String,
    /// How prost stores the field.
    pub storage: Storage,
    /// The field number.
    pub number: i32,
    /// The proto name of the oneof this field belongs to (not for proto3 `optional`).
    pub oneof: Option<String>,
    /// The JSON shape the codec writes, for schema emitters (AsyncAPI).
    pub wire: Wire,
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
        enum_path: String,
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
    /// Rust path of the request type, relative to the package module.
    pub input_type: String,
    /// Rust path of the response type (`()` for `google.protobuf.Empty`).
    pub output_type: String,
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

/// Where each declared type lives.
struct TypeInfo {
    package: String,
    /// The proto file declaring it.
    file: String,
    /// Names from the outermost message down to the type.
    path: Vec<String>,
    /// For map entries: (key field, value field).
    map_entry: Option<(
        prost_types::FieldDescriptorProto,
        prost_types::FieldDescriptorProto,
    )>,
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
    let mut types = HashMap::new();
    for file in &loaded.files {
        let mut path = Vec::new();
        for m in &file.message_type {
            index_message(file.name(), file.package(), m, &mut path, &mut types);
        }
        for e in &file.enum_type {
            types.insert(
                fq(file.package(), &[e.name().to_owned()]),
                TypeInfo {
                    package: file.package().to_owned(),
                    file: file.name().to_owned(),
                    path: vec![e.name().to_owned()],
                    map_entry: None,
                },
            );
        }
    }
    let resolver = Resolver { types: &types };
    let ext = Extensions::new(&loaded.pool);

    let mut packages: BTreeMap<String, Package> = BTreeMap::new();
    let mut errors = Vec::new();
    for file in &loaded.files {
        let name = file.name();
        if name.starts_with("google/protobuf/") || name == crate::load::OPTIONS_PROTO_NAME {
            continue;
        }
        let package = packages
            .entry(file.package().to_owned())
            .or_insert_with(|| {
                let module: Vec<String> = file
                    .package()
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(names::rust_snake)
                    .collect();
                Package {
                    name: file.package().to_owned(),
                    file_name: if file.package().is_empty() {
                        "_.rs".to_owned()
                    } else {
                        format!("{}.rs", file.package())
                    },
                    ts_file: if file.package().is_empty() {
                        "_.ts".to_owned()
                    } else {
                        format!("{}.ts", file.package().replace('.', "/"))
                    },
                    module,
                    files: Vec::new(),
                    messages: Vec::new(),
                    enums: Vec::new(),
                    enum_types: Vec::new(),
                    services: Vec::new(),
                }
            });
        package.files.push(file.clone());
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
            package.enums.push(names::rust_upper_camel(e.name()));
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
            for (i, svc) in file.service.iter().enumerate() {
                match build_service(file, i, svc, &comments, &resolver, &ext, options, warnings) {
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

fn fq(package: &str, path: &[String]) -> String {
    if package.is_empty() {
        format!(".{}", path.join("."))
    } else {
        format!(".{package}.{}", path.join("."))
    }
}

fn index_message(
    file: &str,
    package: &str,
    m: &DescriptorProto,
    path: &mut Vec<String>,
    types: &mut HashMap<String, TypeInfo>,
) {
    path.push(m.name().to_owned());
    let map_entry = if m.options.as_ref().is_some_and(|o| o.map_entry()) && m.field.len() == 2 {
        Some((m.field[0].clone(), m.field[1].clone()))
    } else {
        None
    };
    types.insert(
        fq(package, path),
        TypeInfo {
            package: package.to_owned(),
            file: file.to_owned(),
            path: path.clone(),
            map_entry,
        },
    );
    for nested in &m.nested_type {
        index_message(file, package, nested, path, types);
    }
    for e in &m.enum_type {
        path.push(e.name().to_owned());
        types.insert(
            fq(package, path),
            TypeInfo {
                package: package.to_owned(),
                file: file.to_owned(),
                path: path.clone(),
                map_entry: None,
            },
        );
        path.pop();
    }
    path.pop();
}

struct Resolver<'a> {
    types: &'a HashMap<String, TypeInfo>,
}

impl Resolver<'_> {
    /// The Rust path of a type, relative to the module of package `from` (prost's paths).
    fn rust_path(&self, from: &str, type_name: &str) -> String {
        if let Some(wkt) = type_name.strip_prefix(".google.protobuf.") {
            return match wkt {
                // The only well-known type an rpc may take or return (see build_service); the
                // others reach here as enums (`NullValue`).
                "Empty" => "()".to_owned(),
                other => {
                    let parts: Vec<&str> = other.split('.').collect();
                    let mut out = String::from("::axion_runtime::prost_types");
                    for (i, p) in parts.iter().enumerate() {
                        out.push_str("::");
                        if i + 1 == parts.len() {
                            out.push_str(&names::rust_upper_camel(p));
                        } else {
                            out.push_str(&names::rust_snake(p));
                        }
                    }
                    out
                }
            };
        }
        let Some(info) = self.types.get(type_name) else {
            // protox resolved every name, so this is unreachable for valid input.
            return names::rust_upper_camel(type_name.rsplit('.').next().unwrap_or(type_name));
        };
        let from_mod: Vec<String> = module_of(from);
        let to_mod: Vec<String> = module_of(&info.package);
        let common = from_mod
            .iter()
            .zip(&to_mod)
            .take_while(|(a, b)| a == b)
            .count();
        let mut parts: Vec<String> = Vec::new();
        parts.extend(std::iter::repeat_n(
            "super".to_owned(),
            from_mod.len() - common,
        ));
        parts.extend(to_mod[common..].iter().cloned());
        for (i, p) in info.path.iter().enumerate() {
            if i + 1 == info.path.len() {
                parts.push(names::rust_upper_camel(p));
            } else {
                parts.push(names::rust_snake(p));
            }
        }
        parts.join("::")
    }

    /// Where ts-proto puts a message type and what it calls it.
    fn ts_type(&self, type_name: &str) -> TsType {
        match self.types.get(type_name) {
            Some(info) => TsType {
                module: info
                    .file
                    .strip_suffix(".proto")
                    .unwrap_or(&info.file)
                    .to_owned(),
                name: ts_proto_type(&info.path),
            },
            // Well-known types are protox built-ins; Empty is the only one an rpc may use.
            None => {
                let name = type_name.rsplit('.').next().unwrap_or(type_name);
                TsType {
                    module: format!("google/protobuf/{}", names::rust_snake(name)),
                    name: name.to_owned(),
                }
            }
        }
    }

    /// The JSON codec of a field (without the `Opt`/`List` wrapper of its label).
    fn scalar_codec(&self, from: &str, field: &prost_types::FieldDescriptorProto) -> String {
        match field.r#type() {
            Type::Double => "j::F64".into(),
            Type::Float => "j::F32".into(),
            Type::Int64 | Type::Sint64 | Type::Sfixed64 => "j::I64".into(),
            Type::Uint64 | Type::Fixed64 => "j::U64".into(),
            Type::Int32 | Type::Sint32 | Type::Sfixed32 => "j::I32".into(),
            Type::Uint32 | Type::Fixed32 => "j::U32".into(),
            Type::Bool => "j::Bool".into(),
            Type::String => "j::Str".into(),
            Type::Bytes => "j::Bytes".into(),
            Type::Enum => format!("j::Enum<{}>", self.rust_path(from, field.type_name())),
            Type::Message | Type::Group => message_codec(field.type_name()),
        }
    }

    fn map_entry(
        &self,
        field: &prost_types::FieldDescriptorProto,
    ) -> Option<&(
        prost_types::FieldDescriptorProto,
        prost_types::FieldDescriptorProto,
    )> {
        if field.r#type() != Type::Message || field.label() != Label::Repeated {
            return None;
        }
        self.types.get(field.type_name())?.map_entry.as_ref()
    }
}

fn module_of(package: &str) -> Vec<String> {
    package
        .split('.')
        .filter(|s| !s.is_empty())
        .map(names::rust_snake)
        .collect()
}

/// Codecs of message-typed fields: well-known types have their own JSON shapes.
fn message_codec(type_name: &str) -> String {
    match type_name {
        ".google.protobuf.Timestamp" => "j::Timestamp",
        ".google.protobuf.Duration" => "j::Duration",
        ".google.protobuf.Empty" => "j::Empty",
        ".google.protobuf.Struct" => "j::Struct",
        ".google.protobuf.Value" => "j::Value",
        ".google.protobuf.ListValue" => "j::ListValue",
        ".google.protobuf.Any" => "j::Any",
        ".google.protobuf.FieldMask" => "j::FieldMask",
        ".google.protobuf.BoolValue" => "j::Bool",
        ".google.protobuf.BytesValue" => "j::Bytes",
        ".google.protobuf.DoubleValue" => "j::F64",
        ".google.protobuf.FloatValue" => "j::F32",
        ".google.protobuf.Int32Value" => "j::I32",
        ".google.protobuf.Int64Value" => "j::I64",
        ".google.protobuf.StringValue" => "j::Str",
        ".google.protobuf.UInt32Value" => "j::U32",
        ".google.protobuf.UInt64Value" => "j::U64",
        // Other google.protobuf types (descriptors, Api, Type) have no JSON mapping in
        // prost-types: they travel as base64 of their protobuf encoding.
        t if t.starts_with(".google.protobuf.") => "j::ProtoBytes",
        _ => "j::Msg",
    }
    .to_owned()
}

fn collect_message(
    proto2: bool,
    package: &str,
    m: &DescriptorProto,
    outer: &[String],
    resolver: &Resolver<'_>,
    out: &mut Vec<Message>,
    enums: &mut Vec<String>,
) {
    if m.options.as_ref().is_some_and(|o| o.map_entry()) {
        return;
    }
    let mut path: Vec<String> = outer.to_vec();
    path.push(m.name().to_owned());
    let module_prefix: String = outer
        .iter()
        .map(|o| format!("{}::", names::rust_snake(o)))
        .collect();
    let rust_path = format!("{module_prefix}{}", names::rust_upper_camel(m.name()));
    let own_module = format!("{module_prefix}{}", names::rust_snake(m.name()));

    let mut fields = Vec::new();
    for f in &m.field {
        let is_synthetic_oneof = f.proto3_optional();
        let codec = if let Some((k, v)) = resolver.map_entry(f) {
            format!(
                "j::Map<{}, {}>",
                resolver.scalar_codec(package, k),
                resolver.scalar_codec(package, v)
            )
        } else if f.label() == Label::Repeated {
            format!("j::List<{}>", resolver.scalar_codec(package, f))
        } else {
            resolver.scalar_codec(package, f)
        };
        let json_name = f
            .json_name
            .clone()
            .unwrap_or_else(|| names::json_name(f.name()));
        let (rust_ident, storage, codec) = match f.oneof_index {
            Some(idx) if !is_synthetic_oneof => {
                let oneof = m.oneof_decl[idx as usize].name();
                (
                    names::rust_snake(oneof),
                    Storage::Oneof {
                        enum_path: format!("{own_module}::{}", oneof_type_ident(m, oneof)),
                        variant: names::rust_upper_camel(f.name()),
                    },
                    codec,
                )
            }
            _ => {
                let optional = f.label() != Label::Repeated
                    && (is_synthetic_oneof
                        || matches!(f.r#type(), Type::Message | Type::Group)
                        || (f.label() == Label::Optional && proto2));
                if optional {
                    (
                        names::rust_snake(f.name()),
                        Storage::Optional,
                        format!("j::Opt<{codec}>"),
                    )
                } else {
                    (names::rust_snake(f.name()), Storage::Plain, codec)
                }
            }
        };
        let wire = if let Some((k, v)) = resolver.map_entry(f) {
            Wire::Map(wire_type(k), wire_type(v))
        } else if f.label() == Label::Repeated {
            Wire::List(wire_type(f))
        } else {
            Wire::Single(wire_type(f))
        };
        let oneof = f
            .oneof_index
            .filter(|_| !is_synthetic_oneof)
            .map(|idx| m.oneof_decl[idx as usize].name().to_owned());
        fields.push(Field {
            proto_name: f.name().to_owned(),
            json_name,
            rust_ident,
            codec,
            storage,
            number: f.number(),
            oneof,
            wire,
        });
    }
    out.push(Message {
        full_name: fq(package, &path).trim_start_matches('.').to_owned(),
        rust_path,
        fields,
    });
    for nested in &m.nested_type {
        collect_message(proto2, package, nested, &path, resolver, out, enums);
    }
    for e in &m.enum_type {
        enums.push(format!(
            "{own_module}::{}",
            names::rust_upper_camel(e.name())
        ));
    }
}

/// The JSON shape of one value of a field (the item of a list), matching `scalar_codec`.
fn wire_type(field: &prost_types::FieldDescriptorProto) -> WireType {
    let name = field.type_name().trim_start_matches('.');
    match field.r#type() {
        Type::Double => WireType::F64,
        Type::Float => WireType::F32,
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => WireType::I64,
        Type::Uint64 | Type::Fixed64 => WireType::U64,
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => WireType::I32,
        Type::Uint32 | Type::Fixed32 => WireType::U32,
        Type::Bool => WireType::Bool,
        Type::String => WireType::Str,
        Type::Bytes => WireType::Bytes,
        Type::Enum => WireType::Enum(name.to_owned()),
        Type::Message | Type::Group if name.starts_with("google.protobuf.") => {
            WireType::WellKnown(name.to_owned())
        }
        Type::Message | Type::Group => WireType::Message(name.to_owned()),
    }
}

/// An enum's values; `full_name` with or without the leading dot.
fn enum_type(full_name: &str, e: &prost_types::EnumDescriptorProto) -> EnumType {
    EnumType {
        full_name: full_name.trim_start_matches('.').to_owned(),
        values: e
            .value
            .iter()
            .map(|v| (v.name().to_owned(), v.number()))
            .collect(),
    }
}

/// The enums nested in a message (and its nested messages), with their values.
fn collect_enum_types(
    package: &str,
    m: &DescriptorProto,
    outer: &[String],
    out: &mut Vec<EnumType>,
) {
    let mut path = outer.to_vec();
    path.push(m.name().to_owned());
    for e in &m.enum_type {
        let mut p = path.clone();
        p.push(e.name().to_owned());
        out.push(enum_type(&fq(package, &p), e));
    }
    for nested in &m.nested_type {
        collect_enum_types(package, nested, &path, out);
    }
}

/// The Rust enum prost makes of a oneof: UpperCamel, with `OneOf` appended when a nested
/// message or enum of the message already has that name.
fn oneof_type_ident(m: &DescriptorProto, oneof: &str) -> String {
    let ident = names::rust_upper_camel(oneof);
    let taken = m
        .nested_type
        .iter()
        .map(DescriptorProto::name)
        .chain(m.enum_type.iter().map(|e| e.name()))
        .any(|n| names::rust_upper_camel(n) == ident);
    if taken {
        format!("{ident}OneOf")
    } else {
        ident
    }
}

/// Custom option extensions, when the input imports `axion/options.proto`.
struct Extensions {
    file: Option<protox::prost_reflect::ExtensionDescriptor>,
    service: Option<protox::prost_reflect::ExtensionDescriptor>,
    method: Option<protox::prost_reflect::ExtensionDescriptor>,
    pool: DescriptorPool,
}

impl Extensions {
    fn new(pool: &DescriptorPool) -> Self {
        Extensions {
            file: pool.get_extension_by_name("axion.file"),
            service: pool.get_extension_by_name("axion.service"),
            method: pool.get_extension_by_name("axion.method"),
            pool: pool.clone(),
        }
    }

    fn get(
        ext: &Option<protox::prost_reflect::ExtensionDescriptor>,
        options: &DynamicMessage,
    ) -> Option<DynamicMessage> {
        let ext = ext.as_ref()?;
        if !options.has_extension(ext) {
            return None;
        }
        options.get_extension(ext).as_message().cloned()
    }

    fn file_options(&self, file: &str) -> Option<DynamicMessage> {
        let f = self.pool.get_file_by_name(file)?;
        Self::get(&self.file, &f.options())
    }
    fn service_options(&self, full_name: &str) -> Option<DynamicMessage> {
        let s = self.pool.get_service_by_name(full_name)?;
        Self::get(&self.service, &s.options())
    }
    fn method_options(&self, service: &str, method: &str) -> Option<DynamicMessage> {
        let s = self.pool.get_service_by_name(service)?;
        let m = s.methods().find(|m| m.name() == method)?;
        Self::get(&self.method, &m.options())
    }
}

/// The file's `(axion.file).pattern_scheme`, when it sets one.
fn file_scheme(
    ext: &Extensions,
    file: &FileDescriptorProto,
    comments: &Comments,
) -> Result<Option<PatternScheme>> {
    let Some(number) = ext
        .file_options(file.name())
        .and_then(|o| opt_enum(&o, "pattern_scheme"))
    else {
        return Ok(None);
    };
    match number {
        0 => Ok(None),
        1 => Ok(Some(PatternScheme::Service)),
        2 => Ok(Some(PatternScheme::Package)),
        other => Err(Error::at(
            comments.option_location(&[], 8, ext.file.as_ref(), "pattern_scheme"),
            format!("(axion.file).pattern_scheme {other} is not a known scheme (1 service, 2 package)"),
        )),
    }
}

fn opt_enum(msg: &DynamicMessage, field: &str) -> Option<i32> {
    let fd = msg.descriptor().get_field_by_name(field)?;
    if !msg.has_field(&fd) {
        return None;
    }
    msg.get_field(&fd).as_enum_number()
}

fn opt_str(msg: &DynamicMessage, field: &str) -> Option<String> {
    let fd = msg.descriptor().get_field_by_name(field)?;
    if !msg.has_field(&fd) {
        return None;
    }
    msg.get_field(&fd).as_str().map(str::to_owned)
}

fn opt_bool(msg: &DynamicMessage, field: &str) -> Option<bool> {
    let fd = msg.descriptor().get_field_by_name(field)?;
    if !msg.has_field(&fd) {
        return None;
    }
    msg.get_field(&fd).as_bool()
}

fn opt_u32(msg: &DynamicMessage, field: &str) -> Option<u32> {
    let fd = msg.descriptor().get_field_by_name(field)?;
    msg.get_field(&fd).as_u32()
}

fn str_list(msg: &DynamicMessage, field: &str) -> Vec<String> {
    let Some(fd) = msg.descriptor().get_field_by_name(field) else {
        return Vec::new();
    };
    msg.get_field(&fd)
        .as_list()
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Comments and spans of one file, by descriptor path.
pub(crate) struct Comments {
    by_path: HashMap<Vec<i32>, prost_types::source_code_info::Location>,
    display: String,
}

impl Comments {
    pub(crate) fn new(file: &FileDescriptorProto, display: &str) -> Self {
        let by_path = file
            .source_code_info
            .iter()
            .flat_map(|s| s.location.iter())
            .map(|l| (l.path.clone(), l.clone()))
            .collect();
        Comments {
            by_path,
            display: display.to_owned(),
        }
    }

    pub(crate) fn location(&self, path: &[i32]) -> Location {
        self.span(path)
            .unwrap_or_else(|| Location::file(self.display.clone()))
    }

    fn span(&self, path: &[i32]) -> Option<Location> {
        match self.by_path.get(path) {
            Some(l) if l.span.len() >= 2 => Some(Location {
                file: self.display.clone(),
                line: l.span[0] as u32 + 1,
                col: l.span[1] as u32 + 1,
            }),
            _ => None,
        }
    }

    /// Where an axion option of an element is set: `option (ext).field = ...` when written
    /// that way, else the whole `option (ext) = {...}`, else the element itself.
    /// `options_field` is the number of the `options` field in the element's descriptor.
    fn option_location(
        &self,
        element: &[i32],
        options_field: i32,
        ext: Option<&protox::prost_reflect::ExtensionDescriptor>,
        field: &str,
    ) -> Location {
        if let Some(ext) = ext {
            let mut path = element.to_vec();
            path.push(options_field);
            path.push(ext.number() as i32);
            if let Some(fd) = ext
                .kind()
                .as_message()
                .and_then(|m| m.get_field_by_name(field))
            {
                path.push(fd.number() as i32);
                if let Some(l) = self.span(&path) {
                    return l;
                }
                path.pop();
            }
            if let Some(l) = self.span(&path) {
                return l;
            }
        }
        self.location(element)
    }

    fn docs(&self, path: &[i32]) -> Vec<String> {
        let Some(l) = self.by_path.get(path) else {
            return Vec::new();
        };
        let text = l
            .leading_comments
            .as_deref()
            .or(l.trailing_comments.as_deref())
            .unwrap_or("");
        crate::docs::doc_lines(text)
    }
}

#[allow(clippy::too_many_arguments)]
fn build_service(
    file: &FileDescriptorProto,
    index: usize,
    svc: &prost_types::ServiceDescriptorProto,
    comments: &Comments,
    resolver: &Resolver<'_>,
    ext: &Extensions,
    options: &ModelOptions,
    warnings: &mut Vec<String>,
) -> Result<Service> {
    let package = file.package();
    let full_name = if package.is_empty() {
        svc.name().to_owned()
    } else {
        format!("{package}.{}", svc.name())
    };
    let svc_path = vec![6, index as i32];
    let location = comments.location(&svc_path);
    let svc_opts = ext.service_options(&full_name);
    let explicit_name = svc_opts
        .as_ref()
        .and_then(|o| opt_str(o, "name"))
        .filter(|n| !n.is_empty());
    if let Some(problem) = explicit_name.as_deref().and_then(names::topic_problem) {
        // Every default pattern would repeat this; say it once, where the name is set.
        return Err(Error::at(
            comments.option_location(&svc_path, 3, ext.service.as_ref(), "name"),
            format!(
                "(axion.service).name of {} is part of every default pattern and must be a legal Kafka topic part: {problem}",
                svc.name()
            ),
        ));
    }
    let kafka_name = explicit_name.unwrap_or_else(|| names::kafka_service_name(svc.name()));
    let file_prefix = ext
        .file_options(file.name())
        .and_then(|o| opt_str(&o, "topic_prefix"));
    if let Some(problem) = file_prefix
        .as_deref()
        .filter(|p| !p.is_empty())
        .and_then(names::topic_problem)
    {
        return Err(Error::at(
            comments.option_location(&[], 8, ext.file.as_ref(), "topic_prefix"),
            format!("(axion.file).topic_prefix must be a legal Kafka topic part: {problem}"),
        ));
    }
    let scheme = file_scheme(ext, file, comments)?.unwrap_or(options.pattern_scheme);
    let prefix = file_prefix
        .or_else(|| options.topic_prefix.clone())
        .unwrap_or_else(|| scheme.default_prefix().to_owned());

    let stem = names::constant_stem(svc.name());
    let trait_ident = names::rust_upper_camel(svc.name());
    let snake = names::rust_snake(svc.name())
        .trim_start_matches("r#")
        .to_owned();

    let mut errors = Vec::new();
    let mut methods = Vec::new();
    for (j, m) in svc.method.iter().enumerate() {
        let path = vec![6, index as i32, 2, j as i32];
        let m_location = comments.location(&path);
        if m.client_streaming() {
            let what = if m.server_streaming() {
                "bidirectional"
            } else {
                "client"
            };
            let message = format!(
                "rpc {} uses {what} streaming, which the Kafka transport cannot express (only request/reply, server streaming and events)",
                m.name()
            );
            if options.skip_unsupported {
                warnings.push(format!("{m_location}: warning: {message}; skipped"));
                continue;
            }
            errors.push(Error::at(
                m_location,
                format!("{message}; pass --skip-unsupported to skip it"),
            ));
            continue;
        }
        if let Some(wkt) = [m.input_type(), m.output_type()]
            .into_iter()
            .find(|t| t.starts_with(".google.protobuf.") && *t != ".google.protobuf.Empty")
        {
            let wkt = wkt.trim_start_matches('.');
            let why = if wkt.ends_with("Value") && wkt != "google.protobuf.Value" {
                "ts-proto sends a wrapper as {\"value\": ..}, which has no Rust type here"
            } else {
                "prost-types gives it no JSON form to travel on the bus"
            };
            let message = format!(
                "rpc {} takes or returns {wkt} directly ({why}); only google.protobuf.Empty may be an rpc's request or response: wrap it in a message of your own",
                m.name()
            );
            if options.skip_unsupported {
                warnings.push(format!("{m_location}: warning: {message}; skipped"));
                continue;
            }
            errors.push(Error::at(
                m_location,
                format!("{message}, or pass --skip-unsupported to skip the rpc"),
            ));
            continue;
        }
        let m_opts = ext.method_options(&full_name, m.name());
        let is_event = m_opts
            .as_ref()
            .and_then(|o| opt_bool(o, "event"))
            .unwrap_or(false);
        if is_event && m.server_streaming() {
            errors.push(Error::at(
                m_location,
                format!("rpc {} is an event and cannot stream replies", m.name()),
            ));
            continue;
        }
        let explicit = m_opts
            .as_ref()
            .and_then(|o| opt_str(o, "pattern"))
            .filter(|p| !p.is_empty());
        let pattern_location = if explicit.is_some() {
            comments.option_location(&path, 4, ext.method.as_ref(), "pattern")
        } else {
            m_location.clone()
        };
        let pattern =
            explicit.unwrap_or_else(|| scheme.default_pattern(&prefix, package, &kafka_name, m.name()));
        let reply_topic = (!is_event).then(|| names::reply_topic(&pattern));
        if let Some(problem) = names::topic_problem(&pattern)
            .or_else(|| reply_topic.as_deref().and_then(names::topic_problem))
        {
            errors.push(Error::at(
                pattern_location,
                format!(
                    "rpc {}: pattern is not a legal Kafka topic: {problem}",
                    m.name()
                ),
            ));
            continue;
        }
        let kind = if is_event {
            MethodKind::Event
        } else if m.server_streaming() {
            MethodKind::ServerStreaming
        } else {
            MethodKind::RequestReply
        };
        methods.push(Method {
            proto_name: m.name().to_owned(),
            key: names::pattern_key(m.name()),
            rust_ident: names::rust_snake(m.name()),
            options_ident: names::options_method(&names::rust_snake(m.name())),
            dlq_topic: names::dlq_topic(&pattern),
            pattern,
            reply_topic,
            kind,
            input_type: resolver.rust_path(package, m.input_type()),
            output_type: resolver.rust_path(package, m.output_type()),
            input_proto: m.input_type().trim_start_matches('.').to_owned(),
            output_proto: m.output_type().trim_start_matches('.').to_owned(),
            input_ts: resolver.ts_type(m.input_type()),
            output_ts: resolver.ts_type(m.output_type()),
            docs: comments.docs(&path),
            location: m_location,
            pattern_location,
        });
    }

    let traefik = match svc_opts.as_ref().and_then(|o| {
        let fd = o.descriptor().get_field_by_name("traefik")?;
        o.has_field(&fd)
            .then(|| o.get_field(&fd).as_message().cloned())?
    }) {
        Some(t) => match traefik(
            &t,
            &kafka_name,
            &comments.option_location(&svc_path, 3, ext.service.as_ref(), "traefik"),
        ) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None => None,
    };
    let mut trusted_origins = Vec::new();
    if let Some(t) = &traefik {
        trusted_origins.push(format!("http://{}", t.host));
        trusted_origins.push(format!("https://{}", t.host));
    }
    if let Some(o) = svc_opts.as_ref().and_then(|o| {
        let fd = o.descriptor().get_field_by_name("traefik")?;
        o.get_field(&fd).as_message().cloned()
    }) {
        for extra in str_list(&o, "trusted_origins") {
            if !trusted_origins.contains(&extra) {
                trusted_origins.push(extra);
            }
        }
    }
    Error::from_list(errors)?;

    Ok(Service {
        proto_name: svc.name().to_owned(),
        full_name,
        name_const: format!("{stem}_NAME"),
        patterns_const: format!("{stem}_PATTERNS"),
        reply_topics_const: format!("{stem}_REPLY_TOPICS"),
        contract_const: format!("{stem}_CONTRACT"),
        methods_const: format!("{stem}_METHODS"),
        trusted_origins_const: format!("{stem}_TRUSTED_ORIGINS"),
        server_group: format!("{kafka_name}-server"),
        server_group_const: format!("{stem}_SERVER_GROUP"),
        messages_type: format!("{}Messages", svc.name()),
        kafka_name,
        client_mod: format!("{snake}_client"),
        client_ident: format!("{}Client", trait_ident.trim_end_matches('_')),
        server_mod: format!("{snake}_server"),
        server_ident: format!("{}Server", trait_ident.trim_end_matches('_')),
        trait_ident,
        docs: comments.docs(&svc_path),
        methods,
        traefik,
        trusted_origins,
        location,
        proto_file: file.name().to_owned(),
    })
}

fn traefik(t: &DynamicMessage, kafka_name: &str, location: &Location) -> Result<Traefik> {
    let host = opt_str(t, "host").unwrap_or_default();
    let port = opt_u32(t, "port").unwrap_or(0);
    let mut problems = Vec::new();
    if host.is_empty() {
        problems.push("it needs a host (e.g. host: \"graph.axion.localhost\")".to_owned());
    } else if host.contains(['`', ' ', '/', ',']) {
        problems.push(format!("host must be a plain host name, got {host:?}"));
    }
    if port == 0 {
        problems.push("it needs a port (the edge's port inside its container, 1-65535)".to_owned());
    } else if port > 65535 {
        problems.push(format!("port must be 1-65535, got {port}"));
    }
    if !problems.is_empty() {
        return Err(Error::at(
            location.clone(),
            format!("(axion.service).traefik: {}", problems.join("; ")),
        ));
    }
    let name = opt_str(t, "name")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| kafka_name.to_owned());
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::at(
            location.clone(),
            format!("(axion.service).traefik.name must be [a-zA-Z0-9_-]+, got {name:?}"),
        ));
    }
    let path_prefix = opt_str(t, "path_prefix").filter(|p| !p.is_empty());
    if let Some(p) = &path_prefix {
        if !p.starts_with('/') || p.contains('`') {
            return Err(Error::at(
                location.clone(),
                format!("(axion.service).traefik.path_prefix must start with '/', got {p:?}"),
            ));
        }
    }
    let mut entrypoints = str_list(t, "entrypoints");
    if entrypoints.is_empty() {
        entrypoints.push("web".to_owned());
    }
    let health_path = opt_str(t, "health_path")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/health".to_owned());
    let server_url = opt_str(t, "server_url")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("http://{kafka_name}:{port}"));
    Ok(Traefik {
        middleware: format!("{name}-headers"),
        name,
        host,
        port,
        path_prefix,
        entrypoints,
        websocket: opt_bool(t, "websocket").unwrap_or(true),
        health_path,
        server_url,
    })
}

/// Methods every generated client has next to its rpcs (see `emit::service`).
const CLIENT_METHODS: &[&str] = &["new", "from_transport", "with_timeout", "inner"];

/// An rpc whose pattern an earlier rpc already has: (service, rpc, earlier service, earlier rpc).
type Collision<'a> = (&'a Service, &'a Method, &'a Service, &'a Method);

/// Checks across the whole input: one pattern, one rpc; no two services share constants.
fn validate(packages: &BTreeMap<String, Package>, errors: &mut Vec<Error>) {
    let mut patterns: BTreeMap<&str, (&Service, &Method)> = BTreeMap::new();
    let mut collisions: Vec<Collision<'_>> = Vec::new();
    for package in packages.values() {
        let mut stems: HashMap<&str, &Service> = HashMap::new();
        for svc in &package.services {
            if let Some(other) = stems.insert(&svc.name_const, svc) {
                errors.push(Error::at(
                    svc.location.clone(),
                    format!(
                        "services {} and {} (at {}) both map to the constant {}; rename one",
                        svc.proto_name, other.proto_name, other.location, svc.name_const
                    ),
                ));
            }
            let mut idents: HashMap<&str, &Method> = HashMap::new();
            for m in &svc.methods {
                if CLIENT_METHODS.contains(&m.rust_ident.as_str()) {
                    errors.push(Error::at(
                        m.location.clone(),
                        format!(
                            "rpc {} becomes the Rust method `{}`, which the generated {} already has; rename the rpc",
                            m.proto_name, m.rust_ident, svc.client_ident
                        ),
                    ));
                }
                if let Some(other) = idents.insert(&m.rust_ident, m) {
                    errors.push(Error::at(
                        m.location.clone(),
                        format!(
                            "rpcs {} and {} (at {}) both map to the Rust method {}; rename one",
                            m.proto_name, other.proto_name, other.location, m.rust_ident
                        ),
                    ));
                }
                if let Some((other_svc, other)) = patterns.insert(&m.pattern, (svc, m)) {
                    collisions.push((svc, m, other_svc, other));
                }
            }
            // Each rpc also gets `<method>_with` (per-call options) on the client.
            for base in &svc.methods {
                let with = &base.options_ident;
                let taken = svc
                    .methods
                    .iter()
                    .find(|m| m.rust_ident.trim_start_matches("r#") == with.as_str());
                if let Some(m) = taken {
                    errors.push(Error::at(
                        m.location.clone(),
                        format!(
                            "rpc {} becomes the Rust method `{}`, which the generated {} already has for rpc {} (at {}) with per-call options; rename the rpc",
                            m.proto_name, with, svc.client_ident, base.proto_name, base.location
                        ),
                    ));
                }
            }
        }
    }
    // Same-named services in two packages (v1 and v1beta1) collide on every rpc: one error
    // per pair of services, at the service, instead of one per rpc.
    let mut pairs: Vec<((&str, &str), Vec<Collision<'_>>)> = Vec::new();
    for c in collisions {
        let key = (c.0.full_name.as_str(), c.2.full_name.as_str());
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(c),
            None => pairs.push((key, vec![c])),
        }
    }
    for (_, list) in pairs {
        let (svc, m, other_svc, other) = list[0];
        let explicit = m.pattern_location != m.location || other.pattern_location != other.location;
        let hint = if explicit {
            "every rpc needs its own pattern"
        } else {
            "default patterns do not include the proto package: generate with `--pattern-scheme package` (or set the file's `option (axion.file).pattern_scheme = PATTERN_SCHEME_PACKAGE`), or give one service `option (axion.service).name`, or its file `option (axion.file).topic_prefix`"
        };
        if list.len() == 1 {
            errors.push(Error::at(
                m.pattern_location.clone(),
                format!(
                    "pattern {} of {}.{} is also the pattern of {}.{} at {}; {hint}",
                    m.pattern,
                    svc.full_name,
                    m.proto_name,
                    other_svc.full_name,
                    other.proto_name,
                    other.pattern_location
                ),
            ));
        } else {
            let rpcs: Vec<&str> = list.iter().map(|c| c.1.proto_name.as_str()).collect();
            errors.push(Error::at(
                svc.location.clone(),
                format!(
                    "{} rpcs of {} have the same patterns as rpcs of {} at {} ({}, e.g. {}); {hint}",
                    list.len(),
                    svc.full_name,
                    other_svc.full_name,
                    other_svc.location,
                    rpcs.join(", "),
                    m.pattern
                ),
            ));
        }
    }
}

/// One Rust namespace (a module's types, a module's child modules, a struct's fields, an enum's
/// variants): the first claim of each identifier, and where it was made.
#[derive(Default)]
struct Namespace(HashMap<String, (String, Location)>);

impl Namespace {
    /// Claims `ident` for `what` (`message Foo`) at `location`; a second claim, or an identifier
    /// prost would leave empty (a name of underscores only), is an error.
    fn claim(
        &mut self,
        ident: String,
        what: String,
        location: Location,
        kind: &str,
        errors: &mut Vec<Error>,
    ) {
        if ident.is_empty() || ident == "r#" {
            errors.push(Error::at(
                location,
                format!(
                    "{what} has no Rust name (prost drops underscores, leaving nothing); rename it"
                ),
            ));
            return;
        }
        match self.0.get(&ident) {
            Some((other, at)) => {
                // Report at whichever comes later in the file, naming the earlier one.
                let (later, later_what, earlier, earlier_what) = if at.file == location.file
                    && (at.line, at.col) > (location.line, location.col)
                {
                    (at.clone(), other.as_str(), location, what.as_str())
                } else {
                    (location, what.as_str(), at.clone(), other.as_str())
                };
                errors.push(Error::at(
                    later,
                    format!(
                        "{later_what} and {earlier_what} (at {earlier}) both become the Rust {kind} `{ident}`; rename one"
                    ),
                ));
            }
            None => {
                self.0.insert(ident, (what, location));
            }
        }
    }
}

/// Names that would make prost's (or the service emitter's) Rust fail to compile: identifiers
/// that come out empty, and two proto names that become one Rust name in the same place
/// (`foo_bar` and `FooBar`, a nested enum and a oneof of one name, a message named like a
/// service's trait, a message module named like a sub-package).
fn check_rust_names(
    loaded: &Loaded,
    packages: &BTreeMap<String, Package>,
    errors: &mut Vec<Error>,
) {
    let mut types: HashMap<&str, Namespace> = HashMap::new();
    let mut modules: HashMap<&str, Namespace> = HashMap::new();
    for file in &loaded.files {
        let name = file.name();
        if name.starts_with("google/protobuf/") || name == crate::load::OPTIONS_PROTO_NAME {
            continue;
        }
        let display = loaded.display.get(name).map_or(name, String::as_str);
        let comments = Comments::new(file, display);
        let package = file.package();
        let types = types.entry(package).or_default();
        let modules = modules.entry(package).or_default();
        for (i, m) in file.message_type.iter().enumerate() {
            check_message(m, &[4, i as i32], &comments, types, modules, errors);
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            let path = [5, i as i32];
            types.claim(
                names::rust_upper_camel(e.name()),
                format!("enum {}", e.name()),
                comments.location(&path),
                "type",
                errors,
            );
            check_enum(e, &path, &comments, errors);
        }
        if !loaded.inputs.contains(name) {
            continue;
        }
        for (i, svc) in file.service.iter().enumerate() {
            let path = [6, i as i32];
            let location = comments.location(&path);
            let trait_ident = names::rust_upper_camel(svc.name());
            let snake = names::rust_snake(svc.name());
            let what = format!("service {}", svc.name());
            if trait_ident.is_empty() {
                types.claim(trait_ident, what, location, "type", errors);
                continue;
            }
            let bare = trait_ident.trim_end_matches('_');
            for ident in [
                trait_ident.clone(),
                format!("{bare}Client"),
                format!("{bare}Server"),
            ] {
                types.claim(ident, what.clone(), location.clone(), "type", errors);
            }
            let snake = snake.trim_start_matches("r#");
            for module in [format!("{snake}_client"), format!("{snake}_server")] {
                modules.claim(module, what.clone(), location.clone(), "module", errors);
            }
            for (j, m) in svc.method.iter().enumerate() {
                if names::rust_snake(m.name()).is_empty() {
                    errors.push(Error::at(
                        comments.location(&[6, i as i32, 2, j as i32]),
                        format!("rpc {} has no Rust name (prost drops underscores, leaving nothing); rename it", m.name()),
                    ));
                }
            }
        }
    }
    // A sub-package's module next to a message's module of the same name.
    for package in packages.values() {
        let Some((last, parent)) = package.module.split_last() else {
            continue;
        };
        let parent_package = packages
            .values()
            .find(|p| p.module == parent)
            .map(|p| p.name.as_str());
        if let Some((what, at)) = parent_package
            .and_then(|p| modules.get(p))
            .and_then(|ns| ns.0.get(last))
        {
            errors.push(Error::at(
                at.clone(),
                format!(
                    "{what} gets the Rust module `{last}`, which is also the module of package {}; rename one",
                    package.name
                ),
            ));
        }
    }
}

fn check_message(
    m: &DescriptorProto,
    path: &[i32],
    comments: &Comments,
    types: &mut Namespace,
    modules: &mut Namespace,
    errors: &mut Vec<Error>,
) {
    let at = |tail: &[i32]| {
        let mut p = path.to_vec();
        p.extend_from_slice(tail);
        comments.location(&p)
    };
    let what = format!("message {}", m.name());
    types.claim(
        names::rust_upper_camel(m.name()),
        what.clone(),
        at(&[]),
        "type",
        errors,
    );
    let is_entry = |n: &DescriptorProto| n.options.as_ref().is_some_and(|o| o.map_entry());
    // Oneofs prost turns into enums: those with a member that is not a proto3 `optional`.
    let real_oneofs: Vec<usize> = (0..m.oneof_decl.len())
        .filter(|&k| {
            m.field
                .iter()
                .any(|f| f.oneof_index == Some(k as i32) && !f.proto3_optional())
        })
        .collect();
    let has_module = !m.enum_type.is_empty()
        || m.nested_type.iter().any(|n| !is_entry(n))
        || !real_oneofs.is_empty();
    if has_module {
        modules.claim(names::rust_snake(m.name()), what, at(&[]), "module", errors);
    }

    let mut fields = Namespace::default();
    let mut inner_types = Namespace::default();
    let mut inner_modules = Namespace::default();
    let mut variants: HashMap<usize, Namespace> = HashMap::new();
    for (k, f) in m.field.iter().enumerate() {
        let location = at(&[2, k as i32]);
        match f.oneof_index.map(|o| o as usize) {
            Some(o) if real_oneofs.contains(&o) => variants.entry(o).or_default().claim(
                names::rust_upper_camel(f.name()),
                format!("field {}", f.name()),
                location,
                "oneof variant",
                errors,
            ),
            _ => fields.claim(
                names::rust_snake(f.name()),
                format!("field {}", f.name()),
                location,
                "field",
                errors,
            ),
        }
    }
    for &k in &real_oneofs {
        let o = &m.oneof_decl[k];
        let location = at(&[8, k as i32]);
        let what = format!("oneof {}", o.name());
        fields.claim(
            names::rust_snake(o.name()),
            what.clone(),
            location.clone(),
            "field",
            errors,
        );
        inner_types.claim(
            oneof_type_ident(m, o.name()),
            what,
            location,
            "type",
            errors,
        );
    }
    for (j, n) in m.nested_type.iter().enumerate() {
        if !is_entry(n) {
            let mut p = path.to_vec();
            p.extend([3, j as i32]);
            check_message(
                n,
                &p,
                comments,
                &mut inner_types,
                &mut inner_modules,
                errors,
            );
        }
    }
    for (j, e) in m.enum_type.iter().enumerate() {
        let mut p = path.to_vec();
        p.extend([4, j as i32]);
        inner_types.claim(
            names::rust_upper_camel(e.name()),
            format!("enum {}", e.name()),
            comments.location(&p),
            "type",
            errors,
        );
        check_enum(e, &p, comments, errors);
    }
}

fn check_enum(
    e: &prost_types::EnumDescriptorProto,
    path: &[i32],
    comments: &Comments,
    errors: &mut Vec<Error>,
) {
    let prefix = names::rust_upper_camel(e.name());
    let mut numbers = std::collections::HashSet::new();
    let mut variants = Namespace::default();
    for (k, v) in e.value.iter().enumerate() {
        // prost emits the first of aliased values only.
        if !numbers.insert(v.number()) {
            continue;
        }
        let mut p = path.to_vec();
        p.extend([2, k as i32]);
        variants.claim(
            names::enum_variant(&prefix, v.name()),
            format!("enum value {}", v.name()),
            comments.location(&p),
            "enum variant",
            errors,
        );
    }
}

/// ts-proto's name of a type declared at `path` (outermost message first): each name
/// camel-cased when it has `_`, joined by `_`; `Date` and `Function` get a `Message` suffix.
fn ts_proto_type(path: &[String]) -> String {
    let camel = |s: &String| {
        if !s.contains('_') {
            return s.clone();
        }
        let has_lower = s.chars().any(|c| c.is_ascii_lowercase());
        s.split('_')
            .enumerate()
            .map(|(i, w)| {
                let w = if has_lower {
                    w.to_owned()
                } else {
                    w.to_lowercase()
                };
                if i == 0 {
                    w
                } else {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                }
            })
            .collect::<String>()
    };
    let name = path.iter().map(camel).collect::<Vec<_>>().join("_");
    if matches!(name.as_str(), "Date" | "Function") {
        format!("{name}Message")
    } else {
        name
    }
}

#[cfg(test)]
mod ts_name_tests {
    #[test]
    fn ts_proto_type_names() {
        let p =
            |v: &[&str]| super::ts_proto_type(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&["Project", "Source"]), "Project_Source");
        assert_eq!(p(&["my_msg"]), "myMsg");
        assert_eq!(p(&["MY_MSG"]), "myMsg");
        assert_eq!(p(&["Date"]), "DateMessage");
        assert_eq!(p(&["Date", "Inner"]), "Date_Inner");
    }
}
