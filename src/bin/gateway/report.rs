//! All human text of the `gateway` binary: the ready line, refusals and who holds the port,
//! `status` (a line, or one JSON object with `--json`, `OPS-2`), `stop`, and the printing itself.
//! The exit codes are decided in [`crate::exit`].

use std::net::SocketAddr;
use std::time::Duration;

use gateway_lock::{
    ephemeral_port_warning, ready_line, Answer, HealthInfo, Holder, HolderKind, Owner, RunError, RunEvent, StopDone, StopFailed, WsUrl,
};

/// Prints `line` on stdout (`status`, `stop`, `verify`, the ready line). A closed stdout
/// (`gateway status | true`) is not an error and never a panic: the exit code still tells.
pub fn print_line(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// Prints `line` on stderr. A stderr that cannot be written (a closed pipe, a full disk) is not
/// an error and never a panic: a gateway keeps serving and every command keeps its exit code.
pub fn eprint_line(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}").and_then(|()| stderr.flush());
}

/// Shows what `gateway run` reports on the way: a refusal's first line (ERR-1, at once, before the
/// holder is looked up), the generated or stored token's file, the ready line.
pub fn run_event(event: RunEvent<'_>) {
    match event {
        RunEvent::Refused(error) => eprint_line(format_args!("GatewayLockError: {error}")),
        RunEvent::TokenGenerated(path) => {
            eprint_line(format_args!("gateway: no token given; generated one and stored it in {} (mode 0600)", path.display()))
        }
        RunEvent::TokenStored(path) => {
            eprint_line(format_args!("gateway: no token given; using the one stored in {} (mode 0600)", path.display()))
        }
        RunEvent::Ready(addr) => print_line(ready_line(addr)),
    }
}

/// Shows why `gateway run` failed on stderr: the error's line; after a refusal (whose ERR-1 line
/// [`run_event`] has shown already), who holds the port and, if `asked_port` lies in the ephemeral
/// range, a warning (`OPS-1`).
pub fn run_error(err: &RunError, asked_port: u16) {
    let RunError::Refused { holder, .. } = err else {
        eprint_line(err);
        return;
    };
    for line in holder_lines(holder) {
        eprint_line(line);
    }
    if let Some(warning) = ephemeral_port_warning(asked_port) {
        eprint_line(format_args!("warning: {warning}"));
    }
}

/// Shows the outcome of `gateway status` (`--json`: one JSON object).
pub fn status(found: &Holder, as_json: bool) {
    if as_json {
        print_line(json(found));
    } else {
        print_line(text(found));
    }
}

/// Shows the outcome of `gateway stop`: the stopped gateway on stdout, else why on stderr (and
/// who holds the port when it was refused before any signal).
pub fn stop(addr: SocketAddr, outcome: &Result<StopDone, StopFailed>) {
    match outcome {
        Ok(done) => print_line(format_args!(
            "stopped gateway pid {} on {}: port released after {} ms",
            done.pid,
            WsUrl(addr),
            done.took.as_millis()
        )),
        Err(failed) => {
            eprint_line(format_args!("{}", failed.error));
            for line in failed.holder.iter().flat_map(|h| holder_lines(h)) {
                eprint_line(line);
            }
        }
    }
}

/// Lines describing the holder, printed after the `GatewayLockError` line (`OPS-1`) and after a
/// refused `stop`.
pub fn holder_lines(found: &Holder) -> Vec<String> {
    let mut lines = vec![match &found.owner {
        Owner::Found(p) => format!(
            "  holder: pid {} (uid {}{}): {}",
            p.pid,
            p.uid,
            if p.stopped { ", stopped" } else { "" },
            p.command.as_deref().unwrap_or("(command line unreadable)")
        ),
        Owner::SocketOnly { uid } => format!("  holder: a listening socket of uid {uid}; its process is not visible from here"),
        Owner::OutOfTime { uid } => {
            format!("  holder: a listening socket of uid {uid}; its process was not found within {} ms", found.budget.as_millis())
        }
        Owner::NoListener => "  holder: no process listens on the address (it is bound by a socket that does not listen)".to_string(),
        Owner::Unknown => "  holder: unknown (finding the process is supported on Linux only)".to_string(),
    }];
    lines.push(match &found.answer {
        Answer::Gateway(h) => format!("  holder is a live gateway: {}", gateway_summary(h)),
        Answer::Other(what) => format!("  holder is not a gateway: GET /healthz {what}"),
        Answer::NoAnswer => format!("  holder did not answer GET /healthz within {} ms (stopped or hung?)", found.budget.as_millis()),
        Answer::Refused => "  holder does not accept connections".to_string(),
    });
    lines
}

/// `profile work, version 0.1.0, up 12.3s` (missing fields left out).
pub fn gateway_summary(h: &HealthInfo) -> String {
    let mut parts = vec![format!("profile {}", h.profile.as_deref().unwrap_or("(none)"))];
    if let Some(v) = &h.version {
        parts.push(format!("version {v}"));
    }
    if let Some(ms) = h.uptime_ms {
        parts.push(format!("up {}", humantime::format_duration(Duration::from_secs(ms / 1000))));
    }
    parts.join(", ")
}

/// The human-readable line of `gateway status`.
pub fn text(found: &Holder) -> String {
    let url = WsUrl(found.addr);
    let process = found.process().map(|p| {
        format!(
            "pid {}{}: {}",
            p.pid,
            if p.stopped { ", stopped" } else { "" },
            p.command.as_deref().unwrap_or("(command line unreadable)")
        )
    });
    let process = process.unwrap_or_else(|| "process unknown".to_string());
    match (found.kind(), &found.answer) {
        (HolderKind::Free, _) => format!("{url}: free"),
        (HolderKind::Gateway, Answer::Gateway(h)) => {
            let pid = h.pid.map(|p| format!("pid {p}, ")).unwrap_or_default();
            format!("{url}: gateway ({pid}{})", gateway_summary(h))
        }
        (HolderKind::Foreign, Answer::Other(why)) => format!("{url}: foreign process ({process}); GET /healthz {why}"),
        _ => format!("{url}: held but not answering within {} ms ({process})", found.budget.as_millis()),
    }
}

/// The object of `gateway status --json`.
pub fn json(found: &Holder) -> serde_json::Value {
    let health = found.health();
    let process = found.process();
    serde_json::json!({
        "state": found.kind().name(),
        "url": WsUrl(found.addr).to_string(),
        "host": found.addr.ip().to_string(),
        "port": found.addr.port(),
        "pid": process.map(|p| p.pid).or(health.and_then(|h| h.pid)),
        "uid": process.map(|p| p.uid),
        "command": process.and_then(|p| p.command.clone()),
        "stopped": process.map(|p| p.stopped),
        "profile": health.and_then(|h| h.profile.clone()),
        "version": health.and_then(|h| h.version.clone()),
        "uptimeMs": health.and_then(|h| h.uptime_ms),
    })
}
