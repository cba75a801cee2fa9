//! Messages and enums of a package: fields with their wire and JSON shapes, oneofs, enum
//! values, as the emitters need them.

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::DescriptorProto;

use crate::names;

use super::index::{fq, Resolver};
use super::{Codec, EnumType, Field, Message, RustPath, Storage, Wire, WireType};

pub(super) fn collect_message(
    proto2: bool,
    package: &str,
    m: &DescriptorProto,
    outer: &[String],
    resolver: &Resolver<'_>,
    out: &mut Vec<Message>,
    enums: &mut Vec<RustPath>,
) {
    if m.options.as_ref().is_some_and(|o| o.map_entry()) {
        return;
    }
    let mut path: Vec<String> = outer.to_vec();
    path.push(m.name().to_owned());
    let outer_modules = RustPath::local(outer.iter().map(|o| names::rust_snake(o)).collect());
    let rust_path = outer_modules.join(names::rust_upper_camel(m.name()));
    let own_module = outer_modules.join(names::rust_snake(m.name()));

    let mut fields = Vec::new();
    for f in &m.field {
        let is_synthetic_oneof = f.proto3_optional();
        let codec = if let Some((k, v)) = resolver.map_entry(f) {
            Codec::Map(
                Box::new(resolver.scalar_codec(package, k)),
                Box::new(resolver.scalar_codec(package, v)),
            )
        } else if f.label() == Label::Repeated {
            Codec::List(Box::new(resolver.scalar_codec(package, f)))
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
                        enum_path: own_module.join(oneof_type_ident(m, oneof)),
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
                        Codec::Opt(Box::new(codec)),
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
        enums.push(own_module.join(names::rust_upper_camel(e.name())));
    }
}

/// The JSON shape of one value of a field (the item of a list), matching `scalar_codec`.
pub(super) fn wire_type(field: &prost_types::FieldDescriptorProto) -> WireType {
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
pub(super) fn enum_type(full_name: &str, e: &prost_types::EnumDescriptorProto) -> EnumType {
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
pub(super) fn collect_enum_types(
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
pub(super) fn oneof_type_ident(m: &DescriptorProto, oneof: &str) -> String {
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
