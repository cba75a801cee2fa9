//! Naming rules, in one place: Kafka names, TS-compatible constants, Rust identifiers.
//!
//! Rust identifiers follow prost-build's rules exactly (the generated service code must name
//! the types and fields prost emits).

use heck::{ToKebabCase, ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};

/// prost-build's identifier sanitizing: raw identifiers for keywords, a `_` suffix where a raw
/// identifier is not allowed, a `_` prefix for a leading digit.
pub fn sanitize_identifier(ident: &str) -> String {
    match ident {
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "dyn" | "abstract" | "become" | "box" | "do" | "final" | "macro"
        | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "async" | "await"
        | "try" | "gen" => format!("r#{ident}"),
        "_" | "super" | "self" | "Self" | "extern" | "crate" => format!("{ident}_"),
        s if s.starts_with(|c: char| c.is_numeric()) => format!("_{ident}"),
        _ => ident.to_owned(),
    }
}

/// A `snake_case` Rust identifier (fields, modules, methods), as prost-build makes it.
pub fn rust_snake(name: &str) -> String {
    sanitize_identifier(&name.to_snake_case())
}

/// An `UpperCamel` Rust identifier (types, variants), as prost-build makes it.
pub fn rust_upper_camel(name: &str) -> String {
    sanitize_identifier(&name.to_upper_camel_case())
}

/// An enum value's Rust variant, as prost-build makes it: UpperCamel, with the enum's own
/// (UpperCamel) name stripped from the front when what follows starts a new word.
pub fn enum_variant(enum_ident: &str, value: &str) -> String {
    let name = value.to_upper_camel_case();
    let stripped = name
        .strip_prefix(enum_ident)
        .filter(|rest| rest.starts_with(char::is_uppercase))
        .unwrap_or(&name);
    sanitize_identifier(stripped)
}

/// The Kafka-facing name of a service: `GraphService` → `graph-service`.
pub fn kafka_service_name(proto_service: &str) -> String {
    proto_service.to_kebab_case()
}

/// The stem of a service's constants, by ts-proto's rule: `GraphService` → `GRAPH_SERVICE`
/// (not doubled), `Graph` → `GRAPH_SERVICE`.
pub fn constant_stem(proto_service: &str) -> String {
    let snake = proto_service.to_shouty_snake_case();
    if snake == "SERVICE" || snake.ends_with("_SERVICE") {
        snake
    } else {
        format!("{snake}_SERVICE")
    }
}

/// An rpc's key in the patterns holder: `CreateProject` → `CREATE_PROJECT`.
pub fn pattern_key(rpc: &str) -> String {
    let key = rpc.to_shouty_snake_case();
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{key}")
    } else {
        key
    }
}

/// The default pattern: `<prefix>.<service>.<rpc in kebab-case>` (no leading dot when the
/// prefix is empty).
pub fn default_pattern(prefix: &str, service: &str, rpc: &str) -> String {
    let rpc = rpc.to_kebab_case();
    if prefix.is_empty() {
        format!("{service}.{rpc}")
    } else {
        format!("{prefix}.{service}.{rpc}")
    }
}

/// The reply topic of a pattern.
pub fn reply_topic(pattern: &str) -> String {
    format!("{pattern}.reply")
}

/// `<pattern>.dlq`: where servers dead-letter poison messages (the runtime's `dlq_topic`).
pub fn dlq_topic(pattern: &str) -> String {
    format!("{pattern}.dlq")
}

/// Why `topic` is not a legal Kafka topic name, if it is not.
pub fn topic_problem(topic: &str) -> Option<String> {
    if topic.is_empty() {
        return Some("a topic name cannot be empty".into());
    }
    if topic == "." || topic == ".." {
        return Some(format!("\"{topic}\" is not a legal topic name"));
    }
    if topic.len() > 249 {
        return Some(format!(
            "topic \"{topic}\" is {} characters long; Kafka allows at most 249",
            topic.len()
        ));
    }
    if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "topic \"{topic}\" contains '{bad}'; Kafka topic names allow only [a-zA-Z0-9._-]"
        ));
    }
    None
}

/// protoc's JSON name of a field: underscores dropped, the next letter upper-cased.
pub fn json_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The client method of rpc method `rust_ident` with per-call options: `create_project_with`
/// (`self_with` for the keyword-escaped `self_`, `type_with` for `r#type`).
pub fn options_method(rust_ident: &str) -> String {
    let base = rust_ident.trim_start_matches("r#").trim_end_matches('_');
    format!("{base}_with")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_proto_constant_rule() {
        assert_eq!(constant_stem("GraphService"), "GRAPH_SERVICE");
        assert_eq!(constant_stem("Graph"), "GRAPH_SERVICE");
        assert_eq!(constant_stem("Service"), "SERVICE");
        assert_eq!(pattern_key("CreateProject"), "CREATE_PROJECT");
    }

    #[test]
    fn patterns() {
        assert_eq!(
            default_pattern("axion", "graph-service", "CreateProject"),
            "axion.graph-service.create-project"
        );
        assert_eq!(
            default_pattern("", "graph-service", "CreateProject"),
            "graph-service.create-project"
        );
        assert!(topic_problem("a.b-c_d").is_none());
        assert!(topic_problem("a b").is_some());
        assert!(topic_problem("..").is_some());
        assert!(topic_problem(&"a".repeat(250)).is_some());
    }

    #[test]
    fn keywords_escape_like_prost() {
        assert_eq!(rust_snake("Move"), "r#move");
        assert_eq!(rust_snake("type"), "r#type");
        assert_eq!(rust_snake("self"), "self_");
        assert_eq!(rust_upper_camel("self"), "Self_");
        assert_eq!(rust_snake("async"), "r#async");
    }

    #[test]
    fn enum_variants_like_prost() {
        assert_eq!(enum_variant("Color", "COLOR_RED"), "Red");
        assert_eq!(enum_variant("Color", "COLORFUL"), "Colorful");
        assert_eq!(enum_variant("Kind", "KIND_SELF"), "Self_");
        assert_eq!(enum_variant("Kind", "KIND_1"), "Kind1");
    }

    #[test]
    fn per_call_options_methods() {
        assert_eq!(options_method("create_project"), "create_project_with");
        assert_eq!(options_method(&rust_snake("self")), "self_with");
        assert_eq!(options_method(&rust_snake("type")), "type_with");
    }

    #[test]
    fn json_names() {
        assert_eq!(json_name("created_at"), "createdAt");
        assert_eq!(json_name("field_1_name"), "field1Name");
        assert_eq!(json_name("id"), "id");
    }
}
