//! The command line: flags and environment variables (`spec/cli.md`), turned into the library's
//! typed settings.
//!
//! Only `gateway_lock`'s public API is named here (no `crate::` path outside the tests): the
//! command-line fuzz targets compile this very file.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use gateway_lock::{Limits, RunSettings, Takeover, Token, TokenConfig, DEFAULT_PORT};

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
    /// Tell who holds the port: free, a gateway, a foreign process, or not answering.
    Status(StatusArgs),
    /// Ask the gateway holding the port to shut down gracefully and wait until the port is free.
    Stop(StopArgs),
    /// Verify the lock on this machine: start, race and kill real gateways at random, check every invariant.
    Verify(VerifyArgs),
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
    #[arg(long = "allow-origin", env = "GATEWAY_ALLOW_ORIGINS", value_delimiter = ',', value_name = "ORIGIN",
          value_parser = parse_list_item)]
    pub allow_origins: Vec<String>,
    /// A host name (or address) requests may carry in `Host` besides loopback names and addresses
    /// and the bound address (repeatable); any other gets 421.
    #[arg(long = "allow-host", env = "GATEWAY_ALLOW_HOSTS", value_delimiter = ',', value_name = "HOST",
          value_parser = parse_allow_host_item)]
    pub allow_hosts: Vec<String>,
    /// Time a WebSocket client has, from the upgrade, to complete the `connect` handshake.
    #[arg(long, env = "GATEWAY_HANDSHAKE_TIMEOUT_MS", default_value_t = RunSettings::default().handshake_timeout.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..=600_000), value_name = "MS")]
    pub handshake_timeout_ms: u64,
    /// Interval of the `tick` event sent to authenticated clients.
    #[arg(long, env = "GATEWAY_TICK_INTERVAL_MS", default_value_t = RunSettings::default().tick_interval.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000), value_name = "MS")]
    pub tick_interval_ms: u64,
    /// Most open connections (HTTP and WebSocket).
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub max_connections: u32,
    /// Most connections that have not completed the handshake; the oldest is dropped for a newcomer.
    #[arg(long, env = "GATEWAY_MAX_UNAUTHENTICATED", default_value_t = Limits::default().max_unauthenticated as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub max_unauthenticated: u32,
    /// Operations (issue 4): `--wait`, `--replace`, `--profile`.
    #[command(flatten)]
    pub ops: RunOpsArgs,
}

impl RunArgs {
    /// The token as configured by flags and environment (the file is read only after the bind).
    pub fn token_config(&self) -> TokenConfig {
        match (&self.token, &self.token_file) {
            (Some(token), _) => TokenConfig::Value(Token::new(token.clone())),
            (None, Some(path)) => TokenConfig::File(path.clone()),
            (None, None) => TokenConfig::None,
        }
    }

    /// The library's settings for `gateway run`.
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            addr: std::net::SocketAddr::new(self.host, self.port),
            token: self.token_config(),
            allowed_origins: non_empty(&self.allow_origins),
            allowed_hosts: non_empty(&self.allow_hosts),
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
            tick_interval: Duration::from_millis(self.tick_interval_ms),
            limits: Limits { max_connections: self.max_connections as usize, max_unauthenticated: self.max_unauthenticated as usize },
            takeover: Takeover { wait: self.ops.wait, replace: self.ops.replace },
            profile: self.ops.profile.clone(),
        }
    }
}

/// `gateway run` flags for operating it (issue 4, `spec/cli.md`).
#[derive(Debug, Clone, Args)]
pub struct RunOpsArgs {
    /// If the port is held, wait until it is free and take it; `--wait=30s` bounds the wait
    /// (then the normal lock error), bare `--wait` waits without limit.
    #[arg(long, value_name = "DURATION", require_equals = true, num_args = 0..=1, value_parser = parse_duration)]
    pub wait: Option<Option<Duration>>,
    /// If the port is held by a gateway of this user, ask it to stop and take the port once it is free.
    #[arg(long)]
    pub replace: bool,
    /// Run under a profile: its own state directory, and its own default port unless --port is given (spec/cli.md).
    #[arg(long, env = "GATEWAY_PROFILE", value_parser = parse_profile_arg)]
    pub profile: Option<String>,
}

/// Which address `status` and `stop` look at (issue 4).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Address to look at (as for `run`).
    #[arg(long, env = "GATEWAY_HOST", default_value = "127.0.0.1", value_parser = parse_host_arg)]
    pub host: IpAddr,
    /// Port to look at; default: the profile's port, else 18789.
    #[arg(long, short = 'p', env = "GATEWAY_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Profile whose default port to look at.
    #[arg(long, env = "GATEWAY_PROFILE", value_parser = parse_profile_arg)]
    pub profile: Option<String>,
}

impl TargetArgs {
    /// The address to look at.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port.unwrap_or_else(|| default_port(self.profile.as_deref())))
    }
}

/// Flags of `gateway status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The address.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `gateway stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// The address.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How long to wait for the port to be released (e.g. `500ms`, `10s`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// The default port of a profile, or [`DEFAULT_PORT`] without one.
pub fn default_port(profile: Option<&str>) -> u16 {
    profile.map(gateway_lock::profile_port).unwrap_or(DEFAULT_PORT)
}

/// Parses the command line like [`Cli::try_parse_from`], then applies the profile's default
/// port to `gateway run` when neither `--port` nor `GATEWAY_PORT` was given.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let (Command::Run(run), Some(("run", sub))) = (&mut cli.command, matches.subcommand()) {
        if sub.value_source("port") == Some(clap::parser::ValueSource::DefaultValue) {
            run.port = default_port(run.ops.profile.as_deref());
        }
    }
    Ok(cli)
}

fn parse_duration(value: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(value)
}

fn parse_profile_arg(value: &str) -> Result<String, gateway_lock::ProfileNameError> {
    gateway_lock::parse_profile_name(value)
}

/// Flags of `gateway verify` (`spec/cli.md`).
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Port to verify on (127.0.0.1); it must be free. Default: a free port below the ephemeral range.
    #[arg(long, short = 'p', value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Number of cycles to run (default 100 when --duration is not given either).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub cycles: Option<u64>,
    /// Run for this long, e.g. `30s`, `5m` (with --cycles: whichever ends first).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Seed of the random schedule (random if absent; a failed run prints it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Most contenders started at once.
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=16))]
    pub max_burst: usize,
    /// Most WebSocket clients kept connected to a holder.
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=16))]
    pub max_clients: usize,
    /// The gateway executable to verify, called as `EXE run --host 127.0.0.1 --port P` (default: this one).
    #[arg(long, value_name = "EXE")]
    pub exe: Option<std::path::PathBuf>,
    /// Any implementation, as a shell command with {port} (and optionally {host}, {token}), e.g.
    /// 'node gateway.js run --port {port} --token {token}'; each instance in fresh directories.
    #[arg(long, value_name = "COMMAND", conflicts_with = "exe", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub template: Option<String>,
    /// How an instance shows that it holds the port: its ready line, or a listening socket on the port.
    #[arg(long, value_enum, default_value = "line")]
    pub ready: ReadyBy,
}

/// How an instance verified shows that it holds the port (`gateway verify --ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadyBy {
    /// Its first stdout line is the ready line (`spec/cli.md`).
    Line,
    /// It (or a process it started) has a listening socket on the port.
    Port,
}

/// An item of `--allow-origin` / `GATEWAY_ALLOW_ORIGINS` (CLI-3): surrounding whitespace removed;
/// an empty item is kept as `""` here and left out by [`non_empty`].
fn parse_list_item(value: &str) -> Result<String, std::convert::Infallible> {
    Ok(value.trim_matches([' ', '\t']).to_string())
}

/// An item of `--allow-host` / `GATEWAY_ALLOW_HOSTS` (CLI-3, DOOR-7): empty (left out by
/// [`non_empty`]) or a host name or address as in a `Host` header.
fn parse_allow_host_item(value: &str) -> Result<String, gateway_lock::AllowedHostError> {
    if value.trim_matches([' ', '\t']).is_empty() {
        return Ok(String::new());
    }
    gateway_lock::parse_allowed_host(value)
}

/// The items of a list flag without the empty ones: an empty `GATEWAY_ALLOW_ORIGINS` or
/// `GATEWAY_ALLOW_HOSTS` (or an empty item, `a,,b`) is no item, as when it is unset (CLI-3).
fn non_empty(items: &[String]) -> Vec<String> {
    items.iter().filter(|item| !item.is_empty()).cloned().collect()
}

fn parse_host_arg(value: &str) -> Result<IpAddr, gateway_lock::HostError> {
    gateway_lock::parse_host(value)
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
            &["gateway", "run", "--wait=soon"],
            &["gateway", "run", "--profile", "../x"],
            &["gateway", "status", "--port", "0"],
            &["gateway", "stop", "--timeout", "-1"],
            &["gateway", "verify", "--cycles", "0"],
            &["gateway", "verify", "--cycles", "many"],
            &["gateway", "verify", "--duration", "soon"],
            &["gateway", "verify", "--port", "0"],
            &["gateway", "verify", "--max-burst", "0"],
            &["gateway", "verify", "--max-clients", "17"],
            &["gateway", "verify", "--seed", "-1"],
        ] {
            let err = parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), i32::from(crate::exit::USAGE), "{args:?}");
        }
    }

    /// OPS-6: a profile gives `run` its default port unless `--port` is given.
    #[test]
    fn ops6_profile_sets_the_default_port() {
        let port = |args: &[&str]| match parse_from(args).unwrap().command {
            Command::Run(run) => run.port,
            _ => unreachable!(),
        };
        assert_eq!(port(&["gateway", "run"]), DEFAULT_PORT);
        assert_eq!(port(&["gateway", "run", "--profile", "work"]), gateway_lock::profile_port("work"));
        assert_eq!(port(&["gateway", "run", "--profile", "work", "--port", "7"]), 7);
        match parse_from(["gateway", "run", "--wait"]).unwrap().command {
            Command::Run(run) => assert_eq!(run.ops.wait, Some(None)),
            _ => unreachable!(),
        }
        match parse_from(["gateway", "run", "--wait=1s"]).unwrap().command {
            Command::Run(run) => assert_eq!(run.ops.wait, Some(Some(Duration::from_secs(1)))),
            _ => unreachable!(),
        }
    }

    proptest::proptest! {
        /// DOOR-5: `--token` wins over `--token-file`, whichever comes first; with neither, a
        /// token is generated after the bind (`TokenConfig::None`).
        #[test]
        fn door5_token_flag_wins_over_the_token_file(
            token in proptest::option::of("[!-~]{1,16}"),
            file in proptest::option::of("/[a-z]{1,8}"),
            file_first in proptest::bool::ANY,
        ) {
            proptest::prop_assume!(std::env::var_os("GATEWAY_TOKEN").is_none() && std::env::var_os("GATEWAY_TOKEN_FILE").is_none());
            let mut flags = Vec::new();
            if let Some(t) = &token {
                flags.push(format!("--token={t}"));
            }
            if let Some(f) = &file {
                flags.push(format!("--token-file={f}"));
            }
            if file_first {
                flags.reverse();
            }
            let args = ["gateway".to_string(), "run".to_string()].into_iter().chain(flags);
            let Command::Run(run) = parse_from(args).unwrap().command else { unreachable!() };
            let want = match (token, file) {
                (Some(t), _) => TokenConfig::Value(Token::new(t)),
                (None, Some(f)) => TokenConfig::File(f.into()),
                (None, None) => TokenConfig::None,
            };
            proptest::prop_assert_eq!(run.token_config(), want);
        }
    }
}
