//! The table being filled (per invariant, every check's verdict and why) and its outputs: the
//! Markdown table for people, JSON and JUnit XML for machines.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

/// The outcome of one check or row; ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The implementation meets the invariant.
    Pass,
    /// Not judged (not claimed, not observable from outside).
    NotApplicable,
    /// The implementation departs from the invariant.
    Fail,
}

impl Verdict {
    /// The word in the table and in the expectations file.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::NotApplicable => "n/a",
            Verdict::Fail => "FAIL",
        }
    }

    /// Parses a word of the expectations file (`pass`, `fail`, `n/a`, any case).
    pub fn parse(word: &str) -> Option<Verdict> {
        match word.to_ascii_lowercase().as_str() {
            "pass" => Some(Verdict::Pass),
            "fail" => Some(Verdict::Fail),
            "n/a" | "na" => Some(Verdict::NotApplicable),
            _ => None,
        }
    }
}

/// A check's result: `Err(why)` fails the invariant.
pub type Check = Result<String, String>;

/// Per invariant, every verdict recorded and why.
#[derive(Default)]
pub struct Report {
    rows: BTreeMap<String, Vec<(Verdict, String)>>,
    /// Why the scenarios stopped early, if they did (the implementation did not start, an interruption).
    pub aborted: Option<String>,
}

impl Report {
    /// Records one verdict for `id`.
    pub fn record(&mut self, id: &str, verdict: Verdict, why: impl Into<String>) {
        self.rows.entry(id.to_string()).or_default().push((verdict, why.into()));
    }

    /// Records a check's result for `id`.
    pub fn check(&mut self, id: &str, result: &Check) {
        match result {
            Ok(why) => self.record(id, Verdict::Pass, why.clone()),
            Err(why) => self.record(id, Verdict::Fail, why.clone()),
        }
    }

    /// The row of `id`: the worst verdict, and why (a failure shows its failures only; n/a also
    /// what did pass). `None` if nothing was recorded.
    pub fn row(&self, id: &str) -> Option<(Verdict, String)> {
        let results = self.rows.get(id)?;
        let verdict = results.iter().map(|(v, _)| *v).max().unwrap_or(Verdict::NotApplicable);
        let shown = |v: &Verdict| *v == verdict || verdict == Verdict::NotApplicable;
        let why: Vec<&str> = results.iter().filter(|(v, _)| shown(v)).map(|(_, w)| w.as_str()).collect();
        Some((verdict, why.join("; ")))
    }

    /// Every id recorded.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.rows.keys()
    }
}

/// One final row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The invariant ID.
    pub id: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why, in words.
    pub why: String,
}

/// Counts of passed, failed and skipped (n/a) rows.
pub fn counts(rows: &[Row]) -> (usize, usize, usize) {
    let n = |v| rows.iter().filter(|r| r.verdict == v).count();
    (n(Verdict::Pass), n(Verdict::Fail), n(Verdict::NotApplicable))
}

/// Text safe for one table cell and a terminal: control characters escaped, `|` escaped.
pub fn cell(text: &str) -> String {
    text.chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect::<String>()
        .replace('|', "\\|")
}

/// The Markdown table and the summary line.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| invariant | result | why |\n|---|---|---|\n");
    for row in rows {
        out.push_str(&format!("| {} | {} | {} |\n", row.id, row.verdict.word(), cell(&row.why)));
    }
    let (passed, failed, na) = counts(rows);
    out.push_str(&format!("\n(n/a rows are counted as skipped)\nconformance: {passed} passed, {failed} failed, {na} skipped\n"));
    out
}

/// The run as JSON: subject, claims, seed, duration, rows and counts.
pub fn json(rows: &[Row], subject: &str, claims: &[String], seed: u64, took: Duration) -> String {
    let (passed, failed, skipped) = counts(rows);
    let rows: Vec<_> = rows.iter().map(|r| json!({"id": r.id, "result": r.verdict.word().to_ascii_lowercase(), "why": r.why})).collect();
    let doc = json!({
        "subject": subject, "claims": claims, "seed": seed, "seconds": took.as_secs_f64(),
        "passed": passed, "failed": failed, "skipped": skipped, "rows": rows,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Escapes text for XML attributes and content (control characters other than tab and newline dropped).
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The run as JUnit XML: one test case per row, n/a rows skipped.
pub fn junit(rows: &[Row], took: Duration) -> String {
    let (_, failed, skipped) = counts(rows);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"gateway-conformance\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        rows.len(),
        took.as_secs_f64()
    );
    for row in rows {
        let name = format!("<testcase classname=\"conformance\" name=\"{}\"", xml(&row.id));
        match row.verdict {
            Verdict::Pass => out.push_str(&format!("{name}><system-out>{}</system-out></testcase>\n", xml(&row.why))),
            Verdict::NotApplicable => out.push_str(&format!("{name}><skipped message=\"{}\"/></testcase>\n", xml(&row.why))),
            Verdict::Fail => out.push_str(&format!("{name}><failure message=\"{}\"/></testcase>\n", xml(&row.why))),
        }
    }
    out.push_str("</testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_its_worst_verdict_and_only_its_failures() {
        let mut report = Report::default();
        report.check("LOCK-1", &Ok("good".into()));
        report.check("LOCK-1", &Err("bad".into()));
        assert_eq!(report.row("LOCK-1"), Some((Verdict::Fail, "bad".to_string())));
        assert_eq!(report.row("LOCK-2"), None);
    }

    #[test]
    fn outputs_escape_what_they_carry() {
        let rows = vec![Row { id: "X-1".into(), verdict: Verdict::Fail, why: "a|b\u{1b}[31m <&>".into() }];
        assert!(table(&rows).contains("a\\|b\\u{1b}[31m <&>"));
        assert!(junit(&rows, Duration::ZERO).contains("a|b[31m &lt;&amp;&gt;"));
        assert!(json(&rows, "t", &[], 1, Duration::ZERO).contains("\"result\": \"fail\""));
    }
}
