//! Breaking-change check of contracts against a previous version (like `buf breaking`), judged
//! by what peers on the bus see: patterns (topics), reply topics, rpc kinds, request/response
//! types, and the JSON of payloads (field names are JSON keys; enum numbers travel as numbers).
//!
//! Both versions go through the same [`load`] and [`model`] as
//! generation; each finding names a place in the new version when there is one, else in the
//! reference.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto};

use crate::error::{Location, Result};
use crate::load::{self, Inputs, Loaded};
use crate::model::{self, Method, MethodKind, Model, ModelOptions, Service};

/// One breaking change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Finding {
    /// `file:line:col` (in the new version when possible).
    pub location: String,
    /// The rule, e.g. `FIELD_REMOVED`.
    pub rule: &'static str,
    /// What changed and why peers break.
    pub message: String,
    #[serde(skip)]
    sort_key: (String, u32, u32),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: breaking [{}]: {}",
            self.location, self.rule, self.message
        )
    }
}

/// Compares the contracts of `new` with those of `reference`. An empty list means compatible.
pub(crate) fn check(
    new: &Inputs,
    reference: &Inputs,
    options: &ModelOptions,
) -> Result<Vec<Finding>> {
    let new = Version::load(new, options)?;
    let old = Version::load(reference, options)?;
    let mut out = Findings::default();
    compare_rpcs(&old, &new, &mut out);
    compare_types(&old, &new, &mut out);
    let mut list = out.0;
    list.sort_by(|a, b| (&a.sort_key, a.rule, &a.message).cmp(&(&b.sort_key, b.rule, &b.message)));
    list.dedup();
    Ok(list)
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, at: Location, rule: &'static str, message: String) {
        self.0.push(Finding {
            location: at.to_string(),
            rule,
            message,
            sort_key: (at.file.clone(), at.line, at.col),
        });
    }
}

/// A declaration: its file, its source-info path, and its descriptor.
struct Decl<T> {
    file: String,
    path: Vec<i32>,
    desc: T,
}

/// One version of the contracts, indexed.
struct Version {
    model: Model,
    messages: BTreeMap<String, Decl<DescriptorProto>>,
    enums: BTreeMap<String, Decl<EnumDescriptorProto>>,
    /// proto file name → (source-info path → 1-based line, col).
    spans: HashMap<String, HashMap<Vec<i32>, (u32, u32)>>,
    display: HashMap<String, String>,
}

impl Version {
    fn load(inputs: &Inputs, options: &ModelOptions) -> Result<Self> {
        let mut warnings = Vec::new();
        let loaded = load::load(inputs, &mut warnings)?;
        let model = model::build(&loaded, options, &mut warnings)?;
        let mut v = Version {
            model,
            messages: BTreeMap::new(),
            enums: BTreeMap::new(),
            spans: HashMap::new(),
            display: loaded.display.clone(),
        };
        v.index(&loaded);
        Ok(v)
    }

    fn index(&mut self, loaded: &Loaded) {
        for file in &loaded.files {
            let name = file.name();
            if name.starts_with("google/protobuf/") || name == load::OPTIONS_PROTO_NAME {
                continue;
            }
            let spans = file
                .source_code_info
                .iter()
                .flat_map(|s| &s.location)
                .filter(|l| l.span.len() >= 2)
                .map(|l| (l.path.clone(), (l.span[0] as u32 + 1, l.span[1] as u32 + 1)))
                .collect();
            self.spans.insert(name.to_owned(), spans);
            let prefix = if file.package().is_empty() {
                String::new()
            } else {
                format!("{}.", file.package())
            };
            for (i, m) in file.message_type.iter().enumerate() {
                self.index_message(name, &prefix, m, vec![4, i as i32]);
            }
            for (i, e) in file.enum_type.iter().enumerate() {
                self.enums.insert(
                    format!("{prefix}{}", e.name()),
                    Decl {
                        file: name.to_owned(),
                        path: vec![5, i as i32],
                        desc: e.clone(),
                    },
                );
            }
        }
    }

    fn index_message(&mut self, file: &str, prefix: &str, m: &DescriptorProto, path: Vec<i32>) {
        let full = format!("{prefix}{}", m.name());
        for (j, n) in m.nested_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([3, j as i32]);
            self.index_message(file, &format!("{full}."), n, p);
        }
        for (j, e) in m.enum_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([4, j as i32]);
            self.enums.insert(
                format!("{full}.{}", e.name()),
                Decl {
                    file: file.to_owned(),
                    path: p,
                    desc: e.clone(),
                },
            );
        }
        self.messages.insert(
            full,
            Decl {
                file: file.to_owned(),
                path,
                desc: m.clone(),
            },
        );
    }

    fn location(&self, file: &str, path: &[i32]) -> Location {
        let shown = self
            .display
            .get(file)
            .cloned()
            .unwrap_or_else(|| file.to_owned());
        match self.spans.get(file).and_then(|s| s.get(path)) {
            Some(&(line, col)) => Location {
                file: shown,
                line,
                col,
            },
            None => Location::file(shown),
        }
    }

    fn rpcs(&self) -> impl Iterator<Item = (&Service, &Method)> {
        self.model
            .packages
            .iter()
            .flat_map(|p| &p.services)
            .flat_map(|s| s.methods.iter().map(move |m| (s, m)))
    }

    /// How a field's type reads in messages: `string`, `map<string, int64>`, `axion.x.Msg`.
    fn type_of(&self, f: &FieldDescriptorProto) -> String {
        let name = f.type_name().trim_start_matches('.');
        if f.label() == Label::Repeated && f.r#type() == Type::Message {
            if let Some(entry) = self
                .messages
                .get(name)
                .filter(|m| m.desc.options.as_ref().is_some_and(|o| o.map_entry()))
            {
                if let [k, v] = entry.desc.field.as_slice() {
                    return format!("map<{}, {}>", self.type_of(k), self.type_of(v));
                }
            }
        }
        match f.r#type() {
            Type::Message | Type::Group | Type::Enum => name.to_owned(),
            other => other
                .as_str_name()
                .trim_start_matches("TYPE_")
                .to_lowercase(),
        }
    }

    fn is_map(&self, f: &FieldDescriptorProto) -> bool {
        self.type_of(f).starts_with("map<")
    }

    /// Messages and enums a type reaches through its fields (itself included).
    fn reachable(&self, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().collect();
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(m) = self.messages.get(&name) {
                for f in &m.desc.field {
                    if matches!(f.r#type(), Type::Message | Type::Group | Type::Enum) {
                        stack.push(f.type_name().trim_start_matches('.').to_owned());
                    }
                }
            }
        }
        seen
    }
}

fn reply_of(m: &Method) -> Option<&str> {
    m.reply_topic.as_deref()
}

fn compare_rpcs(old: &Version, new: &Version, out: &mut Findings) {
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

fn compare_types(old: &Version, new: &Version, out: &mut Findings) {
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
