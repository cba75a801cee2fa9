//! prost messages over protox's descriptors, naming only `axion_runtime` re-exports.

use std::collections::HashMap;

use prost_build::Module;

use crate::error::{Error, Result};
use crate::model::Model;

/// prost's code for every package, by package name.
pub fn emit(model: &Model) -> Result<HashMap<String, String>> {
    let mut requests = Vec::new();
    for package in &model.packages {
        for file in &package.files {
            requests.push((
                Module::from_protobuf_package_name(&package.name),
                file.clone(),
            ));
        }
    }
    // prost-build looks up every message a field names (to box recursion and derive Eq/Hash),
    // so the well-known types the packages use must be in the request too; their code is
    // dropped below (prost-build maps them to `prost_types`).
    requests.extend(
        model
            .well_known_files
            .iter()
            .map(|f| (Module::from_protobuf_package_name(f.package()), f.clone())),
    );
    let mut config = prost_build::Config::new();
    config
        .prost_path("::axion_runtime::prost")
        .prost_types_path("::axion_runtime::prost_types")
        .format(false);
    let generated = config
        .generate(requests)
        .map_err(|e| Error::Usage(format!("prost-build failed: {e}")))?;
    let mut by_package = HashMap::new();
    for package in &model.packages {
        let module = Module::from_protobuf_package_name(&package.name);
        let code = generated.get(&module).cloned().unwrap_or_default();
        by_package.insert(package.name.clone(), code);
    }
    Ok(by_package)
}
