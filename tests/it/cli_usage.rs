//! The command line: ready line, usage errors, environment, a closed stdout (CLI-1..4).

use std::net::TcpListener;
use std::process::Command;

use crate::support::*;

/// CLI-1: with port 0 the ready line shows the real port, and that port accepts connections.
#[test]
fn cli1_ready_line_shows_the_real_port() {
    let gw = start_gateway(&["--port", "0"]);
    assert_ne!(gw.port(), 0);
    std::net::TcpStream::connect(gw.addr).expect("the announced port accepts connections");
}

/// CLI-2, LOCK-4 (a name as host is refused, never resolved): bad flags and values are usage errors (exit 2, `error: ...` naming the problem),
/// never a panic, and nothing is bound or printed on stdout.
#[test]
fn cli2_bad_values_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--port", "abc"], "invalid value 'abc' for '--port <PORT>'"),
        (&["run", "--port", "-1"], "invalid value '-1' for '--port <PORT>'"),
        (&["run", "--port", "65536"], "invalid value '65536' for '--port <PORT>'"),
        (&["run", "--port", ""], "invalid value '' for '--port <PORT>'"),
        (&["run", "--host", ""], "invalid value '' for '--host <HOST>': host must not be empty"),
        (&["run", "--host", "example.com"], "host must be a literal IP address"),
        (&["run", "--bogus"], "unexpected argument '--bogus'"),
        (&["bogus"], "unrecognized subcommand 'bogus'"),
        (&[], "Usage:"),
    ];
    for (args, want) in cases {
        let (status, stdout, stderr) = run_to_exit(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// CLI-3, CLI-1: GATEWAY_PORT sets the port (the ready line shows it); the flag wins over it.
#[test]
fn cli3_environment_sets_the_port() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new(gateway_bin());
    cmd.arg("run").env("GATEWAY_PORT", port.to_string()).env("GATEWAY_HOST", "127.0.0.1");
    let gw = start_and_wait_ready(cmd);
    assert_eq!(gw.port(), port);
    drop(gw);
    let mut cmd = Command::new(gateway_bin());
    cmd.args(["run", "--port", "0"]).env("GATEWAY_PORT", "not-a-port");
    let gw = start_and_wait_ready(cmd);
    assert_ne!(gw.port(), 0);
}

/// CLI-4: nobody reads stdout (its reader closed first): `status`, `stop` and `verify` exit with
/// their outcome's code, never a panic; `run` keeps serving although its ready line is lost.
#[test]
fn cli4_closed_stdout_is_never_a_panic() {
    let holder = start_gateway(&["--port", "0"]);
    let port = holder.port().to_string();
    for (args, want) in [(vec!["status", "--port", &port], 0), (vec!["stop", "--port", &port], 0), (vec!["status", "--port", &port], 3)] {
        let (status, err) = run_with_closed_stdout(gateway_cmd(&args));
        assert_eq!(status.code(), Some(want), "{args:?}: stderr {err:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(holder.wait().success(), "stopped gracefully");
    let (status, err) = run_with_closed_stdout(gateway_cmd(&["verify", "--cycles", "1"]));
    assert!(status.code() == Some(0) && !err.contains("panicked"), "verify: {status:?} {err}");

    // `run`: the ready line cannot be written; the port is held and served all the same.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cmd = gateway_cmd(&["run", "--port", &port.to_string()]);
    let streams = Streams { stdout: closed_stdout(), stderr: std::process::Stdio::null(), ..Streams::default() };
    let (mut child, _scratch) = spawn(cmd, streams);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let end = std::time::Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < end, "run with a closed stdout never served port {port}");
        // Polling the port until the gateway listens; the deadline bounds it.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(health_pid(addr), i64::from(child.pid()), "the gateway on port {port} serves its own health");
    child.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait(DEADLINE).expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
}
