//! The front door (`spec/protocol.md`, DOOR-*), when the protocol is claimed: no non-loopback bind
//! without a token, the token from the environment and from files (the runner sets them itself),
//! the `Origin` allow-list, idle sockets, the `Host` check, and the one stored token of a gateway
//! started without one (DOOR-6).

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use gateway_harness::net::{http_raw, loopback, port_free, Answer, ForeignListener};
use gateway_harness::proc::describe_status;
use gateway_harness::sockets::describe_holders;
use gateway_harness::{human, scratch, spec, ws};
use nix::sys::signal::Signal;

use super::{Ctx, Table};
use crate::report::{Check, Verdict};
use crate::subject::{first_line, without_flag, Running, Start};

pub const SCENARIOS: Table = &[
    (&["DOOR-2"], no_token_off_loopback),
    (&["DOOR-5"], token_sources),
    (&["DOOR-6"], stored_token),
    (&["DOOR-3"], origins),
    (&["DOOR-4"], idle_sockets),
    (&["DOOR-7"], foreign_host),
];

/// Idle sockets opened against the DOOR-4 instance (over the default unauthenticated limit).
const IDLE_SOCKETS: usize = 2 * spec::MAX_UNAUTHENTICATED;

/// The template without `--token {token}`, if the protocol is claimed and the template has it.
fn tokenless(ctx: &Ctx) -> Result<String, &'static str> {
    if ctx.settings.claims.token.is_none() {
        return Err("protocol not claimed (no --token)");
    }
    without_flag(&ctx.subject.template, "--token", "{token}").ok_or("the template does not pass the token as `--token {token}`")
}

/// DOOR-2: `{host}` 0.0.0.0 without a token: the exact message, exit 7, whether or not the port is
/// held (decided before the bind: held by the runner's listener, still exit 7, not ERR-1's 3).
fn no_token_off_loopback(ctx: &Ctx) {
    let template = match (ctx.subject.takes_host(), tokenless(ctx)) {
        (false, _) => return ctx.record("DOOR-2", Verdict::NotApplicable, "the template has no {host}"),
        (_, Err(why)) => return ctx.record("DOOR-2", Verdict::NotApplicable, why),
        (true, Ok(template)) => template,
    };
    let start = Start { host: Some("0.0.0.0"), template: Some(template), ..Start::default() };
    let port = ctx.port();
    let free = refused_without_auth(ctx, port, &start, "port free").and_then(|w| {
        if port_free(port) {
            Ok(format!("{w}, nothing bound"))
        } else {
            Err(format!("after the refusal the port is {}", describe_holders(loopback(port))))
        }
    });
    ctx.check("DOOR-2", &free);
    let held = match ForeignListener::try_bind(loopback(0), false) {
        Ok(foreign) => refused_without_auth(ctx, foreign.addr.port(), &start, "port held by the runner"),
        Err(e) => Err(format!("the runner could not listen: {e}")),
    };
    ctx.check("DOOR-2", &held);
}

/// One start with `{host}` 0.0.0.0 and no token on `port` (`what`: free or held): exit 7 and the exact line.
fn refused_without_auth(ctx: &Ctx, port: u16, start: &Start, what: &str) -> Check {
    let r = ctx.subject.run_to_exit(&port.to_string(), start).map_err(|e| format!("--host 0.0.0.0 without a token, {what}: {e}"))?;
    let want = spec::refusing_without_auth("0.0.0.0");
    if r.code == Some(spec::exit::NO_AUTH) && first_line(&r.stderr) == want && r.stdout.is_empty() {
        Ok(format!("--host 0.0.0.0 without a token, {what}: exit 7, {want:?}"))
    } else {
        Err(format!(
            "--host 0.0.0.0 without a token, {what}: {}, stdout {:?}, stderr {:?}, want exit 7 and {want:?}",
            r.status,
            r.stdout,
            first_line(&r.stderr)
        ))
    }
}

/// DOOR-5: `GATEWAY_TOKEN` instead of `--token`; `GATEWAY_TOKEN_FILE` naming an empty file: exit 1.
fn token_sources(ctx: &Ctx) {
    let template = match tokenless(ctx) {
        Ok(template) => template,
        Err(why) => return ctx.record("DOOR-5", Verdict::NotApplicable, why),
    };
    let token = ctx.settings.claims.token.clone().unwrap_or_default();
    let port = ctx.port();
    let start = Start { template: Some(template.clone()), env: vec![("GATEWAY_TOKEN", token.clone())], ..Start::default() };
    let from_env = ctx.start_with(port, &start).and_then(|_gw| {
        ws::handshake(loopback(port), &token, "conformance", ctx.settings.deadline)
            .map(|_| "GATEWAY_TOKEN: a client with that token got hello-ok".to_string())
    });
    ctx.check("DOOR-5", &from_env.map_err(|e| format!("GATEWAY_TOKEN set, no --token: {e}")));
    ctx.check("DOOR-5", &empty_token_file(ctx, template));
}

fn empty_token_file(ctx: &Ctx, template: String) -> Check {
    let port = ctx.port();
    let file = ctx.subject.scratch_path(&format!("blank-token-{port}"));
    std::fs::write(&file, " \n").map_err(|e| format!("the runner could not write {}: {e}", file.display()))?;
    let path = file.display().to_string();
    let start = Start { template: Some(template), env: vec![("GATEWAY_TOKEN_FILE", path.clone())], ..Start::default() };
    let r = ctx.subject.run_to_exit(&port.to_string(), &start);
    let _ = std::fs::remove_file(&file);
    let want = spec::token_file_empty(&path);
    let r = r.map_err(|e| format!("GATEWAY_TOKEN_FILE naming a blank file: {e}, want exit 1 and the line {want:?}"))?;
    if r.code == Some(spec::exit::RUNTIME) && r.stderr.lines().any(|l| l == want) {
        Ok(format!("GATEWAY_TOKEN_FILE naming a blank file: exit 1, {want:?}"))
    } else {
        Err(format!("GATEWAY_TOKEN_FILE naming a blank file: {}, stderr {:?}, want exit 1 and the line {want:?}", r.status, r.stderr))
    }
}

/// DOOR-6: two starts without a token, one after the other on two ports, with the same fresh `HOME`
/// and `XDG_STATE_HOME`: the first generates `$XDG_STATE_HOME/gateway-lock/token` (0600 in a 0700
/// directory, 64 lower-case hex digits and a newline), the second reuses it; no other file anywhere,
/// nothing in either instance's working directory, `TMPDIR` or other directories.
fn stored_token(ctx: &Ctx) {
    let template = match tokenless(ctx) {
        Ok(template) => template,
        Err(why) => return ctx.record("DOOR-6", Verdict::NotApplicable, why),
    };
    ctx.check("DOOR-6", &one_token_file(ctx, &template));
}

/// The relative paths of the files and directories stored below the shared `HOME` and `XDG_STATE_HOME`
/// after a start without a token: exactly the token file and its directory.
const STORED: [&str; 2] = ["state/gateway-lock", "state/gateway-lock/token"];

fn one_token_file(ctx: &Ctx, template: &str) -> Check {
    let shared = ctx.subject.scratch_path("door6");
    let (home, state) = (shared.join("home"), shared.join("state"));
    for dir in [&home, &state] {
        std::fs::create_dir_all(dir).map_err(|e| format!("the runner could not create {}: {e}", dir.display()))?;
    }
    let file = state.join("gateway-lock").join("token");
    let path = file.display().to_string();
    let env = vec![("HOME", home.display().to_string()), ("XDG_STATE_HOME", state.display().to_string())];
    let start = Start { template: Some(template.to_string()), env, ..Start::default() };
    let first_port = ctx.port();
    let first = without_token(ctx, first_port, &start, &spec::token_generated(&path), &shared)
        .map_err(|e| format!("first start without a token (fresh HOME and XDG_STATE_HOME): {e}"))?;
    let second_port = (0..8).map(|_| ctx.port()).find(|&p| p != first_port).unwrap_or(first_port);
    let second = without_token(ctx, second_port, &start, &spec::token_reused(&path), &shared)
        .map_err(|e| format!("second start without a token, on another port after the first exited: {e}"))?;
    let _ = std::fs::remove_dir_all(&shared);
    if first != second {
        return Err(format!("second start, on another port: {path} changed (a stored token is reused, not replaced)"));
    }
    Ok(format!("{path} generated (0600, 65 bytes) on port {first_port}, reused on port {second_port}; nothing else written"))
}

/// One start without a token on `port`: the exact `notice` on stderr, the stored token in force (a
/// client with it gets `hello-ok`), then `SIGTERM`; afterwards exactly [`STORED`] below `shared`,
/// with the stated modes and format, and nothing in the instance's own directories. The token.
fn without_token(ctx: &Ctx, port: u16, start: &Start, notice: &str, shared: &Path) -> Result<String, String> {
    let deadline = ctx.settings.deadline;
    let mut gw: Running = ctx.subject.start(port, start)?;
    let file = shared.join(STORED[1]);
    stored_within(&file, deadline).map_err(|e| format!("{e}; written: {:?}", everything_written(shared, &gw)))?;
    let token = std::fs::read_to_string(&file).map_err(|e| format!("{} after the start: {e}", file.display()))?;
    ws::handshake(loopback(port), token.trim_end(), "conformance", deadline)
        .map_err(|e| format!("a client with the token stored in {}: {e}", file.display()))?;
    gw.signal(Signal::SIGTERM);
    gw.proc.wait(deadline).map_err(|e| format!("SIGTERM sent: {e}"))?;
    let stderr = gw.proc.stderr(deadline);
    if !stderr.lines().any(|l| l == notice) {
        return Err(format!("stderr {stderr:?}, want the line {notice:?}"));
    }
    let outside = gw.dirs.written();
    if !outside.is_empty() {
        return Err(format!("wrote outside HOME and XDG_STATE_HOME (working directory, TMPDIR, other XDG directories): {outside:?}"));
    }
    let stored = stored_below(shared);
    if stored != STORED {
        return Err(format!("below HOME and XDG_STATE_HOME: {stored:?}, want exactly {STORED:?} (one token file per profile)"));
    }
    stored_as_stated(&file, &token)?;
    Ok(token)
}

/// Waits (bounded) until `file` exists: with `--ready port` the port accepts before the token is put
/// in force (after the bind); it is linked into place whole, so once there it is complete.
fn stored_within(file: &Path, deadline: Duration) -> Result<(), String> {
    let end = Instant::now() + deadline;
    while !file.exists() {
        if Instant::now() >= end {
            return Err(format!("timed out: no token stored in {} within {} of the start", file.display(), human(deadline)));
        }
        // Polling the file system for a file the instance writes after its bind; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The token file is 0600 in a 0700 directory and holds 64 lower-case hex digits and a newline.
fn stored_as_stated(file: &Path, token: &str) -> Result<(), String> {
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).map_err(|e| format!("{}: {e}", p.display()));
    let (file_mode, dir_mode) = (mode(file)?, mode(file.parent().unwrap_or(file))?);
    let hex = token.strip_suffix('\n').is_some_and(|t| t.len() == 64 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if file_mode != 0o600 || dir_mode != 0o700 {
        Err(format!("{} has mode {file_mode:04o} in a directory of mode {dir_mode:04o}, want 0600 in 0700", file.display()))
    } else if !hex {
        Err(format!("{} holds {} bytes, want 64 lower-case hex digits and a newline", file.display(), token.len()))
    } else {
        Ok(())
    }
}

/// What a start without a token wrote below the shared `HOME` and `XDG_STATE_HOME`, sorted.
fn stored_below(shared: &Path) -> Vec<String> {
    let mut stored = Vec::new();
    for top in ["home", "state"] {
        scratch::walk(&shared.join(top), top, &mut stored);
    }
    stored.sort();
    stored
}

/// What an instance wrote anywhere it may (the shared directories and its own), for a failure message.
fn everything_written(shared: &Path, gw: &Running) -> Vec<String> {
    let mut all = stored_below(shared);
    all.extend(gw.dirs.written().into_iter().map(|w| format!("(its own) {w}")));
    all
}

/// DOOR-3: an Origin not on the allow-list gets 403; without Origin the upgrade goes through.
fn origins(ctx: &Ctx) {
    if ctx.settings.claims.token.is_none() {
        return;
    }
    let port = ctx.port();
    let result = ctx.start(port).and_then(|_gw| {
        let deadline = ctx.settings.deadline;
        match ws::open(loopback(port), Some("http://evil.example"), deadline) {
            Err(why) if why == "HTTP 403" => {
                ws::open(loopback(port), None, deadline).map(|_| "Origin http://evil.example: 403; no Origin: upgraded".to_string())
            }
            Err(why) => Err(format!("upgrade with Origin http://evil.example: {why}, want HTTP 403")),
            Ok(_) => Err("upgrade with Origin http://evil.example was accepted, want 403".to_string()),
        }
    });
    ctx.check("DOOR-3", &result);
}

/// DOOR-4: idle sockets (more than the default unauthenticated limit) neither keep a client out
/// nor hold the port after SIGTERM.
fn idle_sockets(ctx: &Ctx) {
    let Some(token) = ctx.settings.claims.token.as_deref() else { return };
    let port = ctx.port();
    let deadline = ctx.settings.deadline;
    let result = (|| {
        let mut gw = ctx.start(port)?;
        let idle: Vec<TcpStream> = (0..IDLE_SOCKETS)
            .map(|_| TcpStream::connect_timeout(&loopback(port), deadline))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("idle socket: {e}"))?;
        let (mut client, _) = ws::handshake(loopback(port), token, "conformance", deadline)
            .map_err(|e| format!("with {IDLE_SOCKETS} idle sockets open: {e}"))?;
        let health = ws::call(&mut client, "h", "health")?;
        if health["ok"] != true {
            return Err(format!("with {IDLE_SOCKETS} idle sockets open, health answered {health}"));
        }
        let config = ws::call(&mut client, "c", "config.get")?;
        let limit = config["payload"]["maxUnauthenticated"].as_u64().map_or(spec::MAX_UNAUTHENTICATED, |m| m as usize);
        let kept = at_most_open(&idle, limit, deadline)?;
        gw.signal(Signal::SIGTERM);
        let status = gw.proc.wait(deadline).map_err(|e| format!("SIGTERM sent: {e}"))?;
        let free = port_free(port);
        drop(idle);
        if status.code() != Some(0) || !free {
            let held = if free { "free".to_string() } else { describe_holders(loopback(port)) };
            return Err(format!("SIGTERM with {IDLE_SOCKETS} idle sockets: {}, port {held}", describe_status(status)));
        }
        Ok(format!(
            "{IDLE_SOCKETS} idle sockets: {kept} kept (maxUnauthenticated {limit}), a client still got in; SIGTERM: exit 0, port free"
        ))
    })();
    ctx.check("DOOR-4", &result);
}

/// DOOR-7: a request under a foreign `Host` (DNS rebinding) gets 421 and no health body, for
/// `/healthz` and for an upgrade alike; the same request under `localhost` is served.
fn foreign_host(ctx: &Ctx) {
    if ctx.settings.claims.token.is_none() {
        return;
    }
    let port = ctx.port();
    let result = ctx.start(port).and_then(|_gw| {
        let foreign = format!("{}:{port}", spec::FOREIGN_HOST);
        misdirected(ctx, port, &format!("GET /healthz HTTP/1.1\r\nHost: {foreign}\r\n\r\n"), "GET /healthz")?;
        let upgrade = format!(
            "GET / HTTP/1.1\r\nHost: {foreign}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        misdirected(ctx, port, &upgrade, "a WebSocket upgrade")?;
        let local = host_answer(ctx, port, &format!("GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"))?;
        if local.status != 200 {
            return Err(format!(
                "GET /healthz with Host: localhost:{port} answered {}, want 200 (a loopback name is served)",
                local.status
            ));
        }
        Ok(format!("Host: {foreign}: 421 without a health body (/healthz and upgrade); Host: localhost:{port}: 200"))
    });
    ctx.check("DOOR-7", &result);
}

/// Sends `request` (under a foreign `Host`) and requires 421 with no health body in it.
fn misdirected(ctx: &Ctx, port: u16, request: &str, what: &str) -> Result<(), String> {
    let answer = host_answer(ctx, port, request)?;
    let leaks_pid = answer.json().get("pid").is_some() || answer.body.contains("\"pid\"");
    if answer.status == spec::status::MISDIRECTED && !leaks_pid {
        return Ok(());
    }
    let leak = if leaks_pid { " with a body naming the pid" } else { "" };
    Err(format!(
        "{what} with Host: {}:{port} answered {}{leak}, want 421 Misdirected Request without a health body \
         (DOOR-7: the Host check, so that a DNS-rebinding web page cannot read the gateway's answers)",
        spec::FOREIGN_HOST,
        answer.status
    ))
}

fn host_answer(ctx: &Ctx, port: u16, request: &str) -> Result<Answer, String> {
    let text = http_raw(loopback(port), request.as_bytes(), ctx.settings.deadline).map_err(|e| e.to_string())?;
    Answer::parse(&text).ok_or(format!("answer {text:?} to {:?}", first_line(request)))
}

/// DOOR-4's limit: at most `limit` (`maxUnauthenticated`) of the idle sockets still open once a
/// client got in; the others were evicted (closed without an answer: end of stream or a reset).
/// Polls the sockets' state, bounded by `deadline`, since the gateway may close them a moment later;
/// returns how many are open.
fn at_most_open(idle: &[TcpStream], limit: usize, deadline: Duration) -> Result<usize, String> {
    let end = Instant::now() + deadline;
    loop {
        let open = idle.iter().filter(|s| still_open(s)).count();
        if open <= limit {
            return Ok(open);
        }
        if Instant::now() >= end {
            return Err(format!(
                "timed out: {open} of {IDLE_SOCKETS} idle sockets still open within {} after a client got in, want at most \
                 maxUnauthenticated ({limit}): the oldest are evicted",
                human(deadline)
            ));
        }
        // Polling the kernel's socket state; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether the gateway has neither closed nor answered `socket` (a read would block).
fn still_open(mut socket: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if socket.set_nonblocking(true).is_err() {
        return false;
    }
    let open = matches!(socket.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    let _ = socket.set_nonblocking(false);
    open
}
