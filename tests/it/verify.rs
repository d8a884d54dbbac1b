//! `gateway verify` end to end (VER-*): a short passing run, broken gateways that must fail it,
//! and a port that is not free.

use std::process::Command;
use std::time::Duration;

use crate::support::{gateway_bin, run_cmd_within};

/// Runs `gateway verify` with args (and env) to completion; returns (exit code, stdout, stderr).
fn verify(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(gateway_bin());
    cmd.arg("verify").args(args).envs(env.iter().copied());
    let (status, out, err) = run_cmd_within(cmd, Duration::from_secs(120));
    (status.code(), out, err)
}

fn bad_gateway_bin() -> std::path::PathBuf {
    crate::support::example_bin("bad_gateway")
}

fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout:?}"))
}

/// VER-1, VER-3: a short run against the real gateway passes, exits 0, reports a complete JSON
/// summary, and leaves the port free.
#[test]
fn ver1_short_run_passes_with_json_summary() {
    let (code, out, err) = verify(&["--cycles", "3", "--json"], &[]);
    assert_eq!(code, Some(0), "stdout {out}\nstderr {err}");
    let json = summary(&out);
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["cycles"], 3);
    assert_eq!(json["violationCount"], 0);
    for id in ["LOCK-1", "LOCK-3", "LOCK-6", "REL-1", "REL-2", "SHUT-1", "SHUT-2", "SHUT-3", "ERR-1", "SRV-2"] {
        assert_eq!(json["violations"][id], 0, "{id} in {json}");
    }
    let kills: u64 = ["SIGKILL", "SIGTERM", "SIGINT", "SIGABRT"].iter().map(|s| json["kills"][s].as_u64().unwrap()).sum();
    assert!(kills >= 3, "every cycle ends with a signal: {json}");
    assert!(json["holders"].as_u64().unwrap() >= 3, "{json}");
    assert!(json["seed"].is_u64());
    let port = json["port"].as_u64().unwrap() as u16;
    crate::support::assert_port_free(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    // The port it chose lies below the ephemeral range, where no outgoing connection can take it.
    if let Some(low) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|l| l.parse::<u16>().ok()))
    {
        assert!(port < low, "port {port} is inside the ephemeral range starting at {low}");
    }
    assert!(err.is_empty(), "no progress bar and no violation lines off a terminal: {err:?}");
}

/// VER-1, VER-2: a gateway whose refusal message is wrong fails the run with ERR-1 violations,
/// exit 1, and the command line that replays the seed.
#[test]
fn ver1_wrong_refusal_message_fails_with_err1_and_the_seed() {
    let exe = bad_gateway_bin();
    let args = ["--cycles", "4", "--seed", "7", "--max-clients", "0", "--json", "--exe", exe.to_str().unwrap()];
    let (code, out, err) = verify(&args, &[("BAD_GATEWAY", "message")]);
    assert_eq!(code, Some(1), "stdout {out}\nstderr {err}");
    let json = summary(&out);
    assert_eq!(json["ok"], false);
    assert!(json["violations"]["ERR-1"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["violations"]["LOCK-1"], 0, "{json}");
    assert!(err.contains("violation ERR-1 in cycle"), "{err}");
    assert!(err.contains("reproduce the schedule with: gateway verify --seed 7 --cycles 4"), "{err}");
}

/// VER-1: a gateway that starts although the port is held fails the run with LOCK-1 violations.
#[test]
fn ver1_gateway_ignoring_the_lock_fails_with_lock1() {
    let exe = bad_gateway_bin();
    let args = ["--cycles", "4", "--seed", "11", "--max-clients", "0", "--json", "--exe", exe.to_str().unwrap()];
    let (code, out, err) = verify(&args, &[("BAD_GATEWAY", "ignore-lock")]);
    assert_eq!(code, Some(1), "stdout {out}\nstderr {err}");
    let json = summary(&out);
    assert!(json["violations"]["LOCK-1"].as_u64().unwrap() > 0, "{json}");
}

/// VER-4: a port that is not free is not verified (exit 3), and its holder is left alone.
#[test]
fn ver4_busy_port_is_refused_and_left_alone() {
    let listener = gateway_lock::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (code, out, err) = verify(&["--port", &addr.port().to_string(), "--cycles", "1"], &[]);
    assert_eq!(code, Some(3), "stdout {out}\nstderr {err}");
    assert!(err.starts_with(&format!("gateway verify: port {} is not free", addr.port())), "{err}");
    assert!(out.is_empty());
    std::net::TcpStream::connect_timeout(&addr, crate::support::DEADLINE).expect("the holder still accepts");
}

/// VER-1: `--duration` bounds a run that has no `--cycles`; the summary is still complete.
#[test]
fn ver1_duration_bounds_the_run() {
    let (code, out, err) = verify(&["--duration", "300ms", "--json", "--max-burst", "2"], &[]);
    assert_eq!(code, Some(0), "stdout {out}\nstderr {err}");
    let json = summary(&out);
    assert!(json["cycles"].as_u64().unwrap() >= 1, "{json}");
    assert_eq!(json["violationCount"], 0);
}

/// The mutant port of the conformance runner (`conformance/mutants/mini_port.py`) as a template,
/// with `--defect NAME` when given.
fn mini_port_template(defect: Option<&str>) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/mutants/mini_port.py");
    let defect = defect.map(|d| format!(" --defect {d}")).unwrap_or_default();
    format!("python3 {}{defect} --port {{port}}", script.display())
}

/// Runs `gateway verify --template TEMPLATE` for 4 cycles of seed 9 (bursts of two and more in
/// the first cycle), with a temporary directory of its own; the exit code and the violation counts
/// by ID. VER-3: the instances' scratch directories are gone afterwards.
fn verify_template(template: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec!["--template", template, "--cycles", "4", "--seed", "9", "--max-clients", "1", "--json"];
    args.extend_from_slice(extra);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let (code, out, err) = verify(&args, &[("TMPDIR", tmp.path().to_str().expect("utf-8 path"))]);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("read TMPDIR").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "VER-3: {template} left {left:?} in its temporary directory");
    let json = summary(&out);
    (code, json["violations"].clone(), err)
}

/// VER-1: `--template` verifies any implementation from a command line, as the conformance runner
/// does: our own gateway passes by its ready line and by the port held (`--ready port`), and so
/// does the runner's mutant port without a defect. VER-3: nothing is left in the temporary directory.
#[test]
fn ver1_template_verifies_any_implementation_and_a_correct_one_passes() {
    let gateway = format!("{} run --port {{port}}", gateway_bin().display());
    for (template, extra) in [(gateway.as_str(), &[][..]), (gateway.as_str(), &["--ready", "port"][..])] {
        let (code, violations, err) = verify_template(template, extra);
        assert_eq!(code, Some(0), "{template} {extra:?}: {violations}\nstderr {err}");
    }
    let (code, violations, err) = verify_template(&mini_port_template(None), &[]);
    assert_eq!(code, Some(0), "the mutant port without a defect: {violations}\nstderr {err}");
}

/// VER-1: a port with one lock defect fails `--template`'s run under the IDs it breaks, and the
/// replay line names the template: SO_REUSEPORT on its listener lets contenders start beside the
/// holder (LOCK-1); exit 1 instead of 3 on a held port breaks ERR-1. VER-3: nothing is left in the
/// temporary directory, also after a failed run.
#[test]
fn ver1_template_fails_a_port_with_one_lock_defect() {
    for (defect, id) in [("reuseport", "LOCK-1"), ("exit-code", "ERR-1")] {
        let template = mini_port_template(Some(defect));
        let (code, violations, err) = verify_template(&template, &[]);
        assert_eq!(code, Some(1), "{defect}: {violations}\nstderr {err}");
        assert!(violations[id].as_u64().unwrap_or(0) > 0, "{defect} must break {id}: {violations}");
        let quoted = shlex::try_quote(&template).unwrap().into_owned();
        assert!(err.trim_end().ends_with(&format!("--template {quoted} --json")), "{defect}: replay line in {err}");
    }
}

/// CLI-4, VER-1: `gateway verify` whose stderr cannot be written (`/dev/full`) is never a panic:
/// a run that finds violations (and reports each one, and the replay line, on stderr) still exits
/// 1, not 101.
#[test]
fn cli4_verify_with_an_unwritable_stderr_still_exits_by_its_result() {
    use gateway_harness::proc::{self, Streams};
    let full = std::process::Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full"));
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let template = mini_port_template(Some("reuseport"));
    let mut cmd = Command::new(gateway_bin());
    cmd.args(["verify", "--template", &template, "--cycles", "4", "--seed", "9", "--max-clients", "1", "--json"]);
    cmd.env("TMPDIR", tmp.path());
    let done = proc::run(cmd, Streams { stderr: full, ..Streams::default() }, Duration::from_secs(120)).expect("run gateway verify");
    assert_eq!(done.status.code(), Some(1), "stdout {}", done.stdout);
    assert!(summary(&done.stdout)["violationCount"].as_u64().unwrap_or(0) > 0, "{}", done.stdout);
}
