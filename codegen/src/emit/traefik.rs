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
    server_url: String,
}

/// The router rule: `Host(`h`)`, plus `PathPrefix(`/p`)` when set.
pub fn rule(t: &Traefik) -> String {
    match &t.path_prefix {
        Some(prefix) => format!("Host(`{}`) && PathPrefix(`{prefix}`)", t.host),
        None => format!("Host(`{}`)", t.host),
    }
}

/// The file provider's server URL: `template` (with `{name}` and `{port}` replaced) when
/// given, else the model's (the option, or `http://<service name>:<port>`).
pub fn server_url(t: &Traefik, template: Option<&str>) -> String {
    match template {
        Some(template) => template
            .replace("{name}", &t.name)
            .replace("{port}", &t.port.to_string()),
        None => t.server_url.clone(),
    }
}

/// `(file name, text)` of each snippet of a service with a traefik option. `server_url`:
/// see [`server_url`].
pub fn emit(service: &Service, header: &str, server_url: Option<&str>) -> Vec<(String, String)> {
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
        server_url: self::server_url(t, server_url),
    };
    vec![
        (
            format!("traefik/{}.labels.yml", t.name),
            with_newline(labels.render().expect("template renders")),
        ),
        (
            format!("traefik/{}.dynamic.yml", t.name),
            with_newline(dynamic.render().expect("template renders")),
        ),
    ]
}

/// YAML files end with a newline.
fn with_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}
