//! The baseline of `just bench` (`bench/benches/lock/main.rs`): the least a program can do for the
//! gateway's job — bind and listen on 127.0.0.1:PORT, print the ready line, hold accepted
//! connections — with std only and one thread (the lines it prints are the spec's, from the
//! harness). Its figures are the physical limit of the machine for that job.
//! Usage: `min_binder PORT`. A refused bind prints ERR-1's message and exits 3; SIGTERM (default
//! action) ends it.

use std::io::Write;
use std::net::TcpListener;

use gateway_harness::spec;

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(_) => {
            eprintln!("{}", spec::held_message(&spec::url("127.0.0.1", port)));
            std::process::exit(spec::exit::HELD);
        }
    };
    if let Ok(addr) = listener.local_addr() {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", spec::ready_line("127.0.0.1", addr.port()));
        let _ = stdout.flush();
    }
    let mut held = Vec::new();
    for stream in listener.incoming().flatten() {
        held.push(stream);
    }
}
