//! Prediction of the Rust names prost gives types, fields and variants, and the collisions
//! between them, reported where the proto declares them.

use std::collections::{BTreeMap, HashMap};

use prost_types::DescriptorProto;

use crate::error::{Error, Location};
use crate::load::Loaded;
use crate::names;

use super::comments::Comments;
use super::messages::oneof_type_ident;
use super::Package;

/// One Rust namespace (a module's types, a module's child modules, a struct's fields, an enum's
/// variants): the first claim of each identifier, and where it was made.
#[derive(Default)]
pub(super) struct Namespace(HashMap<String, (String, Location)>);

impl Namespace {
    /// Claims `ident` for `what` (`message Foo`) at `location`; a second claim, or an identifier
    /// prost would leave empty (a name of underscores only), is an error.
    pub(super) fn claim(
        &mut self,
        ident: String,
        what: String,
        location: Location,
        kind: &str,
        errors: &mut Vec<Error>,
    ) {
        if ident.is_empty() || ident == "r#" {
            errors.push(Error::at(
                location,
                format!(
                    "{what} has no Rust name (prost drops underscores, leaving nothing); rename it"
                ),
            ));
            return;
        }
        match self.0.get(&ident) {
            Some((other, at)) => {
                // Report at whichever comes later in the file, naming the earlier one.
                let (later, later_what, earlier, earlier_what) = if at.file == location.file
                    && (at.line, at.col) > (location.line, location.col)
                {
                    (at.clone(), other.as_str(), location, what.as_str())
                } else {
                    (location, what.as_str(), at.clone(), other.as_str())
                };
                errors.push(Error::at(
                    later,
                    format!(
                        "{later_what} and {earlier_what} (at {earlier}) both become the Rust {kind} `{ident}`; rename one"
                    ),
                ));
            }
            None => {
                self.0.insert(ident, (what, location));
            }
        }
    }
}

/// Names that would make prost's (or the service emitter's) Rust fail to compile: identifiers
/// that come out empty, and two proto names that become one Rust name in the same place
/// (`foo_bar` and `FooBar`, a nested enum and a oneof of one name, a message named like a
/// service's trait, a message module named like a sub-package).
pub(super) fn check_rust_names(
    loaded: &Loaded,
    packages: &BTreeMap<String, Package>,
    errors: &mut Vec<Error>,
) {
    let mut types: HashMap<&str, Namespace> = HashMap::new();
    let mut modules: HashMap<&str, Namespace> = HashMap::new();
    for file in &loaded.files {
        let name = file.name();
        if name.starts_with("google/protobuf/") || name == crate::load::OPTIONS_PROTO_NAME {
            continue;
        }
        let display = loaded.display.get(name).map_or(name, String::as_str);
        let comments = Comments::new(file, display);
        let package = file.package();
        let types = types.entry(package).or_default();
        let modules = modules.entry(package).or_default();
        for (i, m) in file.message_type.iter().enumerate() {
            check_message(m, &[4, i as i32], &comments, types, modules, errors);
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            let path = [5, i as i32];
            types.claim(
                names::rust_upper_camel(e.name()),
                format!("enum {}", e.name()),
                comments.location(&path),
                "type",
                errors,
            );
            check_enum(e, &path, &comments, errors);
        }
        if !loaded.inputs.contains(name) {
            continue;
        }
        for (i, svc) in file.service.iter().enumerate() {
            let path = [6, i as i32];
            let location = comments.location(&path);
            let trait_ident = names::rust_upper_camel(svc.name());
            let snake = names::rust_snake(svc.name());
            let what = format!("service {}", svc.name());
            if trait_ident.is_empty() {
                types.claim(trait_ident, what, location, "type", errors);
                continue;
            }
            let bare = trait_ident.trim_end_matches('_');
            for ident in [
                trait_ident.clone(),
                format!("{bare}Client"),
                format!("{bare}Server"),
            ] {
                types.claim(ident, what.clone(), location.clone(), "type", errors);
            }
            let snake = snake.trim_start_matches("r#");
            for module in [format!("{snake}_client"), format!("{snake}_server")] {
                modules.claim(module, what.clone(), location.clone(), "module", errors);
            }
            for (j, m) in svc.method.iter().enumerate() {
                if names::rust_snake(m.name()).is_empty() {
                    errors.push(Error::at(
                        comments.location(&[6, i as i32, 2, j as i32]),
                        format!("rpc {} has no Rust name (prost drops underscores, leaving nothing); rename it", m.name()),
                    ));
                }
            }
        }
    }
    // A sub-package's module next to a message's module of the same name.
    for package in packages.values() {
        let Some((last, parent)) = package.module.split_last() else {
            continue;
        };
        let parent_package = packages
            .values()
            .find(|p| p.module == parent)
            .map(|p| p.name.as_str());
        if let Some((what, at)) = parent_package
            .and_then(|p| modules.get(p))
            .and_then(|ns| ns.0.get(last))
        {
            errors.push(Error::at(
                at.clone(),
                format!(
                    "{what} gets the Rust module `{last}`, which is also the module of package {}; rename one",
                    package.name
                ),
            ));
        }
    }
}

pub(super) fn check_message(
    m: &DescriptorProto,
    path: &[i32],
    comments: &Comments,
    types: &mut Namespace,
    modules: &mut Namespace,
    errors: &mut Vec<Error>,
) {
    let at = |tail: &[i32]| {
        let mut p = path.to_vec();
        p.extend_from_slice(tail);
        comments.location(&p)
    };
    let what = format!("message {}", m.name());
    types.claim(
        names::rust_upper_camel(m.name()),
        what.clone(),
        at(&[]),
        "type",
        errors,
    );
    let is_entry = |n: &DescriptorProto| n.options.as_ref().is_some_and(|o| o.map_entry());
    // Oneofs prost turns into enums: those with a member that is not a proto3 `optional`.
    let real_oneofs: Vec<usize> = (0..m.oneof_decl.len())
        .filter(|&k| {
            m.field
                .iter()
                .any(|f| f.oneof_index == Some(k as i32) && !f.proto3_optional())
        })
        .collect();
    let has_module = !m.enum_type.is_empty()
        || m.nested_type.iter().any(|n| !is_entry(n))
        || !real_oneofs.is_empty();
    if has_module {
        modules.claim(names::rust_snake(m.name()), what, at(&[]), "module", errors);
    }

    let mut fields = Namespace::default();
    let mut inner_types = Namespace::default();
    let mut inner_modules = Namespace::default();
    let mut variants: HashMap<usize, Namespace> = HashMap::new();
    for (k, f) in m.field.iter().enumerate() {
        let location = at(&[2, k as i32]);
        match f.oneof_index.map(|o| o as usize) {
            Some(o) if real_oneofs.contains(&o) => variants.entry(o).or_default().claim(
                names::rust_upper_camel(f.name()),
                format!("field {}", f.name()),
                location,
                "oneof variant",
                errors,
            ),
            _ => fields.claim(
                names::rust_snake(f.name()),
                format!("field {}", f.name()),
                location,
                "field",
                errors,
            ),
        }
    }
    for &k in &real_oneofs {
        let o = &m.oneof_decl[k];
        let location = at(&[8, k as i32]);
        let what = format!("oneof {}", o.name());
        fields.claim(
            names::rust_snake(o.name()),
            what.clone(),
            location.clone(),
            "field",
            errors,
        );
        inner_types.claim(
            oneof_type_ident(m, o.name()),
            what,
            location,
            "type",
            errors,
        );
    }
    for (j, n) in m.nested_type.iter().enumerate() {
        if !is_entry(n) {
            let mut p = path.to_vec();
            p.extend([3, j as i32]);
            check_message(
                n,
                &p,
                comments,
                &mut inner_types,
                &mut inner_modules,
                errors,
            );
        }
    }
    for (j, e) in m.enum_type.iter().enumerate() {
        let mut p = path.to_vec();
        p.extend([4, j as i32]);
        inner_types.claim(
            names::rust_upper_camel(e.name()),
            format!("enum {}", e.name()),
            comments.location(&p),
            "type",
            errors,
        );
        check_enum(e, &p, comments, errors);
    }
}

pub(super) fn check_enum(
    e: &prost_types::EnumDescriptorProto,
    path: &[i32],
    comments: &Comments,
    errors: &mut Vec<Error>,
) {
    let prefix = names::rust_upper_camel(e.name());
    let mut numbers = std::collections::HashSet::new();
    let mut variants = Namespace::default();
    for (k, v) in e.value.iter().enumerate() {
        // prost emits the first of aliased values only.
        if !numbers.insert(v.number()) {
            continue;
        }
        let mut p = path.to_vec();
        p.extend([2, k as i32]);
        variants.claim(
            names::enum_variant(&prefix, v.name()),
            format!("enum value {}", v.name()),
            comments.location(&p),
            "enum variant",
            errors,
        );
    }
}
