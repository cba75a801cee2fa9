//! `mod.rs`: the one entry file declaring the whole module tree.

use std::collections::BTreeMap;

use crate::model::Package;

/// Lints generated code trips and users should not see, and nothing more: `dead_code` (a
/// service uses some of its contracts' items), `missing_docs` (protos without comments), clippy
/// (prost's output, and names as protos spell them; pedantic and nursery for crates that turn
/// them on), `rustdoc::all` (doc text comes from protos: bare URLs, brackets). The 420
/// googleapis files' output type-checks under `#![deny(warnings)]` with these (BENCHMARKS.md).
pub const ALLOW: &str =
    "#[allow(dead_code, missing_docs, clippy::all, clippy::pedantic, clippy::nursery, rustdoc::all)]";

#[derive(Default)]
struct Node {
    file: Option<String>,
    children: BTreeMap<String, Node>,
}

/// The text of `mod.rs` (already formatted).
pub fn emit(packages: &[Package], header: &str) -> String {
    let mut root = Node::default();
    for p in packages {
        let mut node = &mut root;
        for part in &p.module {
            node = node.children.entry(part.clone()).or_default();
        }
        node.file = Some(p.file_name.clone());
    }
    let mut out = String::from(header);
    out.push_str(
        "//\n// Include it with `#[path = \"<this dir>/mod.rs\"] mod contracts;`, or from OUT_DIR with\n// `axion_runtime::include_contracts!()`.\n\n",
    );
    if let Some(file) = &root.file {
        // Files without a package: their items live at the root of the tree.
        out.push_str(&format!(
            "{ALLOW}\nmod _root {{\n    include!(\"{file}\");\n}}\npub use _root::*;\n"
        ));
    }
    for (name, child) in &root.children {
        out.push_str(ALLOW);
        out.push('\n');
        write_node(&mut out, name, child, 0);
    }
    out
}

fn write_node(out: &mut String, name: &str, node: &Node, depth: usize) {
    let pad = "    ".repeat(depth);
    out.push_str(&format!("{pad}pub mod {name} {{\n"));
    if let Some(file) = &node.file {
        out.push_str(&format!("{pad}    include!(\"{file}\");\n"));
    }
    for (child_name, child) in &node.children {
        write_node(out, child_name, child, depth + 1);
    }
    out.push_str(&format!("{pad}}}\n"));
}
