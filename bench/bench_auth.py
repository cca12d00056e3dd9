"""What authentication costs per call: the hub with ``--auth none`` against ``--auth keys``.

Run: ``.venv/bin/python bench/bench_auth.py [--calls 2000] [--tokens 200]``

Starts a real hub (``python -m bucketfs.hub.server``) in a subprocess on a loopback port for
each mode, then times sequential unary calls (``api.usersd.pb.APIService/ListThreads``, one
small SQLite query) with no credentials (``none``), with a signed account key, and with a user
key plus a thread token (``keys``); then GetToken handshakes. The baseline is the same call on
the same machine in the same run with no authentication work, so the ratio is the cost of auth.
It also times the two verifications in-process (HMAC over the expiry, Ed25519 token check).
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bucketfs import keys  # noqa: E402
from bucketfs.pb import (  # noqa: E402
    hubd_pb2,
    hubd_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
    usersd_pb2,
    usersd_pb2_grpc,
)


def start_hub(tmp: Path, auth: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, BUCKETFS_CONFIG=str(tmp / "config.toml"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bucketfs.hub.server",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp / "data"),
            "--auth",
            auth,
            "--gc-interval",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"hub did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


def rate(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(50, n)):  # warm up the channel and the server's threads
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def get_token(channel: grpc.Channel, ident: keys.Identity, md: list[tuple[str, str]]) -> str:
    q: queue.Queue[threads_pb2.GetTokenRequest | None] = queue.Queue()
    call = threads_pb2_grpc.APIStub(channel).GetToken(iter(q.get, None), metadata=md, timeout=30)
    q.put(threads_pb2.GetTokenRequest(key=ident.public_key_string()))
    q.put(threads_pb2.GetTokenRequest(signature=ident.sign(next(call).challenge)))
    token = next(call).token
    q.put(None)
    return token


def signed(key: str, secret: str) -> list[tuple[str, str]]:
    msg, sig = keys.sign_api_request(secret)  # signed once, reused: as clients do for an hour
    return [("x-textile-api-key", key), ("x-textile-api-sig-msg", msg), ("x-textile-api-sig", sig)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=2000, help="unary calls per round")
    p.add_argument("--tokens", type=int, default=200, help="GetToken handshakes per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
    args = p.parse_args()
    req = usersd_pb2.ListThreadsRequest()
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "none").mkdir()
        (tmp / "keys").mkdir()
        try:
            # Both hubs run at once and the scenarios alternate within each round, so a burst
            # of load from other work on a shared machine hits every scenario alike.
            proc, addr_none = start_hub(tmp / "none", "none")
            procs.append(proc)
            proc, addr_keys = start_hub(tmp / "keys", "keys")
            procs.append(proc)
            cfg = tomllib.loads((tmp / "keys" / "config.toml").read_text())
            secret = (tmp / "keys" / cfg["api_secret_file"]).read_text().strip()
            account = signed(cfg["api_key"], secret)
            ch_none = grpc.insecure_channel(addr_none)
            ch_keys = grpc.insecure_channel(addr_keys)
            u_none = usersd_pb2_grpc.APIServiceStub(ch_none)
            u_keys = usersd_pb2_grpc.APIServiceStub(ch_keys)
            info = (
                hubd_pb2_grpc.APIServiceStub(ch_keys)
                .CreateKey(
                    hubd_pb2.CreateKeyRequest(type=hubd_pb2.KEY_TYPE_USER, secure=True),
                    metadata=account,
                )
                .key_info
            )
            user = signed(info.key, info.secret)
            ident = keys.Identity.generate()
            with_token = user + [("authorization", f"bearer {get_token(ch_keys, ident, user)}")]
            scenarios: dict[str, tuple[Callable[[], object], int]] = {
                "none: no credentials": (lambda: u_none.ListThreads(req), args.calls),
                "keys: account key, signed": (
                    lambda: u_keys.ListThreads(req, metadata=account),
                    args.calls,
                ),
                "keys: user key + token": (
                    lambda: u_keys.ListThreads(req, metadata=with_token),
                    args.calls,
                ),
                "none: GetToken handshakes": (lambda: get_token(ch_none, ident, []), args.tokens),
                "keys: GetToken handshakes": (
                    lambda: get_token(ch_keys, ident, user),
                    args.tokens,
                ),
            }
            samples: dict[str, list[float]] = {name: [] for name in scenarios}
            for _ in range(args.rounds):
                for name, (fn, n) in scenarios.items():
                    samples[name].append(rate(fn, n))
            ch_none.close()
            ch_keys.close()
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
    results = {name: statistics.median(v) for name, v in samples.items()}

    host = keys.Identity.generate()
    token = keys.issue_token(host, keys.Identity.generate().public_key_string())
    _, sec = keys.new_api_key()
    msg, sig = keys.sign_api_request(sec)
    results["in-process: verify API signature"] = rate(
        lambda: keys.verify_api_signature(sec, msg, sig), 20000
    )
    results["in-process: verify token"] = rate(
        lambda: keys.verify_token(token, host.public_key), 5000
    )

    print(f"median of {args.rounds} rounds; calls are sequential on one channel")
    print(f"{'measurement':<36} {'per second':>12} {'vs none':>8}")
    for name, value in results.items():
        ratio = ""
        if name.startswith("keys: "):
            base = "none: GetToken handshakes" if "GetToken" in name else "none: no credentials"
            ratio = f"{value / results[base]:.2f}x"
        print(f"{name:<36} {value:>12.0f} {ratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
