//! Clients kept open on a holder while it is measured: WebSocket clients of the harness (through
//! the protocol handshake when the gateway speaks it) that answer the close frame of a graceful
//! shutdown, or plain TCP connections for the baseline.

use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use gateway_harness::net::loopback;
use gateway_harness::ws::{self, Ws};

/// How long connecting and every read may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// Open clients; WebSocket ones are read by a thread of their own, which answers their close
/// frames. Dropped, every connection is shut down and the thread joined.
pub struct Clients {
    streams: Vec<TcpStream>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Clients {
    /// `n` clients on `127.0.0.1:port`: WebSocket (with `token`, the protocol handshake) or plain TCP.
    pub fn connect(port: u16, n: usize, websocket: bool, token: Option<&str>) -> Clients {
        let addr = loopback(port);
        if !websocket {
            let streams = (0..n).map(|_| TcpStream::connect_timeout(&addr, DEADLINE).expect("tcp connect")).collect();
            return Clients { streams, thread: None };
        }
        let open = |i: usize| -> Ws {
            match token {
                Some(token) => ws::handshake(addr, token, &format!("bench-{i}"), DEADLINE).map(|(ws, _)| ws),
                None => ws::open(addr, None, DEADLINE),
            }
            .unwrap_or_else(|e| panic!("client {i}: {e}"))
        };
        let mut all: Vec<Ws> = (0..n).map(open).collect();
        let streams = all.iter().map(|ws| ws.get_ref().try_clone().expect("clone a client's socket")).collect();
        let thread = std::thread::spawn(move || {
            for ws in all.iter_mut() {
                // Until the close (answered) or the connection is shut down.
                let _ = ws::until_close(ws);
            }
        });
        Clients { streams, thread: Some(thread) }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        for stream in &self.streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
