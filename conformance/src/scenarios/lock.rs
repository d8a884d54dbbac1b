//! The lock (`spec/invariants.md`, LOCK-*, ERR-*, and what the first holder shows: CLI-1, SRV-1,
//! SRV-3, REL-3's close-on-exec): a holder, a second instance, foreign and `SO_REUSEPORT`
//! holders, a burst of contenders, the exact address in the kernel's socket table.

use std::time::Duration;

use gateway_harness::net::{http_get, http_raw, loopback, reuseport_listener, ForeignListener};
use gateway_harness::sockets::{describe_holders, fd_cloexec, fds_on_inode, holders_of_inode, listeners, listeners_covering};
use gateway_harness::{human, net::Answer, reaper, spec};
use rand::seq::SliceRandom;

use super::{Ctx, Table};
use crate::claims::ReadyBy;
use crate::report::{Check, Verdict};
use crate::subject::{check_refusal, first_line, Running, Start};

pub const SCENARIOS: Table = &[
    (&["CLI-1", "LOCK-1", "ERR-1", "LOCK-3", "LOCK-4", "SRV-1", "SRV-3", "REL-3"], first_holder),
    (&["LOCK-2", "ERR-1"], foreign_holder),
    (&["LOCK-5"], reuseport_holder),
    (&["LOCK-6"], burst),
    (&["ERR-2", "LOCK-4"], other_hosts),
];

/// A holder, then a second instance on its port, HTTP on the port, and the holder's socket.
fn first_holder(ctx: &Ctx) {
    let port = ctx.port();
    let holder = match ctx.subject.start(port, &Start::default()) {
        Ok(holder) => holder,
        Err(why) => return not_started(ctx, why),
    };
    ready_in_time(ctx, &holder);
    second_instance(ctx, port);
    exact_address(ctx, port, "127.0.0.1");
    close_on_exec(ctx, &holder, port);
    health_and_bad_requests(ctx, port);
}

/// The implementation did not start: CLI-1 fails, and nothing else can be judged.
fn not_started(ctx: &Ctx, why: String) {
    ctx.record("CLI-1", Verdict::Fail, why.clone());
    ctx.record("LOCK-1", Verdict::Fail, format!("knock-on of CLI-1 (could not start a holder: {why})"));
    let mut report = ctx.report.lock().unwrap_or_else(|e| e.into_inner());
    report.aborted = Some("not run: knock-on of CLI-1 (the implementation did not start)".to_string());
}

/// CLI-1: the ready line (or the port accepting) within the spec's bound from exec.
fn ready_in_time(ctx: &Ctx, holder: &Running) {
    let took = holder.took.unwrap_or_default();
    let what = match ctx.settings.ready {
        ReadyBy::Line => "ready line `listening on ws://127.0.0.1:<port>` on stdout",
        ReadyBy::Port => "the port accepted (no ready line claimed: --ready port)",
        ReadyBy::Readyz => "the port accepted (no ready line claimed: --ready readyz)",
    };
    let served = holder.served.map(|s| format!(", GET /readyz 200 only {} after exec", human(s))).unwrap_or_default();
    let result = if took <= spec::BIND_BOUND {
        Ok(format!("{what}, {} after exec", human(took)))
    } else {
        Err(format!("{what} only {} after exec, over the bound of {}: work before the bind{served}", human(took), human(spec::BIND_BOUND)))
    };
    if ctx.settings.ready == ReadyBy::Line {
        ctx.check("CLI-1", &result);
    } else {
        ctx.check("LOCK-3", &result);
        ctx.record("CLI-1", Verdict::NotApplicable, "no ready line claimed (--ready port or readyz)");
    }
}

/// LOCK-1, ERR-1, LOCK-3: a second instance is refused at once, exactly, having written nothing.
fn second_instance(ctx: &Ctx, port: u16) {
    let refusal = ctx.subject.run_to_exit(&port.to_string(), &Start::default());
    let checked = refusal.as_ref().map_err(Clone::clone).and_then(|r| check_refusal(r, port, true));
    ctx.check("LOCK-1", &checked);
    ctx.check("ERR-1", &checked);
    if let Ok(r) = &refusal {
        let fast = if r.took <= spec::REFUSAL_BOUND {
            Ok(format!("refused {} after exec (bound {})", human(r.took), human(spec::REFUSAL_BOUND)))
        } else {
            Err(format!("refused only {} after exec, over the bound of {}", human(r.took), human(spec::REFUSAL_BOUND)))
        };
        ctx.check("LOCK-1", &fast);
        let untouched = if r.written.is_empty() {
            Ok("refused start: its working directory, HOME, XDG directories and TMPDIR untouched".to_string())
        } else {
            // The entries at the top of each directory name what was written; the count says how much.
            let tops: Vec<&String> = r.written.iter().filter(|w| w.matches('/').count() == 1).collect();
            Err(format!(
                "a refused start wrote {} files or directories in its fresh working directory, HOME, XDG directories or TMPDIR, at the top {tops:?}",
                r.written.len()
            ))
        };
        // Both are named: what the refusal printed, and what it wrote.
        ctx.check("LOCK-3", &checked);
        ctx.check("LOCK-3", &untouched);
    } else {
        ctx.check("LOCK-3", &checked);
    }
    let still = if gateway_harness::net::accepts(loopback(port), ctx.settings.deadline) {
        Ok("the first instance still accepts".to_string())
    } else {
        Err("the first instance stopped accepting after the refusal".to_string())
    };
    ctx.check("LOCK-1", &still);
}

/// LOCK-4 (and LOCK-1): the kernel lists exactly one listener on the port, bound to exactly `host`.
fn exact_address(ctx: &Ctx, port: u16, host: &str) {
    let rows = listeners(port);
    let want = std::net::SocketAddr::new(host.parse().expect("a literal address"), port);
    let bound: Vec<String> = rows.iter().map(|r| r.local.to_string()).collect();
    let result = match rows.as_slice() {
        [one] if one.local == want => Ok(format!("the kernel's socket table: one listener, on {want} exactly")),
        [] => Err(format!("the kernel lists no listener on port {port}")),
        _ => Err(format!("asked for {want}; the kernel lists listeners on {}", bound.join(", "))),
    };
    ctx.check("LOCK-4", &result);
    if rows.len() > 1 {
        ctx.check("LOCK-1", &Err(format!("{} listeners on port {port}: {}", rows.len(), bound.join(", "))));
    }
}

/// REL-3: the listening socket is close-on-exec and no process but the holder has it open.
fn close_on_exec(ctx: &Ctx, holder: &Running, port: u16) {
    ctx.check("REL-3", &listener_private(holder, port));
}

fn listener_private(holder: &Running, port: u16) -> Check {
    let row = listeners_covering(loopback(port)).into_iter().next().ok_or("the kernel lists no listener on the port")?;
    let pids = holders_of_inode(row.inode);
    let family: Vec<u32> = std::iter::once(holder.pid()).chain(reaper::descendants(holder.pid())).collect();
    let [pid] = pids.as_slice() else {
        return Err(format!("the listening socket is open in {} processes: the port is {}", pids.len(), describe_holders(loopback(port))));
    };
    if !family.contains(pid) {
        return Err(format!("the listening socket is held by pid {pid}, not by the started instance (pid {})", holder.pid()));
    }
    for fd in fds_on_inode(*pid, row.inode) {
        if fd_cloexec(*pid, fd) == Some(false) {
            return Err(format!("the listening socket (fd {fd} of pid {pid}) is not close-on-exec: a child would inherit the lock"));
        }
    }
    Ok("the listening socket is close-on-exec and open in the holder only".to_string())
}

/// SRV-1: `/healthz` names the holder; SRV-3: a malformed head gets 400, an unknown path 404, a
/// wrong method 405, an oversize head 431, and serving goes on.
fn health_and_bad_requests(ctx: &Ctx, port: u16) {
    let deadline = ctx.settings.deadline;
    let answer =
        |text: std::io::Result<String>| text.map_err(|e| e.to_string()).and_then(|t| Answer::parse(&t).ok_or(format!("answer {t:?}")));
    let health = answer(http_get(loopback(port), "/healthz", deadline)).and_then(|a| {
        let json = a.json();
        if a.status == 200 && json["ok"] == true && json["status"] == "live" && json["port"] == port {
            Ok(format!("200 {}", a.body))
        } else {
            Err(format!("GET /healthz: {} {:?}, want 200 with ok true, status live, port {port}", a.status, a.body))
        }
    });
    ctx.check("SRV-1", &health);
    let bad = answer(http_raw(loopback(port), b"\x00\x01garbage\r\n\r\n", deadline)).and_then(|a| match a.status {
        400 => Ok("malformed head: 400".to_string()),
        other => Err(format!("malformed head answered {other}, want 400")),
    });
    ctx.check("SRV-3", &bad);
    for (what, request, want) in bad_requests(port) {
        let result = answer(http_raw(loopback(port), request.as_bytes(), deadline)).and_then(|a| match a.status {
            s if s == want => Ok(format!("{what}: {want}")),
            other => Err(format!("{what} answered {other}, want {want}")),
        });
        ctx.check("SRV-3", &result);
    }
    let after = answer(http_get(loopback(port), "/healthz", deadline)).and_then(|a| match a.status {
        200 => Ok("still serving after bad input".to_string()),
        other => Err(format!("after bad input GET /healthz answered {other}")),
    });
    ctx.check("SRV-3", &after);
}

/// SRV-3's requests beyond a malformed head: (what, request, the status the spec states).
fn bad_requests(port: u16) -> [(&'static str, String, u16); 4] {
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    let fields: String = (0..33).map(|i| format!("X-Field-{i}: x\r\n")).collect();
    [
        ("an unknown path", format!("GET /no-such-path HTTP/1.1\r\n{host}\r\n"), 404),
        ("POST /healthz", format!("POST /healthz HTTP/1.1\r\n{host}Content-Length: 0\r\n\r\n"), 405),
        ("a head over 8 KiB", format!("GET /healthz HTTP/1.1\r\n{host}X-Big: {}\r\n\r\n", "x".repeat(9000)), 431),
        ("a head of 34 fields", format!("GET /healthz HTTP/1.1\r\n{host}{fields}\r\n"), 431),
    ]
}

/// LOCK-2: a foreign (non-gateway) listener gives the same refusal, exit 3.
fn foreign_holder(ctx: &Ctx) {
    let foreign = match ForeignListener::try_bind(loopback(0), false) {
        Ok(foreign) => foreign,
        Err(e) => return ctx.record("LOCK-2", Verdict::Fail, format!("the runner could not listen: {e}")),
    };
    let refused = ctx.subject.refused(foreign.addr.port(), false);
    ctx.check("LOCK-2", &refused);
    ctx.check("ERR-1", &refused);
}

/// LOCK-5: a listener with `SO_REUSEPORT` holds the port; an implementation that set
/// `SO_REUSEPORT` itself would share it instead of being refused.
fn reuseport_holder(ctx: &Ctx) {
    let port = ctx.port();
    match reuseport_listener(port) {
        Ok(_reuse) => ctx.check("LOCK-5", &ctx.subject.refused(port, false)),
        Err(e) => ctx.record("LOCK-5", Verdict::Fail, format!("the runner could not listen with SO_REUSEPORT: {e}")),
    }
}

/// LOCK-6: bursts of contenders on a free port: exactly one wins (`--repeat` rounds, `--burst` each).
fn burst(ctx: &Ctx) {
    for round in 0..ctx.settings.repeat {
        let result = one_burst(ctx);
        let result = result.map_err(|e| if ctx.settings.repeat > 1 { format!("round {}: {e}", round + 1) } else { e });
        ctx.check("LOCK-6", &result);
    }
}

fn one_burst(ctx: &Ctx) -> Check {
    let (port, n) = (ctx.port(), ctx.settings.burst);
    let mut contenders: Vec<Running> = (0..n).map(|_| ctx.subject.spawn(&port.to_string(), &Start::default())).collect::<Result<_, _>>()?;
    contenders.shuffle(&mut *ctx.rng.borrow_mut());
    let winner = match ctx.settings.ready {
        ReadyBy::Line => None,
        ReadyBy::Port | ReadyBy::Readyz => port_holder(ctx, &mut contenders, port),
    };
    let (mut winners, mut problems) = (0, Vec::new());
    for c in &mut contenders {
        match contender_outcome(ctx, c, port, winner) {
            Ok(true) => winners += 1,
            Ok(false) => {}
            Err(why) => problems.push(why),
        }
    }
    if winners == 1 && problems.is_empty() {
        Ok(format!("{n} at once: 1 ready, {} refused with ERR-1", n - 1))
    } else {
        Err(format!("{n} at once: {winners} ready; {}", problems.join("; ")))
    }
}

/// Without a ready line: waits (bounded) until the port accepts, then the pid of the contender
/// whose process (or child) holds the listening socket in the kernel's tables; `None` if none
/// does. A contender still alive is not a winner: a slow implementation may bind late, and a
/// refused one may retry before it exits.
fn port_holder(ctx: &Ctx, contenders: &mut [Running], port: u16) -> Option<u32> {
    let end = std::time::Instant::now() + ctx.settings.start_deadline();
    while !gateway_harness::net::accepts(loopback(port), Duration::from_millis(200)) {
        if std::time::Instant::now() >= end || contenders.iter_mut().all(|c| c.proc.exited().is_some()) {
            return None;
        }
        // Polling the port of an implementation without a ready line; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(10));
    }
    let row = listeners_covering(loopback(port)).into_iter().next()?;
    let pids = holders_of_inode(row.inode);
    contenders.iter().map(Running::pid).find(|&c| pids.iter().any(|p| *p == c || reaper::descendants(c).contains(p)))
}

/// Whether one contender won (`Ok(true)`), was refused correctly (`Ok(false)`), or neither.
/// Without a ready line, `winner` is the contender found holding the port.
fn contender_outcome(ctx: &Ctx, c: &mut Running, port: u16, winner: Option<u32>) -> Result<bool, String> {
    let deadline = ctx.settings.start_deadline();
    let line = match ctx.settings.ready {
        ReadyBy::Line => c.proc.read_line(deadline).map_err(|e| e.to_string())?,
        _ if winner == Some(c.pid()) => return Ok(true),
        _ => String::new(),
    };
    if line == spec::ready_line("127.0.0.1", port) + "\n" {
        return Ok(true);
    }
    if !line.is_empty() {
        return Err(format!("unexpected stdout {line:?}"));
    }
    let status = c.proc.wait(deadline).map_err(|e| format!("pid {}, not holding the port: {e}", c.pid()))?;
    let r = crate::subject::Refusal {
        code: status.code(),
        status: gateway_harness::proc::describe_status(status),
        stdout: c.proc.stdout_rest(deadline),
        stderr: c.proc.stderr(deadline),
        took: c.proc.started().elapsed(),
        written: c.dirs.written(),
    };
    check_refusal(&r, port, true).map(|_| false)
}

/// ERR-2 (an address not on this host) and LOCK-4 (`localhost`), when the template takes `{host}`.
fn other_hosts(ctx: &Ctx) {
    if !ctx.subject.takes_host() {
        return;
    }
    ctx.check("ERR-2", &foreign_address(ctx));
    ctx.check("LOCK-4", &localhost(ctx));
}

/// ERR-2: TEST-NET-1 (192.0.2.1, only bound, never connected to): exit 4 with the exact prefix.
fn foreign_address(ctx: &Ctx) -> Check {
    let port = ctx.port();
    let r = ctx.subject.run_to_exit(&port.to_string(), &Start { host: Some("192.0.2.1"), ..Start::default() })?;
    let want = spec::bind_failed_prefix(&spec::url("192.0.2.1", port));
    if r.code == Some(spec::exit::BIND) && r.stdout.is_empty() && first_line(&r.stderr).starts_with(&want) {
        return Ok(format!("exit 4, {:?}", first_line(&r.stderr)));
    }
    let hint = if r.code == Some(spec::exit::NO_AUTH) && !ctx.subject.template.contains("{token}") {
        " (hint: DOOR-2 refuses a non-loopback host without a token: put --token {token} in the template and claim --token)"
    } else {
        ""
    };
    Err(format!("{}, stdout {:?}, stderr {:?}, want exit 4 and {want:?}...{hint}", r.status, r.stdout, first_line(&r.stderr)))
}

/// LOCK-4: `localhost` is 127.0.0.1 only, by the ready line and the kernel's socket table.
fn localhost(ctx: &Ctx) -> Check {
    let port = ctx.port();
    let _holder =
        ctx.start_with(port, &Start { host: Some("localhost"), ..Start::default() }).map_err(|e| format!("--host localhost: {e}"))?;
    let rows = listeners(port);
    let bound: Vec<String> = rows.iter().map(|r| r.local.to_string()).collect();
    if rows.len() == 1 && rows[0].local == loopback(port) {
        Ok("localhost: one listener, on 127.0.0.1 exactly (kernel's socket table)".to_string())
    } else {
        Err(format!("--host localhost: the kernel lists listeners on [{}], want 127.0.0.1:{port} only", bound.join(", ")))
    }
}
