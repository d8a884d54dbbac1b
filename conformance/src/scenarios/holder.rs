//! Naming the holder (`spec/invariants.md`, OPS-1), when claimed with `--names-holder`: refusals
//! by a live instance (exit 5), the same instance stopped (exit 3, bounded) and a foreign listener
//! (exit 3) name the holder's pid after ERR-1's line.

use std::time::{Duration, Instant};

use gateway_harness::net::{loopback, ForeignListener};
use gateway_harness::sockets::is_stopped;
use gateway_harness::{human, spec};
use nix::sys::signal::Signal;

use super::{Ctx, Table};
use crate::report::Check;
use crate::subject::{Refusal, Start};

pub const SCENARIOS: Table = &[(&["OPS-1"], names_holder)];

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
