//! The command line: `gateway-conformance [TEMPLATE] [claims] [options]`.

use std::path::PathBuf;
use std::time::Duration;

use crate::claims::{Claims, ReadyBy, Settings};

/// The usage text (`--help`).
pub const USAGE: &str = "\
usage: gateway-conformance ['<command template with {port}>'] [claims] [options]

claims (what the implementation does beyond the lock):
  --token TOKEN        it speaks spec/protocol.md and accepts TOKEN ({token} in the template)
  --names-holder       a refusal names the holder (OPS-1)
  --timer-args 'ARGS'  appended to the template to make the handshake timeout and tick interval short

options:
  --ready line|port|readyz
                       readiness: the ready line on stdout (default), the port accepting, or
                       the port accepting and then GET /readyz answering 200
  --deadline DURATION  bound of every wait (default 10s; e.g. 500ms, 30s, 2m)
  --start-deadline DURATION
                       bound of the waits for an instance to be ready or to exit (default:
                       --deadline), for an implementation slow to start or to refuse
  --only ID,...        run and print only these rows
  --repeat N           rounds of the racing rows LOCK-6 and SHUT-3 (default 1)
  --seed S             seed of the racing rows' choices (default: random, printed)
  --burst N            contenders started at once for LOCK-6 (default 4, at least 2)
  --expect FILE        known departures: lines `ID fail|n/a|pass|any reason`; any change fails the run
  --json               print the result as JSON instead of the table
  --junit FILE         also write the result as JUnit XML to FILE
  --verbose            print every command run and each instance's stdout and stderr
  -h, --help           this text

Without a template: our own gateway (beside this binary, or target/debug/gateway) with every claim.
Exit status: 0 when no row failed (and the expectations held), 1 otherwise, 2 on bad usage.";

/// Parses the arguments (without the program name); `Err` is a usage error (empty: `--help`).
pub fn parse(args: Vec<String>) -> Result<Settings, String> {
    let mut template = None;
    let mut s = defaults();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--token" => s.claims.token = Some(non_empty("--token", value("--token")?)?),
            "--names-holder" => s.claims.names_holder = true,
            "--timer-args" => s.claims.timer_args = value("--timer-args")?,
            "--ready" => s.ready = ready(&value("--ready")?)?,
            "--deadline" => s.deadline = duration("--deadline", &value("--deadline")?)?,
            "--start-deadline" => s.start_deadline = Some(duration("--start-deadline", &value("--start-deadline")?)?),
            "--only" => s.only = value("--only")?.split(',').map(|i| i.trim().to_ascii_uppercase()).filter(|i| !i.is_empty()).collect(),
            "--repeat" => s.repeat = number("--repeat", &value("--repeat")?, 1)?,
            "--seed" => s.seed = value("--seed")?.parse().map_err(|_| "--seed needs a number".to_string())?,
            "--burst" => s.burst = number("--burst", &value("--burst")?, 2)?,
            "--expect" => s.expect = Some(PathBuf::from(value("--expect")?)),
            "--json" => s.json = true,
            "--junit" => s.junit = Some(PathBuf::from(value("--junit")?)),
            "--verbose" | "-v" => s.verbose = true,
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("unknown option {}", escaped(f))),
            _ if template.is_some() => return Err(format!("a second template {}", escaped(&arg))),
            _ => template = Some(arg),
        }
    }
    s.template = template.filter(|t| !t.trim().is_empty()).unwrap_or_default();
    Ok(s)
}

fn defaults() -> Settings {
    Settings {
        template: String::new(),
        claims: Claims::default(),
        deadline: Duration::from_secs(10),
        start_deadline: None,
        ready: ReadyBy::Line,
        burst: 4,
        repeat: 1,
        seed: rand::random(),
        only: Vec::new(),
        verbose: false,
        json: false,
        junit: None,
        expect: None,
    }
}

fn non_empty(name: &str, value: String) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{name} needs a non-empty value"));
    }
    Ok(value)
}

/// Text quoted and escaped for an error message.
fn escaped(text: &str) -> String {
    format!("{:?}", text)
}

fn ready(word: &str) -> Result<ReadyBy, String> {
    match word {
        "line" => Ok(ReadyBy::Line),
        "port" => Ok(ReadyBy::Port),
        "readyz" => Ok(ReadyBy::Readyz),
        _ => Err(format!("--ready takes `line`, `port` or `readyz`, not {}", escaped(word))),
    }
}

fn number(name: &str, text: &str, min: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (min..=1000).contains(&n) => Ok(n),
        _ => Err(format!("{name} takes a number from {min} to 1000, not {}", escaped(text))),
    }
}

/// `500ms`, `10s`, `2m`, or a plain number of seconds.
fn duration(name: &str, text: &str) -> Result<Duration, String> {
    let bad = || format!("{name} takes a duration such as 500ms, 10s or 2m, not {}", escaped(text));
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, "s"), |at| text.split_at(at));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(bad());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Settings, String> {
        parse(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn flags_parse() {
        let s = args(&["t {port}", "--token", "x", "--deadline=30s", "--only", "lock-1,REL-3", "--burst", "8", "--ready", "port"]).unwrap();
        assert_eq!(s.template, "t {port}");
        assert_eq!(s.claims.token.as_deref(), Some("x"));
        assert_eq!(s.deadline, Duration::from_secs(30));
        assert_eq!(s.only, ["LOCK-1", "REL-3"]);
        assert_eq!((s.burst, s.ready), (8, ReadyBy::Port));
        assert_eq!(args(&["t {port}", "--ready=readyz"]).unwrap().ready, ReadyBy::Readyz);
        let slow = args(&["t {port}", "--deadline", "5s", "--start-deadline", "1m"]).unwrap();
        assert_eq!((slow.deadline, slow.start_deadline()), (Duration::from_secs(5), Duration::from_secs(60)));
        assert_eq!(args(&["t {port}", "--deadline", "5s"]).unwrap().start_deadline(), Duration::from_secs(5));
        assert!(args(&["--start-deadline", "0s"]).unwrap_err().contains("--start-deadline takes"));
        assert!(args(&["--ready", "soon"]).unwrap_err().contains("`readyz`"));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(args(&["--deadline", "soon"]).unwrap_err().contains("--deadline"));
        assert!(args(&["--burst", "1"]).unwrap_err().contains("--burst"));
        assert!(args(&["--token", ""]).unwrap_err().contains("non-empty"));
        assert!(args(&["--bogus\u{1b}"]).unwrap_err().contains("\\u{1b}"));
        assert!(args(&["a", "b"]).unwrap_err().contains("second template"));
        assert_eq!(args(&["--help"]).unwrap_err(), "");
    }
}
