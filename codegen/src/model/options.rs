//! Reading axion's custom options (`axion/options.proto`) from the descriptor pool.

use prost_types::FileDescriptorProto;
use protox::prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};

use crate::error::{Error, Result};

use super::comments::Comments;
use super::scheme::PatternScheme;

/// Custom option extensions, when the input imports `axion/options.proto`.
pub(super) struct Extensions {
    pub(super) file: Option<protox::prost_reflect::ExtensionDescriptor>,
    pub(super) service: Option<protox::prost_reflect::ExtensionDescriptor>,
    pub(super) method: Option<protox::prost_reflect::ExtensionDescriptor>,
    pub(super) pool: DescriptorPool,
}

impl Extensions {
    pub(super) fn new(pool: &DescriptorPool) -> Self {
        Extensions {
            file: pool.get_extension_by_name("axion.file"),
            service: pool.get_extension_by_name("axion.service"),
            method: pool.get_extension_by_name("axion.method"),
            pool: pool.clone(),
        }
    }

    pub(super) fn get(
        ext: &Option<protox::prost_reflect::ExtensionDescriptor>,
        options: &DynamicMessage,
    ) -> Option<DynamicMessage> {
        let ext = ext.as_ref()?;
        if !options.has_extension(ext) {
            return None;
        }
        options.get_extension(ext).as_message().cloned()
    }

    pub(super) fn file_options(&self, file: &str) -> Option<DynamicMessage> {
        let f = self.pool.get_file_by_name(file)?;
        Self::get(&self.file, &f.options())
    }
    pub(super) fn service_options(&self, full_name: &str) -> Option<DynamicMessage> {
        let s = self.pool.get_service_by_name(full_name)?;
        Self::get(&self.service, &s.options())
    }
    pub(super) fn method_options(&self, service: &str, method: &str) -> Option<DynamicMessage> {
        let s = self.pool.get_service_by_name(service)?;
        let m = s.methods().find(|m| m.name() == method)?;
        Self::get(&self.method, &m.options())
    }
}

/// The file's `(axion.file).pattern_scheme`, when it sets one.
pub(super) fn file_scheme(
    ext: &Extensions,
    file: &FileDescriptorProto,
    comments: &Comments,
) -> Result<Option<PatternScheme>> {
    let Some(number) = ext
        .file_options(file.name())
        .and_then(|o| opt_enum(&o, "pattern_scheme"))
    else {
        return Ok(None);
    };
    match number {
        0 => Ok(None),
        1 => Ok(Some(PatternScheme::Service)),
        2 => Ok(Some(PatternScheme::Package)),
        other => Err(Error::at(
            comments.option_location(&[], 8, ext.file.as_ref(), "pattern_scheme"),
            format!(
                "(axion.file).pattern_scheme {other} is not a known scheme (1 service, 2 package)"
            ),
        )),
    }
}

pub(super) fn opt_enum(msg: &DynamicMessage, field: &str) -> Option<i32> {
    let fd = msg.descriptor().get_field_by_name(field)?;
    if !msg.has_field(&fd) {
        return None;
    }
    msg.get_field(&fd).as_enum_number()
}

pub(super) fn opt_str(msg: &DynamicMessage, field: &str) -> Option<String> {
    let fd = msg.descriptor().get_field_by_name(field)?;
    if !msg.has_field(&fd) {
        return None;
    }
    msg.get_field(&fd).as_str().map(str::to_owned)
}

pub(super) fn opt_bool(msg: &DynamicMessage, field: &str) -> Option<bool> {
    let fd = msg.descriptor().get_field_by_name(field)?;
    if !msg.has_field(&fd) {
        return None;
    }
    msg.get_field(&fd).as_bool()
}

pub(super) fn opt_u32(msg: &DynamicMessage, field: &str) -> Option<u32> {
    let fd = msg.descriptor().get_field_by_name(field)?;
    msg.get_field(&fd).as_u32()
}

pub(super) fn str_list(msg: &DynamicMessage, field: &str) -> Vec<String> {
    let Some(fd) = msg.descriptor().get_field_by_name(field) else {
        return Vec::new();
    };
    msg.get_field(&fd)
        .as_list()
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
