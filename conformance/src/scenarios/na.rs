//! Why a row no scenario judged is not applicable, in words a port author can act on.

use crate::claims::{Claims, ReadyBy, Settings};

/// The reason of a row that no scenario recorded anything for.
pub const NO_SCENARIO: &str = "no black-box scenario for it";

/// Why `id`, which no scenario judged, is not applicable.
pub fn not_applicable(id: &str, settings: &Settings) -> &'static str {
    let claims: &Claims = &settings.claims;
    match id {
        "ERR-2" if !settings.template.contains("{host}") => "the template has no {host}",
        "CLI-1" if settings.ready != ReadyBy::Line => "no ready line claimed (--ready port or readyz)",
        "CLI-4" => "`status`, `stop` and `verify` are this binary's own subcommands",
        "OPS-1" | "OPS-9" if !claims.names_holder => "naming the holder not claimed (no --names-holder)",
        id if (id.starts_with("PROTO-") || id.starts_with("DOOR-")) && claims.token.is_none() => "protocol not claimed (no --token)",
        "PROTO-10" | "PROTO-11" => "in-process frame parser and state machine; check with the port's own tests and fuzzing",
        "PROTO-12" => "OpenClaw's own CLI against the implementation: `just interop`",
        "DOOR-1" => "constant-time comparison is not observable reliably from outside; check the port's code",
        "DOOR-8" => "the throttle is measured over seconds of failed connects with a real attacker loop; check with the port's own tests",
        id if id.starts_with("LIFE-") => "in-process state machine; check with the port's own model tests",
        id if id.starts_with("FUZZ-") => "in-process parsers; fuzz the port's own parsers",
        "OPS-8" => "a property of spec/model/gateway_ops.pml, checked by spin (`just model`)",
        id if id.starts_with("OPS-") => {
            "`status`, `stop`, `--wait`, `--replace`, profiles and NOTIFY_SOCKET are this binary's own command line; see tests/it/prop_*.rs"
        }
        id if id.starts_with("VER-") => "properties of `gateway verify` itself, not of the implementation under test",
        _ => NO_SCENARIO,
    }
}
