//! Diagnostics on stderr, via `tracing`. `GATEWAY_LOG` sets the level: `off`, `error`, `warn`,
//! `info`, `debug` or `trace` (ASCII case-insensitive); unset means `info`. Any other value,
//! the empty string included, is a usage error (`spec/cli.md`). Stdout carries only the ready line.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

/// The levels `GATEWAY_LOG` accepts, quietest first.
const LEVELS: [(&str, LevelFilter); 6] = [
    ("off", LevelFilter::OFF),
    ("error", LevelFilter::ERROR),
    ("warn", LevelFilter::WARN),
    ("info", LevelFilter::INFO),
    ("debug", LevelFilter::DEBUG),
    ("trace", LevelFilter::TRACE),
];

/// A `GATEWAY_LOG` value that is not one of the levels (shown with control characters escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value '{}' for 'GATEWAY_LOG': expected one of off, error, warn, info, debug, trace", .0.escape_debug())]
pub struct BadLogLevel(pub String);

/// The level a `GATEWAY_LOG` value asks for; `None` (unset) is `info`.
pub fn level(value: Option<&std::ffi::OsStr>) -> Result<LevelFilter, BadLogLevel> {
    let Some(value) = value else {
        return Ok(LevelFilter::INFO);
    };
    let text = value.to_str();
    LEVELS
        .iter()
        .find(|(name, _)| text.is_some_and(|t| t.eq_ignore_ascii_case(name)))
        .map(|(_, level)| *level)
        .ok_or_else(|| BadLogLevel(value.to_string_lossy().into_owned()))
}

/// Installs the stderr subscriber at `GATEWAY_LOG`'s level. Not observable until something is
/// logged; a bad value is refused before anything else happens.
pub fn init() -> Result<(), BadLogLevel> {
    let level = level(std::env::var_os("GATEWAY_LOG").as_deref())?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        // A stderr that cannot be written must not end the gateway: tracing would report the
        // failed write with `eprintln!`, which panics on that same stderr.
        .log_internal_errors(false)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    /// CLI-3: `GATEWAY_LOG` takes exactly the six level names, in any ASCII case; unset is
    /// `info`; anything else (empty, numbers, typos) is refused.
    #[test]
    fn cli3_gateway_log_levels() {
        assert_eq!(level(None), Ok(LevelFilter::INFO));
        for (name, filter) in LEVELS {
            assert_eq!(level(Some(OsStr::new(name))), Ok(filter));
            assert_eq!(level(Some(OsStr::new(&name.to_ascii_uppercase()))), Ok(filter));
        }
        for bad in ["", "3", "verbose", " info", "info ", "warning"] {
            assert_eq!(level(Some(OsStr::new(bad))), Err(BadLogLevel(bad.to_string())));
        }
        assert_eq!(
            BadLogLevel("a\nb".into()).to_string(),
            "invalid value 'a\\nb' for 'GATEWAY_LOG': expected one of off, error, warn, info, debug, trace"
        );
    }
}
