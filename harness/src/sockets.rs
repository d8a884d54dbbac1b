//! The kernel's view of sockets and processes, read from outside: the listening sockets on a port
//! (netlink `sock_diag`, else `/proc/net/tcp{,6}`), which processes hold a socket, whether a
//! descriptor is close-on-exec (`/proc/<pid>/fdinfo`), and a process's state.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The kernel's TCP state `LISTEN`.
const TCP_LISTEN: u8 = 0x0A;
/// The kernel's TCP state `ESTABLISHED`.
const TCP_ESTABLISHED: u8 = 0x01;

/// One TCP socket as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRow {
    /// The local address, exactly as bound.
    pub local: SocketAddr,
    /// The kernel's TCP state.
    pub state: u8,
    /// The owning user id.
    pub uid: u32,
    /// The socket's inode (`socket:[inode]` in `/proc/<pid>/fd`).
    pub inode: u64,
}

/// Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`, skipping what is not a row.
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpRow> {
    text.lines().filter_map(parse_tcp_line).collect()
}

fn parse_tcp_line(line: &str) -> Option<TcpRow> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || !f[0].ends_with(':') {
        return None;
    }
    let state = u8::from_str_radix(f[3], 16).ok()?;
    Some(TcpRow { local: parse_hex_socket_addr(f[1])?, state, uid: f[7].parse().ok()?, inode: f[9].parse().ok()? })
}

/// `0100007F:4965` (IPv4) or a 32-digit IPv6 address, and a port: address words native-endian.
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

/// Reads one of `/proc/net/tcp{,6}` with few, large reads.
fn read_table(path: &str) -> Vec<TcpRow> {
    let mut buf = Vec::with_capacity(256 * 1024);
    match std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf)) {
        Ok(_) => parse_proc_net_tcp(&String::from_utf8_lossy(&buf)),
        Err(_) => Vec::new(),
    }
}

/// Every listening TCP socket (IPv4 and IPv6) on `port`, with its exact local address.
pub fn listeners(port: u16) -> Vec<TcpRow> {
    #[cfg(target_os = "linux")]
    if let (Some(mut v4), Some(v6)) = (sock_diag::listeners(sock_diag::AF_INET, port), sock_diag::listeners(sock_diag::AF_INET6, port)) {
        v4.extend(v6);
        return v4;
    }
    let mut rows = read_table("/proc/net/tcp");
    rows.extend(read_table("/proc/net/tcp6"));
    rows.retain(|r| r.state == TCP_LISTEN && r.local.port() == port);
    rows
}

/// Established connections whose local port is `port` (accepted or in a listener's backlog).
pub fn established(port: u16) -> usize {
    let mut rows = read_table("/proc/net/tcp");
    rows.extend(read_table("/proc/net/tcp6"));
    rows.iter().filter(|r| r.state == TCP_ESTABLISHED && r.local.port() == port).count()
}

/// Whether a socket bound to `local` takes connections for `wanted`: same port, and the same
/// address, either one the wildcard, or `local` is `wanted` as an IPv4-mapped IPv6 address.
pub fn covers(local: SocketAddr, wanted: SocketAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let (l, w) = (canon(local.ip()), canon(wanted.ip()));
    local.port() == wanted.port() && (l == w || l.is_unspecified() || w.is_unspecified())
}

/// The listening sockets that take connections for `wanted`.
pub fn listeners_covering(wanted: SocketAddr) -> Vec<TcpRow> {
    listeners(wanted.port()).into_iter().filter(|r| covers(r.local, wanted)).collect()
}

/// The socket inode a `/proc/<pid>/fd` link names (`socket:[123]`).
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The descriptors of `pid` open on socket `inode`.
pub fn fds_on_inode(pid: u32, inode: u64) -> Vec<u32> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).ok().and_then(|l| socket_inode(l.to_str()?)) == Some(inode))
        .filter_map(|fd| fd.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every process with a descriptor on socket `inode` (lowest pid first).
pub fn holders_of_inode(inode: u64) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    pids.retain(|&pid| !fds_on_inode(pid, inode).is_empty());
    pids
}

/// Whether `pid`, or a process it started, has a listening socket on `port` open: readiness of an
/// implementation without a ready line, told apart from a rival that holds the same port.
pub fn holds_listener(pid: u32, port: u16) -> bool {
    let rows = listeners(port);
    if rows.is_empty() {
        return false;
    }
    let mut pids = vec![pid];
    pids.extend(crate::reaper::descendants(pid));
    rows.iter().any(|r| pids.iter().any(|&p| !fds_on_inode(p, r.inode).is_empty()))
}

/// The `flags` of descriptor `fd` of `pid` (`/proc/<pid>/fdinfo/<fd>`, octal).
pub fn fd_flags(pid: u32, fd: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let flags = text.lines().find_map(|l| l.strip_prefix("flags:"))?;
    u32::from_str_radix(flags.trim(), 8).ok()
}

/// Whether descriptor `fd` of `pid` is close-on-exec.
pub fn fd_cloexec(pid: u32, fd: u32) -> Option<bool> {
    fd_flags(pid, fd).map(|f| f & crate::spec::O_CLOEXEC_FLAG != 0)
}

/// The state letter of `pid` (`R`, `S`, `T`, `Z`, ...) from `/proc/<pid>/stat`.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether `pid` is stopped (`T`).
pub fn is_stopped(pid: u32) -> bool {
    process_state(pid) == Some('T')
}

/// The command line of `pid`, arguments joined by spaces, control characters escaped.
pub fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> =
        raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).escape_debug().to_string()).collect();
    (!args.is_empty()).then(|| args.join(" "))
}

/// Who holds `wanted` right now, as the end of "the port is ...": `held by pid 12 (cmd) on
/// 127.0.0.1:P`, `free`, or `not listened on, but 1 connection(s) still bound to it (FIN_WAIT1)`.
pub fn describe_holders(wanted: SocketAddr) -> String {
    let rows = listeners_covering(wanted);
    if rows.is_empty() {
        return lingering(wanted.port());
    }
    let mut parts = Vec::new();
    for row in rows {
        let pids = holders_of_inode(row.inode);
        let who: Vec<String> = pids.iter().map(|p| format!("pid {p} ({})", command_line(*p).unwrap_or_else(|| "?".into()))).collect();
        let who = if who.is_empty() { "a process not visible here".to_string() } else { who.join(", ") };
        parts.push(format!("{who} on {}", row.local));
    }
    format!("held by {}", parts.join("; "))
}

/// No listener: `free`, or the connections still bound to the port (a rebind without
/// `SO_REUSEADDR` fails while they last).
fn lingering(port: u16) -> String {
    let mut rows = read_table("/proc/net/tcp");
    rows.extend(read_table("/proc/net/tcp6"));
    let states: Vec<&str> = rows.iter().filter(|r| r.local.port() == port).map(|r| state_name(r.state)).collect();
    if states.is_empty() {
        return "free".to_string();
    }
    format!("not listened on, but {} connection(s) still bound to it ({})", states.len(), states.join(", "))
}

/// The kernel's name of a TCP state.
pub fn state_name(state: u8) -> &'static str {
    const NAMES: [&str; 12] = [
        "?",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
    ];
    NAMES.get(usize::from(state)).copied().unwrap_or("?")
}

/// The kernel's socket diagnostics (netlink `NETLINK_SOCK_DIAG`): the listening TCP sockets on one
/// port, without walking every connection of the host as reading `/proc/net/tcp` does.
#[cfg(target_os = "linux")]
mod sock_diag {
    use super::TcpRow;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_packet_sock_diag::{SockDiagMessage, IPPROTO_TCP};
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};
    use std::net::SocketAddr;

    pub use netlink_packet_sock_diag::{AF_INET, AF_INET6};

    /// The listening sockets of `family` on `port`; `None` if the kernel cannot be asked.
    pub fn listeners(family: u8, port: u16) -> Option<Vec<TcpRow>> {
        let socket = Socket::new(NETLINK_SOCK_DIAG).ok()?;
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
        receive(&socket)
    }

    fn receive(socket: &Socket) -> Option<Vec<TcpRow>> {
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
                        let local = SocketAddr::new(h.socket_id.source_address, h.socket_id.source_port);
                        rows.push(TcpRow { local, state: h.state, uid: h.uid, inode: u64::from(h.inode) });
                    }
                    NetlinkPayload::Noop => {}
                    _ => return None,
                }
                let len = msg.header.length as usize;
                if len == 0 {
                    return None;
                }
                // Messages in one datagram start at 4-byte boundaries (`NLMSG_ALIGN`).
                msgs = msgs.get(len.next_multiple_of(4)..).unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_this_process_is_found_with_its_exact_address_and_holder() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rows = listeners_covering(addr);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].local, addr);
        assert_eq!(holders_of_inode(rows[0].inode), [std::process::id()]);
        let fd = fds_on_inode(std::process::id(), rows[0].inode)[0];
        assert_eq!(fd_cloexec(std::process::id(), fd), Some(true), "std opens sockets close-on-exec");
        assert!(describe_holders(addr).starts_with(&format!("held by pid {}", std::process::id())));
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        let mut other = crate::proc::Proc::spawn(cmd, std::process::Stdio::null(), false).unwrap();
        assert!(holds_listener(std::process::id(), addr.port()) && !holds_listener(other.pid(), addr.port()));
        other.kill();
        drop(listener);
        // Another process may be given the port as soon as it is released: only ours must be gone.
        assert!(!describe_holders(addr).contains(&format!("pid {} ", std::process::id())));
    }

    #[test]
    fn covers_wildcards_and_mapped_addresses() {
        let want: SocketAddr = "127.0.0.1:5".parse().unwrap();
        assert!(covers("0.0.0.0:5".parse().unwrap(), want));
        assert!(covers("[::ffff:127.0.0.1]:5".parse().unwrap(), want));
        assert!(!covers("127.0.0.2:5".parse().unwrap(), want));
        assert!(!covers("127.0.0.1:6".parse().unwrap(), want));
    }

    #[test]
    fn proc_net_tcp_rows_parse() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 424242 1 0 100 0 0 10 0
";
        let rows = parse_proc_net_tcp(text);
        assert_eq!(rows, [TcpRow { local: "127.0.0.1:18789".parse().unwrap(), state: TCP_LISTEN, uid: 0, inode: 424242 }]);
    }
}
