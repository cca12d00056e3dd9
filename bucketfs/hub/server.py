"""Assembling and running the hub's gRPC server.

``Hub(config).start()`` opens the store, builds a ``grpc.server`` with a thread pool (sync
servicers: each call runs in a worker thread; reads run concurrently, mutations of one bucket
are serialised by the store's per-bucket lock), installs the auth interceptor and every
service (buckets, FS, threads/users/hubd from the auth layer, grpc.health.v1), and listens.
``stop()`` drains calls for a grace period, then closes the store.

Also runnable as ``python -m bucketfs.hub.server [options]`` (same options as ``bucketfs hub``).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import signal
import sqlite3
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bucketfs.errors import UserError
from bucketfs.hub.ingest import IngestServer
from bucketfs.hub.store import HubStore, data_dir_default
from bucketfs.pb import bucketsd_pb2_grpc, fs_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:3006"
# Go gRPC's default request limit, which Textile's daemons used (spec 1.3), is enforced by the
# services themselves (bucketfs.hub.errors.check_size), so an oversized message fails with a
# clear error *before* anything is committed. The transport limit is set higher: when gRPC
# itself rejects a message, the servicer's request iterator just ends as if the client had
# half-closed, and a push could then be taken for complete.
TRANSPORT_MAX_MESSAGE = 64 * 1024 * 1024
SERVICE_NAMES = (
    "api.bucketsd.pb.APIService",
    "bucketfs.pb.FS",
    "threads.pb.API",
    "api.usersd.pb.APIService",
    "api.hubd.pb.APIService",
)


@dataclass
class HubConfig:
    """Everything ``bucketfs hub`` can be told."""

    listen: str = DEFAULT_LISTEN
    data_dir: Path | None = None
    auth: str = "keys"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    gateway_url: str = "http://127.0.0.1:8006"
    gc_interval: float = 600.0
    gc_grace: float = 3600.0
    # Clients on this host may hand over file ranges by descriptor (bucketfs.hub.ingest).
    local_ingest: bool = True
    # Streams such as WatchRoot and Listen hold a worker for their whole life, so the pool is
    # large: threads are cheap, and a full pool would queue every new call behind them.
    max_workers: int = 256


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"invalid listen address {value!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


class Hub:
    """One running hub."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir) if config.data_dir else data_dir_default()
        self.server: grpc.Server | None = None
        self.store: HubStore | None = None
        self.auth: object | None = None
        self.ingest: IngestServer | None = None
        self.address = ""
        self._stopped = threading.Event()

    def start(self) -> str:
        """Open the store, start serving; returns the address actually listened on."""
        cfg = self.config
        host, port = _parse_listen(cfg.listen)
        if bool(cfg.tls_cert) != bool(cfg.tls_key):
            raise UserError("TLS needs both --tls-cert and --tls-key")
        credentials = None
        if cfg.tls_cert and cfg.tls_key:
            try:
                cert = Path(cfg.tls_cert).read_bytes()
                key = Path(cfg.tls_key).read_bytes()
            except OSError as exc:
                raise UserError(f"cannot read TLS files: {exc}") from exc
            credentials = grpc.ssl_server_credentials([(key, cert)])
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UserError(f"cannot create data dir {self.data_dir}: {exc}") from exc
        from bucketfs.hub import streamguard

        streamguard.install()
        try:
            store = self.store = HubStore(
                self.data_dir, gc_interval=cfg.gc_interval, gc_grace=cfg.gc_grace
            )
        except (sqlite3.Error, OSError) as exc:
            raise UserError(f"cannot open the hub data in {self.data_dir}: {exc}") from exc
        interceptors, register_auth = self._auth(store)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.max_workers, thread_name_prefix="hub"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", TRANSPORT_MAX_MESSAGE),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.so_reuseport", 0),
            ],
        )
        from bucketfs.hub.buckets import BucketsService
        from bucketfs.hub.fs import FSService

        bucketsd_pb2_grpc.add_APIServiceServicer_to_server(
            BucketsService(store, self.auth, cfg.gateway_url), _FastPushRegistration(server)
        )
        if cfg.local_ingest:
            self.ingest = IngestServer(store, self.auth)
        fs_pb2_grpc.add_FSServicer_to_server(
            FSService(store, self.auth, self.ingest.name if self.ingest else ""), server
        )
        register_auth(server)
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if credentials is not None:
                bound = server.add_secure_port(target, credentials)
            else:
                bound = server.add_insecure_port(target)
        except RuntimeError as exc:
            store.close()
            raise UserError(f"cannot listen on {cfg.listen}: {exc}") from exc
        if not bound:
            store.close()
            raise UserError(f"cannot listen on {cfg.listen}: address in use or not available")
        store.start_gc()
        server.start()
        # Everything allocated so far lives as long as the server: keep it out of the cyclic
        # garbage collector's scans, which otherwise grow with every long-lived object.
        gc.freeze()
        for name in ("", *SERVICE_NAMES):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.server = server
        self.address = f"{host}:{bound}"
        if cfg.auth == "keys":
            self._first_start()
        log.info("hub listening on %s (data in %s, auth %s)", self.address, self.data_dir, cfg.auth)
        return self.address

    def _auth(self, store: HubStore) -> tuple[list[grpc.ServerInterceptor], object]:
        """The auth layer's interceptor and service registration (``bucketfs.hub.auth``)."""
        from bucketfs.hub import auth

        hub_auth = auth.HubAuth(store.db, self.data_dir, mode=self.config.auth)
        self.auth = hub_auth
        threads = hub_auth.threads
        store.thread_exists = lambda thread: threads.get(thread) is not None

        def register(server: grpc.Server) -> None:
            from bucketfs.hub.fs import listen_adapter

            auth.add_auth_services(server, hub_auth, listen=listen_adapter(store))

        return [hub_auth.interceptor()], register

    def _first_start(self) -> None:
        """On a new data dir, create the local account key and write the client config."""
        from bucketfs.hub.accounts import bootstrap_local_account

        assert self.store is not None
        try:
            created = bootstrap_local_account(self.store.db, None, api=self.address)
        except Exception:
            # The hub still works; the user can create a key with `bucketfs key create`.
            log.exception("could not create the local account key on first start")
            return
        if created:
            log.info("created the local account key %s and wrote the client config", created[0])

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let running ones finish for ``grace`` seconds, close the store."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.ingest is not None:
            self.ingest.stop()
        if self.server is not None:
            self.server.stop(grace).wait()
        if self.store is not None:
            self.store.close()
        log.info("hub stopped")

    def wait(self) -> None:
        """Block until :meth:`stop` was called."""
        self._stopped.wait()


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``bucketfs hub`` (shared with ``python -m bucketfs.hub.server``)."""
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to serve gRPC on (default {DEFAULT_LISTEN}; port 0 = any)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the database and blocks live (default: XDG data dir)",
    )
    p.add_argument(
        "--auth",
        choices=("none", "keys"),
        default="keys",
        help="keys (default): API keys as on Textile's Hub; none: single-user local",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="FILE",
        help="PEM certificate chain; enables TLS (with --tls-key)",
    )
    p.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="PEM private key")
    p.add_argument(
        "--gateway-url",
        default="http://127.0.0.1:8006",
        metavar="URL",
        help="base URL put in Links responses",
    )
    p.add_argument(
        "--metrics",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on this address",
    )
    p.add_argument(
        "--gc-interval",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="seconds between garbage collections (0 = only at start-up)",
    )
    p.add_argument(
        "--gc-grace",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="unreferenced blocks younger than this survive a collection (default 3600)",
    )
    p.add_argument(
        "--no-local-ingest",
        dest="local_ingest",
        action="store_false",
        help="do not let clients on this host hand over file ranges by descriptor (they then "
        "send every byte over gRPC)",
    )


def config_from_args(args: argparse.Namespace) -> HubConfig:
    """A HubConfig from parsed ``add_arguments`` options."""
    return HubConfig(
        listen=args.listen,
        data_dir=args.data_dir,
        auth=args.auth,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        gateway_url=args.gateway_url,
        gc_interval=args.gc_interval,
        gc_grace=args.gc_grace,
        local_ingest=args.local_ingest,
    )


class _FastPushRegistration:
    """Stands in for the server while the generated code registers the buckets service, to
    give PushPath the zero-copy request parser (:func:`parse_push_path_request`)."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        self._server.add_generic_rpc_handlers(handlers)  # type: ignore[arg-type]

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        from bucketfs.hub.pushing import parse_push_path_request

        push = handlers.get("PushPath")
        if push is not None:
            handlers = {
                **handlers,
                "PushPath": push._replace(request_deserializer=parse_push_path_request),
            }
        self._server.add_registered_method_handlers(service, handlers)  # type: ignore[attr-defined]


#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Buffers up to this size come from the heap, not from a fresh mmap (the largest request
#: message is 4 MiB).
MALLOC_MMAP_THRESHOLD = 8 << 20
#: Free heap memory kept for reuse before it is given back to the system.
MALLOC_TRIM_THRESHOLD = 64 << 20


def tune_malloc() -> bool:
    """Keep the megabyte-sized buffers of a push in the heap (glibc only; False elsewhere).

    Each received message is copied a few times into new 1-4 MiB ``bytes`` objects. glibc
    serves those from a fresh ``mmap`` and unmaps them when freed, so every megabyte pushed
    cost some 250 page faults per copy (a large part of the hub's CPU time during a push, in
    a VM more so). With the thresholds raised, freed buffers are reused instead; the process
    keeps at most ``MALLOC_TRIM_THRESHOLD`` of free heap per arena.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD) == 1 and ok
    if not ok:
        log.warning("mallopt refused the hub's malloc thresholds; pushes will use more CPU")
    return ok


def serve_forever(
    config: HubConfig, announce: bool = True, metrics_listen: str | None = None
) -> int:
    """Run a hub in the foreground until SIGTERM/SIGINT; returns the exit code."""
    from bucketfs import sdnotify

    tune_malloc()  # the whole process is the hub's: tune its allocator for large messages
    hub = Hub(config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if metrics_listen:
        from bucketfs import metrics

        metrics.serve(metrics_listen)
    address = hub.start()
    if announce:
        print(f"bucketfs hub listening on {address} (data {hub.data_dir})", flush=True)
    sdnotify.notify("READY=1")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        sdnotify.notify("STOPPING=1")
        hub.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bucketfs.hub.server``."""
    from bucketfs import logs

    p = argparse.ArgumentParser(prog="python -m bucketfs.hub.server")
    add_arguments(p)
    p.add_argument("-v", "--verbose", action="count", default=0)
    args = p.parse_args(argv)
    logs.setup(args.verbose)
    try:
        return serve_forever(config_from_args(args), metrics_listen=args.metrics)
    except UserError as exc:
        print(f"bucketfs: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
