//! Fuzzes the command line and environment: arbitrary argv (any bytes, not only UTF-8) and
//! `GATEWAY_PORT` / `GATEWAY_HOST` values through the binary's `cli::parse_from` (clap plus the profile's default port;
//! `src/bin/gateway/cli.rs`, compiled into this target).
//! Never a panic; a refusal is a usage error (exit 2) or help/version (exit 0) (CLI-2).
//!
//! Input: byte 0 picks which environment variables to set; the rest is split on NUL into
//! fields: the environment values first (as picked), then argv after `gateway`.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

#[path = "../../src/bin/gateway/cli.rs"]
#[allow(dead_code)] // the binary's whole command line, of which this target calls a part
mod cli;
use cli::{parse_from, Command};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut fields = rest.split(|b| *b == 0).map(|f| OsString::from_vec(f.to_vec()));
    for (bit, key) in [(1u8, "GATEWAY_PORT"), (2, "GATEWAY_HOST")] {
        match (flags & bit != 0).then(|| fields.next()).flatten() {
            // Values come from NUL-split fields, so `set_var` cannot panic on them.
            Some(value) if !value.is_empty() => std::env::set_var(key, value),
            _ => std::env::remove_var(key),
        }
    }
    let argv: Vec<OsString> = std::iter::once(OsString::from("gateway")).chain(fields).collect();
    match parse_from(&argv) {
        Ok(cli) => match cli.command {
            Command::Run(args) => {
                // A literal address: printing and re-parsing it gives it back.
                assert_eq!(gateway_lock::parse_host(&args.host.to_string()), Ok(args.host));
                // Whatever was accepted becomes the library's settings, for that very address.
                assert_eq!(args.settings().addr, std::net::SocketAddr::new(args.host, args.port));
            }
            Command::Status(args) => assert_eq!(args.target.addr().ip(), args.target.host),
            Command::Stop(args) => assert_eq!(args.target.addr().ip(), args.target.host),
            Command::Verify(_) => {}
        },
        Err(err) => {
            let code = err.exit_code();
            assert!(code == 0 || code == 2, "clap refused {argv:?} with exit code {code}");
            let _ = err.render().to_string();
        }
    }
});
