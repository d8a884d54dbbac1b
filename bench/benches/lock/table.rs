//! The figures of a run: median and spread of each sample, the goal, the table on stdout and the
//! JSON file.

use std::path::Path;

/// Median and spread of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub n: usize,
}

pub fn stats(mut xs: Vec<f64>) -> Stats {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    Stats { median: at(0.5), p10: at(0.1), p90: at(0.9), n: xs.len() }
}

pub struct Row {
    pub name: String,
    pub unit: &'static str,
    pub gateway: Stats,
    pub baseline: Stats,
    pub goal: Option<Goal>,
}

#[derive(Clone, Copy)]
pub enum Goal {
    /// Gateway median within this ratio of the baseline median.
    Ratio(f64),
    /// Gateway median below this absolute value (in the row's unit).
    Below(f64),
}

impl Row {
    /// Ratio of the medians; None when the baseline's median is 0.
    fn ratio(&self) -> Option<f64> {
        (self.baseline.median > 0.0).then(|| self.gateway.median / self.baseline.median)
    }
    fn met(&self) -> Option<bool> {
        self.goal.map(|g| match g {
            Goal::Ratio(r) => self.ratio().is_some_and(|x| x <= r),
            Goal::Below(x) => self.gateway.median < x,
        })
    }
    fn goal_text(&self) -> String {
        match self.goal {
            Some(Goal::Ratio(r)) => format!("≤ {r}x"),
            Some(Goal::Below(x)) => format!("< {x} {}", self.unit),
            None => "-".into(),
        }
    }
}

/// Prints the table and writes `target/bench/lock.json`.
pub fn report(rows: &[Row], profile_dir: &Path, runs: usize, tcp_sockets: usize) {
    let fmt = |s: &Stats| format!("{:.2} ({:.2}–{:.2})", s.median, s.p10, s.p90);
    println!();
    println!("{:<42} {:>26} {:>26} {:>7} {:>10} {:>5}", "figure (median, p10–p90)", "gateway", "min_binder", "ratio", "goal", "met");
    for row in rows {
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        let name = if row.unit.is_empty() { row.name.clone() } else { format!("{} [{}]", row.name, row.unit) };
        let ratio = row.ratio().map_or("-".to_string(), |r| format!("{r:.2}x"));
        println!("{:<42} {:>26} {:>26} {:>7} {:>10} {:>5}", name, fmt(&row.gateway), fmt(&row.baseline), ratio, row.goal_text(), met);
    }
    let json = serde_json::json!({
        "runs": runs,
        "tcpSocketsAtStart": tcp_sockets,
        "loadAverage": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "figures": rows.iter().map(|r| serde_json::json!({
            "name": r.name,
            "unit": r.unit,
            "gateway": {"median": r.gateway.median, "p10": r.gateway.p10, "p90": r.gateway.p90, "n": r.gateway.n},
            "baseline": {"median": r.baseline.median, "p10": r.baseline.p10, "p90": r.baseline.p90, "n": r.baseline.n},
            "ratio": r.ratio(),
            "goal": r.goal_text(),
            "met": r.met(),
        })).collect::<Vec<_>>(),
    });
    let dir = profile_dir.parent().unwrap().join("bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("lock.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nwritten to {}", path.display());
}
