//! The front door against a real `gateway run` (spec/protocol.md, DOOR-*): tokens, the
//! non-loopback refusal, the Origin allow-list and connection limits.

mod common;

use gateway_harness::spec;
use std::io::{BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;
use nix::sys::signal::Signal;

/// A fresh, empty directory for this test's state.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gateway-lock-door-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `gateway run` command with no token anywhere in its environment.
fn gateway_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(gateway_bin());
    cmd.arg("run").args(args);
    for var in ["GATEWAY_TOKEN", "GATEWAY_TOKEN_FILE", "GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_ALLOW_ORIGINS"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` to its exit (bounded): (exit code, stdout, stderr).
fn exit_of(mut cmd: Command) -> (Option<i32>, String, String) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let status = wait_with_deadline(&mut child, DEADLINE).expect("gateway did not exit before the deadline");
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.code(), out, err)
}

/// Whether a connect with `token` is accepted (hello-ok) by the gateway at `addr`.
fn token_accepted(addr: SocketAddr, token: &str) -> bool {
    let mut ws = ws_connect(addr);
    ws_json(&mut ws);
    ws_send(&mut ws, &connect_frame(4, 4, Some(token)));
    ws_json(&mut ws)["ok"] == true
}

/// DOOR-5, DOOR-1: with no token on loopback, one is generated into a 0600 file under
/// $XDG_STATE_HOME, whose path (never the token, not even at trace level) is printed on stderr;
/// it is the only token accepted.
#[test]
fn door5_generated_token_is_stored_privately_and_never_logged() {
    let state = scratch_dir("generated");
    // Spawned by hand (not start_and_wait_ready) to log at the most verbose level.
    let mut cmd = gateway_cmd(&["--port", "0"]);
    cmd.env("XDG_STATE_HOME", &state).env("GATEWAY_LOG", "trace").stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let ready = read_line_with_deadline(&mut stdout, DEADLINE);
    let addr: SocketAddr = spec::ready_addr(&ready).expect("ready line");
    let mut gw = Holder { stdin: None, stderr: child.stderr.take(), child, addr, stdout };
    let path = state.join("gateway-lock").join(format!("token-{}", gw.port()));
    let mut stderr = BufReader::new(gw.stderr.take().unwrap());
    let line = read_line_with_deadline(&mut stderr, DEADLINE);
    assert_eq!(line, format!("gateway: no token given; generated one and stored it in {} (mode 0600)\n", path.display()));
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert_eq!(token.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(token_accepted(gw.addr, &token));
    assert!(!token_accepted(gw.addr, "guess"));
    gw.signal(Signal::SIGTERM);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(gw.wait().success());
    assert!(!line.contains(&token) && !rest.contains(&token), "token leaked on stderr");
    std::fs::remove_dir_all(&state).unwrap();
}

/// DOOR-5: the token from GATEWAY_TOKEN, from --token-file, and GATEWAY_TOKEN_FILE; --token wins
/// over a file. An unreadable token file fails after the bind with exit 1.
#[test]
fn door5_token_from_env_and_files() {
    let state = scratch_dir("files");
    let mut cmd = gateway_cmd(&["--port", "0"]);
    cmd.env("GATEWAY_TOKEN", "from-env");
    let gw = start_and_wait_ready(cmd);
    assert!(token_accepted(gw.addr, "from-env"));
    drop(gw);

    let file = state.join("token");
    std::fs::write(&file, "from-file\n").unwrap();
    let gw = start_and_wait_ready(gateway_cmd(&["--port", "0", "--token-file", file.to_str().unwrap()]));
    assert!(token_accepted(gw.addr, "from-file"));
    assert!(!token_accepted(gw.addr, "from-file\n"));
    drop(gw);

    let mut cmd = gateway_cmd(&["--port", "0", "--token", "from-flag"]);
    cmd.env("GATEWAY_TOKEN_FILE", &file);
    let gw = start_and_wait_ready(cmd);
    assert!(token_accepted(gw.addr, "from-flag"));
    assert!(!token_accepted(gw.addr, "from-file"));
    drop(gw);

    let missing = state.join("missing");
    let (code, out, err) = exit_of(gateway_cmd(&["--port", "0", "--token-file", missing.to_str().unwrap()]));
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert!(err.starts_with(&spec::token_file_unreadable_prefix(&missing.display().to_string())), "{err}");
    std::fs::remove_dir_all(&state).unwrap();
}

/// DOOR-2: a non-loopback host without a token is refused with exit 7 and the exact message,
/// before the bind: with the port held by someone else the answer is still 7, not 3.
#[test]
fn door2_non_loopback_without_token_is_refused_before_the_bind() {
    let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let (code, out, err) = exit_of(gateway_cmd(&["--host", "0.0.0.0", "--port", &port]));
    assert_eq!(code, Some(7));
    assert_eq!(out, "");
    assert_eq!(err, format!("{}\n", gateway_harness::spec::refusing_without_auth("0.0.0.0")));
    let (code, _, err) = exit_of(gateway_cmd(&["--host", "::", "--port", "0"]));
    assert_eq!(code, Some(7));
    assert_eq!(err, format!("{}\n", gateway_harness::spec::refusing_without_auth("::")));
}

/// DOOR-2: with a token, a non-loopback bind is allowed (traffic stays on loopback here).
#[test]
fn door2_non_loopback_with_token_binds() {
    let gw = start_and_wait_ready(gateway_cmd(&["--host", "0.0.0.0", "--port", "0", "--token", "t0k"]));
    assert_eq!(gw.addr.ip().to_string(), "0.0.0.0");
    assert!(token_accepted(SocketAddr::from((Ipv4Addr::LOCALHOST, gw.port())), "t0k"));
}

/// Opens a WebSocket upgrade with `origin` (the harness's client); Ok(()) on 101, Err(status) otherwise.
fn upgrade_with_origin(addr: SocketAddr, origin: Option<&str>) -> Result<(), u16> {
    match gateway_harness::ws::open(addr, origin, DEADLINE) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.strip_prefix("HTTP ").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("unexpected handshake error {e}"))),
    }
}

/// DOOR-3: an upgrade carrying an Origin not in the allow-list gets 403; no Origin, or an allowed one, is upgraded.
#[test]
fn door3_browser_origins_need_the_allow_list() {
    let gw = start_gateway_with_token(&[]);
    assert_eq!(upgrade_with_origin(gw.addr, Some("https://evil.example")), Err(403));
    assert_eq!(upgrade_with_origin(gw.addr, Some("null")), Err(403));
    assert_eq!(upgrade_with_origin(gw.addr, None), Ok(()));
    drop(gw);
    let gw = start_gateway_with_token(&["--allow-origin", "https://app.example", "--allow-origin", "http://localhost:3000"]);
    assert_eq!(upgrade_with_origin(gw.addr, Some("https://app.example")), Ok(()));
    assert_eq!(upgrade_with_origin(gw.addr, Some("http://localhost:3000")), Ok(()));
    assert_eq!(upgrade_with_origin(gw.addr, Some("https://evil.example")), Err(403));
}

/// DOOR-4: 1,000 idle sockets neither keep a real client out nor delay shutdown; the
/// unauthenticated ones are evicted oldest first, so the gateway's connection count stays bounded.
#[test]
fn door4_idle_sockets_do_not_lock_out_clients_or_hold_the_port() {
    let gw = start_gateway_with_token(&[]);
    let idle: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect_timeout(&gw.addr, DEADLINE).expect("connect")).collect();
    let (mut ws, _) = ws_handshake(gw.addr, TEST_TOKEN);
    let health = ws_call(&mut ws, "h", "health");
    let open = health["payload"]["connections"].as_u64().unwrap();
    assert!(open <= 32 + 1, "{open} connections open: idle sockets were not evicted");
    assert_eq!(health["payload"]["clients"], 1);
    let started = Instant::now();
    gw.signal(Signal::SIGTERM);
    let addr = gw.addr;
    assert!(gw.wait().success());
    assert!(started.elapsed() < DEADLINE);
    assert_port_free(addr);
    drop(idle);
}

/// DOOR-4: with --max-unauthenticated 1 a newcomer evicts the idle connection; with
/// --max-connections 2 held by two authenticated clients, a third connection is refused.
#[test]
fn door4_limits_evict_idle_and_refuse_when_full() {
    let gw = start_gateway_with_token(&["--max-unauthenticated", "1", "--max-connections", "2"]);
    let mut idle = TcpStream::connect_timeout(&gw.addr, DEADLINE).unwrap();
    idle.set_read_timeout(Some(DEADLINE)).unwrap();
    let (mut first, _) = ws_handshake(gw.addr, TEST_TOKEN);
    let mut buf = [0u8; 16];
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0, "the idle connection was evicted");
    let (_second, _) = ws_handshake(gw.addr, TEST_TOKEN);
    // Both slots are authenticated: a third connection is closed without an answer.
    let mut third = TcpStream::connect_timeout(&gw.addr, DEADLINE).unwrap();
    third.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = third.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr).as_bytes());
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(ws_call(&mut first, "h", "health")["ok"], true);
}

/// DOOR-5 with LOCK-3: a second instance refused on the held port (exit 5: the holder is a live
/// gateway, OPS-1) never reaches token
/// generation, so the holder's generated token file is untouched and still valid.
#[test]
fn door5_refused_instance_leaves_the_token_file_alone() {
    let state = scratch_dir("refused");
    let mut cmd = gateway_cmd(&["--port", "0"]);
    cmd.env("XDG_STATE_HOME", &state);
    let gw = start_and_wait_ready(cmd);
    let path = state.join("gateway-lock").join(format!("token-{}", gw.port()));
    let before = std::fs::read_to_string(&path).unwrap();
    let mut second = gateway_cmd(&["--port", &gw.port().to_string()]);
    second.env("XDG_STATE_HOME", &state);
    let (code, out, err) = exit_of(second);
    assert_eq!(code, Some(5), "{err}");
    assert_eq!(out, "");
    assert_eq!(err.lines().next(), Some(held_message(&gw.url()).as_str()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    assert!(token_accepted(gw.addr, before.trim()));
    drop(gw);
    std::fs::remove_dir_all(&state).unwrap();
}
