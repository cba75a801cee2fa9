//! NestJS/ts-proto-compatible serde impls for prost messages (see `axion_runtime::json`).

use proc_macro2::TokenStream;
use quote::quote;

use super::{ident, path as rust_path};
use crate::model::{Codec, Message, RustPath, Storage};

/// `ProtoEnum` for one of a package's enums (its Rust path relative to the package module).
pub fn proto_enum(path: &RustPath) -> TokenStream {
    let path = rust_path(path, 0);
    quote! {
        #[allow(deprecated)]
        impl ::axion_runtime::codegen::json::ProtoEnum for #path {
            fn number_of(name: &str) -> ::core::option::Option<i32> {
                Self::from_str_name(name).map(|value| value as i32)
            }
        }
    }
}

/// The runtime's codec type for `c`, named through the `j` alias every impl imports.
fn codec(c: &Codec) -> TokenStream {
    match c {
        Codec::F64 => quote!(j::F64),
        Codec::F32 => quote!(j::F32),
        Codec::I64 => quote!(j::I64),
        Codec::U64 => quote!(j::U64),
        Codec::I32 => quote!(j::I32),
        Codec::U32 => quote!(j::U32),
        Codec::Bool => quote!(j::Bool),
        Codec::Str => quote!(j::Str),
        Codec::Bytes => quote!(j::Bytes),
        Codec::Enum(path) => {
            let path = rust_path(path, 0);
            quote!(j::Enum<#path>)
        }
        Codec::Msg => quote!(j::Msg),
        Codec::ProtoBytes => quote!(j::ProtoBytes),
        Codec::Timestamp => quote!(j::Timestamp),
        Codec::Duration => quote!(j::Duration),
        Codec::Empty => quote!(j::Empty),
        Codec::Struct => quote!(j::Struct),
        Codec::Value => quote!(j::Value),
        Codec::ListValue => quote!(j::ListValue),
        Codec::Any => quote!(j::Any),
        Codec::FieldMask => quote!(j::FieldMask),
        Codec::Opt(inner) => {
            let inner = codec(inner);
            quote!(j::Opt<#inner>)
        }
        Codec::List(item) => {
            let item = codec(item);
            quote!(j::List<#item>)
        }
        Codec::Map(key, value) => {
            let (key, value) = (codec(key), codec(value));
            quote!(j::Map<#key, #value>)
        }
    }
}

/// `JsonMessage` for one message, and its `Serialize`/`Deserialize` through it.
pub fn message(m: &Message) -> TokenStream {
    let (writes, reads) = fields(m);
    impl_json_message(m, &writes, &reads)
}

/// Per field: the statement that writes it (a oneof's members share one `match`) and the
/// match arm that reads it.
fn fields(m: &Message) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let mut writes = Vec::new();
    let mut oneofs: Vec<(&str, Vec<TokenStream>)> = Vec::new();
    let mut reads = Vec::new();
    for f in &m.fields {
        let key = &f.json_name;
        let codec = codec(&f.codec);
        let field = ident(&f.rust_ident);
        let keys = if f.json_name == f.proto_name {
            quote!(#key)
        } else {
            let proto = &f.proto_name;
            quote!(#key | #proto)
        };
        match &f.storage {
            Storage::Plain => {
                writes.push(quote! {
                    map.serialize_entry(#key, &j::ser::<#codec, _>(&self.#field))?;
                });
                reads.push(quote! {
                    #keys => self.#field = map.next_value::<j::De<#codec, _>>()?.0,
                });
            }
            Storage::Optional => {
                writes.push(quote! {
                    if self.#field.is_some() {
                        map.serialize_entry(#key, &j::ser::<#codec, _>(&self.#field))?;
                    }
                });
                // `#codec` is `j::Opt<..>` already: null or absent stays None.
                reads.push(quote! {
                    #keys => self.#field = map.next_value::<j::De<#codec, _>>()?.0,
                });
            }
            Storage::Oneof { enum_path, variant } => {
                let enum_path = rust_path(enum_path, 0);
                let variant = ident(variant);
                let arm = quote! {
                    ::core::option::Option::Some(#enum_path::#variant(value)) => {
                        map.serialize_entry(#key, &j::ser::<#codec, _>(value))?;
                    }
                };
                match oneofs.iter_mut().find(|(name, _)| *name == f.rust_ident) {
                    Some((_, arms)) => arms.push(arm),
                    None => oneofs.push((&f.rust_ident, vec![arm])),
                }
                // null for a oneof member means "not this member": leave the oneof alone.
                reads.push(quote! {
                    #keys => {
                        if let ::core::option::Option::Some(value) =
                            map.next_value::<j::De<j::Opt<#codec>, _>>()?.0
                        {
                            self.#field = ::core::option::Option::Some(#enum_path::#variant(value));
                        }
                    }
                });
            }
        }
    }
    for (name, arms) in oneofs {
        let field = ident(name);
        writes.push(quote! {
            match &self.#field {
                #(#arms)*
                ::core::option::Option::None => {}
            }
        });
    }
    (writes, reads)
}

/// The impls around the fields' statements and arms.
fn impl_json_message(m: &Message, writes: &[TokenStream], reads: &[TokenStream]) -> TokenStream {
    let path = rust_path(&m.rust_path, 0);
    let full_name = &m.full_name;
    let write_body = if writes.is_empty() {
        quote! {
            let _ = map;
            ::core::result::Result::Ok(())
        }
    } else {
        quote! {
            use ::axion_runtime::codegen::json as j;
            #(#writes)*
            ::core::result::Result::Ok(())
        }
    };
    let merge_body = if reads.is_empty() {
        quote! {
            let _ = (key, map);
            ::core::result::Result::Ok(false)
        }
    } else {
        quote! {
            use ::axion_runtime::codegen::json as j;
            match key {
                #(#reads)*
                _ => return ::core::result::Result::Ok(false),
            }
            ::core::result::Result::Ok(true)
        }
    };

    quote! {
        // Deprecated fields, variants and messages still travel.
        #[allow(deprecated)]
        impl ::axion_runtime::codegen::json::JsonMessage for #path {
            const FULL_NAME: &'static str = #full_name;
            fn write_fields<M>(&self, map: &mut M) -> ::core::result::Result<(), M::Error>
            where
                M: ::axion_runtime::serde::ser::SerializeMap,
            {
                #write_body
            }
            fn merge_field<'de, A>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> ::core::result::Result<bool, A::Error>
            where
                A: ::axion_runtime::serde::de::MapAccess<'de>,
            {
                #merge_body
            }
        }
        ::axion_runtime::codegen::serde_impls!(#path);
    }
}
