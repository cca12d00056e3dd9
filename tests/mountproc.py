"""Real mounts for tests: ``with mounted(hub, tmp_path, bucket) as m: ...``.

The mount runs exactly as a user starts it — ``bucketfs mount`` in background mode, which
spawns the daemon as a new process and returns once the kernel mount is ready — against a real
hub from ``tests/hubproc.py``. On exit the mount is unmounted in a ``finally``: ``bucketfs
umount`` (which uploads what is dirty), else ``fusermount3 -u``, else ``-uz``; then the daemon
that this helper started (and only it) is waited for, and killed if it hangs.

    from hubproc import running_hub
    from mountproc import mounted, new_bucket

    with running_hub(tmp_path) as hub:
        thread, key = new_bucket(hub, "docs")
        with mounted(hub, tmp_path, key, thread=thread, poll=0.5) as m:
            (m.path / "a.txt").write_text("hi")
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))


@dataclass
class Mount:
    """A live mount: ``path`` (the mount point), ``cache_dir``, the daemon ``pid``."""

    path: Path
    cache_dir: Path
    key: str
    thread: str
    api: str
    pid: int | None
    env: dict[str, str]

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run ``bucketfs ARGS`` (mount/umount available) with this mount's hub settings."""
        return run_cli(self.env, *args, check=check, timeout=timeout)

    def status(self) -> dict[str, Any]:
        """The daemon's status over its control socket."""
        from bucketfs.mount import control

        return next(control.request(control.socket_path(self.path), {"cmd": "status"}, 30))

    def wait_synced(self, timeout: float = 60) -> dict[str, Any]:
        """Block until the daemon reports no dirty files and no pending namespace operations
        (polling its status): everything done through the mount is in the bucket."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["dirty_files"] == 0 and st["pending_ops"] == 0:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"still dirty after {timeout}s: {st}")
            time.sleep(0.05)


def run_cli(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m bucketfs.commands.mount ARGS`` (the CLI with mount/umount registered)."""
    res = subprocess.run(
        [sys.executable, "-m", "bucketfs.commands.mount", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"bucketfs {' '.join(args)} failed ({res.returncode}):\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


def new_bucket(hub: Any, name: str = "test", thread: str | None = None) -> tuple[str, str]:
    """Create a thread (unless given) and a bucket on ``hub``; returns ``(thread, key)``."""
    from bucketfs.client.buckets import BucketsClient

    with BucketsClient(hub.address) as c:
        if thread is None:
            thread = c.threads.new_db(name="mount-tests")
        created = c.with_thread(thread).create(name=name)
        root = getattr(created, "root", created)
        return thread, root.key


def hub_env(hub: Any) -> dict[str, str]:
    """The environment for CLI runs against ``hub`` (its own config file, repo on the path)."""
    return hub.env()


def _unmount(path: Path) -> None:
    for args in (["-u"], ["-u", "-z"]):
        res = subprocess.run(["fusermount3", *args, str(path)], capture_output=True, text=True)
        if res.returncode == 0 or "not mounted" in res.stderr or "not found" in res.stderr:
            return


def _dead(path: Path) -> bool:
    """``path`` is a mount whose daemon is gone ("Transport endpoint is not connected")."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def kill_daemon(m: Mount) -> None:
    """SIGKILL the daemon of ``m`` (a crash) and wait until it is gone; the kernel mount stays,
    dead, until the next mount of that mount point cleans it up."""
    assert m.pid is not None
    os.kill(m.pid, signal.SIGKILL)
    _wait_exit(m.pid, 60)


def _wait_exit(pid: int | None, timeout: float) -> None:
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def mounted(
    hub: Any,
    tmp_path: Path,
    key: str,
    *,
    thread: str,
    name: str = "mnt",
    cache_dir: Path | None = None,
    umount: bool = True,
    **opts: Any,
) -> Iterator[Mount]:
    """Mount bucket ``key`` under ``tmp_path/name``; ``opts`` become ``-o k=v`` (True → ``k``)."""
    path = Path(tmp_path) / name
    if not _dead(path):  # a dead mount left by a killed daemon is for the mount to clean up
        path.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or Path(tmp_path) / f"{name}-cache"
    o = [f"cache_dir={cache}"]
    for k, v in opts.items():
        if v is True:
            o.append(k)
        elif v is not False and v is not None:
            o.append(f"{k}={v}")
    env = hub_env(hub)
    pid: int | None = None
    try:
        run_cli(env, "mount", key, str(path), "--api", hub.address, "--thread", thread,
                "-o", ",".join(o), timeout=120)
        m = Mount(path, cache, key, thread, hub.address, None, env)
        pid = m.status()["pid"]
        m.pid = pid
        yield m
        if umount:
            run_cli(env, "umount", str(path), timeout=120)
    finally:
        from bucketfs.mount import mountinfo

        if mountinfo.is_mounted(path):
            _unmount(path)
        _wait_exit(pid, 60)


def wait_until(cond: Any, what: str, timeout: float = 60) -> None:
    """Poll ``cond()`` until it is true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def daemon_log(m: Mount) -> str:
    """The daemon's log (for assertion messages)."""
    p = m.cache_dir / m.key / "mount.log"
    return p.read_text(errors="replace") if p.exists() else ""


def status_json(m: Mount) -> str:
    """The status as indented JSON (for assertion messages)."""
    return json.dumps(m.status(), indent=1)


def metric(port: int, name: str) -> float:
    """The value of Prometheus sample ``name`` (with its labels) a daemon serves on ``port``."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = re.search(re.escape(name) + r" ([0-9.e+]+)", text)
    assert m is not None, f"{name} not in the metrics"
    return float(m.group(1))


def sha256_stream(f: Any) -> str:
    """sha256 of a binary file object, read in 1 MiB pieces."""
    h = hashlib.sha256()
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 of the file at ``path`` (memory stays at one piece)."""
    with open(path, "rb") as f:
        return sha256_stream(f)
