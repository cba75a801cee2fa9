//! Emitters: model → files. Each reads names from the model and derives none.

pub mod asyncapi;
pub mod json;
pub mod messages;
pub mod module_tree;
pub mod service;
pub mod traefik;
pub mod typescript;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::model::{PathRoot, RpcType, RustPath};

/// An identifier the model produced (`create_project`, `r#type`).
pub(crate) fn ident(text: &str) -> Ident {
    match text.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(text, Span::call_site()),
    }
}

/// A model path as code in a module `depth` levels below the package module.
pub(crate) fn path(path: &RustPath, depth: usize) -> TokenStream {
    let segments = path.segments.iter().map(|s| ident(s));
    match path.root {
        PathRoot::Package => {
            let supers = (0..depth).map(|_| quote!(super::));
            quote!(#(#supers)* #(#segments)::*)
        }
        PathRoot::ProstTypes => quote!(::axion_runtime::prost_types::#(#segments)::*),
    }
}

/// An rpc's request or response type in a module `depth` levels below the package module.
pub(crate) fn rpc_type(t: &RpcType, depth: usize) -> TokenStream {
    match t {
        RpcType::Unit => quote!(()),
        RpcType::Message(p) => path(p, depth),
    }
}

/// `#[doc = "..."]` lines.
pub(crate) fn docs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| format!(" {l}"));
    quote!(#(#[doc = #lines])*)
}
