//! Unit tests of the Linux lookup: the kernel's table and `/proc` parsers, the health replies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::procfs::{parse_port_range, socket_inode, stat_state};
use super::table::covers;
use super::table::{
    find_listener, format_hex_socket_addr, listener_in_tables, parse_proc_net_tcp, read_table, sock_diag, TcpRow, TCP_LISTEN,
};
use crate::holder::ephemeral_warning;
use crate::holder::health::{parse_health_reply, Answer, HealthInfo};

const SAMPLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:4965 01 00000000:00000000 00:00000000 00000000  1000        0 55 1 0000000000000000 20 4 30 10 -1
";

/// OPS-1: the kernel's table is parsed into addresses, states, uids and inodes.
#[test]
fn ops1_parses_a_proc_net_tcp_sample() {
    let rows = parse_proc_net_tcp(SAMPLE);
    assert_eq!(rows.len(), 2);
    if cfg!(target_endian = "little") {
        assert_eq!(rows[0].local, "127.0.0.1:18789".parse().unwrap());
    }
    assert!(rows[0].is_listening());
    assert_eq!((rows[0].uid, rows[0].inode), (0, 424242));
    assert!(!rows[1].is_listening());
    assert_eq!(find_listener(&rows, rows[0].local).map(|r| r.inode), Some(424242));
    assert_eq!(find_listener(&rows, rows[1].local), None);
}

#[test]
fn ops1_wildcards_and_mapped_addresses_cover() {
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert!(covers(a("0.0.0.0:80"), a("127.0.0.1:80")));
    assert!(covers(a("[::]:80"), a("127.0.0.1:80")));
    assert!(covers(a("[::ffff:127.0.0.1]:80"), a("127.0.0.1:80")));
    assert!(!covers(a("127.0.0.1:80"), a("127.0.0.2:80")));
    assert!(!covers(a("127.0.0.1:81"), a("127.0.0.1:80")));
}

#[test]
fn ops1_small_parsers() {
    assert_eq!(socket_inode("socket:[123]"), Some(123));
    assert_eq!(socket_inode("pipe:[123]"), None);
    assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
    assert_eq!(parse_port_range("60999 32768"), None);
    assert_eq!(parse_port_range("x"), None);
    assert_eq!(ephemeral_warning(0, Some((0, 65535))), None);
    assert_eq!(ephemeral_warning(18789, Some((32768, 60999))), None);
    assert!(ephemeral_warning(40000, Some((32768, 60999)))
        .unwrap()
        .contains("port 40000 lies inside the ephemeral port range 32768-60999"));
    assert_eq!(stat_state("42 (a) b) T 1 2"), Some('T'));
    assert_eq!(stat_state("42 (gateway) S 1 2"), Some('S'));
}

#[test]
fn ops1_health_replies_are_classified() {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":true,\"status\":\"live\",\"pid\":7,\"profile\":\"work\",\"version\":\"0.1.0\",\"uptimeMs\":1500}";
    assert_eq!(
        parse_health_reply(ok),
        Answer::Gateway(HealthInfo { pid: Some(7), profile: Some("work".into()), version: Some("0.1.0".into()), uptime_ms: Some(1500) })
    );
    assert!(matches!(parse_health_reply(b""), Answer::Other(_)));
    assert!(matches!(parse_health_reply(b"HTTP/1.1 404 Not Found\r\n\r\n"), Answer::Other(w) if w.contains("404")));
    assert!(matches!(parse_health_reply(b"SSH-2.0-OpenSSH\r\n"), Answer::Other(_)));
    assert!(matches!(parse_health_reply(b"HTTP/1.1 200 OK\r\n\r\n{\"ok\":false}"), Answer::Other(_)));
}

/// OPS-9: the names a holder reports are shown escaped and cut, never raw.
#[test]
fn ops9_reported_names_are_escaped() {
    let body = "{\"ok\":true,\"status\":\"live\",\"profile\":\"a\\nholder: pid 1\",\"version\":\"\\u001b[2J\"}";
    let reply = format!("HTTP/1.1 200 OK\r\n\r\n{body}");
    let info = parse_health_reply(reply.as_bytes()).health().cloned().expect("a gateway");
    assert_eq!(info.profile.as_deref(), Some("a\\nholder: pid 1"));
    assert_eq!(info.version.as_deref(), Some("\\x1b[2J"));
}

/// OPS-1: the kernel's socket diagnostics report a real listener exactly as `/proc/net/tcp{,6}` does.
#[cfg(target_os = "linux")]
#[test]
fn ops1_sock_diag_agrees_with_proc_net_tcp() {
    for (host, family, table) in [("127.0.0.1:0", sock_diag::AF_INET, "/proc/net/tcp"), ("[::1]:0", sock_diag::AF_INET6, "/proc/net/tcp6")]
    {
        let Ok(listener) = std::net::TcpListener::bind(host) else { continue };
        let addr = listener.local_addr().unwrap();
        let from_proc = find_listener(&read_table(table).unwrap(), addr).cloned().expect("listener in /proc");
        let from_diag = sock_diag::listeners(family, addr.port()).expect("sock_diag answers");
        assert_eq!(find_listener(&from_diag, addr), Some(&from_proc), "{host}");
        assert!(from_diag.iter().all(|r| r.local.port() == addr.port() && r.is_listening()));
    }
}

proptest! {
    /// OPS-1: any socket address written the kernel's way parses back to itself.
    #[test]
    fn ops1_hex_addresses_round_trip(addr in any::<SocketAddr>(), state in 1u8..12, uid in any::<u32>(), inode in any::<u64>()) {
        let line = format!("  12: {} 00000000:0000 {state:02X} 00000000:00000000 00:00000000 00000000 {uid:>5} 0 {inode} 1 0", format_hex_socket_addr(addr));
        let rows = parse_proc_net_tcp(&line);
        let want = SocketAddr::new(addr.ip(), addr.port());
        prop_assert_eq!(rows, vec![TcpRow { local: want, state, uid, inode }]);
    }

    /// OPS-1: reading `/proc/net/tcp6` only when needed finds the same listener as searching both tables.
    #[test]
    fn ops1_skipping_tcp6_finds_the_same_listener(
        rows in proptest::collection::vec((0usize..6, any::<bool>(), 0u64..1000), 0..8),
        wanted in 0usize..6,
    ) {
        let ips: [IpAddr; 6] = [
            Ipv4Addr::LOCALHOST.into(), Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::new(127, 0, 0, 2).into(),
            Ipv6Addr::LOCALHOST.into(), Ipv6Addr::UNSPECIFIED.into(), Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(),
        ];
        let row = |(ip, listening, inode): (usize, bool, u64)| TcpRow {
            local: SocketAddr::new(ips[ip], 80), state: if listening { TCP_LISTEN } else { 1 }, uid: 0, inode,
        };
        let (v4, v6): (Vec<TcpRow>, Vec<TcpRow>) = rows.into_iter().map(row).partition(|r| r.local.is_ipv4());
        let addr = SocketAddr::new(ips[wanted], 80);
        let both: Vec<TcpRow> = v4.iter().chain(&v6).cloned().collect();
        prop_assert_eq!(listener_in_tables(v4, || v6, addr), find_listener(&both, addr).cloned());
    }

    /// Arbitrary text never panics the parsers.
    #[test]
    fn ops1_parsers_never_panic(text in ".{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_proc_net_tcp(&text);
        let _ = parse_port_range(&text);
        let _ = stat_state(&text);
        let _ = parse_health_reply(&bytes);
    }
}
