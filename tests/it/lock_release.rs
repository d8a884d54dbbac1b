//! The kernel releases the lock on any exit, and nothing outlives the holder (REL-1..3).

use crate::support::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn successor_binds_at_once(port: u16) {
    let successor = start_gateway(&["--port", &port.to_string()]);
    assert_eq!(successor.port(), port);
}

/// REL-1: after SIGKILL, SIGTERM, SIGINT or SIGHUP of the holder a new instance binds at once.
#[test]
fn rel1_successor_binds_after_each_signal() {
    for sig in [Signal::SIGKILL, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let holder = start_gateway(&["--port", "0"]);
        let port = holder.port();
        holder.signal(sig);
        let status = holder.wait();
        if sig != Signal::SIGKILL {
            assert_eq!(status.code(), Some(0), "{sig} is a graceful shutdown");
        }
        successor_binds_at_once(port);
    }
}

fn crash_helper_then_successor(command: &str) {
    let mut holder = start_helper(0);
    let port = holder.port();
    holder.write_line(command);
    let status = holder.wait();
    assert!(!status.success(), "{command} must crash the holder");
    successor_binds_at_once(port);
}

/// REL-1: a panicking holder releases the lock.
#[test]
fn rel1_successor_binds_after_panic() {
    crash_helper_then_successor("panic");
}

/// REL-1: an aborting holder releases the lock.
#[test]
fn rel1_successor_binds_after_abort() {
    crash_helper_then_successor("abort");
}

/// REL-2: after SIGKILL of a holder with connected WebSocket clients (whose connections linger
/// in TIME_WAIT once the clients close), a new instance binds at once.
#[test]
fn rel2_successor_binds_after_sigkill_with_clients() {
    let holder = start_gateway(&["--port", "0"]);
    let port = holder.port();
    let mut clients: Vec<Ws> = (0..4).map(|_| ws_connect(holder.addr)).collect();
    for ws in &mut clients {
        ws.send(tokio_tungstenite::tungstenite::Message::Ping(vec![1].into())).unwrap();
        ws.flush().unwrap();
    }
    holder.signal(Signal::SIGKILL);
    holder.wait();
    // The clients see the connection end and close their side: the holder's side is left in TIME_WAIT.
    for mut ws in clients {
        while ws.read().is_ok() {}
    }
    successor_binds_at_once(port);
}

/// REL-3: a long-lived child started by the holder does not keep the port once the holder is
/// SIGKILLed (the listener is close-on-exec).
#[test]
fn rel3_child_process_does_not_inherit_the_lock() {
    let mut holder = start_helper(0);
    let port = holder.port();
    holder.write_line("spawn");
    let line = holder.read_line();
    let child: i32 = line.trim().strip_prefix("child ").and_then(|p| p.parse().ok()).expect("child pid");
    let child = Pid::from_raw(child);
    struct KillOnDrop(Pid);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGKILL);
        }
    }
    let _guard = KillOnDrop(child);
    holder.signal(Signal::SIGKILL);
    holder.wait();
    assert!(kill(child, None).is_ok(), "the child must still be alive for this test to mean anything");
    successor_binds_at_once(port);
}
