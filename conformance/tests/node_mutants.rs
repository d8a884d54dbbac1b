//! The runner proven by mutants of the Node.js port (issue 11, item 2): the protocol and front-door
//! rows PROTO-1 to PROTO-9, PROTO-13, PROTO-14, DOOR-2 to DOOR-6, and OPS-1, OPS-9 and CLI-2.
//! `mutants/node_defects.json` lists one-defect edits of `ports/node/`; each mutant is a copy of the
//! port in a scratch directory with exactly one edit (whose text must occur exactly once, so a
//! change of the port cannot silently turn a mutant into the port itself). The runner, with the
//! port's claims and `--only` the defect's rows, must exit 1 and FAIL each of them for a reason of
//! its own (not a knock-on of an instance that did not start). The unchanged copy passes the same
//! rows, so every failure is the defect's. A runner change that lets a mutant pass fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use gateway_harness::scratch::Scratch;
use serde_json::Value;

/// The rows a mutant must exist for: every protocol, front-door, holder and usage row the runner
/// judges on the Node port's claims (the lock rows are `tests/mutants.rs`'s).
const REQUIRED_ROWS: [&str; 19] = [
    "PROTO-1", "PROTO-2", "PROTO-3", "PROTO-4", "PROTO-5", "PROTO-6", "PROTO-7", "PROTO-8", "PROTO-9", "PROTO-13", "PROTO-14", "DOOR-2",
    "DOOR-3", "DOOR-4", "DOOR-5", "DOOR-6", "OPS-1", "OPS-9", "CLI-2",
];

/// The bound of every wait of the runner: a mutant that stays silent (a refusal that never comes, an
/// instance that never exits) costs this once per check instead of the default 10 s. The port answers
/// everything else within milliseconds; the unchanged copy passes with it.
const DEADLINE: &str = "3s";

/// Runners at once (CI has 2 cores; the runner's own thresholds are judged on the same machine).
const RUNNERS: usize = 2;

/// One edit: `find`, exactly once in `file` (under `ports/node/`), becomes `replace`.
struct Defect {
    name: String,
    defect: String,
    rows: Vec<String>,
    file: String,
    find: String,
    replace: String,
}

/// `mutants/node_defects.json`: the template (`{dir}` is the port's copy), the claims, the defects.
struct Plan {
    template: String,
    claims: Vec<String>,
    defects: Vec<Defect>,
}

fn text(v: &Value, field: &str, what: &str) -> String {
    v[field].as_str().unwrap_or_else(|| panic!("node_defects.json: {what} has no string `{field}`")).to_string()
}

fn strings(v: &Value, field: &str, what: &str) -> Vec<String> {
    let list = v[field].as_array().unwrap_or_else(|| panic!("node_defects.json: {what} has no list `{field}`"));
    list.iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("node_defects.json: {what}.{field}: {s} is not a string")).to_string())
        .collect()
}

fn plan() -> Plan {
    let path = manifest_dir().join("mutants/node_defects.json");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let defects = v["defects"].as_array().unwrap_or_else(|| panic!("node_defects.json: no list `defects`"));
    let defects = defects
        .iter()
        .map(|d| {
            let name = text(d, "name", "a defect");
            Defect {
                defect: text(d, "defect", &name),
                rows: strings(d, "rows", &name),
                file: text(d, "file", &name),
                find: text(d, "find", &name),
                replace: text(d, "replace", &name),
                name,
            }
        })
        .collect();
    Plan { template: text(&v, "template", "the file"), claims: strings(&v, "claims", "the file"), defects }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node_port() -> PathBuf {
    manifest_dir().join("../ports/node")
}

/// Copies the directory `from` into `to` (files and folders; the port has no links).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        }
    }
}

/// Applies `defect` to the port's copy in `dir`; an error names the defect and how often its text occurs.
fn apply(dir: &Path, defect: &Defect) -> Result<(), String> {
    let path = dir.join(&defect.file);
    let source = std::fs::read_to_string(&path).map_err(|e| format!("mutant {}: {}: {e}", defect.name, defect.file))?;
    match source.matches(defect.find.as_str()).count() {
        1 => std::fs::write(&path, source.replacen(defect.find.as_str(), &defect.replace, 1))
            .map_err(|e| format!("mutant {}: write {}: {e}", defect.name, path.display())),
        n => Err(format!(
            "mutant {}: the text to find occurs {n} times in ports/node/{}, want exactly once (did the port change? update \
             conformance/mutants/node_defects.json): {:?}",
            defect.name, defect.file, defect.find
        )),
    }
}

/// A runner slot, released when dropped (at most [`RUNNERS`] runners at once in this binary).
struct Slot;

static BUSY: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

impl Slot {
    fn take() -> Slot {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= RUNNERS {
            busy = FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        FREED.notify_one();
    }
}

/// A run of the runner: its exit code, each row's (id, result, why), its output, how long it took.
struct Outcome {
    code: i32,
    rows: Vec<(String, String, String)>,
    output: String,
    seconds: f64,
}

impl Outcome {
    fn failed(&self) -> Vec<&str> {
        self.rows.iter().filter(|(_, result, _)| result == "fail").map(|(id, _, _)| id.as_str()).collect()
    }
}

/// Runs the runner on the port's copy in `dir` with the plan's claims and `--only rows`.
fn run_runner(plan: &Plan, dir: &Path, rows: &[&str]) -> Outcome {
    let template = plan.template.replace("{dir}", &dir.display().to_string());
    let only = rows.join(",");
    let _slot = Slot::take();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-conformance"))
        .arg(&template)
        .args(&plan.claims)
        .args(["--deadline", DEADLINE, "--only", &only, "--json"])
        .output()
        .expect("run gateway-conformance");
    let seconds = start.elapsed().as_secs_f64();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON output ({e}): {output}"));
    let field = |r: &Value, f: &str| r[f].as_str().unwrap_or("").to_string();
    let rows = json["rows"].as_array().into_iter().flatten().map(|r| (field(r, "id"), field(r, "result"), field(r, "why"))).collect();
    Outcome { code: out.status.code().unwrap_or(-1), rows, output, seconds }
}

/// Whether the runner caught the mutant: exit 1, and every row of the defect FAILED for its own reason.
fn judge(defect: &Defect, outcome: &Outcome) -> Result<String, String> {
    let name = &defect.name;
    if outcome.code != 1 {
        return Err(format!("mutant {name} ({}): the runner exited {}, want 1\n{}", defect.defect, outcome.code, outcome.output));
    }
    for id in &defect.rows {
        let row = outcome.rows.iter().find(|(r, _, _)| r == id);
        match row {
            Some((_, result, why)) if result == "fail" && !why.contains("knock-on") => {}
            Some((_, result, why)) => {
                return Err(format!("mutant {name} ({}): {id} {result}: {why}; want FAIL for the defect itself", defect.defect))
            }
            None => return Err(format!("mutant {name}: no row {id} in the output\n{}", outcome.output)),
        }
    }
    let why: Vec<&str> = outcome.rows.iter().filter(|(id, _, _)| defect.rows.contains(id)).map(|(_, _, why)| why.as_str()).collect();
    Ok(format!("{name} ({}): {} FAILED in {:.1} s: {}", defect.defect, defect.rows.join(", "), outcome.seconds, why.join("; ")))
}

/// Runs one mutant in a scratch directory of its own (removed after the run).
fn mutant(plan: &Plan, defect: &Defect) -> Result<String, String> {
    let scratch = Scratch::new("node-mutant").map_err(|e| format!("mutant {}: scratch directory: {e}", defect.name))?;
    let dir = scratch.path().join("node");
    copy_dir(&node_port(), &dir);
    apply(&dir, defect)?;
    let rows: Vec<&str> = defect.rows.iter().map(String::as_str).collect();
    judge(defect, &run_runner(plan, &dir, &rows))
}

/// The file is well-formed, every row of [`REQUIRED_ROWS`] has a mutant, every edit applies exactly
/// once to today's port, and the claims are the ones `ports/node/test.sh` gives the runner.
#[test]
fn every_node_defect_applies_once_and_the_rows_are_covered() {
    let plan = plan();
    let names: BTreeSet<&str> = plan.defects.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names.len(), plan.defects.len(), "two defects share a name");
    let covered: BTreeSet<&str> = plan.defects.iter().flat_map(|d| d.rows.iter().map(String::as_str)).collect();
    let missing: Vec<&str> = REQUIRED_ROWS.iter().copied().filter(|r| !covered.contains(r)).collect();
    assert!(missing.is_empty(), "rows without a Node mutant: {missing:?}");
    let scratch = Scratch::new("node-mutant-apply").expect("scratch directory");
    let errors: Vec<String> = plan
        .defects
        .iter()
        .filter_map(|d| {
            assert!(!d.rows.is_empty() && d.find != d.replace, "mutant {}: no rows, or an edit that changes nothing", d.name);
            let dir = scratch.path().join(&d.name);
            copy_dir(&node_port(), &dir);
            apply(&dir, d).err()
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let test_sh = std::fs::read_to_string(node_port().join("test.sh")).expect("ports/node/test.sh");
    let claims: Vec<String> = plan.claims.iter().map(|c| if c.contains(' ') { format!("'{c}'") } else { c.clone() }).collect();
    let tail = plan.template.split("{dir}/").nth(1).unwrap_or(&plan.template);
    for want in [claims.join(" "), tail.to_string()] {
        assert!(test_sh.contains(&want), "ports/node/test.sh does not give the runner {want:?} (node_defects.json's claims)");
    }
}

/// Without a defect the copy passes every row the mutants break (so each failure is the defect's).
#[test]
fn the_node_port_copy_without_a_defect_passes_the_mutants_rows() {
    let plan = plan();
    let scratch = Scratch::new("node-mutant-control").expect("scratch directory");
    let dir = scratch.path().join("node");
    copy_dir(&node_port(), &dir);
    let rows: BTreeSet<&str> = plan.defects.iter().flat_map(|d| d.rows.iter().map(String::as_str)).collect();
    let outcome = run_runner(&plan, &dir, &rows.into_iter().collect::<Vec<_>>());
    assert!(outcome.code == 0 && outcome.failed().is_empty(), "exit {}, failed {:?}\n{}", outcome.code, outcome.failed(), outcome.output);
}

/// PROTO-1 to PROTO-9, PROTO-13, PROTO-14, DOOR-2 to DOOR-6, OPS-1, OPS-9, CLI-2: every mutant of
/// `node_defects.json` fails the run, naming its rows (two at a time; all are run, then every miss
/// is reported).
#[test]
fn every_node_mutant_is_failed_by_the_runner_naming_its_rows() {
    let plan = plan();
    let next = Mutex::new(plan.defects.iter());
    let results: Mutex<Vec<Result<String, String>>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..RUNNERS {
            s.spawn(|| loop {
                let Some(defect) = next.lock().unwrap_or_else(|e| e.into_inner()).next() else { break };
                let result = mutant(&plan, defect);
                results.lock().unwrap_or_else(|e| e.into_inner()).push(result);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    for line in results.iter().flatten() {
        eprintln!("caught: {line}");
    }
    let missed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(results.len(), plan.defects.len());
    assert!(
        missed.is_empty(),
        "{} of {} mutants not caught:\n{}",
        missed.len(),
        results.len(),
        missed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join("\n\n")
    );
}
