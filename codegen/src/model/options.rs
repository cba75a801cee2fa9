//! axion's custom options (`axion/options.proto`), read once from the descriptor pool at load
//! into plain values: the model needs nothing else from the pool, which is freed before the
//! model is built (for the large trees it is the biggest thing a generation holds).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_types::FileDescriptorProto;
use protox::prost_reflect::{DescriptorPool, DynamicMessage, ExtensionDescriptor, Value};

use crate::error::{Error, Result};

use super::comments::Comments;
use super::scheme::PatternScheme;

/// The axion options set on the files, services and rpcs of a load.
#[derive(Clone, Debug, Default)]
pub struct AxionOptions {
    /// `(axion.file)`, by file name.
    files: HashMap<String, OptionMessage>,
    /// `(axion.service)`, by service full name.
    services: HashMap<String, OptionMessage>,
    /// `(axion.method)`, by rpc full name (`pkg.Service.Rpc`).
    methods: HashMap<String, OptionMessage>,
}

/// One option message as written: the field number it is set at (of the extension, or of the
/// field in the enclosing option) and its set fields, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct OptionMessage {
    pub(super) number: u32,
    fields: BTreeMap<String, (u32, OptionValue)>,
}

#[derive(Clone, Debug, PartialEq)]
enum OptionValue {
    Str(String),
    U32(u32),
    Bool(bool),
    Enum(i32),
    List(Vec<OptionValue>),
    Message(OptionMessage),
    /// A kind axion's options do not use.
    Other,
}

impl AxionOptions {
    /// Reads the axion options of the `inputs` in `pool` (the model builds services of inputs
    /// only; none when no file imports `axion/options.proto`).
    pub fn read(pool: &DescriptorPool, inputs: &BTreeSet<String>) -> Self {
        let mut out = AxionOptions::default();
        let ext = |name| pool.get_extension_by_name(name);
        let (file_ext, service_ext, method_ext) =
            (ext("axion.file"), ext("axion.service"), ext("axion.method"));
        if file_ext.is_none() && service_ext.is_none() && method_ext.is_none() {
            return out;
        }
        for file in pool.files().filter(|f| inputs.contains(f.name())) {
            if let Some(o) = extension(file_ext.as_ref(), &file.options()) {
                out.files.insert(file.name().to_owned(), o);
            }
            for service in file.services() {
                if let Some(o) = extension(service_ext.as_ref(), &service.options()) {
                    out.services.insert(service.full_name().to_owned(), o);
                }
                for method in service.methods() {
                    if let Some(o) = extension(method_ext.as_ref(), &method.options()) {
                        out.methods.insert(method.full_name().to_owned(), o);
                    }
                }
            }
        }
        out
    }

    /// `(axion.file)` of a file.
    pub(super) fn file(&self, name: &str) -> Option<&OptionMessage> {
        self.files.get(name)
    }

    /// `(axion.service)` of a service.
    pub(super) fn service(&self, full_name: &str) -> Option<&OptionMessage> {
        self.services.get(full_name)
    }

    /// `(axion.method)` of an rpc of a service.
    pub(super) fn method(&self, service: &str, method: &str) -> Option<&OptionMessage> {
        self.methods.get(&format!("{service}.{method}"))
    }
}

fn extension(ext: Option<&ExtensionDescriptor>, options: &DynamicMessage) -> Option<OptionMessage> {
    let ext = ext?;
    if !options.has_extension(ext) {
        return None;
    }
    let message = options.get_extension(ext);
    Some(option_message(ext.number(), message.as_message()?))
}

fn option_message(number: u32, message: &DynamicMessage) -> OptionMessage {
    OptionMessage {
        number,
        // Only the fields that are set, as `has_field` sees them.
        fields: message
            .fields()
            .map(|(field, value)| {
                let value = option_value(field.number(), value);
                (field.name().to_owned(), (field.number(), value))
            })
            .collect(),
    }
}

fn option_value(number: u32, value: &Value) -> OptionValue {
    match value {
        Value::String(s) => OptionValue::Str(s.clone()),
        Value::U32(n) => OptionValue::U32(*n),
        Value::Bool(b) => OptionValue::Bool(*b),
        Value::EnumNumber(n) => OptionValue::Enum(*n),
        Value::List(items) => {
            OptionValue::List(items.iter().map(|v| option_value(number, v)).collect())
        }
        Value::Message(m) => OptionValue::Message(option_message(number, m)),
        _ => OptionValue::Other,
    }
}

impl OptionMessage {
    /// The number of field `name`, when it is set.
    pub(super) fn field_number(&self, name: &str) -> Option<u32> {
        self.fields.get(name).map(|(number, _)| *number)
    }

    fn value(&self, name: &str) -> Option<&OptionValue> {
        self.fields.get(name).map(|(_, value)| value)
    }

    /// A message field, when it is set.
    pub(super) fn message(&self, name: &str) -> Option<&OptionMessage> {
        match self.value(name)? {
            OptionValue::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// The file's `(axion.file).pattern_scheme`, when it sets one.
pub(super) fn file_scheme(
    options: &AxionOptions,
    file: &FileDescriptorProto,
    comments: &Comments,
) -> Result<Option<PatternScheme>> {
    let file_options = options.file(file.name());
    let Some(number) = file_options.and_then(|o| opt_enum(o, "pattern_scheme")) else {
        return Ok(None);
    };
    match number {
        0 => Ok(None),
        1 => Ok(Some(PatternScheme::Service)),
        2 => Ok(Some(PatternScheme::Package)),
        other => Err(Error::at(
            comments.option_location(&[], 8, file_options, "pattern_scheme"),
            format!(
                "(axion.file).pattern_scheme {other} is not a known scheme (1 service, 2 package)"
            ),
        )),
    }
}

pub(super) fn opt_enum(msg: &OptionMessage, field: &str) -> Option<i32> {
    match msg.value(field)? {
        OptionValue::Enum(n) => Some(*n),
        _ => None,
    }
}

pub(super) fn opt_str(msg: &OptionMessage, field: &str) -> Option<String> {
    match msg.value(field)? {
        OptionValue::Str(s) => Some(s.clone()),
        _ => None,
    }
}

pub(super) fn opt_bool(msg: &OptionMessage, field: &str) -> Option<bool> {
    match msg.value(field)? {
        OptionValue::Bool(b) => Some(*b),
        _ => None,
    }
}

pub(super) fn opt_u32(msg: &OptionMessage, field: &str) -> Option<u32> {
    match msg.value(field)? {
        OptionValue::U32(n) => Some(*n),
        _ => None,
    }
}

pub(super) fn str_list(msg: &OptionMessage, field: &str) -> Vec<String> {
    match msg.value(field) {
        Some(OptionValue::List(items)) => items
            .iter()
            .filter_map(|v| match v {
                OptionValue::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
