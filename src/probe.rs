//! Who holds a port: the listening process (pid, user, command line) and whether it is a
//! gateway (it answers `GET /healthz` with `"ok":true,"status":"live"`).
//!
//! Used after the lock is refused (to name the holder, `OPS-1`), by `gateway status`
//! (`OPS-2`), `gateway stop` and `gateway run --replace` (`OPS-3`, `OPS-5`). Every probe is
//! bounded by a deadline: a holder that is stopped (`SIGSTOP`) or hung still accepts
//! connections in the kernel's backlog but never answers, and the probe then says so.
//!
//! The parsers (`/proc/net/tcp{,6}`, `ip_local_port_range`, socket links, health replies) are
//! free of I/O and tested with proptest; the I/O around them is Linux-only (`/proc`); on other
//! systems the holding process is reported as unknown.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Total bound of the probe made after a refused lock: the refusal is never delayed more.
pub const REFUSAL_PROBE_BUDGET: Duration = Duration::from_millis(200);
/// Bound of the probe made by `gateway status` and `gateway stop`.
pub const STATUS_PROBE_BUDGET: Duration = Duration::from_secs(1);
/// The most bytes of a health reply that are read.
const MAX_REPLY_BYTES: u64 = 64 * 1024;
/// `st` of a listening socket in `/proc/net/tcp`.
const TCP_LISTEN: u8 = 0x0A;

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`: only what the probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRow {
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
    pub fn is_listening(&self) -> bool {
        self.state == TCP_LISTEN
    }
}

/// Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`; lines that are not rows (the
/// header, anything malformed) are skipped. Addresses are in the kernel's format: the
/// address words as native-endian hex, the port as big hex.
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpRow> {
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
pub fn format_hex_socket_addr(addr: SocketAddr) -> String {
    let words: Vec<u32> = match addr.ip() {
        IpAddr::V4(ip) => vec![u32::from_ne_bytes(ip.octets())],
        IpAddr::V6(ip) => ip.octets().chunks(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect(),
    };
    let hex: String = words.iter().map(|w| format!("{w:08X}")).collect();
    format!("{hex}:{:04X}", addr.port())
}

/// Whether a socket bound to `local` takes connections for `wanted`: same port, and the same
/// address, or either one is the wildcard, or `local` is `wanted` as an IPv4-mapped IPv6 address.
pub fn covers(local: SocketAddr, wanted: SocketAddr) -> bool {
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
pub fn find_listener(rows: &[TcpRow], wanted: SocketAddr) -> Option<&TcpRow> {
    let mut candidates = rows.iter().filter(|r| r.is_listening() && covers(r.local, wanted));
    let first = candidates.next()?;
    Some(std::iter::once(first).chain(candidates).find(|r| r.local.ip() == wanted.ip()).unwrap_or(first))
}

/// The inode named by a `/proc/<pid>/fd/<n>` link target `socket:[12345]`.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Parses `/proc/sys/net/ipv4/ip_local_port_range` (`32768\t60999`).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
    (lo <= hi && it.next().is_none()).then_some((lo, hi))
}

/// The warning for a port inside the ephemeral range, if it is (never for port 0, `OPS-1`).
pub fn ephemeral_warning(port: u16, range: Option<(u16, u16)>) -> Option<String> {
    let (lo, hi) = range?;
    (port != 0 && (lo..=hi).contains(&port)).then(|| {
        format!(
            "port {port} lies inside the ephemeral port range {lo}-{hi} (/proc/sys/net/ipv4/ip_local_port_range): \
             an outgoing connection can occupy it by chance; choose a port outside it"
        )
    })
}

/// Reads the system's ephemeral port range and returns the warning for `port`, if any.
pub fn check_ephemeral_range(port: u16) -> Option<String> {
    if port == 0 {
        return None;
    }
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    ephemeral_warning(port, parse_port_range(&text))
}

/// What a gateway reports about itself in its health body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthInfo {
    /// The pid it reports.
    pub pid: Option<u32>,
    /// Its profile (`None`: no profile).
    pub profile: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// Milliseconds since it took the lock.
    pub uptime_ms: Option<u64>,
}

/// How the holder answered `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Nothing listens: the connection was refused.
    Refused,
    /// A gateway's health body: `"ok":true,"status":"live"`.
    Gateway(HealthInfo),
    /// Something answered, but not as a live gateway; the text says what it did.
    Other(String),
    /// Connected, but no complete answer before the deadline (stopped, hung, or not reading).
    NoAnswer,
}

impl Answer {
    /// The health info, if a gateway answered.
    pub fn health(&self) -> Option<&HealthInfo> {
        match self {
            Answer::Gateway(info) => Some(info),
            _ => None,
        }
    }
}

/// Interprets the bytes a holder sent in reply to `GET /healthz` (read until it closed).
pub fn parse_health_reply(reply: &[u8]) -> Answer {
    if reply.is_empty() {
        return Answer::Other("closed the connection without answering".into());
    }
    let text = String::from_utf8_lossy(reply);
    let status_line = text.lines().next().unwrap_or("").trim().to_string();
    let (head, body) = match text.split_once("\r\n\r\n") {
        Some(parts) => parts,
        None => return Answer::Other(format!("answered {:?}", truncate(&status_line))),
    };
    if !head.starts_with("HTTP/1.") || status_line.split_whitespace().nth(1) != Some("200") {
        return Answer::Other(format!("answered {:?}", truncate(&status_line)));
    }
    let json: serde_json::Value = match serde_json::from_str(body.trim()) {
        Ok(json) => json,
        Err(_) => return Answer::Other("answered 200 without a JSON health body".into()),
    };
    if json.get("ok") != Some(&serde_json::Value::Bool(true)) || json.get("status").and_then(|s| s.as_str()) != Some("live") {
        return Answer::Other("answered a health body that is not \"ok\":true,\"status\":\"live\"".into());
    }
    Answer::Gateway(HealthInfo {
        pid: json.get("pid").and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok()),
        // Names reported by another process are shown escaped and cut (OPS-9).
        profile: json.get("profile").and_then(|v| v.as_str()).map(crate::safe_text::name),
        version: json.get("version").and_then(|v| v.as_str()).map(crate::safe_text::name),
        uptime_ms: json.get("uptimeMs").and_then(|v| v.as_u64()),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The address to connect to for `addr`: the wildcard means this host's loopback.
pub fn connect_target(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// Asks the holder of `addr` for `GET /healthz`, giving up at `deadline`.
pub fn ask_health(addr: SocketAddr, deadline: Instant) -> Answer {
    let target = connect_target(addr);
    let remaining = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut stream = match TcpStream::connect_timeout(&target, remaining()) {
        Ok(stream) => stream,
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => return Answer::Refused,
        Err(err) if matches!(err.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => return Answer::NoAnswer,
        Err(err) => return Answer::Other(format!("could not be connected to: {err}")),
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    let _ = stream.set_write_timeout(Some(remaining()));
    if stream.write_all(request.as_bytes()).is_err() {
        return if Instant::now() >= deadline { Answer::NoAnswer } else { Answer::Other("closed the connection without answering".into()) };
    }
    let mut reply = Vec::new();
    let mut limited = (&stream).take(MAX_REPLY_BYTES);
    let mut chunk = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            return Answer::NoAnswer;
        }
        let _ = stream.set_read_timeout(Some(remaining()));
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            Err(_) if reply.is_empty() => return Answer::Other("reset the connection without answering".into()),
            Err(_) => break,
        }
    }
    parse_health_reply(&reply)
}

/// The process found listening on the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// The uid owning the socket.
    pub uid: u32,
    /// Its command line, arguments joined by spaces (`None` if unreadable).
    pub command: Option<String>,
    /// It is stopped (`SIGSTOP`, state `T` in `/proc/<pid>/stat`).
    pub stopped: bool,
}

/// What is known about the process listening on the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Found in `/proc`.
    Found(Process),
    /// A listening socket was found (owned by `uid`), but no process of this host shows it
    /// (another user's process we may not inspect, or one that is exiting).
    SocketOnly {
        /// The uid owning the socket.
        uid: u32,
    },
    /// A listening socket was found (owned by `uid`), but the search for its process ran out of
    /// time (a busy system); the probe's bound wins.
    OutOfTime {
        /// The uid owning the socket.
        uid: u32,
    },
    /// No listening socket on the address in `/proc/net/tcp{,6}`.
    NoListener,
    /// This system has no `/proc` to ask.
    Unknown,
}

/// What is holding an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderKind {
    /// Nothing listens there.
    Free,
    /// A live gateway answered.
    Gateway,
    /// Something that is not a gateway answered.
    Foreign,
    /// Held, but no answer before the deadline.
    NotAnswering,
}

impl HolderKind {
    /// The name used in `gateway status --json` (`"state"`).
    pub fn name(self) -> &'static str {
        match self {
            HolderKind::Free => "free",
            HolderKind::Gateway => "gateway",
            HolderKind::Foreign => "foreign",
            HolderKind::NotAnswering => "not-answering",
        }
    }
}

/// The result of probing an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The address probed.
    pub addr: SocketAddr,
    /// The listening process, as far as it is known.
    pub owner: Owner,
    /// The holder's answer to `GET /healthz`.
    pub answer: Answer,
    /// How long the health question was allowed to take.
    pub budget: Duration,
}

impl Probe {
    /// Classifies the holder from its answer.
    pub fn kind(&self) -> HolderKind {
        match &self.answer {
            Answer::Refused => HolderKind::Free,
            Answer::Gateway(_) => HolderKind::Gateway,
            Answer::Other(_) => HolderKind::Foreign,
            Answer::NoAnswer => HolderKind::NotAnswering,
        }
    }

    /// The health info, if a gateway answered.
    pub fn health(&self) -> Option<&HealthInfo> {
        self.answer.health()
    }

    /// The listening process, if found.
    pub fn process(&self) -> Option<&Process> {
        match &self.owner {
            Owner::Found(p) => Some(p),
            _ => None,
        }
    }

    /// The pid of a gateway that may be asked to stop: it answered as a live gateway, and the
    /// pid it reports is the pid found listening in `/proc` (`OPS-3`). `None` otherwise.
    pub fn verified_gateway_pid(&self) -> Option<u32> {
        let (health, process) = (self.health()?, self.process()?);
        (health.pid == Some(process.pid)).then_some(process.pid)
    }

    /// Lines describing the holder, printed after the `GatewayLockError` line (`OPS-1`).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![match &self.owner {
            Owner::Found(p) => format!(
                "  holder: pid {} (uid {}{}): {}",
                p.pid,
                p.uid,
                if p.stopped { ", stopped" } else { "" },
                p.command.as_deref().unwrap_or("(command line unreadable)")
            ),
            Owner::SocketOnly { uid } => format!("  holder: a listening socket of uid {uid}; its process is not visible from here"),
            Owner::OutOfTime { uid } => {
                format!("  holder: a listening socket of uid {uid}; its process was not found within {} ms", self.budget.as_millis())
            }
            Owner::NoListener => "  holder: no process listens on the address (it is bound by a socket that does not listen)".to_string(),
            Owner::Unknown => "  holder: unknown (finding the process is supported on Linux only)".to_string(),
        }];
        lines.push(match &self.answer {
            Answer::Gateway(h) => format!("  holder is a live gateway: {}", gateway_summary(h)),
            Answer::Other(what) => format!("  holder is not a gateway: GET /healthz {what}"),
            Answer::NoAnswer => format!("  holder did not answer GET /healthz within {} ms (stopped or hung?)", self.budget.as_millis()),
            Answer::Refused => "  holder does not accept connections".to_string(),
        });
        lines
    }
}

/// `profile work, version 0.1.0, up 12.3s` (missing fields left out).
pub fn gateway_summary(h: &HealthInfo) -> String {
    let mut parts = vec![format!("profile {}", h.profile.as_deref().unwrap_or("(none)"))];
    if let Some(v) = &h.version {
        parts.push(format!("version {v}"));
    }
    if let Some(ms) = h.uptime_ms {
        parts.push(format!("up {}", humantime::format_duration(Duration::from_secs(ms / 1000))));
    }
    parts.join(", ")
}

/// After a refused lock (the ERR-1 line is already printed): prints who holds `addr` on stderr,
/// bounded by [`REFUSAL_PROBE_BUDGET`], warns if `asked_port` is in the ephemeral range, and returns
/// the exit code: 5 if a live gateway holds the port, else 3 (`OPS-1`).
pub fn explain_refusal(addr: SocketAddr, asked_port: u16) -> u8 {
    let found = probe(addr, REFUSAL_PROBE_BUDGET);
    for line in found.describe() {
        eprintln!("{line}");
    }
    if let Some(warning) = check_ephemeral_range(asked_port) {
        eprintln!("warning: {warning}");
    }
    if found.kind() == HolderKind::Gateway {
        crate::cli::exit_code::HELD_BY_GATEWAY
    } else {
        crate::cli::exit_code::PORT_HELD
    }
}

/// Probes `addr`: asks `/healthz` (bounded by `budget`) while looking the listener up in `/proc`.
///
/// The health question runs on its own thread; on loopback a live gateway answers within about a
/// millisecond, and the pid it reports is checked first ([`find_owner`]'s hint), which spares the scan
/// of every process. A holder that does not answer soon only delays the full scan by [`HINT_WAIT`].
pub fn probe(addr: SocketAddr, budget: Duration) -> Probe {
    let deadline = Instant::now() + budget;
    let (answer, owner) = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let asked = s.spawn(move || {
            let answer = ask_health(addr, deadline);
            let _ = tx.send(answer.clone());
            answer
        });
        let listener = find_listener_row(addr);
        let owner = listener.map(|row| {
            let wait = HINT_WAIT.min(deadline.saturating_duration_since(Instant::now()));
            let hint = rx.recv_timeout(wait).ok().as_ref().and_then(Answer::health).and_then(|h| h.pid);
            owner_of_row(&row, hint, deadline)
        });
        (asked.join().unwrap_or(Answer::NoAnswer), owner)
    });
    // No listener, yet the health question was not refused: the lookup ran while a racing
    // contender was inside `listen(2)` (its socket listens before the kernel lists it), so by now
    // it is listed. Look once more, with the pid it reported.
    let owner = match owner {
        Err(Owner::NoListener) if answer != Answer::Refused => {
            find_listener_row(addr).map(|row| owner_of_row(&row, answer.health().and_then(|h| h.pid), deadline))
        }
        owner => owner,
    };
    Probe { addr, owner: owner.unwrap_or_else(|l| l), answer, budget }
}

/// How long [`probe`] waits for the holder's health answer (and the pid it reports) before it
/// scans every process for the listening socket.
pub const HINT_WAIT: Duration = Duration::from_millis(10);

/// Finds the process listening on `addr` (Linux: `/proc`), giving up at `deadline`.
pub fn find_owner(addr: SocketAddr, deadline: Instant) -> Owner {
    match find_listener_row(addr) {
        Ok(row) => owner_of_row(&row, None, deadline),
        Err(owner) => owner,
    }
}

/// The listening socket holding `addr` in `/proc/net/tcp{,6}`, or why there is none
/// ([`Owner::Unknown`] without `/proc`, else [`Owner::NoListener`]).
///
/// The table of `addr`'s own family is read first; the other one only when it could change the
/// answer of [`find_listener`] over both tables (an IPv4 address found in `/proc/net/tcp` wins over any
/// wildcard or mapped IPv6 listener; an IPv6 address must be found exactly in `/proc/net/tcp6`).
pub fn find_listener_row(addr: SocketAddr) -> Result<TcpRow, Owner> {
    const V4: &str = "/proc/net/tcp";
    const V6: &str = "/proc/net/tcp6";
    #[cfg(target_os = "linux")]
    if let Some(rows) = sock_diag::listeners(sock_diag::AF_INET, addr.port()) {
        let v6 = || sock_diag::listeners(sock_diag::AF_INET6, addr.port()).or_else(|| read_table(V6)).unwrap_or_default();
        return listener_in_tables(rows, v6, addr).ok_or(Owner::NoListener);
    }
    let v4 = match read_table(V4) {
        Some(rows) => rows,
        None if !Path::new(V4).exists() => return Err(Owner::Unknown),
        None => Vec::new(),
    };
    listener_in_tables(v4, || read_table(V6).unwrap_or_default(), addr).ok_or(Owner::NoListener)
}

/// Every listening TCP socket (IPv4 and IPv6) on `port`: from netlink `sock_diag` on Linux, else
/// from `/proc/net/tcp{,6}`; `None` where neither can be read.
pub fn listening_sockets(port: u16) -> Option<Vec<TcpRow>> {
    #[cfg(target_os = "linux")]
    if let (Some(mut v4), Some(v6)) = (sock_diag::listeners(sock_diag::AF_INET, port), sock_diag::listeners(sock_diag::AF_INET6, port)) {
        v4.extend(v6);
        return Some(v4);
    }
    let mut rows = read_table("/proc/net/tcp")?;
    rows.extend(read_table("/proc/net/tcp6").unwrap_or_default());
    rows.retain(|r| r.is_listening() && r.local.port() == port);
    Some(rows)
}

/// [`find_listener`] over the rows of `/proc/net/tcp` then those of `/proc/net/tcp6` (`v6`, only
/// called when its rows can change the answer: not for an IPv4 address already covered in `v4`).
pub fn listener_in_tables(v4: Vec<TcpRow>, v6: impl FnOnce() -> Vec<TcpRow>, addr: SocketAddr) -> Option<TcpRow> {
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
mod sock_diag {
    use super::TcpRow;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_packet_sock_diag::{SockDiagMessage, IPPROTO_TCP};
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};
    use std::net::SocketAddr;

    pub use netlink_packet_sock_diag::{AF_INET, AF_INET6};

    /// The listening sockets of `family` ([`AF_INET`] or [`AF_INET6`]) on `port`; `None` if the kernel
    /// cannot be asked or answers anything but the dump.
    pub fn listeners(family: u8, port: u16) -> Option<Vec<TcpRow>> {
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
fn read_table(path: &str) -> Option<Vec<TcpRow>> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = Vec::with_capacity(256 * 1024);
    file.read_to_end(&mut buf).ok()?;
    Some(parse_proc_net_tcp(&String::from_utf8_lossy(&buf)))
}

/// The process holding the listening socket `row`: `hint` (the pid a gateway reported) is checked
/// first; otherwise, or if it does not hold the socket, every process is scanned.
fn owner_of_row(row: &TcpRow, hint: Option<u32>, deadline: Instant) -> Owner {
    let pid = hint.filter(|&pid| holds_inode(pid, row.inode)).or_else(|| pid_of_inode(row.inode, deadline));
    match pid {
        Some(pid) => Owner::Found(Process { pid, uid: row.uid, command: command_line(pid), stopped: is_stopped(pid) }),
        None if Instant::now() >= deadline => Owner::OutOfTime { uid: row.uid },
        None => Owner::SocketOnly { uid: row.uid },
    }
}

/// Whether `pid` has a descriptor on socket `inode` (`/proc/<pid>/fd`).
pub fn holds_inode(pid: u32, inode: u64) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).ok().as_deref().and_then(Path::to_str).and_then(socket_inode) == Some(inode))
}

/// The pid of a process with a descriptor on socket `inode` (scans `/proc/<pid>/fd`), the
/// lowest such pid, giving up at `deadline`.
pub fn pid_of_inode(inode: u64, deadline: Instant) -> Option<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    // Lowest pid first: when a socket is shared (a forked child, a child between fork and exec),
    // the parent is the holder.
    pids.sort_unstable();
    for pid in pids {
        if Instant::now() >= deadline {
            return None;
        }
        if holds_inode(pid, inode) {
            return Some(pid);
        }
    }
    None
}

/// The command line of `pid` for display: arguments joined by spaces, control characters
/// escaped, cut after 512 characters (OPS-9).
pub fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    crate::safe_text::command_line(&raw)
}

/// Whether `pid` is stopped (`T`) according to `/proc/<pid>/stat`.
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(stat_state) == Some('T')
}

/// The state letter of a `/proc/<pid>/stat` line (after the parenthesised command name).
pub fn stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            Answer::Gateway(HealthInfo {
                pid: Some(7),
                profile: Some("work".into()),
                version: Some("0.1.0".into()),
                uptime_ms: Some(1500)
            })
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
        for (host, family, table) in
            [("127.0.0.1:0", sock_diag::AF_INET, "/proc/net/tcp"), ("[::1]:0", sock_diag::AF_INET6, "/proc/net/tcp6")]
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
}
