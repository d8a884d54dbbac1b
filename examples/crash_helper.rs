//! Test-only helper (not shipped): takes the lock with the library exactly like `gateway run`,
//! prints the same ready line, then obeys commands on stdin, one a line:
//! `panic`, `abort`, `spawn` (start a long-lived child, print `child <pid>`), `exit`.
//! Usage: `crash_helper PORT`.

use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr};

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = match gateway_lock::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
        Ok(l) => l,
        Err(err) => {
            eprintln!("GatewayLockError: {err}");
            std::process::exit(3);
        }
    };
    println!("{}", gateway_lock::ready_line(listener.local_addr().unwrap()));
    std::io::stdout().flush().unwrap();
    let mut children = Vec::new();
    for line in std::io::stdin().lock().lines() {
        match line.unwrap_or_default().trim() {
            "panic" => panic!("crash_helper: panic on request"),
            "abort" => std::process::abort(),
            "spawn" => {
                // Inherits every inheritable descriptor: the listener must not be one of them.
                let child = std::process::Command::new("sleep").arg("600").spawn().expect("spawn sleep");
                println!("child {}", child.id());
                std::io::stdout().flush().unwrap();
                children.push(child);
            }
            "exit" => break,
            _ => {}
        }
    }
    drop(listener);
}
