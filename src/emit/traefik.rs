//! Traefik snippets (askama templates in `templates/`).

use askama::Template;

use crate::model::{Service, Traefik};

/// docker-compose `labels:` for a service.
#[derive(Template)]
#[template(path = "traefik.labels.yml", escape = "none")]
struct Labels<'a> {
    header: &'a str,
    service: &'a Service,
    t: &'a Traefik,
    rule: String,
    origins: String,
}

/// Traefik file-provider routes for a service.
#[derive(Template)]
#[template(path = "traefik.dynamic.yml", escape = "none")]
struct Dynamic<'a> {
    header: &'a str,
    service: &'a Service,
    t: &'a Traefik,
    rule: String,
}

/// The router rule: `Host(`h`)`, plus `PathPrefix(`/p`)` when set.
fn rule(t: &Traefik) -> String {
    match &t.path_prefix {
        Some(prefix) => format!("Host(`{}`) && PathPrefix(`{prefix}`)", t.host),
        None => format!("Host(`{}`)", t.host),
    }
}

/// `(file name, text)` of each snippet of a service with a traefik option.
pub fn emit(service: &Service, header: &str) -> Vec<(String, String)> {
    let Some(t) = &service.traefik else {
        return Vec::new();
    };
    let origins = service.trusted_origins.join(",");
    let labels = Labels {
        header,
        service,
        t,
        rule: rule(t),
        origins,
    };
    let dynamic = Dynamic {
        header,
        service,
        t,
        rule: rule(t),
    };
    vec![
        (
            format!("traefik/{}.labels.yml", t.name),
            labels.render().expect("template renders"),
        ),
        (
            format!("traefik/{}.dynamic.yml", t.name),
            dynamic.render().expect("template renders"),
        ),
    ]
}
