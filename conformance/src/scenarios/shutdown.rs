//! Shutdown (`spec/invariants.md`, SHUT-*, REL-1, REL-4): each shutdown signal closes clients with
//! 1012 and exits 0 with the port free; a silent client does not hold the port past the grace
//! period; two signals at once are one shutdown.

use std::time::Instant;

use gateway_harness::net::{loopback, port_free};
use gateway_harness::proc::describe_status;
use gateway_harness::sockets::describe_holders;
use gateway_harness::{human, spec, ws};
use nix::sys::signal::Signal;
use rand::Rng;

use super::{Ctx, Table};
use crate::report::{Check, Verdict};

pub const SCENARIOS: Table = &[(&["SHUT-1", "REL-1"], each_signal), (&["REL-4", "SHUT-2"], silent_client), (&["SHUT-3"], two_signals)];

/// Reads until the close frame; checks it is 1012 "service restart"; answers it if `answer`.
fn expect_close_1012(client: &mut ws::Ws, answer: bool) -> Check {
    let (_, (code, reason)) = if answer {
        ws::until_close(client)?
    } else {
        loop {
            match ws::recv(client)? {
                ws::Frame::Close(code, reason) => break (Vec::new(), (code, reason)),
                ws::Frame::Json(_) => {}
            }
        }
    };
    if (code, reason.as_str()) == spec::close::SERVICE_RESTART {
        Ok("close 1012 \"service restart\"".into())
    } else {
        Err(format!("close frame {code} {reason:?}, want 1012 \"service restart\""))
    }
}

/// After an exit: the port is free, or who holds it.
fn port_released(port: u16, sig: Signal) -> Check {
    if port_free(port) {
        Ok("port free".into())
    } else {
        Err(format!("{sig} sent: after the exit the port is {}", describe_holders(loopback(port))))
    }
}

/// SHUT-1, REL-1: SIGTERM, SIGINT and SIGHUP each close a client with 1012, exit 0, free the port.
fn each_signal(ctx: &Ctx) {
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let port = ctx.port();
        let result = (|| {
            let mut holder = ctx.start(port)?;
            let mut client = ws::open(loopback(port), None, ctx.settings.deadline)?;
            holder.signal(sig);
            let close = expect_close_1012(&mut client, true).map_err(|e| format!("{sig} sent: {e}"))?;
            let status = holder.proc.wait(ctx.settings.deadline).map_err(|e| format!("{sig} sent: {e}"))?;
            if status.code() != Some(0) {
                return Err(format!("{sig} sent: {}, want exit 0", describe_status(status)));
            }
            let free = port_released(port, sig)?;
            Ok(format!("{sig}: {close}, exit 0, {free}"))
        })();
        ctx.check("SHUT-1", &result);
        ctx.check("REL-1", &result);
    }
}

/// REL-4, SHUT-2: a client that never answers the close: the port stays held while draining and
/// is released (exit 0) within the grace period's bound.
fn silent_client(ctx: &Ctx) {
    let port = ctx.port();
    let result = (|| {
        let mut holder = ctx.start(port)?;
        let mut client = ws::open(loopback(port), None, ctx.settings.deadline)?;
        holder.signal(Signal::SIGTERM);
        let start = Instant::now();
        expect_close_1012(&mut client, false).map_err(|e| format!("SIGTERM sent: {e}"))?;
        let held_while_draining = !port_free(port);
        let status = holder.proc.wait(ctx.settings.deadline).map_err(|e| format!("SIGTERM sent: {e}"))?;
        let took = start.elapsed();
        drop(client);
        if status.code() != Some(0) {
            return Err(format!("SIGTERM sent: {}, want exit 0", describe_status(status)));
        }
        Ok((held_while_draining, took, port_released(port, Signal::SIGTERM)))
    })();
    match result {
        Ok((held, took, free)) => {
            let rel4 = match (held, free) {
                (true, Ok(_)) => Ok("port held while draining a silent client, free after exit".to_string()),
                (false, _) => Err("the port was free while a client was still being drained".to_string()),
                (true, Err(e)) => Err(e),
            };
            ctx.check("REL-4", &rel4);
            let bound = spec::SHUTDOWN_GRACE + spec::SHUTDOWN_MARGIN;
            let shut2 = if took <= bound {
                Ok(format!("a silent client did not block shutdown (exit 0 {} after SIGTERM, bound {})", human(took), human(bound)))
            } else {
                Err(format!("SIGTERM sent: exit 0 only {} later with a silent client, over the bound of {}", human(took), human(bound)))
            };
            ctx.check("SHUT-2", &shut2);
        }
        Err(why) => {
            ctx.record("REL-4", Verdict::Fail, why.clone());
            ctx.record("SHUT-2", Verdict::Fail, why);
        }
    }
}

/// SHUT-3: two signals at once (order from `--seed`): still one graceful shutdown, exit 0.
fn two_signals(ctx: &Ctx) {
    for _ in 0..ctx.settings.repeat {
        let port = ctx.port();
        let pair =
            if ctx.rng.borrow_mut().random_bool(0.5) { [Signal::SIGTERM, Signal::SIGINT] } else { [Signal::SIGINT, Signal::SIGTERM] };
        let result = (|| {
            let mut holder = ctx.start(port)?;
            holder.signal(pair[0]);
            holder.signal(pair[1]);
            let status = holder.proc.wait(ctx.settings.deadline).map_err(|e| format!("{} then {} sent: {e}", pair[0], pair[1]))?;
            if status.code() != Some(0) {
                return Err(format!("{} then {} sent: {}, want exit 0", pair[0], pair[1], describe_status(status)));
            }
            Ok(format!("{} and {} at once: exit 0", pair[0], pair[1]))
        })();
        ctx.check("SHUT-3", &result);
    }
}
