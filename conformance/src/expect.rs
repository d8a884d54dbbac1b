//! The expectations file: an implementation's known departures, one row per line
//! (`ID fail|n/a|pass|any reason`, `#` comments). A listed row must have exactly its listed verdict
//! (`any`: a row known to vary between runs, near a timing bound, is not pinned); an unlisted row
//! must not fail. Any change, in either direction, fails the run and is named.

use std::collections::BTreeMap;

use crate::report::{Row, Verdict};

/// Expected verdict (`None`: any) and reason per row.
pub type Expectations = BTreeMap<String, (Option<Verdict>, String)>;

/// Parses the file's text; `Err` names the bad line.
pub fn parse(text: &str) -> Result<Expectations, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        // Columns may be aligned with any run of spaces (as spec/README.md's example is).
        let (id, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        let (verdict, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let mut words = [verdict, reason].into_iter();
        let id = id.to_ascii_uppercase();
        let verdict = match words.next() {
            Some(w) if w.eq_ignore_ascii_case("any") => None,
            w => Some(w.and_then(Verdict::parse).ok_or(format!("line {}: want `ID fail|n/a|pass|any reason`", n + 1))?),
        };
        out.insert(id, (verdict, words.next().unwrap_or("").trim().to_string()));
    }
    Ok(out)
}

/// The differences between the rows and the expectations, in words (empty: as expected). With
/// `--only`, listed rows outside `only` are not asked for (a run of some rows keeps one file).
pub fn differences(rows: &[Row], expected: &Expectations, only: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows {
        match expected.get(&row.id) {
            Some((Some(want), reason)) if *want != row.verdict => out.push(format!(
                "{}: expected {} ({reason}), got {}: update the expectations file if this is intended",
                row.id,
                want.word(),
                row.verdict.word()
            )),
            None if row.verdict == Verdict::Fail => out.push(format!("{}: fails, and the expectations file does not list it", row.id)),
            _ => {}
        }
    }
    let selected = |id: &String| only.is_empty() || only.contains(id);
    for id in expected.keys().filter(|id| selected(id) && !rows.iter().any(|r| &r.id == *id)) {
        out.push(format!("{id}: listed in the expectations file, but no such row was run"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_in_either_direction_are_named() {
        let expected = parse("# known\nLOCK-4 fail binds 0.0.0.0\nREL-3 n/a\n").unwrap();
        let row = |id: &str, verdict| Row { id: id.into(), verdict, why: String::new() };
        assert!(differences(&[row("LOCK-4", Verdict::Fail), row("REL-3", Verdict::NotApplicable)], &expected, &[]).is_empty());
        let fixed = differences(&[row("LOCK-4", Verdict::Pass), row("REL-3", Verdict::NotApplicable)], &expected, &[]);
        assert!(fixed[0].contains("expected FAIL (binds 0.0.0.0), got pass"), "{fixed:?}");
        let new = differences(
            &[row("LOCK-4", Verdict::Fail), row("REL-3", Verdict::NotApplicable), row("LOCK-1", Verdict::Fail)],
            &expected,
            &[],
        );
        assert!(new[0].contains("LOCK-1: fails"), "{new:?}");
        // A listed row not run is a difference, unless --only left it out.
        let missing = differences(&[row("LOCK-4", Verdict::Fail)], &expected, &[]);
        assert!(missing[0].contains("REL-3: listed in the expectations file, but no such row was run"), "{missing:?}");
        assert!(differences(&[row("LOCK-4", Verdict::Fail)], &expected, &["LOCK-4".to_string()]).is_empty());
        assert!(parse("LOCK-1 maybe").is_err());
        // Aligned columns, as in spec/README.md's example.
        let aligned = parse("# ID    verdict  reason\nLOCK-4  fail     binds 0.0.0.0\nPROTO-9 n/a      ticks every 30 s\n").unwrap();
        assert_eq!(aligned["LOCK-4"], (Some(Verdict::Fail), "binds 0.0.0.0".to_string()));
        assert_eq!(aligned["PROTO-9"], (Some(Verdict::NotApplicable), "ticks every 30 s".to_string()));
        // `any`: a row that varies between runs is not pinned, but must still be run.
        let varies = parse("SHUT-2 any near its bound\n").unwrap();
        assert!(differences(&[row("SHUT-2", Verdict::Fail)], &varies, &[]).is_empty());
        assert!(differences(&[row("SHUT-2", Verdict::Pass)], &varies, &[]).is_empty());
        assert!(!differences(&[row("LOCK-1", Verdict::Pass)], &varies, &[]).is_empty());
    }
}
