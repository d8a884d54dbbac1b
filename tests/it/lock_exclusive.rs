//! The lock is exclusive: one holder per address, the same refusal for any holder, exactly
//! one winner among contenders (LOCK-1..6, ERR-1, ERR-2).

use gateway_harness::spec;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use crate::support::*;
use socket2::{Domain, Socket, Type};

/// LOCK-1, LOCK-3, ERR-1: a second instance is refused at once with the exact message (exit 5:
/// the holder is a live gateway, OPS-1), prints nothing on stdout, and the first keeps serving.
#[test]
fn lock1_second_instance_refused_while_first_serves() {
    let first = start_gateway(&["--port", "0"]);
    let port = first.port().to_string();
    let (status, stdout, stderr) = run_to_exit(&["run", "--port", &port]);
    assert_eq!(status.code(), Some(5), "stderr: {stderr}");
    assert_eq!(stdout, "", "a refused start prints nothing on stdout");
    assert_eq!(stderr.lines().next(), Some(held_message(&first.url()).as_str()));
    assert!(http_get(first.addr, "/healthz").starts_with("HTTP/1.1 200 OK"), "the first instance keeps serving");
}

/// LOCK-1: the same holds on IPv6 loopback, and the URL brackets the host.
#[test]
fn lock1_ipv6_holder_refuses_second_instance() {
    let first = start_gateway(&["--host", "::1", "--port", "0"]);
    assert!(first.url().starts_with("ws://[::1]:"), "{}", first.url());
    let (status, _, stderr) = run_to_exit(&["run", "--host", "::1", "--port", &first.port().to_string()]);
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert_eq!(stderr.lines().next(), Some(held_message(&first.url()).as_str()));
}

/// LOCK-2, ERR-1: a plain listener of another program gives the very same refusal.
#[test]
fn lock2_foreign_listener_gives_the_same_refusal() {
    let foreign = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = foreign.local_addr().unwrap();
    let (status, stdout, stderr) = run_to_exit(&["run", "--port", &addr.port().to_string()]);
    assert_eq!(status.code(), Some(3));
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().next(), Some(held_message(&format!("ws://{addr}")).as_str()));
}

/// LOCK-4: `localhost` is 127.0.0.1 only; when that is taken no other address (such as ::1)
/// is tried.
#[test]
fn lock4_localhost_means_ipv4_loopback_only() {
    let gw = start_gateway(&["--host", "localhost", "--port", "0"]);
    assert!(gw.url().starts_with("ws://127.0.0.1:"), "{}", gw.url());
    drop(gw);
    let foreign = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = foreign.local_addr().unwrap().port();
    let (status, _, stderr) = run_to_exit(&["run", "--host", "localhost", "--port", &port.to_string()]);
    assert_eq!(status.code(), Some(3), "must not fall back to another address: {stderr}");
    assert_eq!(stderr.lines().next(), Some(held_message(&format!("ws://127.0.0.1:{port}")).as_str()));
}

/// LOCK-5: a listener with SO_REUSEPORT (same user) still refuses the gateway. If the
/// gateway set SO_REUSEPORT itself, the kernel would let it share the port and this fails.
#[test]
fn lock5_reuseport_listener_still_refuses() {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    socket.listen(16).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    let (status, _, stderr) = run_to_exit(&["run", "--port", &port.to_string()]);
    assert_eq!(status.code(), Some(3), "stderr: {stderr}");
}

/// ERR-2: an address that is not local to this host (TEST-NET-1; nothing is sent to it)
/// gives the "failed to bind" form and exit 4. (A non-loopback host needs a token to get as
/// far as the bind: DOOR-2.)
#[test]
fn err2_address_not_on_this_host_fails_to_bind() {
    let (status, stdout, stderr) = run_to_exit(&["run", "--host", "192.0.2.1", "--port", "18789", "--token", "unused"]);
    assert_eq!(status.code(), Some(4), "stderr: {stderr}");
    assert_eq!(stdout, "");
    let line = stderr.lines().next().unwrap_or_default();
    assert!(line.starts_with(&gateway_harness::spec::bind_failed_prefix("ws://192.0.2.1:18789")), "{line}");
    assert!(line.contains("os error"), "{line}");
}

/// LOCK-6: several instances started at once on a free port: exactly one prints the ready
/// line, every other exits with the exact refusal: 3, or 5 once the winner answers as a live
/// gateway (OPS-1).
#[test]
fn lock6_burst_of_contenders_has_exactly_one_winner() {
    const CONTENDERS: usize = 6;
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The winner stores a generated token: in this test's scratch directory (DOOR-6).
    let scratch = tempfile::tempdir().unwrap();
    let mut children: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let mut cmd = Command::new(gateway_bin());
            cmd.args(["run", "--port", &port.to_string()])
                .env("GATEWAY_LOG", "warn")
                .envs(["HOME", "XDG_STATE_HOME", "TMPDIR"].map(|var| (var, scratch.path())));
            Proc::spawn_with(cmd, Streams::default(), false).unwrap()
        })
        .collect();
    // Read every contender's outcome before stopping any winner: a winner killed early would
    // free the port for a late starter.
    let lines: Vec<String> = children.iter_mut().map(|child| child.read_line(DEADLINE).unwrap_or_else(|e| panic!("{e}"))).collect();
    let winners = lines.iter().filter(|line| line.starts_with(spec::READY_PREFIX)).count();
    for (child, line) in children.iter_mut().zip(&lines) {
        if line.starts_with(spec::READY_PREFIX) {
            child.kill();
            continue;
        }
        assert_eq!(line, "", "a loser prints nothing on stdout");
        let status = child.wait(DEADLINE).expect("contender exit");
        let err = child.stderr(DEADLINE);
        assert!(matches!(status.code(), Some(3 | 5)), "{err}");
        assert_eq!(err.lines().next(), Some(held_message(&format!("ws://127.0.0.1:{port}")).as_str()));
    }
    assert_eq!(winners, 1, "exactly one contender must win");
}
