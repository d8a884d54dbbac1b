//! Ports and plain TCP: free ports, a foreign listener, an `SO_REUSEPORT` holder, and HTTP
//! requests that carry a `Host` header, all on loopback and bounded by deadlines.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `n` distinct loopback ports free right now (chosen by the OS, released again before returning).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let probes: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind(loopback(0))).collect::<Result<_, _>>()?;
    probes.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

/// A loopback port free right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// Whether `127.0.0.1:port` can be bound right now (nobody listens there).
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(loopback(port)).is_ok()
}

/// Whether something accepts connections on `addr` right now.
pub fn accepts(addr: SocketAddr, deadline: Duration) -> bool {
    TcpStream::connect_timeout(&addr, deadline).is_ok()
}

/// The kernel's ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`), if readable.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    parse_port_range(&std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?)
}

/// Parses `32768\t60999`: two ports, the first not above the second.
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut words = text.split_whitespace().map(str::parse::<u16>);
    match (words.next(), words.next(), words.next()) {
        (Some(Ok(low)), Some(Ok(high)), None) if low <= high => Some((low, high)),
        _ => None,
    }
}

/// Reserves a port that nobody listens on: a bound socket that does not listen (connections are
/// refused, so the port looks free, and nobody else can take it meanwhile).
pub fn reserved_free_port() -> std::io::Result<(Socket, SocketAddr)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&loopback(0).into())?;
    let addr = socket.local_addr()?.as_socket().ok_or_else(|| std::io::Error::other("not an inet address"))?;
    Ok((socket, addr))
}

/// A listener on `127.0.0.1:port` with `SO_REUSEPORT` set (LOCK-5's holder).
pub fn reuseport_listener(port: u16) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_port(true)?;
    socket.bind(&loopback(port).into())?;
    socket.listen(16)?;
    Ok(socket)
}

/// A plain listener in this process: a foreign holder, not a gateway (std's `SO_REUSEADDR`, like
/// most servers). With `answer`, a thread accepts every connection and closes it at once; without,
/// nothing accepts (connections wait in the backlog, like a hung process). Dropping it stops the
/// thread first (woken by a connection of its own), so the socket is really closed.
pub struct ForeignListener {
    /// The address it listens on.
    pub addr: SocketAddr,
    listener: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForeignListener {
    /// On `addr` (port 0 for an ephemeral one).
    pub fn try_bind(addr: SocketAddr, answer: bool) -> std::io::Result<Self> {
        Self::from_listener(TcpListener::bind(addr)?, answer)
    }

    /// A listener made elsewhere (e.g. [`reuseport_listener`]), answered or not as in [`ForeignListener::try_bind`].
    pub fn from_listener(listener: TcpListener, answer: bool) -> std::io::Result<Self> {
        let listener = Arc::new(listener);
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = answer.then(|| {
            let (listener, stop) = (Arc::clone(&listener), Arc::clone(&stop));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    drop(conn);
                }
            })
        });
        Ok(ForeignListener { addr, listener, stop, thread })
    }

    /// Whether it still listens: the kernel accepts a connection.
    pub fn still_listening(&self, deadline: Duration) -> bool {
        let _ = &self.listener;
        accepts(self.addr, deadline)
    }
}

impl Drop for ForeignListener {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = thread.join();
        }
    }
}

/// Sends `request` as is and returns the whole answer (until the peer closes, or `deadline`
/// between reads).
pub fn http_raw(addr: SocketAddr, request: &[u8], deadline: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, deadline)?;
    stream.set_read_timeout(Some(deadline))?;
    stream.set_write_timeout(Some(deadline))?;
    stream.write_all(request)?;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// An HTTP/1.1 request head with a `Host` header naming `addr`, closing the connection after it.
pub fn request(method: &str, addr: SocketAddr, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
}

/// `GET path` with a `Host` header; the whole answer.
pub fn http_get(addr: SocketAddr, path: &str, deadline: Duration) -> std::io::Result<String> {
    http_raw(addr, request("GET", addr, path).as_bytes(), deadline)
}

/// An HTTP answer split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The head, status line included.
    pub head: String,
    /// The body.
    pub body: String,
}

impl Answer {
    /// Parses an answer; `None` when it does not start with an `HTTP/1.x NNN` status line.
    pub fn parse(text: &str) -> Option<Answer> {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let status = head.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
        Some(Answer { status, head: head.to_string(), body: body.to_string() })
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("5 4"), None);
        assert_eq!(parse_port_range("1 2 3"), None);
        assert!(ephemeral_range().is_some());
    }

    #[test]
    fn answers_parse() {
        let a = Answer::parse("HTTP/1.1 503 Service Unavailable\r\nX: y\r\n\r\n{\"ok\":false}").unwrap();
        assert_eq!((a.status, a.json()["ok"].as_bool()), (503, Some(false)));
        assert!(Answer::parse("garbage").is_none());
    }

    #[test]
    fn a_foreign_listener_holds_its_port_until_dropped() {
        let foreign = ForeignListener::try_bind(loopback(0), true).unwrap();
        assert!(!port_free(foreign.addr.port()) && foreign.still_listening(Duration::from_secs(5)));
        let port = foreign.addr.port();
        drop(foreign);
        // Not `port_free`: another process may be given the port as soon as it is released.
        let me = std::process::id();
        assert!(crate::sockets::listeners(port).iter().all(|r| !crate::sockets::holders_of_inode(r.inode).contains(&me)));
    }
}
