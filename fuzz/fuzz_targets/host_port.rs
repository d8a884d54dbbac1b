//! Fuzzes host and port parsing: `gateway_lock::parse_host` and the `--host` / `--port` values as clap
//! parses them (LOCK-4: a literal address or `localhost` only; CLI-2: 0..=65535 or a usage error).
#![no_main]

use std::net::{IpAddr, SocketAddr};

use gateway_lock::{parse_host, WsUrl, DEFAULT_HOST};
use libfuzzer_sys::fuzz_target;

// The binary's command line (`src/bin/gateway/cli.rs`), compiled into this target.
#[path = "../../src/bin/gateway/cli.rs"]
#[allow(dead_code)] // the binary's whole command line, of which this target calls a part
mod cli;
use cli::{parse_from, Command};

fn run_args(value: &str, flag: &str) -> Result<cli::RunArgs, clap::Error> {
    // `--flag=value`, so that a value like `--help` stays a value.
    let cli = parse_from(["gateway", "run", &format!("--{flag}={value}")])?;
    match cli.command {
        Command::Run(args) => Ok(args),
        other => panic!("`gateway run` parsed as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };

    // Host.
    let host = parse_host(s);
    match &host {
        Ok(ip) => {
            if s.eq_ignore_ascii_case("localhost") {
                assert_eq!(*ip, DEFAULT_HOST, "localhost means 127.0.0.1 only");
            } else {
                let literal = s.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(s);
                assert_eq!(literal.parse::<IpAddr>().ok(), Some(*ip), "{s:?} is not a literal address");
            }
            assert_eq!(parse_host(&ip.to_string()), Ok(*ip), "round trip of {ip}");
            let url = WsUrl(SocketAddr::new(*ip, 18789)).to_string();
            assert!(url.starts_with("ws://") && url.ends_with(":18789"), "{url}");
        }
        Err(err) => assert!(!err.to_string().is_empty()),
    }
    match (run_args(s, "host"), &host) {
        (Ok(args), Ok(ip)) => assert_eq!(args.host, *ip),
        (Err(err), Err(_)) => assert_eq!(err.exit_code(), 2, "{err}"),
        (ours, theirs) => panic!("--host={s:?}: clap {:?}, parse_host {theirs:?}", ours.map(|a| a.host)),
    }

    // Port: accepted iff it is an integer in 0..=65535.
    match (run_args(s, "port"), s.parse::<i64>()) {
        (Ok(args), Ok(n)) => assert_eq!(i64::from(args.port), n),
        (Ok(args), Err(_)) => panic!("--port={s:?} accepted as {}", args.port),
        (Err(err), Ok(n)) => {
            assert!(!(0..=65535).contains(&n), "--port={s:?} refused: {err}");
            assert_eq!(err.exit_code(), 2);
        }
        (Err(err), Err(_)) => assert_eq!(err.exit_code(), 2, "{err}"),
    }
});
