//! Pattern schemes: how the default pattern (request topic) of an rpc is formed.

use crate::names;

/// How the default pattern (request topic) of an rpc is formed. An rpc's
/// `(axion.method).pattern` is used verbatim whatever the scheme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PatternScheme {
    /// `<prefix>.<service name>.<rpc>` (`axion.graph-service.create-project`): the stack's
    /// topics, one version of each service on the bus. The prefix defaults to `axion`.
    #[default]
    Service,
    /// `[<prefix>.]<proto package>.<service name>.<rpc>`
    /// (`axion.graph.v1.graph-service.create-project` for package `axion.graph.v1`): the
    /// package names the namespace, so `v1` and `v1beta1` of one API live side by side. There
    /// is no prefix unless one is set; a file without a package falls back to
    /// `[<prefix>.]<service name>.<rpc>`.
    Package,
}

impl PatternScheme {
    /// The prefix of default patterns when none is configured.
    pub fn default_prefix(self) -> &'static str {
        match self {
            PatternScheme::Service => DEFAULT_TOPIC_PREFIX,
            PatternScheme::Package => "",
        }
    }

    /// The default pattern of rpc `rpc` of service `service` (its Kafka name) in `package`.
    pub fn default_pattern(self, prefix: &str, package: &str, service: &str, rpc: &str) -> String {
        let namespace = match self {
            PatternScheme::Service => None,
            PatternScheme::Package => Some(package).filter(|p| !p.is_empty()),
        };
        let parts = [Some(prefix).filter(|p| !p.is_empty()), namespace];
        let head: Vec<&str> = parts.into_iter().flatten().collect();
        names::default_pattern(&head.join("."), service, rpc)
    }
}

/// The prefix of default patterns of the service scheme: the stack's topics read
/// `axion.graph-service....`.
pub const DEFAULT_TOPIC_PREFIX: &str = "axion";
