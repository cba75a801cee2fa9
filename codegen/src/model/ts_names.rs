//! ts-proto's names of types, as the TypeScript contracts import them.

/// ts-proto's name of a type declared at `path` (outermost message first): each name
/// camel-cased when it has `_`, joined by `_`; `Date` and `Function` get a `Message` suffix.
pub(super) fn ts_proto_type(path: &[String]) -> String {
    let camel = |s: &String| {
        if !s.contains('_') {
            return s.clone();
        }
        let has_lower = s.chars().any(|c| c.is_ascii_lowercase());
        s.split('_')
            .enumerate()
            .map(|(i, w)| {
                let w = if has_lower {
                    w.to_owned()
                } else {
                    w.to_lowercase()
                };
                if i == 0 {
                    w
                } else {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                }
            })
            .collect::<String>()
    };
    let name = path.iter().map(camel).collect::<Vec<_>>().join("_");
    if matches!(name.as_str(), "Date" | "Function") {
        format!("{name}Message")
    } else {
        name
    }
}

#[cfg(test)]
mod ts_name_tests {
    #[test]
    fn ts_proto_type_names() {
        let p =
            |v: &[&str]| super::ts_proto_type(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&["Project", "Source"]), "Project_Source");
        assert_eq!(p(&["my_msg"]), "myMsg");
        assert_eq!(p(&["MY_MSG"]), "myMsg");
        assert_eq!(p(&["Date"]), "DateMessage");
        assert_eq!(p(&["Date", "Inner"]), "Date_Inner");
    }
}
