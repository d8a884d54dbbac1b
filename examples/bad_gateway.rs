//! Test-only helper (not shipped): a deliberately broken gateway, to prove that `gateway verify`
//! catches violations (VER-1). Called like the real one, `bad_gateway run --host H --port P`; the
//! environment variable `BAD_GATEWAY` chooses the defect:
//! - `message`: a refused start prints a wrong message (ERR-1);
//! - `ignore-lock`: a refused start prints the ready line anyway and stays up, as if it held the port (LOCK-1).
//!
//! It never handles signals: SIGTERM and SIGINT kill it.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let host: IpAddr = value("--host").and_then(|h| h.parse().ok()).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let port: u16 = value("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let addr = SocketAddr::new(host, port);
    let defect = std::env::var("BAD_GATEWAY").unwrap_or_default();
    let _listener = match gateway_lock::lock::bind(addr) {
        Ok(listener) => Some(listener),
        Err(_) if defect == "ignore-lock" => None,
        Err(err) if defect == "message" => {
            eprintln!("error: port {} is busy ({err})", addr.port());
            std::process::exit(3);
        }
        Err(err) => {
            eprintln!("GatewayLockError: {err}");
            std::process::exit(3);
        }
    };
    println!("{}", gateway_lock::gateway::ready_line(addr));
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
