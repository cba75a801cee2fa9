//! `google.protobuf.Struct`/`Value`/`ListValue` to and from `serde_json::Value`.

use prost_types::value::Kind;
use serde_json::{Map, Number, Value as Json};

/// A `Struct` as a JSON object.
pub fn struct_to_json(s: &prost_types::Struct) -> Json {
    Json::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// A JSON object as a `Struct`.
pub fn struct_from_json(map: Map<String, Json>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, value_from_json(v)))
            .collect(),
    }
}

/// A `Value` as JSON (non-finite numbers become `null`, as in `JSON.stringify`).
pub fn value_to_json(v: &prost_types::Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::NumberValue(n)) => Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_to_json).collect()),
    }
}

/// JSON as a `Value`.
pub fn value_from_json(j: Json) -> prost_types::Value {
    let kind = match j {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(value_from_json).collect(),
        }),
        Json::Object(map) => Kind::StructValue(struct_from_json(map)),
    };
    prost_types::Value { kind: Some(kind) }
}
