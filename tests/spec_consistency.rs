//! The spec and the tests name each other: every invariant in `spec/` names at least one test,
//! and every test it names exists (with its ID in its name or doc comment); and every invariant
//! names at least one test in the suites that race and kill real processes or explore every
//! input or interleaving (issue 3): a proptest, a loom model, a fuzz target, a row the
//! conformance runner really checks (`conformance/src/scenarios/*.rs`), or the spin model.

use std::collections::BTreeMap;
use std::path::Path;

/// Invariant ID → the `file::test` references listed under it, from every spec file with
/// `### ID — title` headings.
fn invariants() -> BTreeMap<String, Vec<String>> {
    sections().into_iter().map(|(id, text)| (id, references(&text))).collect()
}

/// The `file::test` (or script, or fuzz target) references in a section's text.
fn references(text: &str) -> Vec<String> {
    let is_test = |r: &&str| {
        (r.contains("::") && r.contains(".rs")) || r.ends_with(".sh") || r.ends_with(".py") || r.starts_with("fuzz/fuzz_targets/")
    };
    text.split('`').skip(1).step_by(2).filter(is_test).map(str::to_string).collect()
}

/// Invariant ID → the text under its `### ID — title` heading, from every spec file.
fn sections() -> BTreeMap<String, String> {
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
                    assert!(out.insert(id.clone(), String::new()).is_none(), "{id} is defined twice");
                }
                continue;
            }
            if line.starts_with("## ") {
                current = None;
            }
            if let Some(id) = &current {
                let text: &mut String = out.get_mut(id).unwrap();
                text.push_str(line);
                text.push('\n');
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
            // A script or fuzz target that is a test suite of its own (a model check, an independent client).
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

/// Whether `reference` (a `file::test`, script or fuzz target named by the spec) is a test of one
/// of the suites of issue 3 that would fail if the invariant broke: a proptest state machine over
/// real processes (`tests/it/prop_*.rs`, `tests/prop_verify.rs`), a proptest in the crate (a `proptest!` test: its
/// parameters are `x in strategy`), a loom model (`src/**/loom_tests.rs`), a fuzz target, or the spin
/// model of the operations protocol (`spec/model/check.sh`).
fn is_suite_test(root: &Path, reference: &str) -> bool {
    let Some((file, path)) = reference.split_once("::") else {
        return reference.starts_with("fuzz/fuzz_targets/") || reference == "spec/model/check.sh";
    };
    let loom_model = file.starts_with("src/") && file.ends_with("/loom_tests.rs");
    let state_machine = file.starts_with("tests/") && file.rsplit('/').next().is_some_and(|f| f.starts_with("prop_") && f.ends_with(".rs"));
    if loom_model || state_machine {
        return true;
    }
    let name = path.rsplit("::").next().unwrap();
    let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
    text.find(&format!("fn {name}(")).is_some_and(|at| text[at..].split(')').next().unwrap_or("").contains(" in "))
}

/// The rows the conformance runner checks, as (scenario file, ID): `ctx.check("ID", ...)` or a
/// passing `ctx.record("ID", Verdict::Pass, ...)` in `conformance/src/scenarios/*.rs`, as opposed to
/// rows it reports as not applicable.
fn conformance_rows(root: &Path) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let dir = root.join("conformance/src/scenarios");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = format!("conformance/src/scenarios/{}", path.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&path).unwrap();
        for call in ["ctx.check(", "ctx.record("] {
            for (at, _) in text.match_indices(call) {
                let Some(args) = text[at + call.len()..].trim_start().strip_prefix('"') else {
                    continue; // an ID held in a variable: such rows are named by literal elsewhere
                };
                let id = args.split('"').next().unwrap_or_default();
                let passes = call.contains("check") || args.split(')').next().is_some_and(|a| a.contains("Verdict::Pass"));
                if passes && id.contains('-') {
                    rows.push((file.clone(), id.to_string()));
                }
            }
        }
    }
    rows
}

/// The runner's scenario file a section names for its row (`` `conformance/src/scenarios/X.rs` row ID ``).
fn named_row_file(text: &str, id: &str) -> Option<String> {
    let suffix = format!("` row {id}");
    let at = text.find(&suffix)?;
    let start = text[..at].rfind('`')? + 1;
    Some(text[start..at].to_string())
}

/// Issue 3's "done when": every invariant names at least one test in the racing, model, fuzz or
/// conformance suites (a row the runner really checks: `conformance/src/scenarios/<file>.rs` row ID).
#[test]
fn every_invariant_names_a_test_in_the_property_model_fuzz_or_conformance_suites() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rows = conformance_rows(root);
    assert!(rows.len() >= 15, "found only {} conformance rows: {rows:?}", rows.len());
    let mut missing = Vec::new();
    for (id, text) in sections() {
        let named = named_row_file(&text, &id);
        let named_row = named.is_some();
        if let Some(file) = named {
            assert!(rows.contains(&(file.clone(), id.clone())), "{id} names `{file}` row {id}, but that file does not check a row {id}");
        }
        if !named_row && !references(&text).iter().any(|r| is_suite_test(root, r)) {
            missing.push(id);
        }
    }
    assert!(missing.is_empty(), "these invariants name no proptest, loom, fuzz, model or conformance test: {missing:?}");
}

/// The names `file` declares as modules (`mod name;` or `pub mod name;`, one a line).
fn declared_modules(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let declaration = |line: &str| line.trim().trim_start_matches("pub ").strip_prefix("mod ")?.strip_suffix(';').map(str::to_string);
    text.lines().filter_map(declaration).collect()
}

/// The spec names tests by file (`tests/it/<topic>.rs::name`), and a file of the one test binary
/// that no `mod` declares is never compiled: its tests would be named, found, and never run. So
/// every file and folder under `tests/it/` is a module of its folder's `main.rs` or `mod.rs`.
#[test]
fn every_file_of_the_test_binary_is_one_of_its_modules() {
    let mut folders = vec![(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it"), "main.rs")];
    let mut checked = 0;
    while let Some((folder, root)) = folders.pop() {
        let declared = declared_modules(&folder.join(root));
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let module = if path.is_dir() {
                folders.push((path.clone(), "mod.rs"));
                name
            } else if let Some(stem) = name.strip_suffix(".rs").filter(|_| name != root) {
                stem.to_string()
            } else {
                continue; // the folder's own module file, or not Rust (proptest's regressions)
            };
            assert!(declared.contains(&module), "{}: no `mod {module};` in {}/{root}", path.display(), folder.display());
            checked += 1;
        }
    }
    assert!(checked >= 15, "found only {checked} modules under tests/it/");
}
