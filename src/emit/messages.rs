//! prost messages over protox's descriptors, naming only `axion_runtime` re-exports.

use std::collections::HashMap;

use prost_build::Module;

use crate::error::{Error, Result};
use crate::model::Package;

/// prost's code for every package, by package name.
pub fn emit(packages: &[Package]) -> Result<HashMap<String, String>> {
    let mut requests = Vec::new();
    for package in packages {
        for file in &package.files {
            requests.push((
                Module::from_protobuf_package_name(&package.name),
                file.clone(),
            ));
        }
    }
    let mut config = prost_build::Config::new();
    config
        .prost_path("::axion_runtime::prost")
        .prost_types_path("::axion_runtime::prost_types")
        .format(false);
    let generated = config
        .generate(requests)
        .map_err(|e| Error::Usage(format!("prost-build failed: {e}")))?;
    let mut by_package = HashMap::new();
    for package in packages {
        let module = Module::from_protobuf_package_name(&package.name);
        let code = generated.get(&module).cloned().unwrap_or_default();
        by_package.insert(package.name.clone(), code);
    }
    Ok(by_package)
}
