//! The rules: what a change does to peers on the bus, one comparison per kind of declaration.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost_types::field_descriptor_proto::Label;
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto};

use super::{Decl, Findings, Version};
use crate::model::{Method, MethodKind, Service};

fn reply_of(m: &Method) -> Option<&str> {
    m.reply_topic.as_deref()
}

pub(super) fn compare_rpcs(old: &Version, new: &Version, out: &mut Findings) {
    let by_pattern: HashMap<&str, (&Service, &Method)> = new
        .rpcs()
        .map(|(s, m)| (m.pattern.as_str(), (s, m)))
        .collect();
    let by_name: HashMap<(&str, &str), &Method> = new
        .rpcs()
        .map(|(s, m)| ((s.full_name.as_str(), m.proto_name.as_str()), m))
        .collect();
    let new_services: Vec<&Service> = new
        .model
        .packages
        .iter()
        .flat_map(|p| &p.services)
        .collect();
    let services: HashMap<&str, &Service> = new_services
        .iter()
        .map(|s| (s.full_name.as_str(), *s))
        .collect();
    for (svc, m) in old.rpcs() {
        let rpc = format!("{}.{}", svc.full_name, m.proto_name);
        let now = match by_pattern.get(m.pattern.as_str()) {
            Some((_, now)) => *now,
            None => match by_name.get(&(svc.full_name.as_str(), m.proto_name.as_str())) {
                Some(now) => {
                    out.push(
                        now.pattern_location.clone(),
                        "PATTERN_CHANGED",
                        format!(
                            "the pattern of {rpc} changed from {} to {}; callers and servers of the old version use {}",
                            m.pattern, now.pattern, m.pattern
                        ),
                    );
                    now
                }
                None => {
                    // Point at the service in the new version; a renamed service at the first
                    // service of the same file; else at the rpc in the reference.
                    let (at, why) = match services.get(svc.full_name.as_str()) {
                        Some(s) => (s.location.clone(), String::new()),
                        None => {
                            match new_services.iter().find(|s| s.proto_file == svc.proto_file) {
                                Some(s) => (
                                    s.location.clone(),
                                    format!(" (service {} is gone)", svc.full_name),
                                ),
                                None => (
                                    m.location.clone(),
                                    format!(
                                        " (service {} is gone; location in the reference)",
                                        svc.full_name
                                    ),
                                ),
                            }
                        }
                    };
                    out.push(
                        at,
                        "PATTERN_REMOVED",
                        format!(
                            "pattern {} ({rpc}, {}) was removed: nothing serves it any more{why}",
                            m.pattern,
                            m.kind.as_str()
                        ),
                    );
                    continue;
                }
            },
        };
        if now.kind != m.kind {
            out.push(
                now.location.clone(),
                "RPC_KIND_CHANGED",
                format!(
                    "{rpc} (pattern {}) changed from {} to {}",
                    m.pattern,
                    m.kind.as_str(),
                    now.kind.as_str()
                ),
            );
        }
        if reply_of(m) != reply_of(now) {
            out.push(
                now.location.clone(),
                "REPLY_TOPIC_CHANGED",
                format!(
                    "the reply topic of {rpc} changed from {} to {}",
                    reply_of(m).unwrap_or("none (event)"),
                    reply_of(now).unwrap_or("none (event)")
                ),
            );
        }
        if now.input_proto != m.input_proto {
            out.push(
                now.location.clone(),
                "REQUEST_TYPE_CHANGED",
                format!(
                    "the request type of {rpc} (pattern {}) changed from {} to {}",
                    now.pattern, m.input_proto, now.input_proto
                ),
            );
        }
        if now.output_proto != m.output_proto && m.kind != MethodKind::Event {
            out.push(
                now.location.clone(),
                "RESPONSE_TYPE_CHANGED",
                format!(
                    "the response type of {rpc} (pattern {}) changed from {} to {}",
                    now.pattern, m.output_proto, now.output_proto
                ),
            );
        }
    }
}

pub(super) fn compare_types(old: &Version, new: &Version, out: &mut Findings) {
    // Types the old version's rpcs carry: removing one breaks peers of the old version.
    let mut used_by: BTreeMap<String, String> = BTreeMap::new();
    for (_, m) in old.rpcs() {
        let mut roots = vec![m.input_proto.clone()];
        if m.kind != MethodKind::Event {
            roots.push(m.output_proto.clone());
        }
        for t in old.reachable(roots) {
            used_by.entry(t).or_insert_with(|| m.pattern.clone());
        }
    }
    for (name, decl) in &old.messages {
        if decl.desc.options.as_ref().is_some_and(|o| o.map_entry()) {
            continue;
        }
        match new.messages.get(name) {
            Some(now) => compare_fields(old, new, name, &decl.desc, now, out),
            None => {
                if let Some(pattern) = used_by.get(name) {
                    out.push(
                        old.location(&decl.file, &decl.path),
                        "MESSAGE_REMOVED",
                        format!(
                            "message {name}, carried by pattern {pattern}, was removed (location in the reference)"
                        ),
                    );
                }
            }
        }
    }
    for (name, decl) in &old.enums {
        match new.enums.get(name) {
            Some(now) => compare_enum(new, name, &decl.desc, now, out),
            None => {
                if let Some(pattern) = used_by.get(name) {
                    out.push(
                        old.location(&decl.file, &decl.path),
                        "ENUM_REMOVED",
                        format!(
                            "enum {name}, carried by pattern {pattern}, was removed (location in the reference)"
                        ),
                    );
                }
            }
        }
    }
}

fn compare_fields(
    old: &Version,
    new: &Version,
    message: &str,
    before: &DescriptorProto,
    now: &Decl<DescriptorProto>,
    out: &mut Findings,
) {
    let numbers: HashMap<i32, (usize, &FieldDescriptorProto)> = now
        .desc
        .field
        .iter()
        .enumerate()
        .map(|(k, f)| (f.number(), (k, f)))
        .collect();
    let reserved_names: HashSet<&str> = now.desc.reserved_name.iter().map(String::as_str).collect();
    let reserved = |n: i32| {
        now.desc
            .reserved_range
            .iter()
            .any(|r| (r.start()..r.end()).contains(&n))
    };
    for f in &before.field {
        let n = f.number();
        let Some(&(k, g)) = numbers.get(&n) else {
            if !reserved(n) && !reserved_names.contains(f.name()) {
                out.push(
                    new.location(&now.file, &now.path),
                    "FIELD_REMOVED",
                    format!(
                        "field {n} `{}` of {message} was removed without `reserved {n};` (a later field could reuse the number, and peers still send `{}`)",
                        f.name(),
                        json_name(f)
                    ),
                );
            }
            continue;
        };
        let mut path = now.path.clone();
        path.extend([2, k as i32]);
        let at = new.location(&now.file, &path);
        if f.name() != g.name() || json_name(f) != json_name(g) {
            out.push(
                at.clone(),
                "FIELD_NAME_CHANGED",
                format!(
                    "field number {n} of {message} is now `{}` (JSON key `{}`), was `{}` (JSON key `{}`)",
                    g.name(),
                    json_name(g),
                    f.name(),
                    json_name(f)
                ),
            );
        }
        let (was, is) = (old.type_of(f), new.type_of(g));
        if was != is {
            out.push(
                at.clone(),
                "FIELD_TYPE_CHANGED",
                format!(
                    "field {n} `{}` of {message} changed type from {was} to {is}",
                    g.name()
                ),
            );
        } else if !old.is_map(f) && (f.label() == Label::Repeated) != (g.label() == Label::Repeated)
        {
            let label = |x: &FieldDescriptorProto| {
                if x.label() == Label::Repeated {
                    "repeated"
                } else {
                    "singular"
                }
            };
            out.push(
                at,
                "FIELD_LABEL_CHANGED",
                format!(
                    "field {n} `{}` of {message} changed from {} to {} (a JSON array vs a single value)",
                    g.name(),
                    label(f),
                    label(g)
                ),
            );
        }
    }
}

fn json_name(f: &FieldDescriptorProto) -> String {
    f.json_name
        .clone()
        .unwrap_or_else(|| crate::names::json_name(f.name()))
}

fn compare_enum(
    new: &Version,
    name: &str,
    before: &EnumDescriptorProto,
    now: &Decl<EnumDescriptorProto>,
    out: &mut Findings,
) {
    let mut names_now: BTreeMap<i32, Vec<(usize, &str)>> = BTreeMap::new();
    for (k, v) in now.desc.value.iter().enumerate() {
        names_now.entry(v.number()).or_default().push((k, v.name()));
    }
    // Enum reserved ranges are inclusive at both ends.
    let reserved = |n: i32| {
        now.desc
            .reserved_range
            .iter()
            .any(|r| (r.start()..=r.end()).contains(&n))
    };
    let mut names_before: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for v in &before.value {
        names_before.entry(v.number()).or_default().push(v.name());
    }
    for (n, was) in names_before {
        match names_now.get(&n) {
            None => {
                if !reserved(n)
                    && !was
                        .iter()
                        .any(|w| now.desc.reserved_name.iter().any(|r| r == w))
                {
                    out.push(
                        new.location(&now.file, &now.path),
                        "ENUM_VALUE_REMOVED",
                        format!(
                            "value {n} ({}) of enum {name} was removed without `reserved {n};` (peers of the old version still send {n})",
                            was.join(", ")
                        ),
                    );
                }
            }
            Some(is) if !is.iter().any(|(_, v)| was.contains(v)) => {
                let mut path = now.path.clone();
                path.extend([2, is[0].0 as i32]);
                out.push(
                    new.location(&now.file, &path),
                    "ENUM_VALUE_NUMBER_REUSED",
                    format!(
                        "value number {n} of enum {name} is now {}, was {}",
                        is[0].1,
                        was.join(", ")
                    ),
                );
            }
            Some(_) => {}
        }
    }
}
