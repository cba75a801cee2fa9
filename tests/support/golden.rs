//! Golden files, one way for all of them: a mismatch panics with a unified diff of each file
//! that differs, and `AXION_GEN_BLESS=1` rewrites the goldens instead (review with `git
//! diff`). Under CI (`CI` set) blessing is refused: the goldens are compared, never rewritten.

use std::collections::BTreeMap;
use std::path::Path;

/// Lines of diff shown per file before it is cut short.
const DIFF_LINES: usize = 120;

/// Whether this run rewrites the goldens.
pub fn bless() -> bool {
    let asked = std::env::var_os("AXION_GEN_BLESS").is_some_and(|v| v == "1");
    if asked && std::env::var_os("CI").is_some() {
        eprintln!("AXION_GEN_BLESS=1 ignored under CI: the goldens are compared");
        return false;
    }
    asked
}

/// Every file below `dir` (relative `/`-separated path → bytes); empty if `dir` is missing.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A unified diff of `golden` against `fresh`, cut after [`DIFF_LINES`] lines.
fn diff(name: &str, golden: &[u8], fresh: &[u8]) -> String {
    let (golden, fresh) = (
        String::from_utf8_lossy(golden),
        String::from_utf8_lossy(fresh),
    );
    let text = similar::TextDiff::from_lines(golden.as_ref(), fresh.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("golden {name}"), &format!("fresh {name}"))
        .to_string();
    let mut lines = text.lines();
    let mut shown: Vec<&str> = lines.by_ref().take(DIFF_LINES).collect();
    let rest = lines.count();
    if rest > 0 {
        shown.push("...");
        return format!("{}\n({rest} more diff lines)", shown.join("\n"));
    }
    shown.join("\n")
}

/// `golden_dir` holds exactly `fresh` (same files, same bytes); with [`bless`] it is made to.
/// `how` says how the goldens are made, for the failure message.
pub fn assert_tree(golden_dir: &Path, fresh: &BTreeMap<String, Vec<u8>>, how: &str) {
    if bless() {
        std::fs::remove_dir_all(golden_dir).ok();
        for (rel, bytes) in fresh {
            let path = golden_dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        return;
    }
    let golden = read_tree(golden_dir);
    let mut problems = Vec::new();
    for rel in golden.keys().filter(|k| !fresh.contains_key(*k)) {
        problems.push(format!("{rel}: in the goldens, no longer generated"));
    }
    for (rel, bytes) in fresh {
        match golden.get(rel) {
            None => problems.push(format!("{rel}: generated, not in the goldens")),
            Some(g) if g != bytes => problems.push(diff(rel, g, bytes)),
            Some(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} differs from {how}; AXION_GEN_BLESS=1 rewrites it (then review git diff):\n\n{}",
        golden_dir.display(),
        problems.join("\n\n")
    );
}

/// The golden file at `path` holds `fresh`; with [`bless`] it is made to.
pub fn assert_file(path: &Path, fresh: &[u8]) {
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, fresh).unwrap();
        return;
    }
    let golden = std::fs::read(path).unwrap_or_default();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        golden == fresh,
        "{} changed; AXION_GEN_BLESS=1 rewrites it (then review git diff):\n\n{}",
        path.display(),
        diff(&name, &golden, fresh)
    );
}
