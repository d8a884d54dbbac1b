//! The spec and the tests name each other: every invariant in `spec/` names at least one test,
//! and every test it names exists (with its ID in its name or doc comment).

use std::collections::BTreeMap;
use std::path::Path;

/// Invariant ID → the `file::test` references listed under it, from every spec file with
/// `### ID — title` headings.
fn invariants() -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(root.join("spec")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("### ") {
                current = rest.split_whitespace().next().filter(|id| id.contains('-')).map(str::to_string);
                if let Some(id) = &current {
                    assert!(out.insert(id.clone(), Vec::new()).is_none(), "{id} is defined twice");
                }
                continue;
            }
            if line.starts_with("## ") {
                current = None;
            }
            if let Some(id) = &current {
                let is_test = |r: &&str| (r.contains("::") && r.contains(".rs")) || r.ends_with(".sh") || r.ends_with(".py");
                for reference in line.split('`').skip(1).step_by(2).filter(is_test) {
                    out.get_mut(id).unwrap().push(reference.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn every_invariant_names_existing_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let all = invariants();
    assert!(all.len() >= 20, "found only {} invariants", all.len());
    for (id, refs) in &all {
        assert!(!refs.is_empty(), "{id} names no test");
        for reference in refs {
            // A script that is a test suite of its own (a model check, an independent client).
            let Some((file, path)) = reference.split_once("::") else {
                assert!(root.join(reference).is_file(), "{id}: no file {reference}");
                continue;
            };
            let name = path.rsplit("::").next().unwrap();
            let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|_| panic!("{id}: no file {file}"));
            if path == "tests" {
                assert!(text.contains("mod tests"), "{id}: {file} has no tests module");
            } else {
                let at = text.find(&format!("fn {name}(")).unwrap_or_else(|| panic!("{id}: {file} has no test `{name}`"));
                // Tests under tests/ name the ID they enforce: in their name or their doc comment.
                if file.starts_with("tests/") {
                    let before = &text[text[..at].rfind("\n}").unwrap_or(0)..at];
                    let short = id.to_lowercase().replace('-', "");
                    assert!(name.starts_with(&short) || before.contains(id.as_str()), "{id}: `{file}::{name}` does not name {id}");
                }
            }
        }
    }
}
