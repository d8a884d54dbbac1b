//! The runner proven by mutants: `mutants/mini_port.py`, a minimal Python port of the lock (with
//! HTTP probes and a bare WebSocket for release and shutdown, no protocol), passes the lock,
//! release, shutdown and serving rows without a defect; with each `--defect` (exactly one defect) the runner must exit 1
//! and FAIL the rows that name it. A runner change that lets a mutant pass fails here.

use std::path::PathBuf;
use std::process::Command;

/// The rows the mini port is judged on (it has no protocol): the control run passes all of them.
const LOCK_ROWS: &str =
    "CLI-1,CLI-2,CLI-3,LOCK-1,LOCK-2,LOCK-3,LOCK-4,LOCK-5,LOCK-6,ERR-1,ERR-2,REL-1,REL-2,REL-3,REL-4,SHUT-1,SHUT-2,SHUT-3,SRV-1,SRV-2,SRV-3";

/// The rows of the front door the mini port is judged on when it claims the protocol (it has no
/// protocol, but its HTTP side has the Host check and the key check).
const DOOR_ROWS: &str = "DOOR-7,PROTO-15";

/// Runs the runner on the mini port with `defect` and `--only rows`: (exit code, failed rows, output).
/// One runner at a time: the thresholds (1 s to refuse, 1 s to bind) are judged on a machine that
/// is not also running a dozen other runners (CI has 2 cores).
fn run(defect: Option<&str>, rows: &str) -> (i32, Vec<String>, String) {
    run_with(defect, rows, &[])
}

/// [`run`] with further runner flags (`--ready port`, ...).
fn run_with(defect: Option<&str>, rows: &str, flags: &[&str]) -> (i32, Vec<String>, String) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mutants/mini_port.py");
    let defect = defect.map(|d| format!(" --defect {d}")).unwrap_or_default();
    let template = format!("python3 '{}'{defect} --host {{host}} --port {{port}}", script.display());
    // DOOR-7 and PROTO-15 are judged only when the protocol is claimed (`--token`).
    let claim: &[&str] = if rows == DOOR_ROWS || DOOR_ROWS.split(',').any(|r| r == rows) { &["--token", "s3cret"] } else { &[] };
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-conformance"))
        .args([template.as_str(), "--only", rows, "--json"])
        .args(claim)
        .args(flags)
        .output()
        .expect("run gateway-conformance");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON output ({e}): {text}"));
    let failed = json["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["result"] == "fail")
        .map(|r| r["id"].as_str().unwrap_or("").to_string())
        .collect();
    (out.status.code().unwrap_or(-1), failed, text)
}

/// The mutant with `defect` fails the run, naming every row of `want`.
fn caught(defect: &str, rows: &str, want: &[&str]) {
    let (code, failed, text) = run(Some(defect), rows);
    assert_eq!(code, 1, "mutant {defect}: the runner exited {code}, want 1\n{text}");
    for id in want {
        assert!(failed.iter().any(|f| f == id), "mutant {defect}: {id} not failed (failed: {failed:?})\n{text}");
    }
}

/// Without a defect the mini port passes every lock row (so each mutant fails for its defect).
#[test]
fn the_mini_port_without_a_defect_passes_the_lock_rows() {
    let (code, failed, text) = run(None, LOCK_ROWS);
    assert!(code == 0 && failed.is_empty(), "exit {code}, failed {failed:?}\n{text}");
}

/// Without a defect the mini port passes the Host check and the key check (so each mutant below
/// fails for its defect).
#[test]
fn the_mini_port_without_a_defect_passes_the_door_rows() {
    let (code, failed, text) = run(None, DOOR_ROWS);
    assert!(code == 0 && failed.is_empty(), "exit {code}, failed {failed:?}\n{text}");
}

/// DOOR-7: a request under a foreign Host served (DNS rebinding).
#[test]
fn door7_no_host_check_is_caught() {
    caught("no-host-check", "DOOR-7", &["DOOR-7"]);
}

/// PROTO-15: an upgrade with any non-empty Sec-WebSocket-Key.
#[test]
fn proto15_any_key_is_caught() {
    caught("any-key", "PROTO-15", &["PROTO-15"]);
}

/// LOCK-1 (fail fast): EADDRINUSE retried for 3 s before the refusal.
#[test]
fn lock1_slow_refusal_is_caught() {
    caught("slow-refusal", "LOCK-1", &["LOCK-1"]);
}

/// LOCK-2, ERR-1: exit 1 instead of 3 when the port is held.
#[test]
fn lock2_wrong_exit_code_is_caught() {
    caught("exit-code", "LOCK-2,ERR-1", &["LOCK-2", "ERR-1"]);
}

/// LOCK-3 (nothing before the bind): a state file written before the bind.
#[test]
fn lock3_state_written_before_the_bind_is_caught() {
    caught("state-before-bind", "LOCK-3", &["LOCK-3"]);
}

/// CLI-1 (nothing before the bind): 2 s of work before the bind.
#[test]
fn cli1_slow_bind_is_caught() {
    caught("slow-bind", "CLI-1", &["CLI-1"]);
}

/// LOCK-4 (exactly the address asked for): 0.0.0.0 bound for 127.0.0.1.
#[test]
fn lock4_wildcard_bind_is_caught() {
    caught("wildcard", "LOCK-4", &["LOCK-4"]);
}

/// LOCK-5: SO_REUSEPORT on the listener.
#[test]
fn lock5_reuseport_is_caught() {
    caught("reuseport", "LOCK-5", &["LOCK-5"]);
}

/// LOCK-6: the ready line before the bind (every contender of a burst says it is ready).
#[test]
fn lock6_ready_before_bind_is_caught() {
    caught("ready-before-bind", "LOCK-6", &["LOCK-6"]);
}

/// REL-3 (no child keeps the lock): an inheritable listener and a long-lived child in its own session.
#[test]
fn rel3_inherited_listener_is_caught() {
    caught("inherit", "REL-3", &["REL-3"]);
}

/// CLI-3 (environment set by the runner): GATEWAY_PORT ignored.
#[test]
fn cli3_ignored_environment_is_caught() {
    caught("ignore-env", "CLI-3", &["CLI-3"]);
}

/// SRV-3 (HTTP statuses): a malformed head answered 200.
#[test]
fn srv3_no_400_is_caught() {
    caught("no-400", "SRV-3", &["SRV-3"]);
}

/// REL-2: no `SO_REUSEADDR`: the connection a killed holder leaves behind keeps the successor out.
#[test]
fn rel2_missing_reuseaddr_is_caught() {
    caught("no-reuseaddr", "REL-2", &["REL-2"]);
}

/// SHUT-1, REL-1: exit 1 after a graceful shutdown.
#[test]
fn shut1_nonzero_exit_after_shutdown_is_caught() {
    caught("exit-1", "SHUT-1,REL-1", &["SHUT-1", "REL-1"]);
}

/// REL-4: the listener closed before the clients are drained.
#[test]
fn rel4_early_release_is_caught() {
    caught("release-early", "REL-4", &["REL-4"]);
}

/// SHUT-2: 3 s for a client that never answers the close, not the 500 ms grace period.
#[test]
fn shut2_unbounded_drain_is_caught() {
    caught("no-grace", "SHUT-2", &["SHUT-2"]);
}

/// SHUT-3: a second signal during the shutdown exits 1.
#[test]
fn shut3_second_signal_is_caught() {
    caught("double-signal", "SHUT-3", &["SHUT-3"]);
}

/// LOCK-6 without a ready line (`--ready port`, how a peer such as OpenClaw's gateway is run): a
/// correct port that binds 2 s after its exec has exactly one winner, the contender the kernel's
/// tables show holding the socket. (The runner once counted every contender still alive after
/// 500 ms as ready: each one still working towards its bind, or retrying, was a "winner".)
#[test]
fn lock6_without_a_ready_line_finds_the_winner_in_the_socket_table() {
    let (code, failed, text) = run_with(Some("slow-bind"), "LOCK-6", &["--ready", "port"]);
    assert!(code == 0 && failed.is_empty(), "exit {code}, failed {failed:?}\n{text}");
}

/// `--ready readyz` (a peer that binds before it serves): the port accepting, then GET /readyz 200;
/// the lock, release and shutdown rows are judged as usual on a port that serves /readyz.
#[test]
fn ready_by_readyz_judges_a_port_that_serves_it() {
    let (code, failed, text) = run_with(None, "LOCK-1,LOCK-6,REL-1,SHUT-1", &["--ready", "readyz"]);
    assert!(code == 0 && failed.is_empty(), "exit {code}, failed {failed:?}\n{text}");
}

/// `--ready readyz` against a server whose /readyz never answers 200: not ready, and said so.
#[test]
fn ready_by_readyz_waits_for_200_and_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-conformance"))
        .args(["python3 -m http.server --bind 127.0.0.1 {port}", "--ready", "readyz", "--deadline", "2s", "--only", "LOCK-1", "--json"])
        .output()
        .expect("run gateway-conformance");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("timed out: GET /readyz did not answer 200 within 2.00 s (last: \\\"HTTP/1.0 404"), "{text}");
}

/// LOCK-6 without a ready line: contenders that all bind (SO_REUSEPORT) are still caught.
#[test]
fn lock6_without_a_ready_line_catches_a_shared_port() {
    let (code, failed, text) = run_with(Some("reuseport"), "LOCK-6", &["--ready", "port", "--deadline", "2s"]);
    assert!(code == 1 && failed.iter().any(|f| f == "LOCK-6"), "exit {code}, failed {failed:?}\n{text}");
}
