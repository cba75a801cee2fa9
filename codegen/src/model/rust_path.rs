//! Rust paths of prost's types as the model holds them: identifiers, not source text. Emitters
//! build tokens from the segments (and choose how the root is spelled); nothing parses them.

use std::fmt;

/// A path to a type prost generates (or `prost_types` has).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RustPath {
    /// Where the path starts.
    pub root: PathRoot,
    /// Identifiers after the root, raw ones with their `r#` (`project`, `Source`).
    pub segments: Vec<String>,
}

/// Where a [`RustPath`] starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathRoot {
    /// The module of the package that names the type; another package's types start with
    /// `super` segments (`super::super::common::v1::Actor`).
    Package,
    /// prost's well-known types (`Timestamp`, `field_descriptor_proto::Type`), which generated
    /// code names through the runtime's re-export.
    ProstTypes,
}

impl RustPath {
    /// A path from the package module.
    pub fn local(segments: Vec<String>) -> Self {
        RustPath {
            root: PathRoot::Package,
            segments,
        }
    }

    /// `self` with one more segment.
    pub fn join(&self, segment: String) -> Self {
        let mut segments = self.segments.clone();
        segments.push(segment);
        RustPath {
            root: self.root,
            segments,
        }
    }
}

/// `project::Source`, `prost_types::Timestamp`: for messages and tests, not for code.
impl fmt::Display for RustPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.root == PathRoot::ProstTypes {
            f.write_str("prost_types::")?;
        }
        f.write_str(&self.segments.join("::"))
    }
}

/// The Rust type of an rpc's request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcType {
    /// `()`: `google.protobuf.Empty`.
    Unit,
    /// A message.
    Message(RustPath),
}

impl fmt::Display for RpcType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcType::Unit => f.write_str("()"),
            RpcType::Message(path) => path.fmt(f),
        }
    }
}
