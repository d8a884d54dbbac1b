//! `gateway-conformance`: checks any implementation of the gateway lock against `spec/` through
//! its command line only, and prints one row per invariant ID: pass, FAIL or n/a, and why.
//! `spec/README.md` ("Checking a port") documents the template, the claims, the flags and the
//! output formats; `--help` lists them.

mod args;
mod claims;
mod expect;
mod interrupt;
mod report;
mod scenarios;
mod subject;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_harness::{reaper, spec};

use claims::Settings;
use report::{Report, Row, Verdict};

/// Prints on stdout; a closed stdout (`| head`) is no error: the exit status still tells.
fn say(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn main() {
    // The hostile holder of OPS-9's row: arguments that need not be UTF-8, so before they are parsed.
    if std::env::args_os().nth(1).is_some_and(|a| a == scenarios::HOLD) {
        scenarios::hold();
    }
    let settings = match args::parse(std::env::args().skip(1).collect()).and_then(with_defaults) {
        Ok(settings) => Arc::new(settings),
        Err(why) => usage_error(&why),
    };
    let _ = reaper::become_subreaper();
    let report = Arc::new(Mutex::new(Report::default()));
    let started = Instant::now();
    let subject = subject::Subject::new(&settings).unwrap_or_else(|e| usage_error(&format!("cannot create a scratch directory: {e}")));
    interrupt::watch(Arc::clone(&report), Arc::clone(&settings), started, subject.scratch_path(""));
    if !settings.json {
        say(&heading(&settings));
    }
    let ctx = scenarios::Ctx::new(&subject, &settings, &report);
    scenarios::run_all(&ctx);
    interrupt::claim_end();
    drop(subject);
    reaper::kill_descendants(Duration::from_secs(5));
    let rows = rows(&report.lock().unwrap_or_else(|e| e.into_inner()), &settings);
    std::process::exit(finish(&rows, &settings, started.elapsed(), None));
}

fn usage_error(why: &str) -> ! {
    if !why.is_empty() {
        eprintln!("gateway-conformance: {why}");
    }
    eprintln!("{}", args::USAGE);
    std::process::exit(if why.is_empty() { 0 } else { 2 });
}

/// Fills in the default subject (our own gateway with every claim) and checks the template.
fn with_defaults(mut s: Settings) -> Result<Settings, String> {
    if s.template.is_empty() {
        // Our own gateway claims everything: the token is in its template, and short timers.
        s.claims.token.get_or_insert_with(|| "conformance".to_string());
        s.claims.names_holder = true;
        if s.claims.timer_args.is_empty() {
            s.claims.timer_args = "--handshake-timeout-ms 500 --tick-interval-ms 50".to_string();
        }
        s.template = default_template();
    }
    if !s.template.contains("{port}") {
        return Err(format!("the template must contain {{port}}: {:?}", s.template));
    }
    if let Some(token) = &s.claims.token {
        if !s.template.contains("{token}") && !s.template.contains(token.as_str()) {
            eprintln!("gateway-conformance: hint: --token is claimed but the template has neither {{token}} nor the token itself");
        }
    }
    let known = scenarios::known_rows();
    if let Some(bad) = s.only.iter().find(|id| !known.contains(&id.as_str())) {
        return Err(format!("--only: no scenario judges {bad:?}; rows judged: {}", known.join(",")));
    }
    Ok(s)
}

/// `'<gateway>' run --token {token} --host {host} --port {port}`, the gateway found beside this
/// binary (`target/<profile>/`) or else `target/debug/gateway`.
fn default_template() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let beside = exe.parent().map(|p| p.join("gateway")).filter(|p| p.exists());
    let gateway = beside.unwrap_or_else(|| PathBuf::from("target/debug/gateway"));
    // A token: 192.0.2.1 (ERR-2's scenario) is not loopback, and binding it without one is refused
    // before the bind (DOOR-2, exit 7).
    format!("{} run --token {{token}} --host {{host}} --port {{port}}", gateway_harness::proc::shell_quoted(&gateway.display().to_string()))
}

fn heading(s: &Settings) -> String {
    let claims = s.claims.describe();
    let claims = if claims.is_empty() { "none".to_string() } else { claims.join(", ") };
    format!(
        "conformance of: {}\nclaims beyond the lock: {claims}\nsettings: --deadline {} --start-deadline {} --burst {} --repeat {} --seed {}\n",
        s.template,
        gateway_harness::human(s.deadline),
        gateway_harness::human(s.start_deadline()),
        s.burst,
        s.repeat,
        s.seed
    )
}

/// The final rows: every spec ID (or those of `--only`), judged or with why not.
fn rows(report: &Report, s: &Settings) -> Vec<Row> {
    let mut ids = spec::invariant_ids();
    ids.extend(report.ids().filter(|id| !ids.contains(id)).cloned().collect::<Vec<_>>());
    ids.retain(|id| s.only.is_empty() || s.only.contains(id));
    ids.into_iter()
        .map(|id| {
            let (verdict, why) = report.row(&id).unwrap_or_else(|| {
                let why = match (scenarios::not_applicable(&id, s), &report.aborted) {
                    (scenarios::na::NO_SCENARIO, Some(aborted)) => aborted.clone(),
                    (why, _) => why.to_string(),
                };
                (Verdict::NotApplicable, why)
            });
            Row { id, verdict, why }
        })
        .collect()
}

/// Prints the result (table or JSON), writes JUnit, compares with the expectations; the exit code.
fn finish(rows: &[Row], s: &Settings, took: Duration, interrupted: Option<&str>) -> i32 {
    let claims = s.claims.describe();
    if s.json {
        say(&report::json(rows, &s.template, &claims, s.seed, took));
    } else {
        say(&report::table(rows));
        say(&format!(
            "run took {}{}",
            gateway_harness::human(took),
            interrupted.map(|i| format!(", interrupted by {i}")).unwrap_or_default()
        ));
    }
    if let Some(path) = &s.junit {
        if let Err(e) = std::fs::write(path, report::junit(rows, took)) {
            eprintln!("gateway-conformance: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    let (_, failed, _) = report::counts(rows);
    let Some(path) = &s.expect else { return i32::from(failed > 0 || interrupted.is_some()) };
    let differences = match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| expect::parse(&t)) {
        Ok(expected) => expect::differences(rows, &expected, &s.only),
        Err(e) => vec![format!("cannot use the expectations file {}: {e}", path.display())],
    };
    for d in &differences {
        eprintln!("gateway-conformance: expectation changed: {d}");
    }
    i32::from(!differences.is_empty() || interrupted.is_some())
}
