//! The front door against a real `gateway run` (spec/protocol.md, DOOR-*): tokens, the
//! non-loopback refusal, the Origin allow-list and connection limits.

use gateway_harness::spec;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Instant;

use crate::support::*;
use nix::sys::signal::Signal;

/// A fresh, empty directory for this test's state (removed when dropped, also on failure).
fn scratch_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("gateway-lock-door-{name}-")).tempdir().unwrap()
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
fn exit_of(cmd: Command) -> (Option<i32>, String, String) {
    let (status, out, err) = run_cmd_within(cmd, DEADLINE);
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
    let scratch = scratch_dir("generated");
    let state = scratch.path();
    // Spawned by hand (not start_and_wait_ready) to log at the most verbose level.
    let mut cmd = gateway_cmd(&["--port", "0"]);
    cmd.env("XDG_STATE_HOME", state).env("GATEWAY_LOG", "trace");
    let mut gw = Holder::ready(Proc::spawn_with(cmd, Streams::default(), false).expect("spawn"), None);
    let path = state.join("gateway-lock").join("token");
    let line = gw.stderr_first_line();
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
    let rest = gw.take_stderr();
    assert!(gw.wait().success());
    assert!(!line.contains(&token) && !rest.contains(&token), "token leaked on stderr");
}

/// DOOR-5: the token from GATEWAY_TOKEN, from --token-file, and GATEWAY_TOKEN_FILE; --token wins
/// over a file. An unreadable token file fails after the bind with exit 1.
#[test]
fn door5_token_from_env_and_files() {
    let scratch = scratch_dir("files");
    let state = scratch.path();
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
    let scratch = scratch_dir("refused");
    let state = scratch.path();
    let mut cmd = gateway_cmd(&["--port", "0"]);
    cmd.env("XDG_STATE_HOME", state);
    let gw = start_and_wait_ready(cmd);
    let path = state.join("gateway-lock").join("token");
    let before = std::fs::read_to_string(&path).unwrap();
    let mut second = gateway_cmd(&["--port", &gw.port().to_string()]);
    second.env("XDG_STATE_HOME", state);
    let (code, out, err) = exit_of(second);
    assert_eq!(code, Some(5), "{err}");
    assert_eq!(out, "");
    assert_eq!(err.lines().next(), Some(held_message(&gw.url()).as_str()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    assert!(token_accepted(gw.addr, before.trim()));
    drop(gw);
}

/// Every file below `dir`, as paths relative to it, sorted (directories are not listed).
fn files_below(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// DOOR-6: without `XDG_STATE_HOME` the generated token goes to `$HOME/.local/state/gateway-lock/token`,
/// one file whatever the port, reused by the next start (on another port); a profile has its own in
/// its state directory; with neither `HOME` nor `XDG_STATE_HOME` nothing is written anywhere (exit 1).
/// Nothing else is ever left in the home or the temporary directory.
#[test]
fn door6_one_generated_token_per_profile_reused_across_restarts_and_ports() {
    let scratch = scratch_dir("one-token");
    let (home, tmp) = (scratch.path().join("home"), scratch.path().join("tmp"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let start = |args: &[&str]| {
        let mut cmd = gateway_cmd(args);
        cmd.env_remove("XDG_STATE_HOME").env_remove("GATEWAY_PROFILE").env("HOME", &home).env("TMPDIR", &tmp);
        let gw = start_and_wait_ready(cmd);
        let line = gw.stderr_first_line();
        (gw, line)
    };
    let default_token = home.join(".local/state/gateway-lock/token");
    let (gw, line) = start(&["--port", "0"]);
    assert_eq!(line, format!("gateway: no token given; generated one and stored it in {} (mode 0600)\n", default_token.display()));
    let token = std::fs::read_to_string(&default_token).unwrap().trim().to_string();
    assert!(token_accepted(gw.addr, &token));
    let first_port = gw.port();
    drop(gw);
    let (gw, line) = start(&["--port", "0"]);
    assert_ne!(gw.port(), first_port, "the restart is on another port");
    assert_eq!(line, format!("gateway: no token given; using the one stored in {} (mode 0600)\n", default_token.display()));
    assert!(token_accepted(gw.addr, &token), "the stored token is reused");
    drop(gw);
    let (gw, line) = start(&["--port", "0", "--profile", "door6"]);
    let profile_token = home.join(".local/state/gateway-lock/door6/token");
    assert!(line.ends_with(&format!("stored it in {} (mode 0600)\n", profile_token.display())), "{line}");
    let other = std::fs::read_to_string(&profile_token).unwrap().trim().to_string();
    assert_ne!(other, token, "a profile has its own token");
    assert!(token_accepted(gw.addr, &other) && !token_accepted(gw.addr, &token));
    drop(gw);
    assert_eq!(files_below(&home), vec![".local/state/gateway-lock/door6/token", ".local/state/gateway-lock/token"]);
    assert_eq!(files_below(&tmp), Vec::<String>::new());

    let mut cmd = gateway_cmd(&["--port", "0"]);
    cmd.env_remove("XDG_STATE_HOME").env_remove("HOME").env("TMPDIR", &tmp);
    let (code, out, err) = exit_of(cmd);
    assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
    assert_eq!(
        err,
        "no token given and nowhere private to store one: neither XDG_STATE_HOME nor HOME is set (give --token or --token-file)\n"
    );
    assert_eq!(files_below(&tmp), Vec::<String>::new(), "nothing written to the temporary directory");
}

/// The status code of the answer to a raw request.
fn status_of_raw(addr: SocketAddr, request: &str) -> u16 {
    let answer = http_raw(addr, request.as_bytes());
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{request:?} answered {answer:?}"))
}

/// DOOR-7: every HTTP request and upgrade is served only under a loopback name or address, the
/// bound address, or an allowed name (`--allow-host`, `GATEWAY_ALLOW_HOSTS`); any other `Host` gets
/// 421 and no health body; HTTP/1.1 without `Host` gets 400; the Origin check is unchanged.
#[test]
fn door7_requests_under_a_foreign_host_are_refused() {
    let mut cmd = gateway_cmd(&["--port", "0", "--token", TEST_TOKEN, "--allow-host", "gw.example"]);
    cmd.env("GATEWAY_ALLOW_HOSTS", "ignored.example");
    let gw = start_and_wait_ready(cmd);
    let port = gw.port();
    let get = |host: &str| format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    for host in
        [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "localhost".into(), format!("[::1]:{port}"), "GW.example:8443".into()]
    {
        assert_eq!(status_of_raw(gw.addr, &get(&host)), 200, "{host}");
    }
    for host in [format!("evil.example:{port}"), "ignored.example".into(), format!("localhost.evil.example:{port}"), "192.0.2.1".into()] {
        let answer = http_raw(gw.addr, get(&host).as_bytes());
        assert!(answer.starts_with("HTTP/1.1 421 Misdirected Request\r\n"), "{host}: {answer}");
        assert!(!answer.contains("pid") && !answer.contains("\"ok\""), "no health body under {host}: {answer}");
    }
    assert_eq!(status_of_raw(gw.addr, "GET /healthz HTTP/1.1\r\n\r\n"), 400, "HTTP/1.1 without Host");
    assert_eq!(status_of_raw(gw.addr, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n"), 400, "two Hosts");
    assert_eq!(status_of_raw(gw.addr, "GET /healthz HTTP/1.0\r\n\r\n"), 200, "HTTP/1.0 needs no Host");
    let upgrade = |host: &str, origin: &str| {
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n{origin}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    };
    assert_eq!(status_of_raw(gw.addr, &upgrade("evil.example", "")), 421, "an upgrade under a foreign Host");
    assert_eq!(status_of_raw(gw.addr, &upgrade("localhost", "Origin: https://evil.example\r\n")), 403, "Origin still checked");
    let mut stream = TcpStream::connect_timeout(&gw.addr, DEADLINE).unwrap();
    stream.write_all(upgrade(&format!("127.0.0.1:{port}"), "").as_bytes()).unwrap();
    let mut first = [0u8; 12];
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 101", "an upgrade under the bound address");
    // GATEWAY_ALLOW_HOSTS applies without the flag.
    let mut cmd = gateway_cmd(&["--port", "0", "--token", TEST_TOKEN]);
    cmd.env("GATEWAY_ALLOW_HOSTS", "a.example,b.example");
    let gw = start_and_wait_ready(cmd);
    assert_eq!(status_of_raw(gw.addr, &get("b.example")), 200);
    assert_eq!(status_of_raw(gw.addr, &get("c.example")), 421);
}
