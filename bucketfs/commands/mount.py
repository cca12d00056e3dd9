"""``bucketfs mount`` and ``bucketfs umount``.

``mount`` runs the daemon in the background by default: it starts a *new* process (never a
fork: gRPC does not survive ``fork()`` once a channel exists) running ``mount … -f --ready-fd N``
and returns once that process reports, through the pipe ``N``, that the kernel mount is ready —
or prints the daemon's error. ``-f`` keeps the daemon in the foreground.

``umount`` asks the daemon (through its control socket) to upload every dirty file, showing
progress, then unmounts; ``--lazy`` unmounts at once and leaves the queue persisted.
"""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

from bucketfs.commands.common import (
    add_client_options,
    add_parser,
    client_command,
    client_from_args,
    load_config,
)
from bucketfs.errors import UserError

READY_TIMEOUT = 120.0

MOUNT_EPILOG = """examples:
  bucketfs mount photos ~/photos                 mount the bucket named "photos" (background)
  bucketfs mount bafzb… /mnt/b -o ro             read-only, by bucket key
  bucketfs mount photos ~/p -o writeback_delay=5,cache_size=20G
  bucketfs mount photos ~/p -o fsync=local -f    fsync = durable in the local cache; foreground

options (-o, comma-separated):
  ro                  read-only mount
  allow_other         let other users in (needs user_allow_other in /etc/fuse.conf)
  default_permissions the kernel checks permission bits (always on; accepted for fstab)
  cache_dir=DIR       cache directory (default: [mount] cache_dir, else XDG cache dir)
  cache_size=SIZE     read-cache limit, e.g. 10G (dirty data is never evicted)
  poll=SECONDS        how often to check the bucket root when the hub cannot push changes
  writeback_delay=S   seconds after the last close before a file is uploaded (default 1)
  fsync=local         fsync returns once data is in the local cache, not in the bucket
  early_upload=SIZE   files this big send their changed 256 KiB leaves while being written
                      and upload as deltas (default 8M; 0 = upload whole files at close)
  nolocal_ingest      send those leaves' bytes over gRPC even when the hub runs on this
                      host (by default such a hub reads them from the cache file itself)
  nodirect_write      write-only opens go through the kernel's page cache too (by default
                      their writes bypass it: faster; what they write is read from the
                      mount's cache, see docs/semantics.md)
  hub_timeout=SECONDS how long a call may wait for the hub before a read of data that is
                      not cached fails with EIO (default 30); writes and namespace changes
                      never wait for the hub (see docs/durability.md)
"""

UMOUNT_EPILOG = """examples:
  bucketfs umount ~/photos          upload everything still dirty (with progress), then unmount
  bucketfs umount --lazy ~/photos   unmount now; dirty files upload at the next mount
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``mount`` and ``umount``."""
    p = add_parser(sub, "mount", "mount a bucket as a folder", MOUNT_EPILOG)
    p.add_argument(
        "target", nargs="+", metavar="BUCKET MOUNTPOINT",
        help="bucket key or name (leave out with --key), then the mount point",
    )
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS",
                   help="mount options, comma-separated (see below)")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    add_client_options(p)
    p.set_defaults(func=cmd_mount)

    u = add_parser(sub, "umount", "upload what is dirty, then unmount", UMOUNT_EPILOG)
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.add_argument("--lazy", "-l", action="store_true",
                   help="unmount at once; the upload queue stays persisted for the next mount")
    u.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="give up waiting for uploads after this long (exit 1, still mounted)")
    u.set_defaults(func=cmd_umount)


def _split_target(args: argparse.Namespace) -> tuple[str | None, str]:
    t = args.target
    if len(t) == 2:
        return t[0], t[1]
    if len(t) == 1:
        return None, t[0]
    raise UserError("usage: bucketfs mount BUCKET MOUNTPOINT [-o OPTIONS] [-f]", exit_code=2)


def _resolve_bucket(client: object, bucket: str | None, default_key: str) -> str:
    """A bucket key from a key or a name (names must be unambiguous)."""
    name = bucket or default_key
    if not name:
        raise UserError("no bucket given: pass BUCKET or --key", exit_code=2)
    roots = client.list()  # type: ignore[attr-defined]
    for r in roots:
        if r.key == name:
            return r.key
    named = [r for r in roots if r.name == name]
    if len(named) == 1:
        return named[0].key
    if len(named) > 1:
        keys = ", ".join(r.key for r in named)
        raise UserError(f"several buckets are named {name!r} ({keys}); mount one by its key")
    raise UserError(f"no bucket {name!r} in this thread (see `bucketfs bucket list`)")


def _options(args: argparse.Namespace):  # noqa: ANN202
    from bucketfs.config import MountConfig
    from bucketfs.mount import options

    cfg = load_config(args)
    base = options.MountOptions(
        cache_dir=cfg.mount.resolved_cache_dir(),
        cache_size=cfg.mount.cache_size,
    )
    # config.toml's [mount] poll / writeback_delay apply when the user set them; the config
    # module's built-in defaults (30 s / 2 s) are not the mount's (2 s / 1 s, issue 5).
    builtin = MountConfig()
    if cfg.mount.poll != builtin.poll:
        base.poll = cfg.mount.poll
    if cfg.mount.writeback_delay != builtin.writeback_delay:
        base.writeback_delay = cfg.mount.writeback_delay
    return options.parse(args.options, base), cfg


def _dead_mount(mountpoint: str) -> bool:
    """A mount left by a crashed daemon ("Transport endpoint is not connected"): the daemon
    detaches it at start-up (``daemon.clean_stale_mount``)."""
    try:
        os.stat(mountpoint)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


NAME_FILE = "bucket-name"  # in <cache_dir>/<key>/: lets an offline mount find a bucket by name


def _resolve_bucket_or_cached(
    client: object, bucket: str | None, default_key: str, cache_dir: Path
) -> str:
    """:func:`_resolve_bucket`, or — when the hub is unreachable — the bucket whose state this
    cache directory holds (by key, or by the name saved at an earlier mount)."""
    from bucketfs.client import errors as ce

    name = bucket or default_key
    try:
        key = _resolve_bucket(client, bucket, default_key)
    except ce.HubUnavailable as exc:
        if name and (cache_dir / name / "journal.db").exists():
            return name
        for d in sorted(cache_dir.glob(f"*/{NAME_FILE}")) if name else []:
            if d.read_text().strip() == name and (d.parent / "journal.db").exists():
                return d.parent.name
        raise UserError(f"the hub is unreachable ({exc}) and the cache {cache_dir} has no "
                        f"saved state for bucket {name!r}") from exc
    if name and name != key:
        (cache_dir / key).mkdir(parents=True, exist_ok=True)
        (cache_dir / key / NAME_FILE).write_text(name + "\n")
    return key


@client_command
def cmd_mount(args: argparse.Namespace) -> int:
    """Mount (background unless -f)."""
    bucket, mountpoint = _split_target(args)
    opts, cfg = _options(args)
    if not os.path.isdir(mountpoint) and not _dead_mount(mountpoint):
        raise UserError(f"mount point {mountpoint} is not a directory (create it first)")
    client = client_from_args(args)
    key = _resolve_bucket_or_cached(client, bucket, cfg.key, opts.cache_dir)
    if not args.foreground:
        client.close()
        return _spawn(args, key, mountpoint, opts.cache_dir)
    from bucketfs.mount import daemon
    from bucketfs.mount.remote import Remote

    ready_fd = args.ready_fd

    def ready(error: str | None) -> None:
        nonlocal ready_fd
        if ready_fd is not None:
            os.write(ready_fd, b"ok\n" if error is None else f"error: {error}\n".encode())
            os.close(ready_fd)
            ready_fd = None

    try:
        remote = Remote.from_client(client, key, timeout=opts.hub_timeout)
        return daemon.run(remote, mountpoint, opts, opts.cache_dir, ready)
    except UserError as exc:
        ready(exc.message)
        raise
    except Exception as exc:
        ready(f"{type(exc).__name__}: {exc}")
        raise


def _spawn(args: argparse.Namespace, key: str, mountpoint: str, cache_dir: Path) -> int:
    """Start the daemon as a new process and wait for its readiness line."""
    log_dir = cache_dir / key
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "mount.log"
    r, w = os.pipe()
    cmd = [sys.executable, "-m", "bucketfs.commands.mount", *_verbosity(args), "mount", key,
           mountpoint, "-f", "--ready-fd", str(w), *_client_flags(args)]
    for o in args.options:
        cmd += ["-o", o]
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, pass_fds=(w,),
            start_new_session=True,
        )
    os.close(w)
    deadline = time.monotonic() + READY_TIMEOUT
    with os.fdopen(r, "rb") as pipe:
        line = pipe.readline().decode(errors="replace").strip()
    if line == "ok":
        if not getattr(args, "quiet", False):
            print(f"mounted {key} at {mountpoint} (log: {log_path})", file=sys.stderr)
        return 0
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
    if line.startswith("error: "):
        raise UserError(f"mount failed: {line[7:]}")
    raise UserError(f"the mount daemon exited before it was ready; see {log_path}")


def _verbosity(args: argparse.Namespace) -> list[str]:
    if getattr(args, "debug", False):
        return ["--debug"]
    return ["-v"] * int(getattr(args, "verbose", 0) or 0)


def _client_flags(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for flag, attr in [("--api", "api"), ("--thread", "thread"), ("--config", "config"),
                       ("--api-key", "api_key"), ("--api-secret-file", "api_secret_file"),
                       ("--identity", "identity"), ("--tls-ca", "tls_ca"),
                       ("--tls-cert", "tls_cert"), ("--tls-key", "tls_key")]:
        value = getattr(args, attr, None)
        if value:
            out += [flag, str(value)]
    for flag, attr in [("--tls", "tls"), ("--insecure", "insecure")]:
        if getattr(args, attr, None):
            out.append(flag)
    return out


def cmd_umount(args: argparse.Namespace) -> int:
    """Flush (unless --lazy) and unmount."""
    from bucketfs.mount import control

    mountpoint = os.path.abspath(args.mountpoint)
    sock = control.socket_path(mountpoint)
    has_daemon = sock.exists()
    if args.lazy:
        if has_daemon:
            try:
                list(control.request(sock, {"cmd": "exit", "flush": False}, timeout=10))
            except OSError:
                has_daemon = False
        _fusermount(mountpoint, lazy=True)
        return _wait_gone(sock) if has_daemon else 0
    if has_daemon:
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        if not _flush(sock, deadline, quiet=getattr(args, "quiet", False)):
            raise UserError(
                f"uploads did not finish within {args.timeout:g}s; still mounted "
                "(retry, or use --lazy to unmount and upload at the next mount)"
            )
    _fusermount(mountpoint, lazy=False)
    return _wait_gone(sock) if has_daemon else 0


def _flush(sock: Path, deadline: float | None, quiet: bool) -> bool:
    from bucketfs.mount import control

    tty = sys.stderr.isatty() and not quiet
    last = ""
    try:
        for msg in control.request(sock, {"cmd": "flush"}, timeout=None if deadline is None
                                   else max(1.0, deadline - time.monotonic())):
            if "error" in msg:
                raise UserError(f"the mount daemon failed to flush: {msg['error']}")
            if msg.get("done"):
                if tty:
                    print(file=sys.stderr)
                return True
            text = (f"uploading: {msg['dirty_files']} files, {msg['dirty_bytes']} bytes, "
                    f"{msg.get('pending_ops', 0)} namespace changes left"
                    + (f" (last error: {msg['last_error']})" if msg.get("last_error") else ""))
            if not quiet and text != last:
                print(("\r" + text + "\033[K") if tty else text, end="" if tty else "\n",
                      file=sys.stderr, flush=True)
                last = text
            if deadline is not None and time.monotonic() > deadline:
                return False
    except TimeoutError:
        return False
    except OSError as exc:
        raise UserError(f"cannot talk to the mount daemon at {sock}: {exc}") from exc
    return False


def _fusermount(mountpoint: str, lazy: bool) -> None:
    cmd = ["fusermount3", "-u", *(["-z"] if lazy else []), mountpoint]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        msg = res.stderr.strip() or f"fusermount3 exited with {res.returncode}"
        raise UserError(f"unmount failed: {msg}")


def _wait_gone(sock: Path, timeout: float = 120.0) -> int:
    """Wait until the daemon has finished its exit work (its socket disappears)."""
    deadline = time.monotonic() + timeout
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``mount``/``umount`` without the top-level CLI (how the daemon is started)."""
    from bucketfs import cli

    if "mount" not in cli.COMMAND_MODULES:
        cli.COMMAND_MODULES.append("mount")
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
