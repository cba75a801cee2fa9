//! JSON Schemas of the payloads, exactly as `axion_runtime::json` writes them (proto3 JSON:
//! 64-bit integers as strings, enums by name, bytes as base64, well-known types their way).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{json, Value};

use super::schema_ref;
use crate::model::{EnumType, Message as ProtoMessage, Model, Storage, Wire, WireType};

/// Schemas of every type reachable from the rpcs, by proto full name.
pub(super) fn schemas(model: &Model, roots: Vec<String>) -> BTreeMap<String, Value> {
    let messages: BTreeMap<&str, &ProtoMessage> = model
        .packages
        .iter()
        .flat_map(|p| &p.messages)
        .map(|m| (m.full_name.as_str(), m))
        .collect();
    let enums: BTreeMap<&str, &EnumType> = model
        .packages
        .iter()
        .flat_map(|p| &p.enum_types)
        .map(|e| (e.full_name.as_str(), e))
        .collect();
    let mut out = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<String> = roots.into_iter().collect();
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = if let Some(m) = messages.get(name.as_str()) {
            for f in &m.fields {
                let types: Vec<&WireType> = match &f.wire {
                    Wire::Single(t) | Wire::List(t) => vec![t],
                    Wire::Map(k, v) => vec![k, v],
                };
                for t in types {
                    if let Some(target) = referenced(t) {
                        queue.push_back(target.to_owned());
                    }
                }
            }
            message_schema(m)
        } else if let Some(e) = enums.get(name.as_str()) {
            enum_schema(e)
        } else {
            well_known_schema(&name)
        };
        out.insert(name, schema);
    }
    out
}

/// The component a value refers to, if it is not written inline.
fn referenced(t: &WireType) -> Option<&str> {
    match t {
        WireType::Enum(n) | WireType::Message(n) => Some(n),
        WireType::WellKnown(n) if wrapper(n).is_none() => Some(n),
        _ => None,
    }
}

fn message_schema(m: &ProtoMessage) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    let mut oneofs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut oneof_order: Vec<&str> = Vec::new();
    for f in &m.fields {
        properties.insert(f.json_name.clone(), field_schema(&f.wire));
        match (&f.storage, &f.oneof) {
            (Storage::Plain, _) => required.push(f.json_name.clone()),
            (Storage::Oneof { .. }, Some(o)) => {
                if !oneofs.contains_key(o.as_str()) {
                    oneof_order.push(o);
                }
                oneofs.entry(o).or_default().push(&f.json_name);
            }
            _ => {}
        }
    }
    let mut schema = json!({
        "type": "object",
        "description": format!("{} (fields always written are required; messages, optionals and oneof members are left out when unset).", m.full_name),
        "properties": properties,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    // A oneof: at most one member present (exactly one of: "only a", "only b", "none").
    let all_of: Vec<Value> = oneof_order
        .iter()
        .map(|o| {
            let members = &oneofs[o];
            let each: Vec<Value> = members.iter().map(|k| json!({ "required": [k] })).collect();
            let mut branches = each.clone();
            branches.push(json!({ "not": { "anyOf": each } }));
            json!({
                "description": format!("oneof {o}: at most one of {}", members.join(", ")),
                "oneOf": branches,
            })
        })
        .collect();
    if !all_of.is_empty() {
        schema["allOf"] = json!(all_of);
    }
    schema
}

fn field_schema(wire: &Wire) -> Value {
    match wire {
        Wire::Single(t) => value_schema(t),
        Wire::List(t) => json!({ "type": "array", "items": value_schema(t) }),
        Wire::Map(k, v) => {
            let mut schema = json!({ "type": "object", "additionalProperties": value_schema(v) });
            let keys = match k {
                WireType::Bool => Some(json!({ "enum": ["true", "false"] })),
                WireType::I32 | WireType::I64 => Some(json!({ "pattern": "^-?[0-9]+$" })),
                WireType::U32 | WireType::U64 => Some(json!({ "pattern": "^[0-9]+$" })),
                _ => None,
            };
            if let Some(keys) = keys {
                schema["propertyNames"] = keys;
            }
            schema
        }
    }
}

fn float(format: &str) -> Value {
    json!({ "oneOf": [
        { "type": "number", "format": format },
        { "type": "string", "enum": ["NaN", "Infinity", "-Infinity"] },
    ]})
}

fn value_schema(t: &WireType) -> Value {
    match t {
        WireType::F64 => float("double"),
        WireType::F32 => float("float"),
        WireType::I64 => json!({ "type": "integer", "format": "int64" }),
        WireType::U64 => json!({ "type": "integer", "format": "uint64", "minimum": 0 }),
        WireType::I32 => json!({
            "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX,
        }),
        WireType::U32 => json!({
            "type": "integer", "format": "uint32", "minimum": 0, "maximum": u32::MAX,
        }),
        WireType::Bool => json!({ "type": "boolean" }),
        WireType::Str => json!({ "type": "string" }),
        WireType::Bytes => bytes_schema(),
        WireType::Enum(n) | WireType::Message(n) => schema_ref(n),
        WireType::WellKnown(n) => wrapper(n).unwrap_or_else(|| schema_ref(n)),
    }
}

/// `bytes` as `JSON.stringify` writes a `Uint8Array`.
fn bytes_schema() -> Value {
    json!({
        "type": "object",
        "description": "bytes, as JSON.stringify writes a Uint8Array: {\"0\":1,\"1\":2}",
        "propertyNames": { "pattern": "^(0|[1-9][0-9]*)$" },
        "additionalProperties": { "type": "integer", "minimum": 0, "maximum": 255 },
    })
}

/// Wrapper types travel as their bare value.
fn wrapper(full_name: &str) -> Option<Value> {
    let t = match full_name {
        "google.protobuf.BoolValue" => WireType::Bool,
        "google.protobuf.BytesValue" => WireType::Bytes,
        "google.protobuf.DoubleValue" => WireType::F64,
        "google.protobuf.FloatValue" => WireType::F32,
        "google.protobuf.Int32Value" => WireType::I32,
        "google.protobuf.Int64Value" => WireType::I64,
        "google.protobuf.StringValue" => WireType::Str,
        "google.protobuf.UInt32Value" => WireType::U32,
        "google.protobuf.UInt64Value" => WireType::U64,
        _ => return None,
    };
    Some(value_schema(&t))
}

fn enum_schema(e: &EnumType) -> Value {
    let mut numbers: Vec<i32> = Vec::new();
    for (_, n) in &e.values {
        if !numbers.contains(n) {
            numbers.push(*n);
        }
    }
    let names: Vec<String> = e.values.iter().map(|(v, n)| format!("{v} = {n}")).collect();
    json!({
        "type": "integer",
        "format": "int32",
        "enum": numbers,
        "description": format!("{} (written as its number): {}", e.full_name, names.join(", ")),
    })
}

/// The JSON shapes of `google.protobuf` types (see `axion_runtime::json`).
fn well_known_schema(full_name: &str) -> Value {
    let seconds_nanos = |what: &str| {
        json!({
            "type": "object",
            "description": format!("{full_name}: {what} as ts-proto writes it"),
            "required": ["seconds", "nanos"],
            "properties": {
                "seconds": { "type": "integer", "format": "int64" },
                "nanos": { "type": "integer", "format": "int32" },
            },
        })
    };
    match full_name {
        "google.protobuf.Timestamp" => seconds_nanos("seconds and nanos since the Unix epoch"),
        "google.protobuf.Duration" => seconds_nanos("a signed span"),
        "google.protobuf.Empty" => json!({
            "type": "object",
            "maxProperties": 0,
            "description": "google.protobuf.Empty: {}",
        }),
        "google.protobuf.Struct" => json!({
            "type": "object",
            "description": "google.protobuf.Struct: any JSON object",
        }),
        "google.protobuf.Value" => {
            json!({ "description": "google.protobuf.Value: any JSON value" })
        }
        "google.protobuf.ListValue" => json!({
            "type": "array",
            "description": "google.protobuf.ListValue: any JSON array",
        }),
        "google.protobuf.FieldMask" => json!({
            "type": "array",
            "items": { "type": "string" },
            "description": "google.protobuf.FieldMask: camelCase paths",
        }),
        "google.protobuf.Any" => json!({
            "type": "object",
            "description": "google.protobuf.Any",
            "required": ["typeUrl", "value"],
            "properties": {
                "typeUrl": { "type": "string" },
                "value": bytes_schema(),
            },
        }),
        "google.protobuf.NullValue" => json!({
            "type": "integer",
            "enum": [0],
            "description": "google.protobuf.NullValue (written as its number): NULL_VALUE = 0",
        }),
        other => json!({
            "type": "string",
            "contentEncoding": "base64",
            "description": format!("{other}: base64 of its protobuf encoding (no JSON mapping)"),
        }),
    }
}
