//! `gateway status`: who holds a port, for people and scripts (`OPS-2`).
//!
//! One line (or one JSON object with `--json`) and an exit code per state, so that health
//! checks can act on the code alone (`spec/cli.md`).

use std::net::SocketAddr;

use crate::lock::WsUrl;
use crate::probe::{self, HolderKind, Probe};

/// Exit codes of `gateway status` (`spec/cli.md`).
pub mod exit_code {
    /// A live gateway holds the port.
    pub const GATEWAY: u8 = 0;
    /// Nothing listens on the port (LSB's "not running").
    pub const FREE: u8 = 3;
    /// A process that is not a gateway holds the port.
    pub const FOREIGN: u8 = 4;
    /// Something holds the port but did not answer in time (stopped, hung, or not reading).
    pub const NOT_ANSWERING: u8 = 5;
}

/// The exit code for a holder kind.
pub fn exit_code_for(kind: HolderKind) -> u8 {
    match kind {
        HolderKind::Gateway => exit_code::GATEWAY,
        HolderKind::Free => exit_code::FREE,
        HolderKind::Foreign => exit_code::FOREIGN,
        HolderKind::NotAnswering => exit_code::NOT_ANSWERING,
    }
}

/// The human-readable status line.
pub fn text(found: &Probe) -> String {
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
        (HolderKind::Gateway, probe::Answer::Gateway(h)) => {
            let pid = h.pid.map(|p| format!("pid {p}, ")).unwrap_or_default();
            format!("{url}: gateway ({pid}{})", probe::gateway_summary(h))
        }
        (HolderKind::Foreign, probe::Answer::Other(why)) => format!("{url}: foreign process ({process}); GET /healthz {why}"),
        _ => format!("{url}: held but not answering within {} ms ({process})", found.budget.as_millis()),
    }
}

/// The `--json` object.
pub fn json(found: &Probe) -> serde_json::Value {
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

/// `gateway status`: probes `addr`, prints, returns the exit code.
pub fn status(addr: SocketAddr, as_json: bool) -> u8 {
    let found = probe::probe(addr, probe::STATUS_PROBE_BUDGET);
    if as_json {
        crate::cli::print_line(json(&found));
    } else {
        crate::cli::print_line(text(&found));
    }
    exit_code_for(found.kind())
}
