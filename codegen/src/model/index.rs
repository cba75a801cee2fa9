//! Type index and path resolution: where each declared type lives, the Rust path and codec
//! of a type named from a package, and its TypeScript name.

use std::collections::HashMap;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::DescriptorProto;

use crate::names;

use super::ts_names::ts_proto_type;
use super::{Codec, PathRoot, RpcType, RustPath, TsType};

/// Where each declared type lives.
pub(super) struct TypeInfo {
    pub(super) package: String,
    /// The proto file declaring it.
    pub(super) file: String,
    /// Names from the outermost message down to the type.
    pub(super) path: Vec<String>,
    /// For map entries: (key field, value field).
    pub(super) map_entry: Option<(
        prost_types::FieldDescriptorProto,
        prost_types::FieldDescriptorProto,
    )>,
}

/// Where every message and enum of `files` lives, by fully-qualified name (`.pkg.Msg`).
pub(super) fn index_types(files: &[prost_types::FileDescriptorProto]) -> HashMap<String, TypeInfo> {
    let mut types = HashMap::new();
    for file in files {
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
    types
}

pub(super) fn fq(package: &str, path: &[String]) -> String {
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

pub(super) struct Resolver<'a> {
    pub(super) types: &'a HashMap<String, TypeInfo>,
}

impl Resolver<'_> {
    /// An rpc's request or response type: `()` for `google.protobuf.Empty`, the only
    /// well-known type an rpc may take or return (see `build_service`).
    pub(super) fn rpc_type(&self, from: &str, type_name: &str) -> RpcType {
        if type_name == ".google.protobuf.Empty" {
            RpcType::Unit
        } else {
            RpcType::Message(self.rust_path(from, type_name))
        }
    }

    /// The Rust path of a type, relative to the module of package `from` (prost's paths).
    pub(super) fn rust_path(&self, from: &str, type_name: &str) -> RustPath {
        if let Some(wkt) = type_name.strip_prefix(".google.protobuf.") {
            // Enums of the well-known types (`NullValue`) and nested ones of descriptors.
            let path: Vec<&str> = wkt.split('.').collect();
            return RustPath {
                root: PathRoot::ProstTypes,
                segments: type_segments(&path).collect(),
            };
        }
        let Some(info) = self.types.get(type_name) else {
            // protox resolved every name, so this is unreachable for valid input.
            let name = type_name.rsplit('.').next().unwrap_or(type_name);
            return RustPath::local(vec![names::rust_upper_camel(name)]);
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
        parts.extend(type_segments(&info.path));
        RustPath::local(parts)
    }

    /// Where ts-proto puts a message type and what it calls it.
    pub(super) fn ts_type(&self, type_name: &str) -> TsType {
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
    pub(super) fn scalar_codec(
        &self,
        from: &str,
        field: &prost_types::FieldDescriptorProto,
    ) -> Codec {
        match field.r#type() {
            Type::Double => Codec::F64,
            Type::Float => Codec::F32,
            Type::Int64 | Type::Sint64 | Type::Sfixed64 => Codec::I64,
            Type::Uint64 | Type::Fixed64 => Codec::U64,
            Type::Int32 | Type::Sint32 | Type::Sfixed32 => Codec::I32,
            Type::Uint32 | Type::Fixed32 => Codec::U32,
            Type::Bool => Codec::Bool,
            Type::String => Codec::Str,
            Type::Bytes => Codec::Bytes,
            Type::Enum => Codec::Enum(self.rust_path(from, field.type_name())),
            Type::Message | Type::Group => message_codec(field.type_name()),
        }
    }

    pub(super) fn map_entry(
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

/// prost's segments for a type nested in messages `path[..n-1]`: a module per enclosing message,
/// then the type.
fn type_segments<S: AsRef<str>>(path: &[S]) -> impl Iterator<Item = String> + '_ {
    path.iter().enumerate().map(move |(i, p)| {
        if i + 1 == path.len() {
            names::rust_upper_camel(p.as_ref())
        } else {
            names::rust_snake(p.as_ref())
        }
    })
}

pub(super) fn module_of(package: &str) -> Vec<String> {
    package
        .split('.')
        .filter(|s| !s.is_empty())
        .map(names::rust_snake)
        .collect()
}

/// Codecs of message-typed fields: well-known types have their own JSON shapes.
pub(super) fn message_codec(type_name: &str) -> Codec {
    match type_name {
        ".google.protobuf.Timestamp" => Codec::Timestamp,
        ".google.protobuf.Duration" => Codec::Duration,
        ".google.protobuf.Empty" => Codec::Empty,
        ".google.protobuf.Struct" => Codec::Struct,
        ".google.protobuf.Value" => Codec::Value,
        ".google.protobuf.ListValue" => Codec::ListValue,
        ".google.protobuf.Any" => Codec::Any,
        ".google.protobuf.FieldMask" => Codec::FieldMask,
        ".google.protobuf.BoolValue" => Codec::Bool,
        ".google.protobuf.BytesValue" => Codec::Bytes,
        ".google.protobuf.DoubleValue" => Codec::F64,
        ".google.protobuf.FloatValue" => Codec::F32,
        ".google.protobuf.Int32Value" => Codec::I32,
        ".google.protobuf.Int64Value" => Codec::I64,
        ".google.protobuf.StringValue" => Codec::Str,
        ".google.protobuf.UInt32Value" => Codec::U32,
        ".google.protobuf.UInt64Value" => Codec::U64,
        // Other google.protobuf types (descriptors, Api, Type) have no JSON mapping in
        // prost-types: they travel as base64 of their protobuf encoding.
        t if t.starts_with(".google.protobuf.") => Codec::ProtoBytes,
        _ => Codec::Msg,
    }
}
