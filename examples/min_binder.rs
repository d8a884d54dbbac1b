//! The baseline of `just bench` (`benches/lock.rs`): the least a program can do for the gateway's
//! job — bind and listen on 127.0.0.1:PORT, print the ready line, hold accepted connections —
//! with std only and one thread. Its figures are the physical limit of the machine for that job.
//! Usage: `min_binder PORT`. A refused bind prints the gateway's message and exits 3; SIGTERM
//! (default action) ends it.

use std::io::Write;
use std::net::TcpListener;

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(_) => {
            eprintln!("GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:{port}");
            std::process::exit(3);
        }
    };
    if let Ok(addr) = listener.local_addr() {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on ws://{addr}");
        let _ = stdout.flush();
    }
    let mut held = Vec::new();
    for stream in listener.incoming().flatten() {
        held.push(stream);
    }
}
