//! Per service: constants (TS names), the contract, the trait, a typed client, a dispatcher.

use proc_macro2::TokenStream;
use quote::quote;

use super::{docs, ident, rpc_type};
use crate::model::{MethodKind, Service};

/// All items of one service, at the package module level.
pub fn emit(svc: &Service) -> TokenStream {
    let constants = constants(svc);
    let contract = contract(svc);
    let service_trait = service_trait(svc);
    let client = client(svc);
    let server = server(svc);
    quote! { #constants #contract #service_trait #client #server }
}

fn constants(svc: &Service) -> TokenStream {
    let name_const = ident(&svc.name_const);
    let patterns = ident(&svc.patterns_const);
    let replies = ident(&svc.reply_topics_const);
    let origins = ident(&svc.trusted_origins_const);
    let kafka_name = &svc.kafka_name;
    let full = &svc.full_name;
    let name_doc = format!(" Kafka-facing name of `{full}` (TS: `{}`).", svc.name_const);
    let patterns_doc = format!(
        " Patterns (request topics) of `{full}`, one per rpc (TS: `{}.<RPC>`).",
        svc.patterns_const
    );
    let replies_doc = format!(" Reply topics (`<pattern>.reply`) of `{full}`'s rpcs that answer.");
    let origins_doc = format!(
        " Origins `{full}`'s edge trusts: its Traefik host over http and https, plus configured extras."
    );
    let pattern_items = svc.methods.iter().map(|m| {
        let key = ident(&m.key);
        let pattern = &m.pattern;
        let doc = format!(" `{}` ({}).", m.proto_name, m.kind.as_str());
        quote! { #[doc = #doc] pub const #key: &'static str = #pattern; }
    });
    let reply_items = svc
        .methods
        .iter()
        .filter_map(|m| Some((m, m.reply_topic.as_ref()?)))
        .map(|(m, topic)| {
            let key = ident(&m.key);
            let doc = format!(" Replies of `{}`.", m.proto_name);
            quote! { #[doc = #doc] pub const #key: &'static str = #topic; }
        });
    let origin_items = &svc.trusted_origins;
    let traefik = traefik_constants(svc);
    quote! {
        #[doc = #name_doc]
        pub const #name_const: &str = #kafka_name;

        #[doc = #patterns_doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        pub struct #patterns;

        impl #patterns {
            #(#pattern_items)*
        }

        #[doc = #replies_doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        pub struct #replies;

        impl #replies {
            #(#reply_items)*
        }

        #[doc = #origins_doc]
        pub const #origins: &[&str] = &[#(#origin_items),*];

        #traefik
    }
}

/// `<STEM>_TRAEFIK`: the service's edge as the Traefik option describes it (what the
/// generated snippets route to), so the service listens where its labels point.
fn traefik_constants(svc: &Service) -> TokenStream {
    let Some(t) = &svc.traefik else {
        return TokenStream::new();
    };
    let stem = svc
        .trusted_origins_const
        .strip_suffix("_TRUSTED_ORIGINS")
        .unwrap_or(&svc.trusted_origins_const);
    let holder = ident(&format!("{stem}_TRAEFIK"));
    let doc = format!(
        " The Traefik edge of `{}` (`option (axion.service).traefik`): where the generated \
         snippets `traefik/{}.labels.yml` and `.dynamic.yml` route to.",
        svc.full_name, t.name
    );
    let host = &t.host;
    let port = proc_macro2::Literal::u16_unsuffixed(
        u16::try_from(t.port).expect("the model validates the port"),
    );
    let prefix = t.path_prefix.as_deref().unwrap_or("");
    let health = &t.health_path;
    let router = &t.name;
    let middleware = &t.middleware;
    let entrypoints = &t.entrypoints;
    let websocket = t.websocket;
    let rule = super::traefik::rule(t);
    quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        pub struct #holder;

        impl #holder {
            /// Host the router matches.
            pub const HOST: &'static str = #host;
            /// Port the edge listens on (the load balancer's server port).
            pub const PORT: u16 = #port;
            /// Path prefix the router also requires (`""`: none); Traefik does not strip it.
            pub const PATH_PREFIX: &'static str = #prefix;
            /// Path of the load balancer's health check.
            pub const HEALTH_PATH: &'static str = #health;
            /// The router rule.
            pub const RULE: &'static str = #rule;
            /// Router and service name.
            pub const ROUTER: &'static str = #router;
            /// The headers middleware attached to the router.
            pub const MIDDLEWARE: &'static str = #middleware;
            /// Entrypoints of the router.
            pub const ENTRYPOINTS: &'static [&'static str] = &[#(#entrypoints),*];
            /// Whether the edge speaks WebSocket.
            pub const WEBSOCKET: bool = #websocket;
        }
    }
}

fn contract(svc: &Service) -> TokenStream {
    let contract = ident(&svc.contract_const);
    let methods_const = ident(&svc.methods_const);
    let name_const = ident(&svc.name_const);
    let patterns = ident(&svc.patterns_const);
    let replies = ident(&svc.reply_topics_const);
    let full = &svc.full_name;
    let group = &svc.server_group;
    let doc = format!(
        " What a transport needs to know of `{full}`: patterns, reply topics, kinds, consumer group."
    );
    let methods_doc = format!(" The contract of each of `{full}`'s rpcs, by rpc.");
    let method_items = svc.methods.iter().map(|m| {
        let rpc = &m.proto_name;
        let key = ident(&m.key);
        let reply = match &m.reply_topic {
            Some(_) => quote!(::core::option::Option::Some(#replies::#key)),
            None => quote!(::core::option::Option::None),
        };
        let kind = match m.kind {
            MethodKind::RequestReply => quote!(RequestReply),
            MethodKind::ServerStreaming => quote!(ServerStreaming),
            MethodKind::Event => quote!(Event),
        };
        let doc = format!(" `{rpc}` ({}).", m.kind.as_str());
        quote! {
            #[doc = #doc]
            pub const #key: ::axion_runtime::MethodContract = ::axion_runtime::MethodContract {
                rpc: #rpc,
                pattern: #patterns::#key,
                reply_topic: #reply,
                kind: ::axion_runtime::MethodKind::#kind,
            };
        }
    });
    let keys = svc.methods.iter().map(|m| ident(&m.key));
    quote! {
        #[doc = #methods_doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        pub struct #methods_const;

        impl #methods_const {
            #(#method_items)*
        }

        #[doc = #doc]
        pub const #contract: ::axion_runtime::ServiceContract = ::axion_runtime::ServiceContract {
            proto_name: #full,
            name: #name_const,
            server_group: #group,
            methods: &[#(#methods_const::#keys),*],
        };
    }
}

fn service_trait(svc: &Service) -> TokenStream {
    let name = ident(&svc.trait_ident);
    let mut doc_lines = svc.docs.clone();
    if !doc_lines.is_empty() {
        doc_lines.push(String::new());
    }
    doc_lines.push(format!(
        "Implement this trait and serve it with [`{}::{}`]; call it with [`{}::{}`].",
        svc.server_mod, svc.server_ident, svc.client_mod, svc.client_ident
    ));
    let trait_docs = docs(&doc_lines);
    let methods = svc.methods.iter().map(|m| {
        let method = ident(&m.rust_ident);
        let input = rpc_type(&m.input_type, 0);
        let output = rpc_type(&m.output_type, 0);
        let mut lines = m.docs.clone();
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.push(format!("Pattern `{}` ({}).", m.pattern, m.kind.as_str()));
        let method_docs = docs(&lines);
        let (arg, ret) = match m.kind {
            MethodKind::RequestReply => {
                (quote!(request), quote!(::axion_runtime::Response<#output>))
            }
            MethodKind::ServerStreaming => (
                quote!(request),
                quote!(::axion_runtime::Response<::axion_runtime::ResponseStream<#output>>),
            ),
            MethodKind::Event => (quote!(event), quote!(())),
        };
        quote! {
            #method_docs
            fn #method(
                &self,
                #arg: ::axion_runtime::Request<#input>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<#ret, ::axion_runtime::RpcError>,
            > + ::core::marker::Send;
        }
    });
    quote! {
        #trait_docs
        pub trait #name: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#methods)*
        }
    }
}

fn client(svc: &Service) -> TokenStream {
    let module = ident(&svc.client_mod);
    let client = ident(&svc.client_ident);
    let methods_const = ident(&svc.methods_const);
    let module_doc = format!(" The typed client of `{}`.", svc.full_name);
    let client_doc = format!(
        " Calls `{}` over any transport: Kafka (a NestJS or Rust server on the other side) or in memory.",
        svc.full_name
    );
    let methods = svc.methods.iter().map(|m| {
        let method = ident(&m.rust_ident);
        let key = ident(&m.key);
        let input = rpc_type(&m.input_type, 1);
        let output = rpc_type(&m.output_type, 1);
        let mut lines = m.docs.clone();
        if !lines.is_empty() {
            lines.push(String::new());
        }
        let how = match m.kind {
            MethodKind::RequestReply => "Sends to",
            MethodKind::ServerStreaming => "Sends to",
            MethodKind::Event => "Emits on",
        };
        lines.push(format!("{how} `{}`.", m.pattern));
        let method_docs = docs(&lines);
        let method_with = ident(&m.options_ident);
        let with_docs =
            format!(" [`Self::{method}`] with per-call options (record key, headers, timeout).");
        match m.kind {
            MethodKind::RequestReply => quote! {
                #method_docs
                pub async fn #method(
                    &self,
                    request: &#input,
                ) -> ::core::result::Result<#output, ::axion_runtime::RpcError> {
                    self.inner.unary(&super::#methods_const::#key, request).await
                }

                #[doc = #with_docs]
                /// The reply comes with its headers.
                pub async fn #method_with(
                    &self,
                    request: &#input,
                    options: ::axion_runtime::CallOptions,
                ) -> ::core::result::Result<
                    ::axion_runtime::Response<#output>,
                    ::axion_runtime::RpcError,
                > {
                    self.inner.unary_with(&super::#methods_const::#key, request, options).await
                }
            },
            MethodKind::ServerStreaming => quote! {
                #method_docs
                pub async fn #method(
                    &self,
                    request: &#input,
                ) -> ::core::result::Result<
                    ::axion_runtime::ResponseStream<#output>,
                    ::axion_runtime::RpcError,
                > {
                    self.inner.server_streaming(&super::#methods_const::#key, request).await
                }

                #[doc = #with_docs]
                pub async fn #method_with(
                    &self,
                    request: &#input,
                    options: ::axion_runtime::CallOptions,
                ) -> ::core::result::Result<
                    ::axion_runtime::ResponseStream<#output>,
                    ::axion_runtime::RpcError,
                > {
                    self.inner
                        .server_streaming_with(&super::#methods_const::#key, request, options)
                        .await
                }
            },
            MethodKind::Event => quote! {
                #method_docs
                pub async fn #method(
                    &self,
                    event: &#input,
                ) -> ::core::result::Result<(), ::axion_runtime::RpcError> {
                    self.inner.emit(&super::#methods_const::#key, event).await
                }

                #[doc = #with_docs]
                pub async fn #method_with(
                    &self,
                    event: &#input,
                    options: ::axion_runtime::CallOptions,
                ) -> ::core::result::Result<(), ::axion_runtime::RpcError> {
                    self.inner.emit_with(&super::#methods_const::#key, event, options).await
                }
            },
        }
    });
    quote! {
        #[doc = #module_doc]
        pub mod #module {
            #[doc = #client_doc]
            #[derive(Clone, Debug)]
            pub struct #client {
                inner: ::axion_runtime::Client,
            }

            impl #client {
                /// A client over `client`'s transport and timeout.
                pub fn new(client: ::axion_runtime::Client) -> Self {
                    Self { inner: client }
                }

                /// A client over `transport` with the default timeout.
                pub fn from_transport(
                    transport: ::std::sync::Arc<dyn ::axion_runtime::Transport>,
                ) -> Self {
                    Self::new(::axion_runtime::Client::new(transport))
                }

                /// Sets how long each call waits for its reply.
                ///
                /// # Panics
                /// If `timeout` is zero.
                pub fn with_timeout(self, timeout: ::core::time::Duration) -> Self {
                    Self { inner: self.inner.with_timeout(timeout) }
                }

                /// The untyped client underneath.
                pub fn inner(&self) -> &::axion_runtime::Client {
                    &self.inner
                }

                #(#methods)*
            }

            impl ::core::convert::From<::axion_runtime::Client> for #client {
                fn from(client: ::axion_runtime::Client) -> Self {
                    Self::new(client)
                }
            }
        }
    }
}

fn server(svc: &Service) -> TokenStream {
    let module = ident(&svc.server_mod);
    let server = ident(&svc.server_ident);
    let service_trait = ident(&svc.trait_ident);
    let contract = ident(&svc.contract_const);
    let patterns = ident(&svc.patterns_const);
    let module_doc = format!(" The dispatcher of `{}`.", svc.full_name);
    let server_doc = format!(
        " Dispatches `{}`'s patterns to a [`super::{}`] implementation: decodes the JSON payload, calls the method, encodes the reply or the NestJS-shaped error.",
        svc.full_name, svc.trait_ident
    );
    let arms = svc.methods.iter().map(|m| {
        let key = ident(&m.key);
        let method = ident(&m.rust_ident);
        let input = rpc_type(&m.input_type, 1);
        match m.kind {
            MethodKind::RequestReply => quote! {
                super::#patterns::#key => ::axion_runtime::codegen::unary(
                    incoming,
                    move |request: ::axion_runtime::Request<#input>| async move {
                        super::#service_trait::#method(&*service, request).await
                    },
                ),
            },
            MethodKind::ServerStreaming => quote! {
                super::#patterns::#key => ::axion_runtime::codegen::server_streaming(
                    incoming,
                    move |request: ::axion_runtime::Request<#input>| async move {
                        super::#service_trait::#method(&*service, request).await
                    },
                ),
            },
            MethodKind::Event => quote! {
                super::#patterns::#key => ::axion_runtime::codegen::event(
                    incoming,
                    move |event: ::axion_runtime::Request<#input>| async move {
                        super::#service_trait::#method(&*service, event).await
                    },
                ),
            },
        }
    });
    let clone_service = if svc.methods.is_empty() {
        quote!()
    } else {
        quote!(let service = ::std::sync::Arc::clone(&self.inner);)
    };
    quote! {
        #[doc = #module_doc]
        pub mod #module {
            #[doc = #server_doc]
            #[derive(Debug)]
            pub struct #server<T> {
                inner: ::std::sync::Arc<T>,
            }

            impl<T: super::#service_trait> #server<T> {
                /// Serves `service`.
                pub fn new(service: T) -> Self {
                    Self::from_arc(::std::sync::Arc::new(service))
                }

                /// Serves a shared `service`.
                pub fn from_arc(service: ::std::sync::Arc<T>) -> Self {
                    Self { inner: service }
                }

                /// The service being served.
                pub fn service(&self) -> &::std::sync::Arc<T> {
                    &self.inner
                }
            }

            impl<T> ::core::clone::Clone for #server<T> {
                fn clone(&self) -> Self {
                    Self { inner: ::std::sync::Arc::clone(&self.inner) }
                }
            }

            impl<T: super::#service_trait> ::axion_runtime::Handler for #server<T> {
                fn contract(&self) -> &'static ::axion_runtime::ServiceContract {
                    &super::#contract
                }

                fn handle(
                    &self,
                    incoming: ::axion_runtime::Incoming,
                ) -> ::axion_runtime::RawReplies {
                    #clone_service
                    match &*incoming.pattern {
                        #(#arms)*
                        _ => ::axion_runtime::codegen::no_handler(incoming),
                    }
                }
            }
        }
    }
}
