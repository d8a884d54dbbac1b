//! Taking a held port over (issue 4): `gateway stop` (OPS-3), `gateway run --wait` (OPS-4) and
//! `gateway run --replace` (OPS-5). Real processes and signals; a foreign listener is never touched.

use gateway_harness::spec;
use std::os::unix::process::CommandExt;
use std::sync::mpsc;

use crate::support::*;
use nix::sys::signal::Signal;

/// OPS-3: `stop` sends SIGTERM to the gateway, waits until the port is free, reports the time; exit 0.
#[test]
fn ops3_stop_terminates_a_gateway_and_waits_until_the_port_is_free() {
    let holder = start_gateway(&["--port", "0"]);
    let addr = holder.addr;
    let (status, out, err) = run_to_exit(&["stop", "--port", &addr.port().to_string()]);
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    let prefix = format!("stopped gateway pid {} on ws://{addr}: port released after ", holder.pid());
    assert!(out.starts_with(&prefix) && out.trim_end().ends_with(" ms"), "{out}");
    assert_port_free(addr);
    assert_eq!(holder.wait().code(), Some(0), "graceful exit");
}

/// OPS-3: a free port: nothing to stop, exit 3.
#[test]
fn ops3_stop_on_a_free_port_exits_3() {
    let (_reserved, addr) = reserved_free_port();
    let (status, _, err) = run_to_exit(&["stop", "--port", &addr.port().to_string()]);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.starts_with(&spec::nothing_listening(&format!("ws://{addr}"))), "{err}");
}

/// OPS-3: a foreign holder (answering or silent) is never signalled: exit 4, still listening.
#[test]
fn ops3_stop_never_signals_a_foreign_holder() {
    for answer in [true, false] {
        let foreign = ForeignListener::start(answer);
        let (status, _, err) = run_to_exit(&["stop", "--port", &foreign.addr.port().to_string(), "--timeout", "2s"]);
        assert_eq!(status.code(), Some(4), "{err}");
        assert!(err.starts_with(&format!("refusing to stop the holder of ws://{}", foreign.addr)), "{err}");
        foreign.assert_still_listening();
    }
}

/// OPS-3: a SIGSTOPped gateway does not answer, so it is not verified and never signalled: once
/// continued, it is still serving.
#[test]
fn ops3_stop_refuses_a_stopped_gateway_and_sends_nothing() {
    let holder = start_gateway(&["--port", "0"]);
    {
        let _stopped = stop_until_dropped(holder.pid());
        let (status, _, err) = run_to_exit(&["stop", "--port", &holder.port().to_string()]);
        assert_eq!(status.code(), Some(4), "{err}");
        assert!(err.contains("did not answer as a live gateway"), "{err}");
    }
    // No SIGTERM was pending: after SIGCONT it keeps serving.
    for _ in 0..3 {
        assert_eq!(health_pid(holder.addr), i64::from(holder.pid().as_raw()));
    }
}

/// OPS-3, OPS-5: a gateway of another user is never signalled, neither by `stop` nor by `--replace`.
#[test]
fn ops3_gateway_of_another_user_is_not_signalled() {
    // A given token: uid 65534 cannot write a generated token file into the test's state dir.
    let mut cmd = gateway_cmd(&["run", "--port", "0", "--token", "another-users-token"]);
    cmd.uid(65534).gid(65534);
    let holder = start_and_wait_ready(cmd);
    let (status, _, err) = run_to_exit(&["stop", "--port", &holder.port().to_string()]);
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(err.contains(&format!("pid {} belongs to uid 65534", holder.pid())), "{err}");
    let port = holder.port().to_string();
    let (status, _, err) = run_refused(|| gateway_cmd(&["run", "--port", &port, "--replace"]), probe_complete);
    assert_eq!(status.code(), Some(5), "{err}");
    assert_eq!(err.lines().next().unwrap(), held_message(&holder.url()));
    assert_eq!(health_pid(holder.addr), i64::from(holder.pid().as_raw()));
}

/// OPS-4: a waiter keeps a connection to the holder and takes the port as soon as it is released.
#[test]
fn ops4_waiter_takes_the_port_when_the_holder_exits() {
    let holder = start_gateway(&["--port", "0"]);
    let port = holder.port().to_string();
    let mut waiter = Pending::spawn(gateway_cmd(&["run", "--port", &port, "--wait=20s"]));
    // Readiness: the waiter's connection to the holder (plus none other) is established.
    wait_for_established(holder.port(), 1);
    assert!(waiter.is_running());
    holder.signal(Signal::SIGTERM);
    assert_eq!(waiter.read_ready(), holder.addr);
    assert_eq!(holder.wait().code(), Some(0));
    assert_eq!(health_pid(waiter_addr(&port)), i64::from(waiter.pid().as_raw()));
}

fn waiter_addr(port: &str) -> std::net::SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// OPS-4: a waiter behind a SIGSTOPped holder takes the port once the holder is killed.
#[test]
fn ops4_waiter_behind_a_stopped_holder_takes_the_port_when_it_is_killed() {
    let holder = start_gateway(&["--port", "0"]);
    let port = holder.port().to_string();
    let stopped = stop_until_dropped(holder.pid());
    let mut waiter = Pending::spawn(gateway_cmd(&["run", "--port", &port, "--wait=20s"]));
    wait_for_established(holder.port(), 1);
    holder.signal(Signal::SIGKILL);
    drop(stopped);
    assert_eq!(waiter.read_ready(), holder.addr);
}

/// OPS-4: with a bound, the wait ends in the normal lock error: ERR-1 first, holder named, exit 5.
#[test]
fn ops4_wait_timeout_gives_the_normal_lock_error() {
    let holder = start_gateway(&["--port", "0"]);
    let port = holder.port().to_string();
    let (status, out, err) = run_refused(|| gateway_cmd(&["run", "--port", &port, "--wait=300ms"]), probe_complete);
    assert_eq!(status.code(), Some(5), "{err}");
    assert_eq!(out, "");
    assert_eq!(err.lines().next().unwrap(), held_message(&holder.url()));
    assert_eq!(health_pid(holder.addr), i64::from(holder.pid().as_raw()));
}

/// OPS-4, LOCK-6: several waiters: exactly one takes the released port, the others keep waiting;
/// when the winner goes, one of the others takes it.
#[test]
fn ops4_several_waiters_exactly_one_wins_the_others_keep_waiting() {
    let holder = start_gateway(&["--port", "0"]);
    let port = holder.port().to_string();
    let mut waiters: Vec<Pending> = (0..3).map(|_| Pending::spawn(gateway_cmd(&["run", "--port", &port, "--wait=30s"]))).collect();
    wait_for_established(holder.port(), 3);
    let (tx, rx) = mpsc::channel();
    for (i, w) in waiters.iter_mut().enumerate() {
        let mut stdout = w.proc.take_stdout().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut stdout, &mut line);
            let _ = tx.send((i, line));
        });
    }
    holder.signal(Signal::SIGTERM);
    let (first, line) = rx.recv_timeout(DEADLINE).expect("one waiter takes the port");
    assert_eq!(line.trim_end(), spec::ready_line("127.0.0.1", holder.port()));
    assert_eq!(health_pid(waiter_addr(&port)), i64::from(waiters[first].pid().as_raw()));
    for (i, w) in waiters.iter_mut().enumerate() {
        assert!(w.is_running(), "waiter {i} must still run (winner or still waiting)");
    }
    // The winner goes: exactly one of the other two takes over.
    nix::sys::signal::kill(waiters[first].pid(), Signal::SIGTERM).unwrap();
    let (second, line) = rx.recv_timeout(DEADLINE).expect("another waiter takes the port");
    assert_ne!(second, first);
    assert!(!line.is_empty(), "waiter {second} exited instead of taking the port");
    assert_eq!(health_pid(waiter_addr(&port)), i64::from(waiters[second].pid().as_raw()));
}

/// OPS-5: `--replace` stops a same-user gateway gracefully and takes the port.
#[test]
fn ops5_replace_stops_the_gateway_and_takes_the_port() {
    let holder = start_gateway(&["--port", "0"]);
    let port = holder.port().to_string();
    let mut replacer = Pending::spawn(gateway_cmd(&["run", "--port", &port, "--replace"]));
    assert_eq!(replacer.read_ready(), holder.addr);
    assert_eq!(holder.wait().code(), Some(0), "the old gateway shut down gracefully");
    assert_eq!(health_pid(waiter_addr(&port)), i64::from(replacer.pid().as_raw()));
}

/// OPS-5: `--replace` never touches a foreign holder: the normal lock error, exit 3.
#[test]
fn ops5_replace_never_touches_a_foreign_holder() {
    let foreign = ForeignListener::start(true);
    let (status, out, err) = run_to_exit(&["run", "--port", &foreign.addr.port().to_string(), "--replace"]);
    assert_eq!(status.code(), Some(3), "{err}");
    assert_eq!(out, "");
    assert_eq!(err.lines().next().unwrap(), held_message(&format!("ws://{}", foreign.addr)));
    foreign.assert_still_listening();
}
