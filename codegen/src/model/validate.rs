//! Checks across the whole input: one pattern, one rpc; no two services share constants;
//! no generated method shadows another.

use std::collections::{BTreeMap, HashMap};

use crate::error::Error;

use super::{Method, Package, Service};

/// Methods every generated client has next to its rpcs (see `emit::service`).
pub(super) const CLIENT_METHODS: &[&str] = &["new", "from_transport", "with_timeout", "inner"];

/// An rpc whose pattern an earlier rpc already has: (service, rpc, earlier service, earlier rpc).
pub(super) type Collision<'a> = (&'a Service, &'a Method, &'a Service, &'a Method);

/// Checks across the whole input: one pattern, one rpc; no two services share constants.
pub(super) fn validate(packages: &BTreeMap<String, Package>, errors: &mut Vec<Error>) {
    let mut patterns: BTreeMap<&str, (&Service, &Method)> = BTreeMap::new();
    let mut collisions: Vec<Collision<'_>> = Vec::new();
    for package in packages.values() {
        let mut stems: HashMap<&str, &Service> = HashMap::new();
        for svc in &package.services {
            if let Some(other) = stems.insert(&svc.name_const, svc) {
                errors.push(Error::at(
                    svc.location.clone(),
                    format!(
                        "services {} and {} (at {}) both map to the constant {}; rename one",
                        svc.proto_name, other.proto_name, other.location, svc.name_const
                    ),
                ));
            }
            let mut idents: HashMap<&str, &Method> = HashMap::new();
            for m in &svc.methods {
                if CLIENT_METHODS.contains(&m.rust_ident.as_str()) {
                    errors.push(Error::at(
                        m.location.clone(),
                        format!(
                            "rpc {} becomes the Rust method `{}`, which the generated {} already has; rename the rpc",
                            m.proto_name, m.rust_ident, svc.client_ident
                        ),
                    ));
                }
                if let Some(other) = idents.insert(&m.rust_ident, m) {
                    errors.push(Error::at(
                        m.location.clone(),
                        format!(
                            "rpcs {} and {} (at {}) both map to the Rust method {}; rename one",
                            m.proto_name, other.proto_name, other.location, m.rust_ident
                        ),
                    ));
                }
                if let Some((other_svc, other)) = patterns.insert(&m.pattern, (svc, m)) {
                    collisions.push((svc, m, other_svc, other));
                }
            }
            // Each rpc also gets `<method>_with` (per-call options) on the client.
            for base in &svc.methods {
                let with = &base.options_ident;
                let taken = svc
                    .methods
                    .iter()
                    .find(|m| m.rust_ident.trim_start_matches("r#") == with.as_str());
                if let Some(m) = taken {
                    errors.push(Error::at(
                        m.location.clone(),
                        format!(
                            "rpc {} becomes the Rust method `{}`, which the generated {} already has for rpc {} (at {}) with per-call options; rename the rpc",
                            m.proto_name, with, svc.client_ident, base.proto_name, base.location
                        ),
                    ));
                }
            }
        }
    }
    // Same-named services in two packages (v1 and v1beta1) collide on every rpc: one error
    // per pair of services, at the service, instead of one per rpc.
    let mut pairs: Vec<((&str, &str), Vec<Collision<'_>>)> = Vec::new();
    for c in collisions {
        let key = (c.0.full_name.as_str(), c.2.full_name.as_str());
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(c),
            None => pairs.push((key, vec![c])),
        }
    }
    for (_, list) in pairs {
        let (svc, m, other_svc, other) = list[0];
        let explicit = m.pattern_location != m.location || other.pattern_location != other.location;
        let hint = if explicit {
            "every rpc needs its own pattern"
        } else {
            "default patterns do not include the proto package: generate with `--pattern-scheme package` (or set the file's `option (axion.file).pattern_scheme = PATTERN_SCHEME_PACKAGE`), or give one service `option (axion.service).name`, or its file `option (axion.file).topic_prefix`"
        };
        if list.len() == 1 {
            errors.push(Error::at(
                m.pattern_location.clone(),
                format!(
                    "pattern {} of {}.{} is also the pattern of {}.{} at {}; {hint}",
                    m.pattern,
                    svc.full_name,
                    m.proto_name,
                    other_svc.full_name,
                    other.proto_name,
                    other.pattern_location
                ),
            ));
        } else {
            let rpcs: Vec<&str> = list.iter().map(|c| c.1.proto_name.as_str()).collect();
            errors.push(Error::at(
                svc.location.clone(),
                format!(
                    "{} rpcs of {} have the same patterns as rpcs of {} at {} ({}, e.g. {}); {hint}",
                    list.len(),
                    svc.full_name,
                    other_svc.full_name,
                    other_svc.location,
                    rpcs.join(", "),
                    m.pattern
                ),
            ));
        }
    }
}
