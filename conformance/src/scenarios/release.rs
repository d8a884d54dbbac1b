//! Release (`spec/invariants.md`, REL-*): the holder dies by `SIGKILL` with a client connected and
//! a successor binds at once; no child of the holder keeps the port after it (REL-3).

use std::net::TcpStream;

use gateway_harness::net::loopback;
use gateway_harness::sockets::describe_holders;
use gateway_harness::ws;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Ctx, Table};
use crate::report::Check;

pub const SCENARIOS: Table = &[(&["REL-1", "REL-2", "REL-3", "SRV-2"], sigkill_then_successor)];

/// REL-1, REL-2, REL-3, SRV-2: `SIGKILL` to the holder's process only (not its group: a child it
/// started lives on); a successor must start at once, else the row says who still holds the port.
fn sigkill_then_successor(ctx: &Ctx) {
    let port = ctx.port();
    let result = (|| {
        let mut holder = ctx.start(port)?;
        let upgrade = ws::open(loopback(port), None, ctx.settings.deadline);
        ctx.check(
            "SRV-2",
            &upgrade.as_ref().map(|_| "WebSocket upgrade on / accepted".to_string()).map_err(|e| format!("WebSocket upgrade on /: {e}")),
        );
        // A client connection either way (REL-2: clients do not keep the port), WebSocket or plain TCP.
        let client = match upgrade {
            Ok(ws) => Some(ws.into_inner()),
            Err(_) => TcpStream::connect_timeout(&loopback(port), ctx.settings.deadline).ok(),
        };
        kill(Pid::from_raw(holder.pid() as i32), Signal::SIGKILL).map_err(|e| format!("SIGKILL: {e}"))?;
        holder.proc.wait(ctx.settings.deadline).map_err(|e| e.to_string())?;
        let held_by = describe_holders(loopback(port));
        let successor = ctx.subject.start(port, &Default::default()).map_err(|e| {
            format!("SIGKILL sent to the holder (pid {}); after its exit the port is {held_by}; a successor: {e}", holder.pid())
        });
        drop(client);
        successor.map(|_| ())
    })();
    let result: Check = result.map(|()| "after SIGKILL with a client connected, a successor started at once".to_string());
    ctx.check("REL-1", &result);
    ctx.check("REL-2", &result);
    let rel3 = result.as_ref().map(|_| "after SIGKILL of the holder alone, nothing else held the port".to_string()).map_err(Clone::clone);
    ctx.check("REL-3", &rel3);
}
