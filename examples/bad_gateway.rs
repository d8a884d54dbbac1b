//! Test-only helper (not shipped): a deliberately broken gateway, to prove that `gateway verify`
//! catches violations (VER-1). Called like the real one, `bad_gateway run --host H --port P`; the
//! environment variable `BAD_GATEWAY` chooses its defects (comma-separated):
//! - `message`: a refused start prints a wrong message (ERR-1);
//! - `ignore-lock`: a refused start prints the ready line anyway and stays up, as if it held the port (LOCK-1);
//! - `stdout`: a refused start prints a line on stdout before the right refusal (LOCK-3);
//! - `die-on-term`: `SIGTERM` and `SIGINT` kill it, instead of ending it with exit 0 (SHUT-1, SHUT-3).
//!
//! Without defects it is a gateway that `gateway verify --max-clients 0` must pass: it takes the
//! lock, refuses with ERR-1's exact message and exit 3, and ends with exit 0 at once on `SIGTERM`
//! and `SIGINT` (it never accepts a connection, so there is nothing to drain; WebSocket clients
//! would wait for a handshake that never comes: verify it with `--max-clients 0`).
//!
//! With `BAD_GATEWAY_REPORT_DIR` set, every start first writes the file `<dir>/<pid>` (atomically) holding its
//! `RLIMIT_CORE` as `soft hard`: how `tests/prop_verify.rs` observes the processes verify starts (VER-3, VER-4).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nix::sys::resource::{getrlimit, Resource};
use nix::sys::signal::{signal, SigHandler, Signal};

/// The graceful end of a gateway without connections: exit 0 at once (async-signal-safe).
extern "C" fn exit_0(_: libc::c_int) {
    // SAFETY: `_exit` is async-signal-safe.
    unsafe { libc::_exit(0) }
}

fn main() {
    if let Some(dir) = std::env::var_os("BAD_GATEWAY_REPORT_DIR") {
        let (soft, hard) = getrlimit(Resource::RLIMIT_CORE).unwrap_or((u64::MAX, u64::MAX));
        // Written under a temporary name and renamed: a start killed meanwhile leaves no partial report.
        let dir = std::path::Path::new(&dir);
        let (tmp, path) = (dir.join(format!(".{}", std::process::id())), dir.join(std::process::id().to_string()));
        std::fs::write(&tmp, format!("{soft} {hard}\n")).and_then(|()| std::fs::rename(&tmp, &path)).expect("write the start report");
    }
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let host: IpAddr = value("--host").and_then(|h| h.parse().ok()).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let port: u16 = value("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let addr = SocketAddr::new(host, port);
    let defects = std::env::var("BAD_GATEWAY").unwrap_or_default();
    let defect = |name: &str| defects.split(',').any(|d| d.trim() == name);
    if !defect("die-on-term") {
        for sig in [Signal::SIGTERM, Signal::SIGINT] {
            // SAFETY: the handler only calls `_exit`.
            unsafe { signal(sig, SigHandler::Handler(exit_0)) }.expect("install a signal handler");
        }
    }
    let listener = match gateway_lock::bind(addr) {
        Ok(listener) => Some(listener),
        Err(_) if defect("ignore-lock") => None,
        Err(err) => {
            if defect("stdout") {
                println!("port {} is busy", addr.port());
            }
            if defect("message") {
                eprintln!("error: port {} is busy ({err})", addr.port());
            } else {
                eprintln!("GatewayLockError: {err}");
            }
            std::process::exit(3);
        }
    };
    // The real port when 0 was asked for.
    let addr = listener.as_ref().and_then(|l| l.local_addr().ok()).unwrap_or(addr);
    println!("{}", gateway_lock::ready_line(addr));
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
