//! The `Host` check on every request to the gateway port (`spec/protocol.md`, DOOR-7), free of I/O.
//!
//! A web page can make the user's browser talk to `127.0.0.1` under a name it controls (DNS
//! rebinding): the browser then believes the page and the gateway share an origin, and lets the
//! page read the answers. What gives it away is the `Host` header, which carries the attacker's
//! name. So a request is served only if its `Host` names this host by a loopback name or address
//! (`localhost`, `127.0.0.0/8`, `::1`), by the bound address, or by a name the operator allowed
//! (`--allow-host`); the port in `Host` is not compared (rebinding never changes it, and a proxy
//! may).

use std::net::{IpAddr, Ipv6Addr};

use crate::http::Status;

/// What is wrong with a request's `Host` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostError {
    /// HTTP/1.1 without `Host`, more than one `Host`, or one that is not `host[:port]` (400).
    #[error("missing, repeated or malformed Host header")]
    Malformed,
    /// A well-formed `Host` that names neither this host nor an allowed name (421).
    #[error("Host {0} is not served here")]
    NotServed(String),
}

impl HostError {
    /// The response status: 400 for [`HostError::Malformed`], 421 Misdirected Request otherwise.
    pub(crate) fn status(&self) -> Status {
        match self {
            HostError::Malformed => Status::BadRequest,
            HostError::NotServed(_) => Status::MisdirectedRequest,
        }
    }
}

/// The host part of a `Host` header value (`name`, `1.2.3.4`, `[::1]`, each with an optional
/// `:port`), lowercased, without brackets and without one trailing dot; `None` if malformed.
pub(crate) fn host_part(value: &str) -> Option<String> {
    let value = crate::http::trim_ows(value);
    let name_ok = |h: &str| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        (inside, port)
    } else {
        let (host, port) = match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        };
        if !name_ok(host) {
            return None;
        }
        (host, port)
    };
    if port.is_some_and(|p| p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u32>().is_ok_and(|p| p > 65535)) {
        return None;
    }
    let host = host.to_ascii_lowercase();
    Some(host.strip_suffix('.').filter(|h| !h.is_empty()).map(str::to_string).unwrap_or(host))
}

/// Whether the host part `host` (from [`host_part`]) names this host: `localhost`, a loopback
/// address, the bound address (any address when bound to the wildcard), or an allowed name.
pub(crate) fn served(host: &str, bound: IpAddr, allowed: &[String]) -> bool {
    if host == "localhost" {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        let ip = ip.to_canonical();
        if ip.is_loopback() || ip == bound.to_canonical() || bound.is_unspecified() {
            return true;
        }
    }
    let as_ip = |h: &str| h.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    allowed.iter().filter_map(|a| host_part(a)).any(|a| a == host || as_ip(&a).is_some_and(|ip| Some(ip) == as_ip(host)))
}

/// DOOR-7: checks the `Host` headers of a request (`hosts`, every value in order; `http11`: the
/// request is HTTP/1.1, where `Host` is required) against the bound address and the allowed names.
pub(crate) fn check(hosts: &[String], http11: bool, bound: IpAddr, allowed: &[String]) -> Result<(), HostError> {
    match hosts {
        [] if http11 => Err(HostError::Malformed),
        [] => Ok(()),
        [value] => {
            let host = host_part(value).ok_or(HostError::Malformed)?;
            if served(&host, bound, allowed) {
                Ok(())
            } else {
                Err(HostError::NotServed(host))
            }
        }
        _ => Err(HostError::Malformed),
    }
}

/// A value for [`crate::RunSettings::allowed_hosts`] (`--allow-host`) that is not a host name or
/// address (DOOR-7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a host name or address: `{0}`")]
pub struct AllowedHostError(pub String);

/// Checks a value for [`crate::RunSettings::allowed_hosts`] (`--allow-host`): a host name, an
/// IPv4 address or a bracketed IPv6 address, optionally with a `:port` (which is ignored, as in
/// the `Host` check, DOOR-7). Returns it lowercased, without brackets and without the port.
pub fn parse_allowed(value: &str) -> Result<String, AllowedHostError> {
    host_part(value).ok_or_else(|| AllowedHostError(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check1(host: &str, bound: &str, allowed: &[&str]) -> Result<(), HostError> {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        check(&[host.to_string()], true, bound.parse().unwrap(), &allowed)
    }

    /// DOOR-7: loopback names and addresses, the bound address and allowed names pass; other
    /// names get 421; a missing (HTTP/1.1), repeated or malformed Host gets 400.
    #[test]
    fn door7_host_check() {
        for ok in [
            "localhost",
            "LOCALHOST:18789",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:1",
            "127.9.9.9",
            "[::1]",
            "[::1]:80",
            "[::ffff:127.0.0.1]:5",
        ] {
            assert_eq!(check1(ok, "127.0.0.1", &[]), Ok(()), "{ok}");
        }
        assert_eq!(check1("192.0.2.7:80", "192.0.2.7", &[]), Ok(()));
        assert_eq!(check1("192.0.2.8", "0.0.0.0", &[]), Ok(()), "any address of a wildcard bind");
        assert_eq!(check1("gw.example:443", "127.0.0.1", &["GW.example"]), Ok(()));
        assert_eq!(check1("gw.example", "127.0.0.1", &["gw.example:8080"]), Ok(()), "an allowed entry's port is ignored");
        for refused in
            ["evil.example", "evil.example:18789", "localhost.evil.example", "192.0.2.7", "127.0.0.1.evil.example", "sub.localhost"]
        {
            assert_eq!(check1(refused, "127.0.0.1", &["gw.example"]).map_err(|e| e.status()), Err(Status::MisdirectedRequest), "{refused}");
        }
        assert_eq!(check1("0.0.0.0", "127.0.0.1", &[]).map_err(|e| e.status()), Err(Status::MisdirectedRequest));
        for bad in ["", ":80", "a b", "[::1", "::1", "[zz]:1", "host:99999", "host:8x", "[::1]x", "ev\u{1b}il", "a/b"] {
            assert_eq!(check1(bad, "127.0.0.1", &[]), Err(HostError::Malformed), "{bad:?}");
        }
        assert_eq!(check(&[], true, "127.0.0.1".parse().unwrap(), &[]), Err(HostError::Malformed));
        assert_eq!(check(&[], false, "127.0.0.1".parse().unwrap(), &[]), Ok(()), "HTTP/1.0 needs no Host");
        let two = ["localhost".to_string(), "localhost".to_string()];
        assert_eq!(check(&two, true, "127.0.0.1".parse().unwrap(), &[]), Err(HostError::Malformed));
        assert_eq!(HostError::Malformed.status(), Status::BadRequest);
        assert!(parse_allowed("gw.example").is_ok() && parse_allowed("a b").is_err());
    }

    /// DOOR-7, as `spec/protocol.md` states it for port authors: a name is any run of letters,
    /// digits, `-`, `.`, `_` (no label or length rules: well-formed, so 421); surrounding spaces
    /// and tabs are ignored, other white space is not; the port may be empty or up to 5 digits;
    /// bound to a wildcard, a literal address of either family is served, a name is not.
    #[test]
    fn door7_host_grammar_and_wildcard_families() {
        let long = "x".repeat(300);
        for name in [".", "a..b", "-a", "a_b", "localhost..", "127.1", "1.2.3.4.5", long.as_str()] {
            assert_eq!(check1(name, "127.0.0.1", &[]).map_err(|e| e.status()), Err(Status::MisdirectedRequest), "{name}");
        }
        for ok in [" localhost\t", "localhost:", "localhost:00080", "LOCALHOST."] {
            assert_eq!(check1(ok, "127.0.0.1", &[]), Ok(()), "{ok:?}");
        }
        for bad in
            ["\u{a0}localhost", "localhost\u{a0}", "localhost:000080", "localhost:+80", "[127.0.0.1]", "[fe80::1%25lo]", "loc%61lhost"]
        {
            assert_eq!(check1(bad, "127.0.0.1", &[]), Err(HostError::Malformed), "{bad:?}");
        }
        assert_eq!(check1("[2001:db8::5]", "0.0.0.0", &[]), Ok(()), "an IPv6 literal, bound to 0.0.0.0");
        assert_eq!(check1("192.0.2.8", "::", &[]), Ok(()), "an IPv4 literal, bound to ::");
        assert!(check1("gw.example", "0.0.0.0", &[]).is_err() && check1("gw.example", "::", &[]).is_err());
        assert_eq!(parse_allowed("::1"), Err(AllowedHostError("::1".to_string())), "IPv6 needs brackets");
        assert_eq!(parse_allowed("[::1]:80").as_deref(), Ok("::1"));
        let allowed = ["[2001:DB8::5]", "192.0.2.9"];
        for same in ["[2001:db8:0:0::5]", "[2001:0db8::0005]:1", "[::ffff:192.0.2.9]"] {
            assert_eq!(check1(same, "127.0.0.1", &allowed), Ok(()), "an allowed address, compared as an address: {same}");
        }
    }

    proptest! {
        /// DOOR-7: any Host value is judged without a panic; a name that is not loopback, not an
        /// address and not allowed is never served.
        #[test]
        fn door7_any_host_is_judged(value in ".{0,40}", name in "[a-z][a-z0-9-]{0,20}\\.[a-z]{2,6}") {
            let _ = check(&[value], true, "127.0.0.1".parse().unwrap(), &[]);
            let with_port = format!("{name}:18789");
            prop_assert!(check(&[with_port], true, "127.0.0.1".parse().unwrap(), &[]).is_err());
            prop_assert!(check(std::slice::from_ref(&name), true, "0.0.0.0".parse().unwrap(), &[name.to_uppercase()]).is_ok());
        }
    }
}
