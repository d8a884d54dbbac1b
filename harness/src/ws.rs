//! The WebSocket client kit of `spec/protocol.md`: open (with an `Origin` if asked), frames as
//! JSON or a close, the `connect` request with a client identity OpenClaw's gateway accepts,
//! requests, the handshake and method calls. Every read is bounded by the socket's timeouts.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message, WebSocket};

/// A connected blocking WebSocket client.
pub type Ws = WebSocket<TcpStream>;

/// The `client.id` sent in `connect` (one OpenClaw's own gateway accepts).
pub const CLIENT_ID: &str = "cli";
/// The `client.mode` sent in `connect`.
pub const CLIENT_MODE: &str = "cli";

/// What a client reads next.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A data frame holding JSON.
    Json(Value),
    /// The close frame's code and reason (1005 without a code, 1006 when the connection ended
    /// without a close frame).
    Close(u16, String),
}

/// Opens a WebSocket on `ws://addr/` (with `Origin` if given); an HTTP refusal is `Err("HTTP <status>")`.
pub fn open(addr: SocketAddr, origin: Option<&str>, deadline: Duration) -> Result<Ws, String> {
    let stream = TcpStream::connect_timeout(&addr, deadline).map_err(|e| format!("connect to {addr}: {e}"))?;
    stream.set_read_timeout(Some(deadline)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(deadline)).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut request = format!("ws://{addr}/").into_client_request().map_err(|e| e.to_string())?;
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse().map_err(|_| format!("bad origin {origin:?}"))?);
    }
    // A small read buffer: tungstenite zero-fills its 128 KiB default before every read, which makes
    // a thousand clients, not the implementation, the bottleneck of a measurement.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    match tungstenite::client::client_with_config(request, stream, Some(config)) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(format!("HTTP {}", response.status().as_u16()))
        }
        Err(e) => Err(format!("WebSocket handshake: {e}")),
    }
}

/// The next data frame as JSON, or the close; `Err` on a timeout or a frame that is not JSON.
pub fn recv(ws: &mut Ws) -> Result<Frame, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                return serde_json::from_str(t.as_str()).map(Frame::Json).map_err(|e| format!("frame {t:?} is not JSON: {e}"))
            }
            Ok(Message::Binary(b)) => {
                return serde_json::from_slice(&b).map(Frame::Json).map_err(|e| format!("binary frame is not JSON: {e}"))
            }
            Ok(Message::Close(Some(frame))) => return Ok(Frame::Close(u16::from(frame.code), frame.reason.to_string())),
            Ok(Message::Close(None)) => return Ok(Frame::Close(1005, String::new())),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err("timed out: no frame within the read deadline".to_string())
            }
            Err(_) => return Ok(Frame::Close(1006, String::new())),
        }
    }
}

/// The next frame, which must be JSON.
pub fn json(ws: &mut Ws) -> Result<Value, String> {
    match recv(ws)? {
        Frame::Json(v) => Ok(v),
        Frame::Close(code, reason) => Err(format!("closed {code} {reason:?} where a frame was expected")),
    }
}

/// Sends a text frame.
pub fn send(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text)).map_err(|e| format!("send: {e}"))
}

/// Sends a text frame whose payload is `bytes` as they are, UTF-8 or not (PROTO-16).
pub fn send_raw_text(ws: &mut Ws, bytes: &[u8]) -> Result<(), String> {
    use tungstenite::protocol::frame::{
        coding::{Data, OpCode},
        Frame as RawFrame,
    };
    let frame = RawFrame::message(bytes.to_vec(), OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).map_err(|e| format!("send: {e}"))
}

/// Writes `bytes` on the client's socket as they are, beside the WebSocket framing (a frame the
/// client library would refuse to build, PROTO-16).
pub fn send_raw_bytes(ws: &mut Ws, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let stream = ws.get_mut();
    stream.write_all(bytes).and_then(|()| stream.flush()).map_err(|e| format!("send: {e}"))
}

/// Frames until the close (answered), and the close's code and reason.
pub fn until_close(ws: &mut Ws) -> Result<(Vec<Value>, (u16, String)), String> {
    let mut frames = Vec::new();
    loop {
        match recv(ws)? {
            Frame::Json(v) => frames.push(v),
            Frame::Close(code, reason) => {
                let _ = ws.flush();
                return Ok((frames, (code, reason)));
            }
        }
    }
}

/// The `connect` request offering protocols `min..=max`, with `token` if any; `instance` becomes
/// `client.instanceId` (to tell clients apart in `system-presence`).
pub fn connect_frame(min: u32, max: u32, token: Option<&str>, instance: &str) -> String {
    let mut params = json!({
        "minProtocol": min, "maxProtocol": max,
        "client": {"id": CLIENT_ID, "version": "1.0.0", "platform": "linux", "mode": CLIENT_MODE, "instanceId": instance},
        "caps": [], "role": "operator", "scopes": ["operator.read"],
    });
    if let Some(token) = token {
        params["auth"] = json!({"token": token});
    }
    json!({"type": "req", "id": "connect-1", "method": "connect", "params": params}).to_string()
}

/// A request frame with empty params.
pub fn request_frame(id: &str, method: &str) -> String {
    json!({"type": "req", "id": id, "method": method, "params": {}}).to_string()
}

/// Opens a WebSocket, reads the challenge, sends `connect` (4..=4) with `token`; the client and `hello-ok`.
pub fn handshake(addr: SocketAddr, token: &str, instance: &str, deadline: Duration) -> Result<(Ws, Value), String> {
    let mut ws = open(addr, None, deadline)?;
    let challenge = json(&mut ws)?;
    if challenge["event"] != "connect.challenge" {
        return Err(format!("first frame {challenge}, want the connect.challenge event"));
    }
    send(&mut ws, &connect_frame(4, 4, Some(token), instance))?;
    let hello = json(&mut ws)?;
    if hello["ok"] == true && hello["payload"]["type"] == "hello-ok" {
        Ok((ws, hello))
    } else {
        Err(format!("connect with the token answered {hello}"))
    }
}

/// Calls `method` and returns its response (events before it skipped).
pub fn call(ws: &mut Ws, id: &str, method: &str) -> Result<Value, String> {
    send(ws, &request_frame(id, method))?;
    loop {
        let frame = json(ws)?;
        if frame["type"] == "res" && frame["id"] == id {
            return Ok(frame);
        }
        if frame["type"] != "event" {
            return Err(format!("{method}: unexpected frame {frame}"));
        }
    }
}
