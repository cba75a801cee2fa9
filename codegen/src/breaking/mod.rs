//! Breaking-change check of contracts against a previous version (like `buf breaking`), judged
//! by what peers on the bus see: patterns (topics), reply topics, rpc kinds, request/response
//! types, and the JSON of payloads (field names are JSON keys; enum numbers travel as numbers).
//!
//! Both versions go through the same [`load`] and [`model`] as
//! generation; each finding names a place in the new version when there is one, else in the
//! reference.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto};

use crate::error::{Location, Result};
use crate::load::{self, Inputs, Loaded};
use crate::model::{self, Method, Model, ModelOptions, Service};

mod rules;

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
    rules::compare_rpcs(&old, &new, &mut out);
    rules::compare_types(&old, &new, &mut out);
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
