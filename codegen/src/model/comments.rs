//! Source locations and comments of one file, by descriptor path.

use std::collections::HashMap;

use prost_types::FileDescriptorProto;

use crate::error::Location;

use super::options::OptionMessage;

/// Comments and spans of one file, by descriptor path.
pub(crate) struct Comments {
    pub(super) by_path: HashMap<Vec<i32>, prost_types::source_code_info::Location>,
    pub(super) display: String,
}

impl Comments {
    pub(crate) fn new(file: &FileDescriptorProto, display: &str) -> Self {
        let by_path = file
            .source_code_info
            .iter()
            .flat_map(|s| s.location.iter())
            .map(|l| (l.path.clone(), l.clone()))
            .collect();
        Comments {
            by_path,
            display: display.to_owned(),
        }
    }

    pub(crate) fn location(&self, path: &[i32]) -> Location {
        self.span(path)
            .unwrap_or_else(|| Location::file(self.display.clone()))
    }

    pub(super) fn span(&self, path: &[i32]) -> Option<Location> {
        match self.by_path.get(path) {
            Some(l) if l.span.len() >= 2 => Some(Location {
                file: self.display.clone(),
                line: l.span[0] as u32 + 1,
                col: l.span[1] as u32 + 1,
            }),
            _ => None,
        }
    }

    /// Where an axion option of an element is set: `option (ext).field = ...` when written
    /// that way, else the whole `option (ext) = {...}`, else the element itself.
    /// `options_field` is the number of the `options` field in the element's descriptor;
    /// `option` is the element's axion option, when it has one.
    pub(super) fn option_location(
        &self,
        element: &[i32],
        options_field: i32,
        option: Option<&OptionMessage>,
        field: &str,
    ) -> Location {
        if let Some(option) = option {
            let mut path = element.to_vec();
            path.push(options_field);
            path.push(option.number as i32);
            if let Some(number) = option.field_number(field) {
                path.push(number as i32);
                if let Some(l) = self.span(&path) {
                    return l;
                }
                path.pop();
            }
            if let Some(l) = self.span(&path) {
                return l;
            }
        }
        self.location(element)
    }

    pub(super) fn docs(&self, path: &[i32]) -> Vec<String> {
        let Some(l) = self.by_path.get(path) else {
            return Vec::new();
        };
        let text = l
            .leading_comments
            .as_deref()
            .or(l.trailing_comments.as_deref())
            .unwrap_or("");
        crate::docs::doc_lines(text)
    }
}
