//! Services: names, patterns and topics of each rpc, the Traefik edge.

use prost_types::{FileDescriptorProto, MethodDescriptorProto};

use crate::error::{Error, Location, Result};
use crate::names;

use super::comments::Comments;
use super::index::Resolver;
use super::options::{
    file_scheme, opt_bool, opt_str, opt_u32, str_list, AxionOptions, OptionMessage,
};
use super::scheme::PatternScheme;
use super::ModelOptions;
use super::{Method, MethodKind, Service, Traefik};

/// What every service of one file is built from.
#[derive(Clone, Copy)]
pub(super) struct FileContext<'a> {
    pub(super) file: &'a FileDescriptorProto,
    pub(super) comments: &'a Comments,
    pub(super) resolver: &'a Resolver<'a>,
    pub(super) ext: &'a AxionOptions,
    pub(super) options: &'a ModelOptions,
}

/// What every rpc of one service is built from.
struct Scope<'a> {
    file: &'a FileDescriptorProto,
    comments: &'a Comments,
    resolver: &'a Resolver<'a>,
    ext: &'a AxionOptions,
    options: &'a ModelOptions,
    /// `axion.graph.v1.GraphService`.
    full_name: String,
    /// The descriptor path of the service in its file.
    path: Vec<i32>,
    /// The Kafka-facing name: `graph-service`.
    kafka_name: String,
    /// The prefix of default patterns, resolved.
    prefix: String,
    /// How default patterns are formed, resolved.
    scheme: PatternScheme,
}

/// Service `index` of the context's file.
pub(super) fn build_service(
    ctx: &FileContext<'_>,
    index: usize,
    svc: &prost_types::ServiceDescriptorProto,
    warnings: &mut Vec<String>,
) -> Result<Service> {
    let FileContext {
        file,
        comments,
        resolver,
        ext,
        options,
    } = *ctx;
    let package = file.package();
    let full_name = if package.is_empty() {
        svc.name().to_owned()
    } else {
        format!("{package}.{}", svc.name())
    };
    let path = vec![6, index as i32];
    let svc_opts = ext.service(&full_name);
    let kafka_name = kafka_name(svc, svc_opts, comments, &path)?;
    let (prefix, scheme) = pattern_namespace(file, comments, ext, options)?;
    let scope = Scope {
        file,
        comments,
        resolver,
        ext,
        options,
        full_name,
        path,
        kafka_name,
        prefix,
        scheme,
    };

    let mut errors = Vec::new();
    let mut methods = Vec::new();
    for (j, m) in svc.method.iter().enumerate() {
        match build_method(&scope, j, m, warnings) {
            Ok(Some(method)) => methods.push(method),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    let (traefik, trusted_origins) = match edge(&scope, svc_opts) {
        Ok(edge) => edge,
        Err(e) => {
            errors.push(e);
            (None, Vec::new())
        }
    };
    Error::from_list(errors)?;

    let Scope {
        full_name,
        path,
        kafka_name,
        ..
    } = scope;
    let stem = names::constant_stem(svc.name());
    let trait_ident = names::rust_upper_camel(svc.name());
    let snake = names::rust_snake(svc.name())
        .trim_start_matches("r#")
        .to_owned();
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
        docs: comments.docs(&path),
        methods,
        traefik,
        trusted_origins,
        location: comments.location(&path),
        proto_file: file.name().to_owned(),
    })
}

/// The service's Kafka-facing name: its `(axion.service).name`, else the kebab-case of its
/// proto name.
fn kafka_name(
    svc: &prost_types::ServiceDescriptorProto,
    svc_opts: Option<&OptionMessage>,
    comments: &Comments,
    path: &[i32],
) -> Result<String> {
    let explicit = svc_opts
        .and_then(|o| opt_str(o, "name"))
        .filter(|n| !n.is_empty());
    if let Some(problem) = explicit.as_deref().and_then(names::topic_problem) {
        // Every default pattern would repeat this; say it once, where the name is set.
        return Err(Error::at(
            comments.option_location(path, 3, svc_opts, "name"),
            format!(
                "(axion.service).name of {} is part of every default pattern and must be a legal Kafka topic part: {problem}",
                svc.name()
            ),
        ));
    }
    Ok(explicit.unwrap_or_else(|| names::kafka_service_name(svc.name())))
}

/// The prefix and scheme of the file's default patterns: the file's options, else the
/// configuration's, else the scheme's default prefix.
fn pattern_namespace(
    file: &FileDescriptorProto,
    comments: &Comments,
    ext: &AxionOptions,
    options: &ModelOptions,
) -> Result<(String, PatternScheme)> {
    let file_options = ext.file(file.name());
    let file_prefix = file_options.and_then(|o| opt_str(o, "topic_prefix"));
    if let Some(problem) = file_prefix
        .as_deref()
        .filter(|p| !p.is_empty())
        .and_then(names::topic_problem)
    {
        return Err(Error::at(
            comments.option_location(&[], 8, file_options, "topic_prefix"),
            format!("(axion.file).topic_prefix must be a legal Kafka topic part: {problem}"),
        ));
    }
    let scheme = file_scheme(ext, file, comments)?.unwrap_or(options.pattern_scheme);
    let prefix = file_prefix
        .or_else(|| options.topic_prefix.clone())
        .unwrap_or_else(|| scheme.default_prefix().to_owned());
    Ok((prefix, scheme))
}

/// Why the Kafka transport cannot carry rpc `m`, if it cannot.
fn unsupported(m: &MethodDescriptorProto) -> Option<(String, &'static str)> {
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
        return Some((message, "; pass --skip-unsupported to skip it"));
    }
    let wkt = [m.input_type(), m.output_type()]
        .into_iter()
        .find(|t| t.starts_with(".google.protobuf.") && *t != ".google.protobuf.Empty")?;
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
    Some((message, ", or pass --skip-unsupported to skip the rpc"))
}

/// Rpc `j` of the service: `None` when it is skipped (`--skip-unsupported`, with a warning).
fn build_method(
    scope: &Scope<'_>,
    j: usize,
    m: &MethodDescriptorProto,
    warnings: &mut Vec<String>,
) -> Result<Option<Method>> {
    let comments = scope.comments;
    let mut path = scope.path.clone();
    path.extend([2, j as i32]);
    let location = comments.location(&path);
    if let Some((message, hint)) = unsupported(m) {
        if scope.options.skip_unsupported {
            warnings.push(format!("{location}: warning: {message}; skipped"));
            return Ok(None);
        }
        return Err(Error::at(location, format!("{message}{hint}")));
    }
    let m_opts = scope.ext.method(&scope.full_name, m.name());
    let is_event = m_opts.and_then(|o| opt_bool(o, "event")).unwrap_or(false);
    if is_event && m.server_streaming() {
        return Err(Error::at(
            location,
            format!("rpc {} is an event and cannot stream replies", m.name()),
        ));
    }
    let explicit = m_opts
        .and_then(|o| opt_str(o, "pattern"))
        .filter(|p| !p.is_empty());
    let pattern_location = if explicit.is_some() {
        comments.option_location(&path, 4, m_opts, "pattern")
    } else {
        location.clone()
    };
    let package = scope.file.package();
    let pattern = explicit.unwrap_or_else(|| {
        scope
            .scheme
            .default_pattern(&scope.prefix, package, &scope.kafka_name, m.name())
    });
    let reply_topic = (!is_event).then(|| names::reply_topic(&pattern));
    if let Some(problem) = names::topic_problem(&pattern)
        .or_else(|| reply_topic.as_deref().and_then(names::topic_problem))
    {
        return Err(Error::at(
            pattern_location,
            format!(
                "rpc {}: pattern is not a legal Kafka topic: {problem}",
                m.name()
            ),
        ));
    }
    let kind = if is_event {
        MethodKind::Event
    } else if m.server_streaming() {
        MethodKind::ServerStreaming
    } else {
        MethodKind::RequestReply
    };
    let resolver = scope.resolver;
    Ok(Some(Method {
        proto_name: m.name().to_owned(),
        key: names::pattern_key(m.name()),
        rust_ident: names::rust_snake(m.name()),
        options_ident: names::options_method(&names::rust_snake(m.name())),
        dlq_topic: names::dlq_topic(&pattern),
        pattern,
        reply_topic,
        kind,
        input_type: resolver.rpc_type(package, m.input_type()),
        output_type: resolver.rpc_type(package, m.output_type()),
        input_proto: m.input_type().trim_start_matches('.').to_owned(),
        output_proto: m.output_type().trim_start_matches('.').to_owned(),
        input_ts: resolver.ts_type(m.input_type()),
        output_ts: resolver.ts_type(m.output_type()),
        docs: comments.docs(&path),
        location,
        pattern_location,
    }))
}

/// The service's Traefik edge, when it has one, and the origins its edge trusts.
fn edge(
    scope: &Scope<'_>,
    svc_opts: Option<&OptionMessage>,
) -> Result<(Option<Traefik>, Vec<String>)> {
    let traefik_opts = svc_opts.and_then(|o| o.message("traefik"));
    let traefik = match traefik_opts {
        Some(t) => Some(traefik(
            t,
            &scope.kafka_name,
            &scope
                .comments
                .option_location(&scope.path, 3, svc_opts, "traefik"),
        )?),
        None => None,
    };
    let mut trusted_origins = Vec::new();
    if let Some(t) = &traefik {
        trusted_origins.push(format!("http://{}", t.host));
        trusted_origins.push(format!("https://{}", t.host));
    }
    if let Some(o) = traefik_opts {
        for extra in str_list(o, "trusted_origins") {
            if !trusted_origins.contains(&extra) {
                trusted_origins.push(extra);
            }
        }
    }
    Ok((traefik, trusted_origins))
}

pub(super) fn traefik(t: &OptionMessage, kafka_name: &str, location: &Location) -> Result<Traefik> {
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
