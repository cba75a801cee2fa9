//! Proto comments → Rust doc lines that rustdoc renders and doctest never runs.

/// Doc lines from a proto comment: common indentation removed, and indented or fenced code
/// wrapped in a ```` ```text ```` fence so doctests do not try to compile it.
pub fn doc_lines(comment: &str) -> Vec<String> {
    let lines: Vec<&str> = comment.trim_end().lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| {
            if l.len() >= indent {
                l[indent..].trim_end().to_owned()
            } else {
                l.trim().to_owned()
            }
        })
        .collect();
    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    let code_like = out
        .iter()
        .any(|l| l.starts_with("    ") || l.starts_with('\t') || l.trim_start().starts_with("```"));
    if code_like {
        let body = out
            .into_iter()
            .map(|l| l.replace("```", "'''"))
            .collect::<Vec<_>>();
        let mut fenced = vec!["```text".to_owned()];
        fenced.extend(body);
        fenced.push("```".to_owned());
        return fenced;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::doc_lines;

    #[test]
    fn plain_comment() {
        assert_eq!(
            doc_lines(" Creates a project.\n Second line.\n"),
            vec!["Creates a project.", "Second line."]
        );
    }

    #[test]
    fn code_is_fenced() {
        let lines = doc_lines(" Example:\n\n     let x = 1;\n");
        assert_eq!(lines.first().map(String::as_str), Some("```text"));
        assert_eq!(lines.last().map(String::as_str), Some("```"));
    }
}
