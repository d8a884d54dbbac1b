//! The protocol's timers (`spec/protocol.md`, PROTO-6, PROTO-9's ticks), on an instance started
//! with `--timer-args` appended; their lengths are read from the instance itself.

use std::time::{Duration, Instant};

use gateway_harness::human;
use gateway_harness::net::loopback;
use gateway_harness::spec::close;
use gateway_harness::ws::{self, Ws};

use super::{Ctx, Table};
use crate::report::{Check, Verdict};
use crate::subject::{Running, Start};

pub const SCENARIOS: Table = &[(&["PROTO-6", "PROTO-9"], timers)];

/// Timers up to this long are waited for (stated in `spec/README.md`).
const SHORT_TIMER_MS: u64 = 3000;

/// How late the handshake timeout's close, or a tick, may come (stated in `spec/README.md`).
const LATE: Duration = Duration::from_secs(1);

/// The instance, an authenticated client, an idle one (and when it was upgraded), the tick interval
/// and handshake timeout (each `None` when the instance does not report it).
type Setup = (Running, Ws, (Ws, Instant), Option<u64>, Option<u64>);

fn setup(ctx: &Ctx, token: &str, port: u16) -> Result<Setup, String> {
    let deadline = ctx.settings.deadline;
    let gw = ctx.start_with(port, &Start { suffix: &ctx.settings.claims.timer_args, ..Start::default() })?;
    let (mut ws, hello) = ws::handshake(loopback(port), token, "conformance", deadline)?;
    // PROTO-2 judges hello-ok's fields; a timer not reported is not waited for.
    let tick_ms = hello["payload"]["policy"]["tickIntervalMs"].as_u64();
    let mut idle = ws::open(loopback(port), None, deadline)?;
    let opened = Instant::now();
    ws::json(&mut idle)?;
    let config = ws::call(&mut ws, "c", "config.get")?;
    let handshake_ms = config["payload"]["handshakeTimeoutMs"].as_u64();
    Ok((gw, ws, (idle, opened), tick_ms, handshake_ms))
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

/// PROTO-9: two ticks in a row, seq rising by one, the second within the interval + [`LATE`] of the first.
fn ticks(ws: &mut Ws, tick_ms: u64) -> Check {
    let mut seqs = Vec::new();
    let mut first = Instant::now();
    while seqs.len() < 2 {
        let frame = ws::json(ws).map_err(|e| format!("waiting for ticks every {tick_ms} ms: {e}"))?;
        match frame["seq"].as_u64() {
            Some(seq) if frame["event"] == "tick" && frame["payload"]["ts"].is_u64() => seqs.push(seq),
            _ => return Err(format!("waiting for ticks every {tick_ms} ms: {frame}")),
        }
        if seqs.len() == 1 {
            first = Instant::now();
        }
    }
    let gap = first.elapsed();
    if seqs[1] != seqs[0] + 1 {
        return Err(format!("tick seq {} then {}, want it to rise by one", seqs[0], seqs[1]));
    }
    if gap > Duration::from_millis(tick_ms) + LATE {
        return Err(format!("ticks {} apart, want every {tick_ms} ms (hello-ok's policy.tickIntervalMs) + {}", human(gap), human(LATE)));
    }
    Ok(format!("ticks every {tick_ms} ms with seq rising by one: {} then {}", seqs[0], seqs[1]))
}

/// PROTO-6: the idle client is closed 1008 at the handshake timeout (within [`LATE`] after it); the
/// authenticated one is not.
fn handshake_timeout(ws: &mut Ws, (idle, opened): &mut (Ws, Instant), handshake_ms: u64) -> Check {
    let want = "want close 1008 \"handshake timeout\"";
    let (frames, got) = ws::until_close(idle).map_err(|e| format!("no connect within {handshake_ms} ms: {e}, {want}"))?;
    let took = opened.elapsed();
    if !frames.is_empty() || (got.0, got.1.as_str()) != close::HANDSHAKE_TIMEOUT {
        return Err(format!("no connect within {handshake_ms} ms: {} frames, close {} {:?}, {want}", frames.len(), got.0, got.1));
    }
    if took > Duration::from_millis(handshake_ms) + LATE {
        return Err(format!(
            "no connect: closed 1008 {} after the upgrade, want within the handshake timeout {handshake_ms} ms (config.get) + {}",
            human(took),
            human(LATE)
        ));
    }
    let health = ws::call(ws, "h", "health").map_err(|e| format!("the authenticated client after the handshake timeout: {e}"))?;
    if health["ok"] != true {
        return Err(format!("the authenticated client after the handshake timeout: {health}"));
    }
    Ok(format!(
        "no connect within {handshake_ms} ms: close 1008 \"handshake timeout\" {} after the upgrade; the authenticated client still served",
        human(took)
    ))
}
