//! NestJS's `ClientKafka.send` and `emit` take a payload object with a top-level `key` or
//! `value` property as a Kafka message envelope (record key, value and headers), not as the
//! payload (`KafkaRequestSerializer`). A request or event message whose JSON has such a field
//! therefore reaches a service as something else when a NestJS peer sends it. The generator
//! warns once per such message, at the field.

use std::collections::{BTreeSet, HashMap};

use heck::ToLowerCamelCase as _;
use prost_types::{DescriptorProto, FileDescriptorProto};

use crate::load::Loaded;
use crate::model::Comments;

/// JSON property names NestJS reads as an envelope.
const ENVELOPE_KEYS: [&str; 2] = ["key", "value"];

/// One warning (`file:line:col: warning: ..`) per request or event message of the input files'
/// services with a top-level `key` or `value` field.
pub(crate) fn warnings(loaded: &Loaded) -> Vec<String> {
    let messages = index(&loaded.files);
    let mut warned = BTreeSet::new();
    let mut out = Vec::new();
    for file in loaded
        .files
        .iter()
        .filter(|f| loaded.inputs.contains(f.name()))
    {
        for svc in &file.service {
            for method in &svc.method {
                let name = method.input_type();
                let Some((at, path, message)) = messages.get(name) else {
                    continue;
                };
                if !warned.insert(name) {
                    continue;
                }
                let fields = message.field.iter().enumerate();
                let Some((k, field)) = fields
                    .filter(|(_, f)| {
                        ENVELOPE_KEYS.contains(&f.name().to_lower_camel_case().as_str())
                    })
                    .min_by_key(|(k, _)| *k)
                else {
                    continue;
                };
                let display = loaded
                    .display
                    .get(at.name())
                    .map_or(at.name(), String::as_str);
                let mut field_path = path.clone();
                field_path.extend([2, k as i32]);
                let location = Comments::new(at, display).location(&field_path);
                out.push(format!(
                    "{location}: warning: message {} (the input of {}.{}) has a top-level field `{}`: \
                     a NestJS caller's ClientKafka.send/emit takes an object with a top-level `key` or \
                     `value` as a Kafka message envelope, so the service would not get what it sent; \
                     rename the field",
                    name.trim_start_matches('.'),
                    svc.name(),
                    method.name(),
                    field.name().to_lower_camel_case(),
                ));
            }
        }
    }
    out
}

/// Every message by its full name (`.pkg.Outer.Inner`): its file, its source path, itself.
fn index(
    files: &[FileDescriptorProto],
) -> HashMap<String, (&FileDescriptorProto, Vec<i32>, &DescriptorProto)> {
    let mut out = HashMap::new();
    for file in files {
        let prefix = match file.package() {
            "" => String::new(),
            p => format!(".{p}"),
        };
        for (i, m) in file.message_type.iter().enumerate() {
            add(file, &prefix, vec![4, i as i32], m, &mut out);
        }
    }
    out
}

fn add<'a>(
    file: &'a FileDescriptorProto,
    scope: &str,
    path: Vec<i32>,
    message: &'a DescriptorProto,
    out: &mut HashMap<String, (&'a FileDescriptorProto, Vec<i32>, &'a DescriptorProto)>,
) {
    let name = format!("{scope}.{}", message.name());
    for (j, nested) in message.nested_type.iter().enumerate() {
        let mut nested_path = path.clone();
        nested_path.extend([3, j as i32]);
        add(file, &name, nested_path, nested, out);
    }
    out.insert(name, (file, path, message));
}
