//! TypeScript contracts: per proto package the constants the Rust side has (service name,
//! patterns, reply topics, server group, trusted origins), a pattern → ts-proto message type
//! map and a contract object for the NestJS option helpers in `axion-kafka.ts`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::model::{MethodKind, Package, Service, TsType};
use crate::writer::MARKER;

/// The shared helper module (NestJS `KafkaOptions` from the runtime's environment variables).
/// Its name has a `-`, which no proto package has, so it never collides with a package module.
pub const HELPER_MODULE: &str = "axion-kafka";

/// Where ts-proto's output is by default, relative to the TypeScript output dir: a sibling
/// `gen/` dir, as in `tests/nest/src/{gen,contracts}`.
pub const DEFAULT_TS_PROTO_IMPORT: &str = "../gen";

/// Every TypeScript file: `<package path>.ts` per package with services, `axion-kafka.ts` and
/// `index.ts`. `ts_proto_import` is ts-proto's output dir relative to the TypeScript dir
/// (starting with `.`), or a module specifier prefix used as is (a path alias, a package).
pub fn emit(packages: &[Package], ts_proto_import: &str) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let with_services: Vec<&Package> = packages.iter().filter(|p| !p.services.is_empty()).collect();
    if with_services.is_empty() {
        return files;
    }
    for package in &with_services {
        files.insert(package.ts_file.clone(), module(package, ts_proto_import));
    }
    files.insert(
        format!("{HELPER_MODULE}.ts"),
        include_str!("../../../templates/ts.axion-kafka.ts").to_owned(),
    );
    files.insert("index.ts".to_owned(), index(&with_services));
    files
}

/// `../../` for a file `depth` dirs below the TypeScript root (`./` at the root).
fn up(depth: usize) -> String {
    if depth == 0 {
        "./".to_owned()
    } else {
        "../".repeat(depth)
    }
}

/// The import specifier of a module at `target` (relative to the TypeScript root) from a file
/// `depth` dirs below the root.
fn relative(depth: usize, target: &str) -> String {
    let target = target.strip_prefix("./").unwrap_or(target);
    format!("{}{target}", up(depth))
}

/// A TSDoc block at `indent`, from doc lines (`*/` defused).
fn tsdoc(out: &mut String, indent: &str, lines: &[String]) {
    let lines: Vec<String> = lines.iter().map(|l| l.replace("*/", "*\\/")).collect();
    match lines.as_slice() {
        [] => {}
        [one] => {
            let _ = writeln!(out, "{indent}/** {one} */");
        }
        many => {
            let _ = writeln!(out, "{indent}/**");
            for l in many {
                if l.is_empty() {
                    let _ = writeln!(out, "{indent} *");
                } else {
                    let _ = writeln!(out, "{indent} * {l}");
                }
            }
            let _ = writeln!(out, "{indent} */");
        }
    }
}

/// Proto docs, a blank line, then `tail`.
fn docs_then(docs: &[String], tail: String) -> Vec<String> {
    let mut lines = docs.to_vec();
    if !lines.is_empty() {
        lines.push(String::new());
    }
    lines.push(tail);
    lines
}

/// A TS string literal (JSON's escaping is valid TS).
fn lit(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}

fn module(package: &Package, ts_proto_import: &str) -> String {
    let depth = package.ts_file.matches('/').count();
    // ts-proto modules used by the package's rpcs, each imported once as a namespace.
    let modules: BTreeSet<&str> = package
        .services
        .iter()
        .flat_map(|s| s.methods.iter())
        .flat_map(|m| [m.input_ts.module.as_str(), m.output_ts.module.as_str()])
        .collect();
    let mut aliases: BTreeMap<&str, String> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for m in &modules {
        let base: String = std::iter::once("pb_".to_owned())
            .chain(m.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else {
                    "_".to_owned()
                }
            }))
            .collect();
        let mut alias = base.clone();
        let mut n = 2;
        while !taken.insert(alias.clone()) {
            alias = format!("{base}_{n}");
            n += 1;
        }
        aliases.insert(m, alias);
    }
    let ts_proto = |module: &str| {
        if ts_proto_import.starts_with('.') {
            relative(depth, &format!("{ts_proto_import}/{module}"))
        } else {
            format!("{}/{module}", ts_proto_import.trim_end_matches('/'))
        }
    };
    let type_ref = |t: &TsType| format!("{}.{}", aliases[t.module.as_str()], t.name);

    let sources: BTreeSet<&str> = package
        .services
        .iter()
        .map(|s| s.proto_file.as_str())
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// {MARKER} from {}. Do not edit.",
        sources.into_iter().collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        out,
        "// Contracts of package {}: the constants the Rust side has, and ts-proto's message types per pattern.",
        if package.name.is_empty() {
            "(none)"
        } else {
            &package.name
        }
    );
    out.push('\n');
    for (m, alias) in &aliases {
        let _ = writeln!(out, "import type * as {alias} from {};", lit(&ts_proto(m)));
    }
    let _ = writeln!(
        out,
        "import type {{ ServiceContract }} from {};",
        lit(&relative(depth, HELPER_MODULE))
    );
    for svc in &package.services {
        out.push('\n');
        service(&mut out, svc, &type_ref);
    }
    out
}

fn service(out: &mut String, svc: &Service, type_ref: &dyn Fn(&TsType) -> String) {
    let full = &svc.full_name;
    tsdoc(
        out,
        "",
        &docs_then(
            &svc.docs,
            format!(
                "Kafka-facing name of `{full}` (Rust: `{}`).",
                svc.name_const
            ),
        ),
    );
    let _ = writeln!(
        out,
        "export const {} = {};\n",
        svc.name_const,
        lit(&svc.kafka_name)
    );

    tsdoc(
        out,
        "",
        &[format!(
            "Patterns (request topics) of `{full}`, one per rpc (Rust: `{}::<RPC>`).",
            svc.patterns_const
        )],
    );
    let _ = writeln!(out, "export const {} = {{", svc.patterns_const);
    for m in &svc.methods {
        tsdoc(
            out,
            "  ",
            &docs_then(
                &m.docs,
                format!("`{}` ({}).", m.proto_name, m.kind.as_str()),
            ),
        );
        let _ = writeln!(out, "  {}: {},", m.key, lit(&m.pattern));
    }
    let _ = writeln!(out, "}} as const;\n");

    tsdoc(
        out,
        "",
        &[format!(
            "Reply topics (`<pattern>.reply`) of `{full}`'s rpcs that answer (Rust: `{}`).",
            svc.reply_topics_const
        )],
    );
    let _ = writeln!(out, "export const {} = {{", svc.reply_topics_const);
    for (m, topic) in svc
        .methods
        .iter()
        .filter_map(|m| Some((m, m.reply_topic.as_ref()?)))
    {
        let _ = writeln!(out, "  /** Replies of `{}`. */", m.proto_name);
        let _ = writeln!(out, "  {}: {},", m.key, lit(topic));
    }
    let _ = writeln!(out, "}} as const;\n");

    tsdoc(
        out,
        "",
        &[format!(
            "Consumer group of `{full}`'s servers, Rust and NestJS alike (NestJS: group id `{}` + postfix `-server`).",
            svc.name_const
        )],
    );
    let _ = writeln!(
        out,
        "export const {} = {};\n",
        svc.server_group_const,
        lit(&svc.server_group)
    );

    tsdoc(
        out,
        "",
        &[format!(
            "Origins `{full}`'s edge trusts: its Traefik host over http and https, plus configured extras."
        )],
    );
    let origins: Vec<String> = svc.trusted_origins.iter().map(|o| lit(o)).collect();
    let _ = writeln!(
        out,
        "export const {} = [{}] as const;\n",
        svc.trusted_origins_const,
        origins.join(", ")
    );

    tsdoc(
        out,
        "",
        &[
            format!("Request and response types (ts-proto's) of each pattern of `{full}`."),
            "A server-streaming rpc replies with several `response`s; an event has none."
                .to_owned(),
        ],
    );
    let _ = writeln!(out, "export interface {} {{", svc.messages_type);
    for m in &svc.methods {
        let response = match m.kind {
            MethodKind::Event => "void".to_owned(),
            _ => type_ref(&m.output_ts),
        };
        let _ = writeln!(
            out,
            "  [{}.{}]: {{ request: {}; response: {response}; kind: {} }};",
            svc.patterns_const,
            m.key,
            type_ref(&m.input_ts),
            lit(m.kind.as_str())
        );
    }
    let _ = writeln!(out, "}}\n");

    tsdoc(
        out,
        "",
        &[format!(
            "What `createKafkaServerOptions` and callers need of `{full}` (Rust: `{}`).",
            svc.contract_const
        )],
    );
    let keys = |event: bool| -> String {
        svc.methods
            .iter()
            .filter(|m| (m.kind == MethodKind::Event) == event)
            .map(|m| format!("{}.{}", svc.patterns_const, m.key))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "export const {} = {{", svc.contract_const);
    let _ = writeln!(out, "  protoName: {},", lit(full));
    let _ = writeln!(out, "  name: {},", svc.name_const);
    let _ = writeln!(out, "  serverGroup: {},", svc.server_group_const);
    let _ = writeln!(out, "  patterns: {},", svc.patterns_const);
    let _ = writeln!(out, "  replyTopics: {},", svc.reply_topics_const);
    let _ = writeln!(out, "  requestPatterns: [{}],", keys(false));
    let _ = writeln!(out, "  eventPatterns: [{}],", keys(true));
    let _ = writeln!(out, "}} as const satisfies ServiceContract;");
}

/// `index.ts`: every package module re-exported flat, except packages whose exported names
/// clash with another package's (v1 and v2 of one service): those only as a namespace.
fn index(packages: &[&Package]) -> String {
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for p in packages {
        for name in exported_names(p) {
            *owners.entry(name).or_default() += 1;
        }
    }
    let mut out = format!("// {MARKER}. Do not edit.\n\n");
    let _ = writeln!(out, "export * from {};", lit(&relative(0, HELPER_MODULE)));
    for p in packages {
        let module = relative(0, p.ts_file.trim_end_matches(".ts"));
        let clashes = exported_names(p).iter().any(|n| owners[n] > 1);
        if clashes {
            let namespace = if p.name.is_empty() {
                "_".to_owned()
            } else {
                p.name.replace('.', "_")
            };
            let _ = writeln!(out, "export * as {namespace} from {};", lit(&module));
        } else {
            let _ = writeln!(out, "export * from {};", lit(&module));
        }
    }
    out
}

fn exported_names(p: &Package) -> Vec<String> {
    p.services
        .iter()
        .flat_map(|s| {
            [
                s.name_const.clone(),
                s.patterns_const.clone(),
                s.reply_topics_const.clone(),
                s.server_group_const.clone(),
                s.trusted_origins_const.clone(),
                s.messages_type.clone(),
                s.contract_const.clone(),
            ]
        })
        .collect()
}
