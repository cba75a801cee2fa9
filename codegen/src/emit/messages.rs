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
    // prost-build looks up every message a field names (to box recursion and derive Eq/Hash),
    // so the well-known types the packages use must be in the request too; their code is
    // dropped below (prost-build maps them to `prost_types`).
    requests.extend(well_known_files(packages)?);
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

/// The built-in `google/protobuf/*.proto` files the packages import, with their imports.
fn well_known_files(
    packages: &[Package],
) -> Result<Vec<(Module, prost_types::FileDescriptorProto)>> {
    let mut names: Vec<&str> = packages
        .iter()
        .flat_map(|p| p.files.iter())
        .flat_map(|f| f.dependency.iter())
        .map(String::as_str)
        .filter(|d| d.starts_with("google/protobuf/"))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut compiler =
        protox::Compiler::with_file_resolver(protox::file::GoogleFileResolver::new());
    compiler.include_imports(true);
    for name in names {
        compiler
            .open_file(name)
            .map_err(|e| Error::Usage(format!("internal error: built-in {name}: {e}")))?;
    }
    Ok(compiler
        .file_descriptor_set()
        .file
        .into_iter()
        .map(|f| (Module::from_protobuf_package_name(f.package()), f))
        .collect())
}
