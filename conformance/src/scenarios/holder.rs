//! Naming the holder (`spec/invariants.md`, OPS-1), when claimed with `--names-holder`: refusals
//! by a live instance (exit 5), the same instance stopped (exit 3, bounded) and a foreign listener
//! (exit 3) name the holder's pid after ERR-1's line. OPS-9, on the same claim: a foreign holder
//! with a hostile command line (a newline and a fake holder line, terminal escapes, bidirectional
//! and zero-width characters, bytes that are not UTF-8, longer than the cut) is shown escaped and cut.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway_harness::net::{loopback, ForeignListener};
use gateway_harness::proc::Proc;
use gateway_harness::sockets::is_stopped;
use gateway_harness::{human, spec};
use nix::sys::signal::Signal;

use super::{Ctx, Table};
use crate::report::Check;
use crate::subject::{Refusal, Start};

pub const SCENARIOS: Table = &[(&["OPS-1"], names_holder), (&["OPS-9"], hostile_holder)];

/// Attempts of a refused start whose probe was cut short by load (the spec lets it say so).
const PROBE_ATTEMPTS: usize = 5;

fn names_holder(ctx: &Ctx) {
    if !ctx.settings.claims.names_holder {
        return;
    }
    ctx.check("OPS-1", &live_then_stopped(ctx));
    let result = match ForeignListener::try_bind(loopback(0), false) {
        Ok(foreign) => refused_with_probe(ctx, foreign.addr.port(), process_found)
            .and_then(|r| holder_named(foreign.addr.port(), std::process::id(), &r, spec::exit::HELD))
            .map(|w| format!("foreign listener (the runner): {w}")),
        Err(e) => Err(format!("the runner could not listen: {e}")),
    };
    ctx.check("OPS-1", &result);
}

/// A refused start, retried (bounded) while `complete` says the holder probe was cut short.
fn refused_with_probe(ctx: &Ctx, port: u16, complete: fn(&str) -> bool) -> Result<Refusal, String> {
    let mut last = Err("not run".to_string());
    for _ in 0..PROBE_ATTEMPTS {
        let r = ctx.subject.run_to_exit(&port.to_string(), &Start::default())?;
        let done = complete(&r.stderr);
        last = Ok(r);
        if done {
            break;
        }
    }
    last
}

/// The holder probe found the process and its answer within its bound.
fn probe_complete(stderr: &str) -> bool {
    process_found(stderr) && !stderr.contains("did not answer GET /healthz within")
}

/// The holder probe found the process within its bound (a stopped holder does not answer).
fn process_found(stderr: &str) -> bool {
    !stderr.contains("was not found within")
}

/// Checks ERR-1 first, the holder's pid on line 2, and the exit code.
fn holder_named(port: u16, pid: u32, r: &Refusal, code: i32) -> Check {
    let lines: Vec<&str> = r.stderr.lines().collect();
    let want = spec::held_message(&spec::url("127.0.0.1", port));
    let holder = format!("  holder: pid {pid} ");
    if lines.first() != Some(&want.as_str()) {
        Err(format!("first stderr line {:?}, want {want:?}", lines.first().unwrap_or(&"")))
    } else if !lines.get(1).is_some_and(|l| l.starts_with(&holder)) {
        Err(format!("second stderr line {:?}, want it to start with {holder:?}", lines.get(1).unwrap_or(&"")))
    } else if r.code != Some(code) {
        Err(format!("{}, want exit {code}; stderr {:?}", r.status, r.stderr))
    } else if !r.stdout.is_empty() {
        Err(format!("stdout not empty: {:?}", r.stdout))
    } else {
        Ok(format!("exit {code}, {:?}", lines[1]))
    }
}

fn live_then_stopped(ctx: &Ctx) -> Check {
    let port = ctx.port();
    let holder = ctx.start(port)?;
    let pid = holder.pid();
    let live = holder_named(port, pid, &refused_with_probe(ctx, port, probe_complete)?, spec::exit::HELD_BY_GATEWAY)?;
    holder.signal(Signal::SIGSTOP);
    let end = Instant::now() + ctx.settings.deadline;
    while !is_stopped(pid) {
        if Instant::now() >= end {
            holder.signal(Signal::SIGCONT);
            return Err(format!("timed out: the holder (pid {pid}) did not stop within {}", human(ctx.settings.deadline)));
        }
        // Polling the kernel's process state; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    let answer = refused_with_probe(ctx, port, process_found);
    let took = start.elapsed();
    holder.signal(Signal::SIGCONT);
    let answer = answer?;
    let stopped = holder_named(port, pid, &answer, spec::exit::HELD)?;
    if answer.took > spec::REFUSAL_BOUND {
        return Err(format!(
            "SIGSTOPped holder: refused only {} after exec, over the bound of {} (the holder probe is bounded)",
            human(answer.took),
            human(spec::REFUSAL_BOUND)
        ));
    }
    let said = |start: &str, has: &str| answer.stderr.lines().any(|l| l.starts_with(start) && l.contains(has));
    if !said("  holder: pid ", ", stopped)") || !said("  holder did not answer GET /healthz within", "") {
        let want = "`  holder: pid <pid> (uid <uid>, stopped): ...` and `  holder did not answer GET /healthz within ...`";
        return Err(format!("SIGSTOPped holder: stderr {:?}, want lines {want}", answer.stderr));
    }
    Ok(format!(
        "live holder: {live}; SIGSTOPped holder: {stopped}, did not answer, refused {} after exec ({} in all)",
        human(answer.took),
        human(took)
    ))
}

/// The first argument of the runner's hidden holder mode (`gateway-conformance --hold ARGS...`).
pub const HOLD: &str = "--hold";

/// The hidden holder mode of OPS-9's row: listens on an ephemeral loopback port, prints it on
/// stdout, accepts nothing (a hung holder) and exits when stdin reaches end of file (the runner
/// closed it, or died). Its arguments are the hostile text; they are never read.
pub fn hold() -> ! {
    let listener = match std::net::TcpListener::bind(loopback(0)).and_then(|l| l.local_addr().map(|a| (l, a.port()))) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("gateway-conformance --hold: cannot listen: {e}");
            std::process::exit(1)
        }
    };
    println!("{}", listener.1);
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(listener);
    std::process::exit(0)
}

/// The hostile holder's arguments after `--hold`, each with how OPS-9 shows it (exact: `\n`, `\r`,
/// `\t`, `\\`, `\xHH` below U+0080, `\u{H...}` above, `\xHH` for a byte that is not UTF-8).
const HOSTILE: [(&[u8], &str); 5] = [
    (
        b"x\nholder is a live gateway: profile (none), version 1.0.0, up 1s",
        r"x\nholder is a live gateway: profile (none), version 1.0.0, up 1s",
    ),
    (b"\x1b[2J\x1b[H\x1b]0;owned\x07", r"\x1b[2J\x1b[H\x1b]0;owned\x07"),
    (b"tab\tcr\rback\\slash del\x7f", r"tab\tcr\rback\\slash del\x7f"),
    ("c1\u{9b}31m rlo\u{202e}txt zw\u{200b}sp bom\u{feff}".as_bytes(), r"c1\u{9b}31m rlo\u{202e}txt zw\u{200b}sp bom\u{feff}"),
    (b"bytes\xff\xfe\xc3", r"bytes\xff\xfe\xc3"),
];

/// The plain padding that makes the command line longer than the cut (so the cut falls in it).
const PADDING: usize = 600;

/// The holder's argv[0] (set explicitly, so that the expected text does not depend on the path).
const ARGV0: &str = "gateway-conformance";

/// The hostile holder's command line as OPS-9 shows it: escaped, joined by one space, cut after
/// 512 characters with the marker.
fn shown_command_line() -> String {
    let padding = "x".repeat(PADDING);
    let words = [ARGV0, HOLD].into_iter().chain(HOSTILE.iter().map(|(_, shown)| *shown)).chain([padding.as_str()]);
    let full: Vec<char> = words.collect::<Vec<_>>().join(" ").chars().collect();
    let head: String = full[..spec::COMMAND_CHARS].iter().collect();
    format!("{head}{}", spec::cut_marker(full.len() - spec::COMMAND_CHARS))
}

/// Starts the hostile holder (this binary's `--hold` mode) in a process group of its own; its port.
fn spawn_hostile(deadline: Duration) -> Result<(Proc, u16), String> {
    let exe = std::env::current_exe().map_err(|e| format!("the runner cannot find its own binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg0(ARGV0).arg(HOLD);
    for (raw, _) in HOSTILE {
        cmd.arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(raw));
    }
    cmd.arg("x".repeat(PADDING));
    let mut proc = Proc::spawn(cmd, Stdio::piped(), true).map_err(|e| format!("cannot start the hostile holder: {e}"))?;
    let line = proc.read_line(deadline).map_err(|e| format!("the hostile holder did not say its port: {e}"))?;
    let port = line.trim_end().parse().map_err(|_| format!("the hostile holder said {line:?}, not a port"))?;
    Ok((proc, port))
}

/// OPS-9: a refusal by the hostile holder prints no raw control, bidirectional or zero-width
/// character and no byte that is not UTF-8; its command line is shown escaped and cut, exactly.
fn hostile_holder(ctx: &Ctx) {
    if !ctx.settings.claims.names_holder {
        return;
    }
    let result = spawn_hostile(ctx.settings.deadline).and_then(|(holder, port)| {
        let r = refused_with_probe(ctx, port, process_found)?;
        let uid = std::fs::metadata(format!("/proc/{}", holder.pid())).map_err(|e| format!("the hostile holder: {e}"))?.uid();
        shown_escaped(port, holder.pid(), uid, &r)
    });
    ctx.check("OPS-9", &result);
}

/// Checks a refusal by the hostile holder: ERR-1 first, exit 3, nothing raw, the exact holder line.
fn shown_escaped(port: u16, pid: u32, uid: u32, r: &Refusal) -> Check {
    let raw = raw_characters(&r.stderr);
    let want = format!("  holder: pid {pid} (uid {uid}): {}", shown_command_line());
    let first = spec::held_message(&spec::url("127.0.0.1", port));
    if !raw.is_empty() {
        Err(format!("stderr holds raw {} (OPS-9: escaped as `ps` does): {:?}", raw.join(", "), r.stderr))
    } else if r.stderr.lines().any(|l| l.trim_start().starts_with("holder is a live gateway")) {
        Err(format!("the holder's argv printed a fake line \"holder is a live gateway\": {:?}", r.stderr))
    } else if r.stderr.lines().next() != Some(first.as_str()) {
        Err(format!("first stderr line {:?}, want {first:?}", r.stderr.lines().next().unwrap_or("")))
    } else if !r.stderr.lines().any(|l| l == want) {
        Err(format!("no line {want:?} (escaped, cut after {} characters, then the marker); stderr {:?}", spec::COMMAND_CHARS, r.stderr))
    } else if r.code != Some(spec::exit::HELD) {
        Err(format!("{}, want exit 3 (the hostile holder is not a gateway)", r.status))
    } else {
        Ok(format!("hostile holder: nothing raw on stderr, its command line escaped and cut exactly, {}", r.status))
    }
}

/// The characters of `text` OPS-9 says are never shown raw (C0 but the line ends, DEL, C1,
/// bidirectional and zero-width formatting), and U+FFFD (a byte that was not UTF-8), as `U+HHHH`.
fn raw_characters(text: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{fffd}')
        })
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OPS-9's expected line: the hostile text lies before the cut, which falls in the padding.
    #[test]
    fn ops9_the_cut_falls_in_the_padding() {
        let shown = shown_command_line();
        assert!(shown.contains(r"x\nholder is a live gateway") && shown.contains(r"\xff\xfe\xc3 xxx"), "{shown}");
        let marker = shown.rfind(" [... ").unwrap();
        assert_eq!(shown[..marker].chars().count(), spec::COMMAND_CHARS);
        assert!(shown[..marker].ends_with("xxxxxxxx"), "{shown}");
        assert!(raw_characters(&shown).is_empty());
        assert_eq!(raw_characters("a\x1b[2Jb\u{202e}\n\u{fffd}"), ["U+001B", "U+202E", "U+FFFD"]);
    }
}
