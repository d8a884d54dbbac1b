//! The protocol's timers (`spec/protocol.md`, PROTO-6, PROTO-9's ticks), on an instance started
//! with `--timer-args` appended; their lengths are read from the instance itself.

use gateway_harness::net::loopback;
use gateway_harness::spec::close;
use gateway_harness::ws::{self, Ws};

use super::{Ctx, Table};
use crate::report::{Check, Verdict};
use crate::subject::{Running, Start};

pub const SCENARIOS: Table = &[(&["PROTO-6", "PROTO-9"], timers)];

/// Timers up to this long are waited for (stated in `spec/README.md`).
const SHORT_TIMER_MS: u64 = 3000;

/// The instance, an authenticated client, an idle one, the tick interval and handshake timeout
/// (each `None` when the instance does not report it).
type Setup = (Running, Ws, Ws, Option<u64>, Option<u64>);

fn setup(ctx: &Ctx, token: &str, port: u16) -> Result<Setup, String> {
    let deadline = ctx.settings.deadline;
    let gw = ctx.start_with(port, &Start { suffix: &ctx.settings.claims.timer_args, ..Start::default() })?;
    let (mut ws, hello) = ws::handshake(loopback(port), token, "conformance", deadline)?;
    // PROTO-2 judges hello-ok's fields; a timer not reported is not waited for.
    let tick_ms = hello["payload"]["policy"]["tickIntervalMs"].as_u64();
    let mut idle = ws::open(loopback(port), None, deadline)?;
    ws::json(&mut idle)?;
    let config = ws::call(&mut ws, "c", "config.get")?;
    let handshake_ms = config["payload"]["handshakeTimeoutMs"].as_u64();
    Ok((gw, ws, idle, tick_ms, handshake_ms))
}

fn timers(ctx: &Ctx) {
    let Some(token) = ctx.settings.claims.token.as_deref() else { return };
    let (_gw, mut ws, mut idle, tick_ms, handshake_ms) = match setup(ctx, token, ctx.port()) {
        Ok(setup) => setup,
        Err(why) => {
            ctx.record("PROTO-6", Verdict::Fail, why.clone());
            return ctx.record("PROTO-9", Verdict::Fail, why);
        }
    };
    let hint = format!("give --timer-args to make it at most {SHORT_TIMER_MS} ms");
    match tick_ms {
        Some(tick_ms) if tick_ms <= SHORT_TIMER_MS => ctx.check("PROTO-9", &ticks(&mut ws, tick_ms)),
        Some(tick_ms) => ctx.record("PROTO-9", Verdict::NotApplicable, format!("ticks not waited for: interval {tick_ms} ms ({hint})")),
        None => ctx.record("PROTO-9", Verdict::NotApplicable, "ticks not waited for: hello-ok reports no policy.tickIntervalMs"),
    }
    match handshake_ms {
        Some(ms) if ms <= SHORT_TIMER_MS => ctx.check("PROTO-6", &handshake_timeout(&mut ws, &mut idle, ms)),
        Some(ms) => ctx.record("PROTO-6", Verdict::NotApplicable, format!("handshake timeout {ms} ms not waited for ({hint})")),
        None => ctx.record("PROTO-6", Verdict::NotApplicable, "handshake timeout not waited for: config.get reports no handshakeTimeoutMs"),
    }
}

/// PROTO-9: two ticks with rising seq.
fn ticks(ws: &mut Ws, tick_ms: u64) -> Check {
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        let frame = ws::json(ws).map_err(|e| format!("waiting for ticks every {tick_ms} ms: {e}"))?;
        match frame["seq"].as_u64() {
            Some(seq) if frame["event"] == "tick" && frame["payload"]["ts"].is_u64() => seqs.push(seq),
            _ => return Err(format!("waiting for ticks every {tick_ms} ms: {frame}")),
        }
    }
    if seqs[0] >= seqs[1] {
        return Err(format!("tick seq {} then {} does not rise", seqs[0], seqs[1]));
    }
    Ok(format!("ticks every {tick_ms} ms with rising seq {} then {}", seqs[0], seqs[1]))
}

/// PROTO-6: the idle client is closed 1008 at the handshake timeout; the authenticated one is not.
fn handshake_timeout(ws: &mut Ws, idle: &mut Ws, handshake_ms: u64) -> Check {
    let want = "want close 1008 \"handshake timeout\"";
    let (frames, got) = ws::until_close(idle).map_err(|e| format!("no connect within {handshake_ms} ms: {e}, {want}"))?;
    if !frames.is_empty() || (got.0, got.1.as_str()) != close::HANDSHAKE_TIMEOUT {
        return Err(format!("no connect within {handshake_ms} ms: {} frames, close {} {:?}, {want}", frames.len(), got.0, got.1));
    }
    let health = ws::call(ws, "h", "health").map_err(|e| format!("the authenticated client after the handshake timeout: {e}"))?;
    if health["ok"] != true {
        return Err(format!("the authenticated client after the handshake timeout: {health}"));
    }
    Ok(format!("no connect within {handshake_ms} ms: close 1008 \"handshake timeout\"; the authenticated client still served"))
}
