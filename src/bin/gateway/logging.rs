//! Diagnostics on stderr, via `tracing`. `GATEWAY_LOG` sets the level (`error`, `warn`,
//! `info` (default), `debug`, `trace`, or `off`). Stdout carries only the ready line.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

/// Installs the stderr subscriber. Not observable until something is logged.
pub fn init() {
    let level = std::env::var("GATEWAY_LOG").ok().and_then(|v| v.parse::<LevelFilter>().ok()).unwrap_or(LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}
