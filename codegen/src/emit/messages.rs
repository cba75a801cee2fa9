//! prost messages over protox's descriptors, naming only `axion_runtime` re-exports.

use std::collections::HashMap;

use prost_build::Module;
use prost_types::FileDescriptorProto;

use crate::error::{Error, Result};
use crate::load::OPTIONS_PROTO_NAME;
use crate::model::Package;

/// prost's code for every package, by package name, from every loaded file.
///
/// prost-build looks up every message a field names (to box recursion and derive Eq/Hash), so
/// the request holds the well-known types the packages use too; their code is dropped here
/// (prost-build maps them to `prost_types`). The files are moved in, not copied: with their
/// source info they are the largest thing the model's phase holds.
pub fn emit(
    files: Vec<FileDescriptorProto>,
    packages: &[Package],
) -> Result<HashMap<String, String>> {
    let requests = files
        .into_iter()
        .filter(|f| f.name() != OPTIONS_PROTO_NAME)
        .map(|f| (Module::from_protobuf_package_name(f.package()), f))
        .collect();
    let mut config = prost_build::Config::new();
    config
        .prost_path("::axion_runtime::prost")
        .prost_types_path("::axion_runtime::prost_types")
        .format(false);
    let mut generated = config
        .generate(requests)
        .map_err(|e| Error::Usage(format!("prost-build failed: {e}")))?;
    Ok(packages
        .iter()
        .map(|package| {
            let module = Module::from_protobuf_package_name(&package.name);
            let code = generated.remove(&module).unwrap_or_default();
            (package.name.clone(), code)
        })
        .collect())
}
