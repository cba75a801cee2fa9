//! Emitters: model → files. Each reads names from the model and derives none.

pub mod asyncapi;
pub mod json;
pub mod messages;
pub mod module_tree;
pub mod service;
pub mod traefik;
pub mod typescript;

use proc_macro2::TokenStream;

/// Parses a Rust path or type the model produced (`j::Opt<j::Msg>`, `super::Actor`).
pub(crate) fn ty(text: &str) -> TokenStream {
    let parsed: syn::Type = syn::parse_str(text)
        .unwrap_or_else(|e| panic!("model produced an invalid Rust type {text:?}: {e}"));
    quote::quote!(#parsed)
}

/// Parses an identifier the model produced (raw identifiers included).
pub(crate) fn ident(text: &str) -> syn::Ident {
    syn::parse_str(text)
        .unwrap_or_else(|e| panic!("model produced an invalid identifier {text:?}: {e}"))
}

/// `#[doc = "..."]` lines.
pub(crate) fn docs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| format!(" {l}"));
    quote::quote!(#(#[doc = #lines])*)
}

/// A type path as seen from a module `depth` levels below the package module.
pub(crate) fn from_submodule(path: &str, depth: usize) -> String {
    let absolute = path.starts_with("::")
        || path == "()"
        || matches!(path, "bool" | "f32" | "f64" | "i32" | "i64" | "u32" | "u64");
    if absolute {
        path.to_owned()
    } else {
        format!("{}{path}", "super::".repeat(depth))
    }
}
