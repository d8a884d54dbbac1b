//! The command line (`spec/invariants.md`, CLI-*): bad port values are usage errors; the port
//! set by `GATEWAY_PORT` alone (the runner sets it itself).

use gateway_harness::net::loopback;
use gateway_harness::sockets::listeners_covering;
use gateway_harness::spec;

use super::{Ctx, Table};
use crate::report::Verdict;
use crate::subject::{first_line, without_flag, Start};

pub const SCENARIOS: Table = &[(&["CLI-2"], bad_ports), (&["CLI-3"], port_from_environment)];

/// CLI-2: `abc`, `65536`, `-1` as the port: exit 2, nothing on stdout, a message on stderr.
fn bad_ports(ctx: &Ctx) {
    for bad in ["abc", "65536", "-1"] {
        let result = ctx.subject.run_to_exit(bad, &Start::default()).map_err(|e| format!("port {bad:?}: {e}, want exit 2")).and_then(|r| {
            if r.code == Some(spec::exit::USAGE) && r.stdout.is_empty() && !r.stderr.trim().is_empty() {
                Ok(format!("port {bad:?}: exit 2, {:?}", first_line(&r.stderr)))
            } else {
                Err(format!(
                    "port {bad:?}: {}, stdout {:?}, stderr {:?}, want exit 2 and a usage error",
                    r.status,
                    r.stdout,
                    first_line(&r.stderr)
                ))
            }
        });
        ctx.check("CLI-2", &result);
    }
}

/// CLI-3: the template without `--port {port}`, and `GATEWAY_PORT` set: it listens there.
fn port_from_environment(ctx: &Ctx) {
    let Some(template) = without_flag(&ctx.subject.template, "--port", "{port}") else {
        return ctx.record("CLI-3", Verdict::NotApplicable, "the template does not pass the port as `--port {port}`");
    };
    let port = ctx.port();
    let start = Start { template: Some(template), env: vec![("GATEWAY_PORT", port.to_string())], ..Start::default() };
    // Not a knock-on of CLI-1 when it fails: the instance started without the variable's port.
    let result = ctx.subject.start(port, &start).and_then(|_holder| {
        if listeners_covering(loopback(port)).is_empty() {
            return Err(format!("GATEWAY_PORT={port} without --port: nothing listens on {port}"));
        }
        Ok(format!("GATEWAY_PORT={port} without --port: ready and listening on {port}"))
    });
    ctx.check("CLI-3", &result.map_err(|e| format!("GATEWAY_PORT={port} without --port: {e}")));
}
