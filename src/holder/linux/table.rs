//! The kernel's table of TCP sockets: the listening sockets on a port, from netlink `sock_diag`
//! or from `/proc/net/tcp{,6}`, and the parser of those files (free of I/O).
//!
//! Self-contained (only `std` and the netlink crates): no other module of the crate is named here.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `st` of a listening socket in `/proc/net/tcp`.
pub(crate) const TCP_LISTEN: u8 = 0x0A;

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`: only what the probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcpRow {
    /// The socket's local address.
    pub local: SocketAddr,
    /// The kernel's TCP state (`0x0A` is `LISTEN`).
    pub state: u8,
    /// The owning user id.
    pub uid: u32,
    /// The socket's inode number (links in `/proc/<pid>/fd` name it as `socket:[inode]`).
    pub inode: u64,
}

impl TcpRow {
    /// Whether this is a listening socket.
    pub(crate) fn is_listening(&self) -> bool {
        self.state == TCP_LISTEN
    }
}

/// Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`; lines that are not rows (the
/// header, anything malformed) are skipped. Addresses are in the kernel's format: the
/// address words as native-endian hex, the port as big hex.
pub(crate) fn parse_proc_net_tcp(text: &str) -> Vec<TcpRow> {
    text.lines().filter_map(parse_tcp_line).collect()
}

fn parse_tcp_line(line: &str) -> Option<TcpRow> {
    let mut fields = line.split_whitespace();
    let slot = fields.next()?;
    if !slot.ends_with(':') {
        return None;
    }
    let local = parse_hex_socket_addr(fields.next()?)?;
    let _remote = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let _queues = fields.next()?;
    let _timer = fields.next()?;
    let _retransmits = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let _timeout = fields.next()?;
    let inode = fields.next()?.parse().ok()?;
    Some(TcpRow { local, state, uid, inode })
}

/// Parses `0100007F:4965` (IPv4) or a 32-digit IPv6 address and a port.
fn parse_hex_socket_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match addr.len() {
        8 if addr.is_ascii() => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 if addr.is_ascii() => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(&addr[i * 8..i * 8 + 8])?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Formats an address the way the kernel writes it in `/proc/net/tcp{,6}` (the inverse of the parser).
#[cfg(test)]
pub(crate) fn format_hex_socket_addr(addr: SocketAddr) -> String {
    let words: Vec<u32> = match addr.ip() {
        IpAddr::V4(ip) => vec![u32::from_ne_bytes(ip.octets())],
        IpAddr::V6(ip) => ip.octets().chunks(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect(),
    };
    let hex: String = words.iter().map(|w| format!("{w:08X}")).collect();
    format!("{hex}:{:04X}", addr.port())
}

/// Whether a socket bound to `local` takes connections for `wanted`: same port, and the same
/// address, or either one is the wildcard, or `local` is `wanted` as an IPv4-mapped IPv6 address.
pub(crate) fn covers(local: SocketAddr, wanted: SocketAddr) -> bool {
    if local.port() != wanted.port() {
        return false;
    }
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let (l, w) = (canon(local.ip()), canon(wanted.ip()));
    l == w || l.is_unspecified() || w.is_unspecified()
}

/// The listening socket among `rows` that holds `wanted`: an exact address first, then a wildcard.
pub(crate) fn find_listener(rows: &[TcpRow], wanted: SocketAddr) -> Option<&TcpRow> {
    let mut candidates = rows.iter().filter(|r| r.is_listening() && covers(r.local, wanted));
    let first = candidates.next()?;
    Some(std::iter::once(first).chain(candidates).find(|r| r.local.ip() == wanted.ip()).unwrap_or(first))
}

/// [`find_listener`] over the rows of `/proc/net/tcp` then those of `/proc/net/tcp6` (`v6`, only
/// called when its rows can change the answer: not for an IPv4 address already covered in `v4`).
pub(crate) fn listener_in_tables(v4: Vec<TcpRow>, v6: impl FnOnce() -> Vec<TcpRow>, addr: SocketAddr) -> Option<TcpRow> {
    if addr.is_ipv4() {
        if let Some(row) = find_listener(&v4, addr) {
            return Some(row.clone());
        }
    }
    let mut rows = v4;
    rows.extend(v6());
    find_listener(&rows, addr).cloned()
}

/// The kernel's socket diagnostics (netlink `NETLINK_SOCK_DIAG`): the listening TCP sockets on one port,
/// the same rows as `/proc/net/tcp{,6}` without walking every established connection of the host
/// (reading those files walks the whole connection hash table on every `read`). The socket comes from
/// `netlink-sys`, the request and the replies are built and parsed by `netlink-packet-sock-diag`.
#[cfg(target_os = "linux")]
pub(crate) mod sock_diag {
    use super::TcpRow;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_packet_sock_diag::{SockDiagMessage, IPPROTO_TCP};
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};
    use std::net::SocketAddr;

    pub(crate) use netlink_packet_sock_diag::{AF_INET, AF_INET6};

    /// The listening sockets of `family` ([`AF_INET`] or [`AF_INET6`]) on `port`; `None` if the kernel
    /// cannot be asked or answers anything but the dump.
    pub(crate) fn listeners(family: u8, port: u16) -> Option<Vec<TcpRow>> {
        let socket = Socket::new(NETLINK_SOCK_DIAG).ok()?;
        // The kernel filters the dump: TCP sockets in `LISTEN` whose local port is `port`.
        let mut socket_id = if family == AF_INET6 { SocketId::new_v6() } else { SocketId::new_v4() };
        socket_id.source_port = port;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let request =
            InetRequest { family, protocol: IPPROTO_TCP, extensions: ExtensionFlags::empty(), states: StateFlags::LISTEN, socket_id };
        let mut packet = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
        packet.finalize();
        let mut request = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut request);
        if socket.send(&request, 0).ok()? != request.len() {
            return None;
        }
        let mut rows = Vec::new();
        let mut buf = Vec::with_capacity(32 * 1024);
        loop {
            buf.clear();
            if socket.recv(&mut buf, 0).ok()? == 0 {
                return None;
            }
            let mut msgs = &buf[..];
            while !msgs.is_empty() {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(msgs).ok()?;
                match msg.payload {
                    NetlinkPayload::Done(_) => return Some(rows),
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                        let h = response.header;
                        rows.push(TcpRow {
                            local: SocketAddr::new(h.socket_id.source_address, h.socket_id.source_port),
                            state: h.state,
                            uid: h.uid,
                            inode: u64::from(h.inode),
                        });
                    }
                    NetlinkPayload::Noop => {}
                    _ => return None,
                }
                // Messages in one datagram start at 4-byte boundaries (`NLMSG_ALIGN`).
                let len = msg.header.length as usize;
                if len == 0 {
                    return None;
                }
                msgs = msgs.get(len.next_multiple_of(4)..).unwrap_or_default();
            }
        }
    }
}

/// Reads and parses one of `/proc/net/tcp{,6}` with few, large reads (every `read` of these files
/// walks the kernel's socket hash tables again).
pub(crate) fn read_table(path: &str) -> Option<Vec<TcpRow>> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = Vec::with_capacity(256 * 1024);
    file.read_to_end(&mut buf).ok()?;
    Some(parse_proc_net_tcp(&String::from_utf8_lossy(&buf)))
}
