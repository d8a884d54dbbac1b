//! Who holds the port (issue 4): the lock refusal names the holder (OPS-1) and `gateway status`
//! reports it (OPS-2). Real processes, real sockets, a foreign listener and a SIGSTOPped holder.

use crate::support::*;
use nix::sys::signal::Signal;

fn lines(stderr: &str) -> Vec<&str> {
    stderr.lines().collect()
}

/// OPS-1: the refusal by a live gateway keeps ERR-1's line first, names the holder's pid and
/// command line and that it is a gateway, and exits 5.
#[test]
fn ops1_refusal_by_a_live_gateway_names_it_and_exits_5() {
    let holder = start_gateway(&["--port", "0"]);
    let port = holder.port().to_string();
    let (status, out, err) = run_refused(|| gateway_cmd(&["run", "--port", &port]), probe_complete);
    assert_eq!(status.code(), Some(5), "stderr: {err}");
    assert_eq!(out, "");
    let l = lines(&err);
    assert_eq!(l[0], held_message(&holder.url()));
    assert!(l[1].starts_with(&format!("  holder: pid {} (uid ", holder.pid())), "{err}");
    assert!(l[1].contains("gateway run --port 0"), "{err}");
    assert!(l[2].starts_with("  holder is a live gateway: profile (none), version "), "{err}");
}

/// OPS-1, LOCK-2: a foreign listener (not a gateway) still gives ERR-1 first and exit 3, and is named.
#[test]
fn ops1_refusal_by_a_foreign_listener_names_it_and_exits_3() {
    let foreign = ForeignListener::start(true);
    let url = format!("ws://{}", foreign.addr);
    let port = foreign.addr.port().to_string();
    let (status, out, err) = run_refused(|| gateway_cmd(&["run", "--port", &port]), probe_complete);
    assert_eq!(status.code(), Some(3), "stderr: {err}");
    assert_eq!(out, "");
    let l = lines(&err);
    assert_eq!(l[0], held_message(&url));
    assert!(l[1].starts_with(&format!("  holder: pid {} ", std::process::id())), "{err}");
    assert!(l[2].starts_with("  holder is not a gateway: GET /healthz "), "{err}");
    foreign.assert_still_listening();
}

/// OPS-1: a SIGSTOPped holder accepts in the kernel's backlog but never answers; the refusal still
/// comes (bounded) with ERR-1 first, says it did not answer and that the process is stopped; exit 3.
#[test]
fn ops1_sigstopped_holder_gives_a_bounded_answer() {
    let holder = start_gateway(&["--port", "0"]);
    let _stopped = stop_until_dropped(holder.pid());
    let port = holder.port().to_string();
    let (status, _, err) = run_refused(|| gateway_cmd(&["run", "--port", &port]), process_found);
    assert_eq!(status.code(), Some(3), "stderr: {err}");
    let l = lines(&err);
    assert_eq!(l[0], held_message(&holder.url()));
    assert!(l[1].contains(", stopped)"), "{err}");
    assert!(l[2].starts_with("  holder did not answer GET /healthz within 200 ms"), "{err}");
}

/// OPS-1: a port inside the ephemeral range gets a warning after the bind (never for port 0) and
/// after a refusal.
#[test]
fn ops1_ephemeral_port_warns_but_port_0_does_not() {
    let Some(range) =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok().and_then(|t| gateway_harness::net::parse_port_range(&t))
    else {
        return; // not Linux: nothing to warn about
    };
    // Port 0: the OS picks a port from the ephemeral range; no warning.
    let mut first = start_gateway(&["--port", "0"]);
    let port = first.port();
    assert!((range.0..=range.1).contains(&port), "the OS picked {port} outside {range:?}");
    // Refused on that (ephemeral) port: ERR-1 first, then the warning.
    let (_, _, err) = run_to_exit(&["run", "--port", &port.to_string()]);
    assert_eq!(lines(&err)[0], held_message(&first.url()));
    assert!(err.contains(&format!("warning: port {port} lies inside the ephemeral port range")), "{err}");
    first.signal(Signal::SIGTERM);
    let first_err = first.take_stderr();
    assert!(!first_err.contains("ephemeral"), "{first_err}");
    assert!(first.wait().success());
    // Bound on that ephemeral port: the warning comes after the ready line.
    let mut second = start_gateway(&["--port", &port.to_string()]);
    second.signal(Signal::SIGTERM);
    let second_err = second.take_stderr();
    assert!(second_err.contains(&format!("port {port} lies inside the ephemeral port range")), "{second_err}");
}

fn status_json(port: u16) -> (Option<i32>, serde_json::Value) {
    let (status, out, err) = run_to_exit(&["status", "--port", &port.to_string(), "--json"]);
    let json = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("status --json printed {out:?} ({e}); stderr {err}"));
    (status.code(), json)
}

/// OPS-2: `status` on a free port: state "free", exit 3.
#[test]
fn ops2_status_free_port_exits_3() {
    let (_reserved, addr) = reserved_free_port();
    let (code, json) = status_json(addr.port());
    assert_eq!(code, Some(3));
    assert_eq!(json["state"], "free");
    let (status, out, _) = run_to_exit(&["status", "--port", &addr.port().to_string()]);
    assert_eq!(status.code(), Some(3));
    assert_eq!(out.trim(), format!("ws://{addr}: free"));
}

/// OPS-2: `status` on a live gateway: pid, version, uptime, profile; exit 0.
#[test]
fn ops2_status_gateway_reports_pid_version_uptime_and_exits_0() {
    let holder = start_gateway(&["--port", "0"]);
    let (code, json) = status_json(holder.port());
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["state"], "gateway");
    assert_eq!(json["pid"], holder.pid().as_raw());
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["uptimeMs"].is_u64());
    assert!(json["profile"].is_null());
    let (status, out, _) = run_to_exit(&["status", "--port", &holder.port().to_string()]);
    assert_eq!(status.code(), Some(0));
    assert!(out.starts_with(&format!("{}: gateway (pid {}, profile (none), version ", holder.url(), holder.pid())), "{out}");
}

/// OPS-2: `status` on a foreign listener: pid and command of the holder; exit 4.
#[test]
fn ops2_status_foreign_holder_exits_4() {
    let foreign = ForeignListener::start(true);
    let (code, json) = status_json(foreign.addr.port());
    assert_eq!(code, Some(4), "{json}");
    assert_eq!(json["state"], "foreign");
    assert_eq!(json["pid"], std::process::id());
    // The holder is this test process: its command line starts with this test binary.
    let exe = std::env::current_exe().expect("test executable");
    let name = exe.file_name().expect("test executable name").to_string_lossy();
    assert!(json["command"].as_str().unwrap().contains(&*name), "{json}");
}

/// OPS-2: `status` on a SIGSTOPped gateway and on a listener that never accepts: "not-answering", exit 5.
#[test]
fn ops2_status_stopped_or_silent_holder_exits_5() {
    let holder = start_gateway(&["--port", "0"]);
    {
        let _stopped = stop_until_dropped(holder.pid());
        let (code, json) = status_json(holder.port());
        assert_eq!(code, Some(5), "{json}");
        assert_eq!(json["state"], "not-answering");
        assert_eq!(json["pid"], holder.pid().as_raw());
        assert_eq!(json["stopped"], true);
    }
    // Continued: it answers again.
    let (code, _) = status_json(holder.port());
    assert_eq!(code, Some(0));
    let silent = ForeignListener::start(false);
    let (code, json) = status_json(silent.addr.port());
    assert_eq!(code, Some(5), "{json}");
    assert_eq!(json["stopped"], false);
}

/// OPS-1, OPS-2: an IPv6 holder is found in /proc/net/tcp6 and named; `status` on ::1 sees it.
#[test]
fn ops1_ipv6_holder_is_named_and_reported() {
    let holder = start_gateway(&["--host", "::1", "--port", "0"]);
    let port = holder.port().to_string();
    let (status, _, err) = run_refused(|| gateway_cmd(&["run", "--host", "::1", "--port", &port]), probe_complete);
    assert_eq!(status.code(), Some(5), "{err}");
    assert_eq!(err.lines().next().unwrap(), held_message(&holder.url()));
    assert!(err.contains(&format!("  holder: pid {} ", holder.pid())), "{err}");
    let (status, out, _) = run_to_exit(&["status", "--host", "::1", "--port", &port, "--json"]);
    assert_eq!(status.code(), Some(0), "{out}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["pid"], holder.pid().as_raw());
    assert_eq!(json["url"], holder.url());
}
