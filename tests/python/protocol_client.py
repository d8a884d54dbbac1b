"""An independent client for the gateway protocol (spec/protocol.md), in Python `websockets`.

Run by `just protocol-python`: starts real `gateway run` processes (path in argv[1]) on ephemeral
loopback ports and checks the handshake, every close code, the methods, the shutdown event and
the Origin refusal. Prints one line per check and `N passed, M failed`; exit status 1 on failure.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

GATEWAY = sys.argv[1]
TOKEN = "python-client-token"
DEADLINE = 10
results = []


# DOOR-6 (nothing left behind): the gateways get a scratch HOME, XDG_STATE_HOME and TMPDIR,
# removed when this script exits.
SCRATCH = tempfile.TemporaryDirectory(prefix="gateway-python-")


def start(*args):
    env = dict(os.environ, GATEWAY_LOG="warn", HOME=SCRATCH.name, XDG_STATE_HOME=SCRATCH.name, TMPDIR=SCRATCH.name)
    proc = subprocess.Popen([GATEWAY, "run", "--port", "0", "--token", TOKEN, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = proc.stdout.readline()  # the ready line; the gateway prints it once bound
    assert line.startswith("listening on ws://"), line
    return proc, line.strip()[len("listening on "):]


def connect_frame(lo=4, hi=4, token=TOKEN):
    params = {"minProtocol": lo, "maxProtocol": hi, "role": "operator", "scopes": ["operator.read"], "caps": [],
              "client": {"id": "python", "version": "1", "platform": sys.platform, "mode": "cli"}}
    if token is not None:
        params["auth"] = {"token": token}
    return json.dumps({"type": "req", "id": "c1", "method": "connect", "params": params})


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))


async def until_close(ws):
    frames = []
    try:
        while True:
            frames.append(await recv_json(ws))
    except ConnectionClosed as closed:
        return frames, (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (1006, "")


async def handshake(url):
    ws = await connect(url, open_timeout=DEADLINE)
    challenge = await recv_json(ws)
    assert challenge["event"] == "connect.challenge" and challenge["payload"]["nonce"], challenge
    await ws.send(connect_frame())
    hello = await recv_json(ws)
    assert hello["ok"] is True and hello["payload"]["type"] == "hello-ok" and hello["payload"]["protocol"] == 4, hello
    return ws


async def expect_close(url, frame, code, reason, error_code):
    async with connect(url, open_timeout=DEADLINE) as ws:
        await recv_json(ws)
        if frame is not None:
            await ws.send(frame)
        frames, close = await until_close(ws)
        assert close == (code, reason), close
        if error_code:
            assert frames and frames[0]["error"]["code"] == error_code, frames


async def main():
    proc, url = start("--handshake-timeout-ms", "300")
    checks = {
        "proto2 hello-ok and health": None,
        "proto3 first request not connect: 1008": expect_close(
            url, json.dumps({"type": "req", "id": "x", "method": "health"}), 1008,
            "invalid handshake: first request must be connect", "INVALID_REQUEST"),
        "proto4 protocol mismatch: 1002": expect_close(url, connect_frame(1, 3), 1002, "protocol mismatch", "PROTOCOL_MISMATCH"),
        "proto5 wrong token: 1008": expect_close(url, connect_frame(token="nope"), 1008, "unauthorized", "AUTH_TOKEN_MISMATCH"),
        "proto5 missing token: 1008": expect_close(url, connect_frame(token=None), 1008, "unauthorized", "AUTH_TOKEN_MISSING"),
        "proto6 handshake timeout: 1008": expect_close(url, None, 1008, "handshake timeout", None),
        "proto7 oversize before auth: 1009": expect_close(url, " " * (64 * 1024 + 1), 1009, "frame too large", None),
    }

    async def methods():
        ws = await handshake(url)
        for i, method in enumerate(["health", "status", "system-presence", "config.get"]):
            await ws.send(json.dumps({"type": "req", "id": str(i), "method": method, "params": {}}))
            res = await recv_json(ws)
            assert res["id"] == str(i) and res["ok"] is True, res
        await ws.send(json.dumps({"type": "req", "id": "u", "method": "nope"}))
        res = await recv_json(ws)
        assert res["error"]["code"] == "METHOD_NOT_FOUND", res
        await ws.close()

    async def origin():
        try:
            await connect(url, origin="https://evil.example", open_timeout=DEADLINE)
        except InvalidStatus as refused:
            assert refused.response.status_code == 403, refused.response.status_code
            return
        raise AssertionError("upgrade with a foreign Origin was accepted")

    checks["proto2 hello-ok and health"] = methods()
    checks["door3 foreign Origin: 403"] = origin()
    for name, check in checks.items():
        await run(name, check)

    async def shutdown():
        ws = await handshake(url)
        proc.send_signal(signal.SIGTERM)
        frames, close = await until_close(ws)
        assert frames and frames[-1]["event"] == "shutdown" and frames[-1]["payload"] == {"reason": "gateway stopping"}, frames
        assert close == (1012, "service restart"), close
        assert proc.wait(DEADLINE) == 0

    await run("proto9 shutdown event then 1012", shutdown())
    proc.kill()
    proc.wait()


async def run(name, check):
    try:
        await check
        results.append(True)
        print(f"ok   {name}")
    except Exception as err:  # noqa: BLE001 - report every failure and go on
        results.append(False)
        print(f"FAIL {name}: {err!r}")


asyncio.run(main())
print(f"{results.count(True)} passed, {results.count(False)} failed")
sys.exit(0 if all(results) else 1)
