//! The command line: flags, environment variables and exit codes (`spec/cli.md`, `spec/errors.md`).

use std::net::IpAddr;

use clap::{Args, Parser, Subcommand};

use crate::lock::{self, DEFAULT_PORT};

/// Exit codes of the `gateway` binary. Each refusal has its own, so that scripts and
/// service managers can tell them apart (`spec/errors.md`).
pub mod exit_code {
    /// Clean exit, including a completed graceful shutdown.
    pub const OK: u8 = 0;
    /// An unexpected runtime failure after the lock was taken.
    pub const RUNTIME: u8 = 1;
    /// Bad usage: unknown flag, bad value (clap's own code).
    pub const USAGE: u8 = 2;
    /// The port is held by another listener (`EADDRINUSE`).
    pub const PORT_HELD: u8 = 3;
    /// Any other failure to bind the listener.
    pub const BIND_FAILED: u8 = 4;
    /// Refusing to bind a non-loopback address without a token (issue 6, `spec/protocol.md` DOOR-2).
    pub const UNAUTHENTICATED_BIND: u8 = 7;
}

/// `gateway`: a WebSocket gateway whose single-instance lock is its listening port.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take the port as the lock and serve on it until SIGTERM, SIGINT or SIGHUP.
    Run(RunArgs),
}

/// Flags of `gateway run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Address to listen on: a literal IP (127.0.0.1, ::1, ...) or `localhost` (= 127.0.0.1).
    #[arg(long, env = "GATEWAY_HOST", default_value = "127.0.0.1", value_parser = parse_host_arg)]
    pub host: IpAddr,
    /// Port to listen on; 0 lets the OS choose (the ready line shows the real port).
    #[arg(long, short = 'p', env = "GATEWAY_PORT", default_value_t = DEFAULT_PORT, allow_negative_numbers = true)]
    pub port: u16,

    // --- issue 6: the protocol and the front door (`spec/protocol.md`) ---
    /// The gateway token clients must present in `connect` (wins over --token-file).
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub token: Option<String>,
    /// A file holding the gateway token (surrounding whitespace ignored), read after the bind.
    #[arg(long, env = "GATEWAY_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// A browser origin allowed to open WebSocket connections (repeatable); upgrades carrying any
    /// other `Origin` get 403.
    #[arg(long = "allow-origin", env = "GATEWAY_ALLOW_ORIGINS", value_delimiter = ',', value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,
    /// Time a WebSocket client has, from the upgrade, to complete the `connect` handshake.
    #[arg(long, env = "GATEWAY_HANDSHAKE_TIMEOUT_MS", default_value_t = crate::protocol::DEFAULT_HANDSHAKE_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=600_000), value_name = "MS")]
    pub handshake_timeout_ms: u64,
    /// Interval of the `tick` event sent to authenticated clients.
    #[arg(long, env = "GATEWAY_TICK_INTERVAL_MS", default_value_t = crate::protocol::DEFAULT_TICK_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000), value_name = "MS")]
    pub tick_interval_ms: u64,
    /// Most open connections (HTTP and WebSocket).
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = crate::front_door::DEFAULT_MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub max_connections: u32,
    /// Most connections that have not completed the handshake; the oldest is dropped for a newcomer.
    #[arg(long, env = "GATEWAY_MAX_UNAUTHENTICATED", default_value_t = crate::front_door::DEFAULT_MAX_UNAUTHENTICATED as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub max_unauthenticated: u32,
}

impl RunArgs {
    /// The token as configured by flags and environment (the file is read only after the bind).
    pub fn token_config(&self) -> crate::front_door::TokenConfig {
        use crate::front_door::{Token, TokenConfig};
        match (&self.token, &self.token_file) {
            (Some(token), _) => TokenConfig::Value(Token::new(token.clone())),
            (None, Some(path)) => TokenConfig::File(path.clone()),
            (None, None) => TokenConfig::None,
        }
    }
}

fn parse_host_arg(value: &str) -> Result<IpAddr, lock::HostError> {
    lock::parse_host(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["gateway", "run", "--port", "abc"][..],
            &["gateway", "run", "--port", "-1"],
            &["gateway", "run", "--port", "65536"],
            &["gateway", "run", "--host", ""],
            &["gateway", "run", "--host", "example.com"],
            &["gateway", "run", "--bogus"],
            &["gateway", "run", "--token", ""],
            &["gateway", "run", "--handshake-timeout-ms", "0"],
            &["gateway", "run", "--max-connections", "0"],
            &["gateway", "run", "--max-unauthenticated", "x"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), i32::from(exit_code::USAGE), "{args:?}");
        }
    }
}
