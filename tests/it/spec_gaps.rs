//! Behaviour a port author asked about and the spec now states (issue 11, item 6): empty
//! environment variables, how hosts print, fields of `hello-ok` the client did not send, the
//! types `connect` accepts, the reply to a client's close, HTTP details, when an exchange is
//! finished during a drain, and what an evicted connection sees. Real processes, ephemeral
//! loopback ports, each test its own scratch directory.

use gateway_harness::spec;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// A fresh, empty directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gateway-lock-spec-gaps-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `gateway ARGS` with `HOME`, `XDG_STATE_HOME` and `TMPDIR` in `scratch`, and no `GATEWAY_*`
/// variable inherited from the test's environment.
fn cmd_in(scratch: &Scratch, args: &[&str]) -> Command {
    let mut cmd = Command::new(gateway_bin());
    cmd.args(args).env("HOME", &scratch.0).env("XDG_STATE_HOME", scratch.0.join("state")).env("TMPDIR", &scratch.0);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GATEWAY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `cmd` to its exit (bounded), keeping the `GATEWAY_LOG` it was given.
fn exit_of(cmd: Command) -> (ExitStatus, String, String) {
    run_cmd_within(cmd, DEADLINE)
}

/// Spawns `cmd` and returns it with its ready line, exactly as printed.
fn start_raw(cmd: Command) -> (Holder, String) {
    let mut proc = Proc::spawn_with(cmd, Streams::default(), false).expect("spawn");
    let line = proc.read_line(DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    let addr: SocketAddr = spec::ready_addr(&line).unwrap_or_else(|| panic!("{line:?}"));
    (Holder { proc, addr, scratch: None }, line)
}

/// CLI-3: a variable set to the empty string is a bad value of its flag (usage error, exit 2,
/// nothing on stdout, no listener), never "unset"; a flag given on the command line wins over
/// it. `GATEWAY_LOG` takes the six level names in any ASCII case; anything else is refused too.
#[test]
fn cli3_empty_variables_are_bad_values_and_gateway_log_is_checked() {
    let scratch = Scratch::new("env");
    let cases: [(&str, &[&str], &str); 6] = [
        ("GATEWAY_PORT", &["run", "--token", TEST_TOKEN], "'--port <PORT>'"),
        ("GATEWAY_HOST", &["run", "--port", "0", "--token", TEST_TOKEN], "'--host <HOST>'"),
        ("GATEWAY_TOKEN", &["run", "--port", "0"], "'--token <TOKEN>'"),
        ("GATEWAY_TOKEN_FILE", &["run", "--port", "0"], "'--token-file <PATH>'"),
        ("GATEWAY_PROFILE", &["run", "--port", "0", "--token", TEST_TOKEN], "'--profile <PROFILE>'"),
        ("GATEWAY_LOG", &["run", "--port", "0", "--token", TEST_TOKEN], "'GATEWAY_LOG'"),
    ];
    for (var, args, names) in cases {
        let mut cmd = cmd_in(&scratch, args);
        cmd.env(var, "");
        let (status, out, err) = exit_of(cmd);
        assert_eq!(status.code(), Some(2), "{var}: {err}");
        assert_eq!(out, "", "{var}");
        assert!(err.starts_with("error: ") && err.lines().next().unwrap().contains(names), "{var}: {err}");
    }
    assert!(!scratch.0.join("state").exists(), "a refused start generated a token");
    let mut cmd = cmd_in(&scratch, &["status", "--port", "1"]);
    cmd.env("GATEWAY_LOG", "verbose");
    let (_, _, err) = exit_of(cmd);
    assert_eq!(err, "error: invalid value 'verbose' for 'GATEWAY_LOG': expected one of off, error, warn, info, debug, trace\n");
    // Upper case is a level; the command then does its job (port 1 is free: exit 3).
    let mut cmd = cmd_in(&scratch, &["status", "--port", "1"]);
    cmd.env("GATEWAY_LOG", "WARN");
    assert_eq!(exit_of(cmd).0.code(), Some(3));
    // The flag wins over the empty variable.
    let mut cmd = cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]);
    cmd.env("GATEWAY_PORT", "");
    let (gw, _) = start_raw(cmd);
    assert!(http_get(gw.addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
}

/// CLI-3, DOOR-3, DOOR-7: the two list variables are the exception to "empty is a bad value": an
/// empty `GATEWAY_ALLOW_ORIGINS` or `GATEWAY_ALLOW_HOSTS` is an empty list, as when unset (an
/// empty `Origin` still gets 403); empty items are skipped and items are trimmed.
#[test]
fn cli3_empty_list_variables_are_empty_lists() {
    let scratch = Scratch::new("lists");
    let upgrade = |addr: SocketAddr, host: &str, origin: &str| {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n\r\n"
        );
        http_raw(addr, request.as_bytes())
    };
    let mut cmd = cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]);
    cmd.env("GATEWAY_ALLOW_ORIGINS", "").env("GATEWAY_ALLOW_HOSTS", "");
    let (gw, _) = start_raw(cmd);
    assert!(upgrade(gw.addr, "127.0.0.1", "").starts_with("HTTP/1.1 403"), "an empty origin is not allowed");
    drop(gw);
    let mut cmd = cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]);
    cmd.env("GATEWAY_ALLOW_ORIGINS", ",http://app.example ,").env("GATEWAY_ALLOW_HOSTS", " gw.example ,,");
    let (gw, _) = start_raw(cmd);
    assert!(upgrade(gw.addr, "gw.example", "").starts_with("HTTP/1.1 403"));
    assert!(upgrade(gw.addr, "gw.example", "http://app.example").starts_with("HTTP/1.1 101"));
}

/// LOCK-4: `::` is IPv6 only (an IPv4 gateway on the same port is not refused), and IPv6 hosts
/// print in their canonical form, bracketed, whatever spelling was asked for.
#[test]
fn lock4_the_ipv6_wildcard_is_ipv6_only_and_hosts_print_canonically() {
    let scratch = Scratch::new("ipv6");
    let (wild, line) = start_raw(cmd_in(&scratch, &["run", "--host", "::", "--port", "0", "--token", TEST_TOKEN]));
    assert_eq!(line, format!("{}\n", spec::ready_line("::", wild.port())));
    let port = wild.port().to_string();
    let (v4, line) = start_raw(cmd_in(&scratch, &["run", "--host", "127.0.0.1", "--port", &port, "--token", TEST_TOKEN]));
    assert_eq!(line, format!("{}\n", spec::ready_line("127.0.0.1", wild.port())));
    drop((wild, v4));
    let (v6, line) = start_raw(cmd_in(&scratch, &["run", "--host", "0:0:0:0:0:0:0:1", "--port", "0", "--token", TEST_TOKEN]));
    assert_eq!(line, format!("{}\n", spec::ready_line("::1", v6.port())));
}

/// LOCK-4, DOOR-2: an IPv4-mapped address is an IPv6 address: printed as `::ffff:a.b.c.d`,
/// loopback when its IPv4 part is (so no token is needed), and never bound, because the
/// gateway's IPv6 sockets are IPv6 only: ERR-2, exit 4. A mapped address that is not loopback
/// needs a token (exit 7).
#[test]
fn lock4_ipv4_mapped_hosts_print_mapped_and_fail_to_bind() {
    let scratch = Scratch::new("mapped");
    for host in ["::ffff:127.0.0.1", "[::FFFF:7F00:1]"] {
        let (status, out, err) = exit_of(cmd_in(&scratch, &["run", "--host", host, "--port", "0"]));
        assert_eq!(status.code(), Some(4), "{host}: {err}");
        assert_eq!(out, "");
        let prefix = spec::bind_failed_prefix("ws://[::ffff:127.0.0.1]:0");
        assert!(err.starts_with(&prefix) && err.lines().count() == 1, "{host}: {err}");
    }
    let (status, out, err) = exit_of(cmd_in(&scratch, &["run", "--host", "::ffff:10.0.0.1", "--port", "0"]));
    assert_eq!(
        (status.code(), out.as_str(), err.as_str()),
        (Some(7), "", format!("{}\n", spec::refusing_without_auth("::ffff:10.0.0.1")).as_str())
    );
    assert!(!scratch.0.join("state").exists(), "a refused start generated a token");
}

/// ERR-1, CLI-1: `localhost` (any case) means 127.0.0.1 and prints as `127.0.0.1`, in the ready
/// line and in the refusal.
#[test]
fn err1_localhost_prints_as_127_0_0_1() {
    let scratch = Scratch::new("localhost");
    let (gw, line) = start_raw(cmd_in(&scratch, &["run", "--host", "localhost", "--port", "0", "--token", TEST_TOKEN]));
    assert_eq!(line, format!("{}\n", spec::ready_line("127.0.0.1", gw.port())));
    let port = gw.port().to_string();
    let (status, out, err) = exit_of(cmd_in(&scratch, &["run", "--host", "LocalHost", "--port", &port, "--token", TEST_TOKEN]));
    assert!(matches!(status.code(), Some(3 | 5)), "{err}");
    assert_eq!(out, "");
    assert_eq!(err.lines().next(), Some(held_message(&format!("ws://127.0.0.1:{port}")).as_str()));
}

/// A `connect` request with these params.
fn connect_with(params: Value) -> String {
    json!({"type": "req", "id": "c1", "method": "connect", "params": params}).to_string()
}

/// `connect` params with the right token and nothing optional.
fn minimal_params() -> Value {
    json!({"minProtocol": 4, "maxProtocol": 4, "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
           "auth": {"token": TEST_TOKEN}})
}

/// PROTO-2, PROTO-9: `server.host` is the bound address as `/healthz` reports it (no brackets);
/// without `role` and `scopes` the client gets `operator` and `[]`, otherwise what it asked for;
/// the first event after `hello-ok` has `seq` 1.
#[test]
fn proto2_hello_ok_server_host_default_auth_and_first_seq() {
    let scratch = Scratch::new("hello");
    let (gw, _) = start_raw(cmd_in(&scratch, &["run", "--host", "::1", "--port", "0", "--token", TEST_TOKEN, "--tick-interval-ms", "50"]));
    let mut ws = ws_connect(gw.addr);
    ws_json(&mut ws);
    ws_send(&mut ws, &connect_with(minimal_params()));
    let hello = ws_json(&mut ws);
    assert_eq!(hello["payload"]["server"]["host"], "::1", "{hello}");
    assert_eq!(json_body(&http_get(gw.addr, "/healthz"))["host"], "::1");
    assert_eq!(hello["payload"]["auth"], json!({"role": "operator", "scopes": []}));
    let first = ws_json(&mut ws);
    assert_eq!((first["event"].as_str(), first["seq"].as_u64()), (Some("tick"), Some(1)), "{first}");
    assert_eq!(ws_json(&mut ws)["seq"], 2);
    let mut params = minimal_params();
    params["role"] = json!("viewer");
    params["scopes"] = json!(["a.read", "b"]);
    let mut ws = ws_connect(gw.addr);
    ws_json(&mut ws);
    ws_send(&mut ws, &connect_with(params));
    assert_eq!(ws_json(&mut ws)["payload"]["auth"], json!({"role": "viewer", "scopes": ["a.read", "b"]}));
}

/// The first frame `first` on a fresh connection: the response, then the close (code, reason).
fn first_frame_outcome(addr: SocketAddr, first: &str) -> (Value, (u16, String)) {
    let mut ws = ws_connect(addr);
    ws_json(&mut ws);
    ws_send(&mut ws, first);
    let (frames, close) = ws_until_close(&mut ws);
    assert_eq!(frames.len(), 1, "{frames:?}");
    (frames[0].clone(), close)
}

/// PROTO-3, PROTO-10: a request id must be a non-empty string, else the response's `id` is
/// `null`; `connect`'s integers are JSON integers (not `4.0`, not `"4"`), optional fields may be
/// `null` except `scopes`, unknown fields are ignored; a bad id after `hello-ok` keeps the
/// connection.
#[test]
fn proto3_connect_param_types_and_empty_ids() {
    let scratch = Scratch::new("types");
    let (gw, _) = start_raw(cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]));
    let first_not_connect = (1008, "invalid handshake: first request must be connect".to_string());
    for id in [json!(""), json!(7), Value::Null] {
        let frame = json!({"type": "req", "id": id, "method": "connect", "params": minimal_params()}).to_string();
        let (reply, close) = first_frame_outcome(gw.addr, &frame);
        assert_eq!((reply["id"].clone(), reply["error"]["code"].as_str()), (Value::Null, Some("INVALID_REQUEST")), "{id}");
        assert_eq!(close, first_not_connect);
    }
    let bad_params = (1008, "invalid connect params".to_string());
    for (field, value) in [
        ("minProtocol", json!(4.0)),
        ("maxProtocol", json!("4")),
        ("minProtocol", json!(-1)),
        ("minProtocol", json!("-0")),
        ("scopes", Value::Null),
    ] {
        let mut params = minimal_params();
        params[field] = value.clone();
        // `-0` is written as such (a sign is never part of an integer 0-4294967295).
        let frame = connect_with(params).replace(r#""minProtocol":"-0""#, r#""minProtocol":-0"#);
        let (reply, close) = first_frame_outcome(gw.addr, &frame);
        assert_eq!((reply["id"].as_str(), reply["error"]["code"].as_str()), (Some("c1"), Some("INVALID_REQUEST")), "{field}={value}");
        assert_eq!(close, bad_params, "{field}={value}");
    }
    let mut params = minimal_params();
    params["role"] = Value::Null;
    params["caps"] = json!("anything");
    params["device"] = json!({"x": 1});
    params["client"]["instanceId"] = Value::Null;
    let mut ws = ws_connect(gw.addr);
    ws_json(&mut ws);
    ws_send(&mut ws, &connect_with(params));
    assert_eq!(ws_json(&mut ws)["payload"]["auth"]["role"], "operator");
    ws_send(&mut ws, &json!({"type": "req", "id": "", "method": "health"}).to_string());
    let reply = ws_json(&mut ws);
    assert_eq!((reply["id"].clone(), reply["error"]["code"].as_str()), (Value::Null, Some("INVALID_REQUEST")));
    assert_eq!(ws_call(&mut ws, "h", "health")["ok"], true);
}

/// PROTO-11: a close begun by the client is answered with a close frame carrying the client's
/// own code (none when it sent none), before and after `hello-ok`; then the connection ends.
#[test]
fn proto11_a_client_close_is_answered_with_its_code() {
    let scratch = Scratch::new("close");
    let (gw, _) = start_raw(cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]));
    for (code, authenticated) in [(Some(1000), false), (Some(4000), false), (None, false), (Some(1001), true)] {
        let mut ws = if authenticated { ws_handshake(gw.addr, TEST_TOKEN).0 } else { ws_connect(gw.addr) };
        if !authenticated {
            ws_json(&mut ws);
        }
        let frame = code.map(|c: u16| CloseFrame { code: CloseCode::from(c), reason: "bye".into() });
        ws.close(frame).expect("send close");
        let (frames, (got, _)) = ws_until_close(&mut ws);
        assert!(frames.is_empty(), "{frames:?}");
        assert_eq!(got, code.unwrap_or(1005), "client close {code:?}");
    }
    assert!(http_get(gw.addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
}

/// A request head of exactly `len` bytes for `GET /healthz` with `fields` header fields.
fn head_of(addr: SocketAddr, len: usize, fields: usize) -> Vec<u8> {
    let mut head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n");
    for i in 2..fields {
        head.push_str(&format!("X-F{i}: a\r\n"));
    }
    let pad = len - head.len() - "X-Pad: \r\n\r\n".len();
    head.push_str(&format!("X-Pad: {}\r\n\r\n", "a".repeat(pad)));
    assert_eq!(head.len(), len);
    head.into_bytes()
}

/// SRV-3: the path is compared exactly, after cutting the query string; a body is never read
/// and changes nothing; one request per connection; a head of 8192 bytes (request line to the
/// empty line, CRLFs included) or of 32 fields is read, one byte or one field more is 431.
#[test]
fn srv3_query_strings_bodies_and_the_head_size_boundary() {
    let scratch = Scratch::new("http");
    let (gw, _) = start_raw(cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]));
    let addr = gw.addr;
    let get = |target: &str, extra: &str| http_raw(addr, format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").as_bytes());
    for (target, want) in
        [("/healthz?x=1", 200), ("/readyz?", 200), ("/healthz/", 404), ("/HEALTHZ", 404), ("/%68ealthz", 404), ("/?x=1", 426)]
    {
        assert!(get(target, "").starts_with(&format!("HTTP/1.1 {want} ")), "{target}");
    }
    assert!(get("/healthz", "Content-Length: 5\r\n").starts_with("HTTP/1.1 200 "));
    let post = format!("POST /healthz HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\n\r\nhello");
    assert!(http_raw(addr, post.as_bytes()).starts_with("HTTP/1.1 405 "));
    let two = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\nGET /readyz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    assert_eq!(http_raw(addr, two.as_bytes()).matches("HTTP/1.1 ").count(), 1);
    for (len, fields, want) in [(8192, 2, 200), (8193, 2, 431), (1000, 32, 200), (1000, 33, 431)] {
        let response = http_raw(addr, &head_of(addr, len, fields));
        assert!(response.starts_with(&format!("HTTP/1.1 {want} ")), "{len} bytes, {fields} fields: {response:?}");
    }
}

/// REL-4, SHUT-2: during the drain an HTTP exchange is finished once the gateway has written the
/// whole response and closed its side: a client that keeps its socket open afterwards is not
/// waited for (no connection abandoned at the grace deadline).
#[test]
fn rel4_an_http_exchange_is_finished_once_the_response_is_written() {
    let scratch = Scratch::new("drain");
    let mut cmd = cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]);
    cmd.env("GATEWAY_LOG", "warn");
    let (mut gw, _) = start_raw(cmd);
    let (mut ws, _) = ws_handshake(gw.addr, TEST_TOKEN);
    let mut probe = TcpStream::connect_timeout(&gw.addr, DEADLINE).unwrap();
    probe.set_read_timeout(Some(DEADLINE)).unwrap();
    probe.write_all(b"GET /readyz HTTP/1.1\r\n").unwrap();
    // A later request answered: the probe's connection was accepted and its bytes read.
    assert!(http_get(gw.addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
    gw.signal(Signal::SIGTERM);
    assert_eq!(ws_json(&mut ws)["event"], "shutdown");
    drop(ws);
    probe.write_all(format!("Host: {}\r\n\r\n", gw.addr).as_bytes()).unwrap();
    let mut response = String::new();
    probe.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
    // The probe's socket stays open until the gateway has exited.
    let status = gw.proc.wait(DEADLINE).expect("exit");
    assert!(status.success());
    let err = gw.take_stderr();
    assert!(!err.contains("did not close within the grace period"), "{err}");
    drop(probe);
}

/// DOOR-4: "closed at once": an evicted connection gets no answer at all (no HTTP response, no
/// WebSocket close frame): its TCP connection simply ends when the newcomer is admitted.
#[test]
fn door4_an_evicted_connection_is_closed_without_an_answer() {
    let scratch = Scratch::new("evict");
    let (gw, _) = start_raw(cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN, "--max-unauthenticated", "1"]));
    let mut oldest = ws_connect(gw.addr);
    assert_eq!(ws_json(&mut oldest)["event"], "connect.challenge");
    let (_newcomer, _) = ws_handshake(gw.addr, TEST_TOKEN);
    assert_eq!(ws_recv(&mut oldest), Received::Close(1006, String::new()), "no close frame, the connection just ends");
}

/// PROTO-2 (`policy.maxBufferedBytes`): the gateway does not buffer without bound for a client
/// that never reads: it stops reading that client's requests (so the client's own writes block
/// once the kernel's buffers are full), while other clients are served as before.
#[test]
fn proto2_a_client_that_never_reads_is_not_buffered_for_without_bound() {
    let scratch = Scratch::new("backpressure");
    let (gw, _) = start_raw(cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]));
    let (mut greedy, _) = ws_handshake(gw.addr, TEST_TOKEN);
    // Masked client frames with a zero mask key (the payload goes as it is), many per write.
    let request = br#"{"type":"req","id":"g","method":"health"}"#;
    let mut frame = vec![0x81, 0x80 | request.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(request);
    let batch = frame.repeat(64 * 1024 / frame.len());
    let stream = greedy.get_mut();
    stream.set_write_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
    // The reference blocks after about 5 MB (the kernel's buffers on loopback).
    let limit = 64 * 1024 * 1024;
    let mut written = 0;
    let blocked = loop {
        match stream.write(&batch) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break true,
            Err(e) => panic!("write failed after {written} bytes: {e}"),
        }
        if written > limit {
            break false;
        }
    };
    assert!(blocked, "{written} bytes of requests written and the gateway still reads them: it buffers the responses without bound");
    let (mut other, _) = ws_handshake(gw.addr, TEST_TOKEN);
    assert_eq!(ws_call(&mut other, "h", "health")["ok"], true);
}

/// DOOR-5: a stored token holding only whitespace is an error after the bind, exit 1, with the
/// exact line (the `<os error>` part of the message is `the stored token is empty`); nothing on
/// stdout, and the file is left as it was.
#[test]
fn door5_a_stored_token_of_only_whitespace_is_an_error() {
    let scratch = Scratch::new("blank-stored");
    let dir = scratch.0.join("state").join("gateway-lock");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, " \t\n").unwrap();
    let (status, out, err) = exit_of(cmd_in(&scratch, &["run", "--port", "0"]));
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(out, "");
    let line = format!("cannot store generated token in {}: the stored token is empty", path.display());
    assert!(err.lines().any(|l| l == line), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b" \t\n");
}

/// CLI-2: the command line is read from left to right; `--help` or `--version` ends the reading
/// (exit 0, whatever follows and whatever the environment holds), a bad flag or value before it
/// is the usage error (exit 2).
#[test]
fn cli2_help_and_version_end_the_reading_from_left_to_right() {
    let scratch = Scratch::new("help");
    let code = |args: &[&str], env: Option<(&str, &str)>| {
        let mut cmd = cmd_in(&scratch, args);
        if let Some((key, value)) = env {
            cmd.env(key, value);
        }
        let (status, out, err) = exit_of(cmd);
        (status.code(), out.is_empty(), err.starts_with("error: "))
    };
    assert_eq!(code(&["run", "--help", "--port", "abc"], None), (Some(0), false, false));
    assert_eq!(code(&["run", "--version", "--bogus"], None), (Some(0), false, false));
    assert_eq!(code(&["run", "--help"], Some(("GATEWAY_LOG", "bad"))), (Some(0), false, false));
    assert_eq!(code(&["run", "--help"], Some(("GATEWAY_PORT", "abc"))), (Some(0), false, false));
    assert_eq!(code(&["run", "--port", "abc", "--help"], None), (Some(2), true, true));
    assert_eq!(code(&["run", "--bogus", "--version"], None), (Some(2), true, true));
}

/// PROTO-15: a key is 22 characters of the base64 alphabet and `==`; the padding bits of the
/// 22nd are not checked (`…AB==` is not the canonical encoding of any 16 bytes, and is accepted).
#[test]
fn proto15_the_padding_bits_of_a_key_are_not_checked() {
    let scratch = Scratch::new("key");
    let (gw, _) = start_raw(cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]));
    for (key, status) in [("AAAAAAAAAAAAAAAAAAAAAB==", "101"), ("AAAAAAAAAAAAAAAAAAAAAA==", "101"), ("AAAAAAAAAAAAAAAAAAAAA===", "400")] {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n",
            gw.addr
        );
        let reply = http_raw(gw.addr, request.as_bytes());
        assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{key}: {reply}");
    }
}

/// PROTO-16: the reasons of the two framing closes are exact: 1007 `invalid UTF-8` for a text
/// message that is not UTF-8, 1002 `protocol error` for a frame with a reserved opcode.
#[test]
fn proto16_the_close_reasons_are_exact() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;
    let scratch = Scratch::new("reasons");
    let (gw, _) = start_raw(cmd_in(&scratch, &["run", "--port", "0", "--token", TEST_TOKEN]));
    for (opcode, payload, expected) in [
        (OpCode::Data(Data::Text), vec![0xff, 0xfe], (1007, "invalid UTF-8")),
        (OpCode::Data(Data::Reserved(3)), b"{}".to_vec(), (1002, "protocol error")),
    ] {
        let (mut ws, _) = ws_handshake(gw.addr, TEST_TOKEN);
        ws.send(Message::Frame(Frame::message(payload, opcode, true))).expect("send");
        let (_, close) = ws_until_close(&mut ws);
        assert_eq!(close, (expected.0, expected.1.to_string()));
    }
}

/// CLI-4: a stderr that cannot be written (`/dev/full`) is never a panic: the gateway prints its
/// ready line, keeps serving after its diagnostics and the generated token's line fail, and exits
/// 0 on `SIGTERM`; a refused contender still exits with ERR-1's code.
#[test]
fn cli4_a_stderr_that_cannot_be_written_is_never_a_panic() {
    let scratch = Scratch::new("stderr");
    let full = || Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full"));
    let mut cmd = cmd_in(&scratch, &["run", "--port", "0"]);
    cmd.env("GATEWAY_LOG", "trace");
    let mut proc = Proc::spawn_with(cmd, Streams { stderr: full(), ..Streams::default() }, false).expect("spawn");
    let addr = spec::ready_addr(&proc.read_line(DEADLINE).unwrap_or_else(|e| panic!("{e}"))).expect("ready line");
    let gw = Holder { proc, addr, scratch: None };
    assert!(http_get(gw.addr, "/healthz").starts_with("HTTP/1.1 200 OK"), "still serving");
    let port = gw.port().to_string();
    let contender = cmd_in(&scratch, &["run", "--port", &port, "--token", TEST_TOKEN]);
    let streams = Streams { stdout: Stdio::null(), stderr: full(), ..Streams::default() };
    let mut contender = Proc::spawn_with(contender, streams, false).expect("spawn");
    let refused = contender.wait(DEADLINE).expect("the contender exits");
    assert!(matches!(refused.code(), Some(3 | 5)), "{refused:?}");
    gw.signal(Signal::SIGTERM);
    assert_eq!(gw.wait().code(), Some(0));
}
