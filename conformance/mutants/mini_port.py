#!/usr/bin/env python3
"""A minimal port of the gateway lock (the lock rows of spec/ only: no protocol), in Python's
standard library, used to prove the conformance runner: without --defect it passes the rows
conformance/tests/mutants.rs asks for; each --defect NAME plants exactly one defect the runner must
catch (see DEFECTS).

    mini_port.py [--defect NAME] [--host HOST] [--port PORT]   (GATEWAY_PORT when --port is absent)
"""
import argparse
import base64
import hashlib
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

DEFECTS = {
    "slow-refusal": "retries EADDRINUSE for 3 s before refusing (LOCK-1's fail-fast bound)",
    "state-before-bind": "writes state.json in its working directory before the bind (LOCK-3)",
    "slow-bind": "works 2 s before the bind (CLI-1's bound from exec to ready)",
    "ready-before-bind": "prints the ready line before the bind (CLI-1, LOCK-1, LOCK-6)",
    "wildcard": "binds 0.0.0.0 whatever host was asked for (LOCK-4)",
    "reuseport": "sets SO_REUSEPORT on its listener (LOCK-5)",
    "inherit": "an inheritable listener, and a long-lived child in its own session (REL-3)",
    "exit-code": "exits 1 instead of 3 when the port is held (ERR-1, LOCK-2)",
    "ignore-env": "ignores GATEWAY_PORT (CLI-3)",
    "no-400": "answers a malformed request head with 200 (SRV-3)",
    "no-reuseaddr": "no SO_REUSEADDR: a connection left by a killed holder keeps the successor out (REL-2)",
    "exit-1": "exits 1 after a graceful shutdown (SHUT-1, REL-1)",
    "release-early": "closes the listener before draining its clients (REL-4)",
    "no-grace": "waits 3 s, not the 500 ms grace period, for a client that never answers the close (SHUT-2)",
    "double-signal": "a second shutdown signal during the shutdown exits 1 (SHUT-3)",
    "no-host-check": "serves a request under any Host, a DNS-rebinding page's name too (DOOR-7)",
    "any-key": "upgrades with any non-empty Sec-WebSocket-Key, not only the base64 of 16 bytes (PROTO-15)",
}


def parse_args():
    parser = argparse.ArgumentParser(prog="mini_port")
    parser.add_argument("--defect", choices=sorted(DEFECTS), default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default=None)
    args = parser.parse_args()
    env = None if args.defect == "ignore-env" else os.environ.get("GATEWAY_PORT")
    text = args.port if args.port is not None else (env or "18789")
    if not text.isdigit() or int(text) > 65535:
        parser.error(f"invalid value '{text}' for '--port <PORT>'")
    args.port = int(text)
    if args.host == "localhost":
        args.host = "127.0.0.1"
    return args


def url(host, port):
    return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"


def bind(args):
    """The lock: bind and listen, or ERR-1 (exit 3) / ERR-2 (exit 4)."""
    host = "0.0.0.0" if args.defect == "wildcard" else args.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    give_up = time.monotonic() + (3.0 if args.defect == "slow-refusal" else 0.0)
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        if args.defect != "no-reuseaddr":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if args.defect == "reuseport":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, args.port))
            listen(sock)
            return sock
        except OSError as err:
            sock.close()
            if err.errno == errno.EADDRINUSE and time.monotonic() < give_up:
                time.sleep(0.05)
                continue
            refuse(args, err)


def listen(sock):
    """LOCK-6: a listen refused with EADDRINUSE is tried up to 4 times in all."""
    for attempt in range(4):
        try:
            sock.listen(64)
            return
        except OSError as err:
            if err.errno != errno.EADDRINUSE or attempt == 3:
                raise


def refuse(args, err):
    where = url(args.host, args.port)
    if err.errno == errno.EADDRINUSE:
        print(f"GatewayLockError: another gateway instance is already listening on {where}", file=sys.stderr)
        sys.exit(1 if args.defect == "exit-code" else 3)
    print(f"GatewayLockError: failed to bind gateway socket on {where}: {err.strerror}", file=sys.stderr)
    sys.exit(4)


def read_head(conn):
    """The request head (up to the blank line), at most 8 KiB + 1; empty on a timeout."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) <= 8192:
        try:
            chunk = conn.recv(8192)
        except OSError:
            break
        if not chunk:
            break
        head += chunk
    return head.decode("latin-1")


def fields_of(lines):
    """The header fields of a head's lines (after the request line), names lowercased; repeated
    ones joined by a NUL (so that a repeated Host is told apart)."""
    fields = {}
    for l in lines[1:]:
        if ":" in l:
            name, value = l.split(":", 1)
            name = name.strip().lower()
            fields[name] = fields[name] + "\0" + value.strip() if name in fields else value.strip()
    return fields


def host_status(lines, bound, defect):
    """DOOR-7: None when the Host is served, else the refusal's status (400 or 421)."""
    host = fields_of(lines).get("host")
    if defect == "no-host-check" or (host is None and lines[0].endswith("HTTP/1.0")):
        return None
    if host is None or "\0" in host:
        return "400 Bad Request"
    name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.lower().rstrip(".")
    if name == "localhost" or name.startswith("127.") or name in ("::1", bound):
        return None
    return "421 Misdirected Request"


def route(head, port, defect, bound="127.0.0.1"):
    """(status, body) for a request head."""
    lines = head.split("\r\n\r\n", 1)[0].split("\r\n")
    line = lines[0].split(" ")
    if len(line) != 3 or not line[2].startswith("HTTP/1."):
        return ("200 OK" if defect == "no-400" else "400 Bad Request"), {"ok": False}
    if len(head) > 8192 or len(lines) - 1 > 32:
        return "431 Request Header Fields Too Large", {"ok": False}
    refused = host_status(lines, bound, defect)
    if refused:
        return refused, None
    if line[1] == "/readyz" and line[0] == "GET":
        return "200 OK", {"ok": True, "status": "ready"}
    if line[1] not in ("/health", "/healthz"):
        return "404 Not Found", {"ok": False}
    if line[0] not in ("GET", "HEAD"):
        return "405 Method Not Allowed", {"ok": False}
    return "200 OK", {"ok": True, "status": "live", "pid": os.getpid(), "port": port}


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def upgrade_key(head, bound, defect):
    """The Sec-WebSocket-Key of an upgrade request on / under a served Host, else None. PROTO-15:
    a key that is not the base64 of 16 bytes is "" (400)."""
    lines = head.split("\r\n\r\n", 1)[0].split("\r\n")
    if not lines[0].startswith("GET / ") or host_status(lines, bound, defect):
        return None
    fields = fields_of(lines)
    if fields.get("upgrade", "").lower() != "websocket":
        return None
    key = fields.get("sec-websocket-key")
    if key is None or defect == "any-key":
        return key
    try:
        return key if len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16 else ""
    except ValueError:
        return ""


def answer(conn, port, defect, bound):
    """One HTTP exchange (/healthz, 404, 405, 431, 400, 421), or a WebSocket upgrade: True if upgraded."""
    conn.settimeout(2)
    head = read_head(conn)
    key = upgrade_key(head, bound, defect)
    if key == "":
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()
        return False
    if key:
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        conn.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode())
        conn.setblocking(False)
        return True
    status, body = route(head, port, defect, bound)
    data = json.dumps(body).encode() if body is not None else status.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    try:
        conn.sendall(head.encode() + data)
    except OSError:
        pass
    conn.close()
    return False


def shut_down(sock, clients, args, signals):
    """Close frame 1012 to every client, wait for their replies within the grace period, then close
    them, then the listener (the lock) last; exit 0."""
    if args.defect == "release-early":
        sock.close()
    reason = b"service restart"
    frame = bytes([0x88, 2 + len(reason)]) + (1012).to_bytes(2, "big") + reason
    for c in clients:
        try:
            c.send(frame)
        except OSError:
            pass
    end = time.monotonic() + (3.0 if args.defect == "no-grace" else 0.5)
    waiting = list(clients)
    while waiting and time.monotonic() < end:
        if args.defect == "double-signal" and len(signals) > 1:
            sys.exit(1)
        try:
            readable, _, _ = select.select(waiting, [], [], 0.05)
        except InterruptedError:
            continue
        for c in readable:
            try:
                data = c.recv(4096)
            except OSError:
                data = b""
            if not data or data[0] & 0x0F == 8:
                waiting.remove(c)
    if args.defect == "double-signal" and len(signals) > 1:
        sys.exit(1)
    for c in clients:
        c.close()
    sock.close()
    sys.exit(1 if args.defect == "exit-1" else 0)


def main():
    args = parse_args()
    if args.defect == "slow-bind":
        time.sleep(2)
    if args.defect == "state-before-bind":
        with open("state.json", "w") as f:
            f.write("{}")
    if args.defect == "ready-before-bind":
        print(f"listening on {url(args.host, args.port)}", flush=True)
    sock = bind(args)
    if args.defect == "inherit":
        sock.set_inheritable(True)
        subprocess.Popen(["sleep", "600"], close_fds=False, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    signals = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda n, _: signals.append(n))
    if args.defect != "ready-before-bind":
        print(f"listening on {url(args.host, args.port)}", flush=True)
    clients = []
    while not signals:
        try:
            readable, _, _ = select.select([sock] + clients, [], [], 0.2)
        except InterruptedError:
            continue
        for ready in readable:
            if ready is sock:
                conn, _ = sock.accept()
                if answer(conn, args.port, args.defect, args.host):
                    clients.append(conn)
                continue
            try:
                data = ready.recv(4096)
            except OSError:
                data = b""
            if not data:
                clients.remove(ready)
                ready.close()
    shut_down(sock, clients, args, signals)


if __name__ == "__main__":
    main()
