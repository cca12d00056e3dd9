"""``bucketfs status``: what each mount has not sent to the bucket yet, and whether it can.

The numbers come from the mount daemon itself, over its control socket
(:mod:`bucketfs.mount.control`); the mounts of this user are found in ``/proc/self/mountinfo``
(file system type ``fuse.bucketfs``). ``--wait`` polls until nothing is dirty and no namespace
operation is pending, so that a script can be sure everything is in the bucket.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bucketfs.commands.common import add_parser
from bucketfs.errors import UserError
from bucketfs.mount import mountinfo

EPILOG = """examples:
  bucketfs status                      every bucketfs mount of this user
  bucketfs status ~/photos             one mount
  bucketfs status ~/photos --json      the same for scripts
  bucketfs status --wait && echo done  block until every write is in the bucket
  bucketfs status ~/p --wait --timeout 600
"""

POLL = 0.2  # seconds between status requests while waiting


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``status``."""
    p = add_parser(sub, "status", "show what each mount still has to upload", EPILOG)
    p.add_argument("mountpoint", nargs="?", metavar="MOUNTPOINT",
                   help="a bucketfs mount point (default: every bucketfs mount of this user)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per mount)")
    p.add_argument("--wait", action="store_true",
                   help="block until every dirty file and namespace change is in the bucket")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="with --wait: give up after this long (exit 1)")
    p.set_defaults(func=cmd_status)


def bucketfs_mounts(path: str = mountinfo.MOUNTINFO) -> list[str]:
    """Mount points of ``fuse.bucketfs`` file systems."""
    return [m.point for m in mountinfo.mounts(path) if m.fstype == "fuse.bucketfs"]


def query(mountpoint: str) -> dict[str, Any]:
    """The daemon's status for ``mountpoint``; UserError (one line) if no daemon answers."""
    from bucketfs.mount import control

    sock = control.socket_path(mountpoint)
    try:
        reply = next(control.request(sock, {"cmd": "status"}, timeout=30))
    except (OSError, StopIteration) as exc:
        raise UserError(f"no bucketfs mount at {mountpoint} (its daemon does not answer: "
                        f"{getattr(exc, 'strerror', None) or exc or 'no reply'})") from exc
    if "error" in reply:
        raise UserError(f"the mount daemon at {mountpoint} failed: {reply['error']}")
    return reply


def busy(st: dict[str, Any]) -> bool:
    """Whether anything of this mount is not in the bucket yet."""
    return bool(st.get("dirty_files") or st.get("pending_ops"))


def cmd_status(args: argparse.Namespace) -> int:
    """Print the status of one mount or of all; with --wait, block until all is uploaded."""
    if args.mountpoint:
        mounts = [os.path.abspath(args.mountpoint)]
    else:
        from bucketfs.mount import control

        # Only mounts with a control socket in this user's runtime directory are ours.
        mounts = [m for m in bucketfs_mounts() if control.socket_path(m).exists()]
        if not mounts:
            if args.json:
                print("[]")
            elif not args.wait:
                print("no bucketfs mounts", file=sys.stderr)
            return 0
    if args.wait:
        return _wait(mounts, args)
    states = [{**query(m), "mountpoint": m} for m in mounts]
    if args.json:
        print(json.dumps(states[0] if args.mountpoint else states, indent=1))
    else:
        print("\n\n".join(render(st) for st in states))
    return 0


def _wait(mounts: list[str], args: argparse.Namespace) -> int:
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    tty = sys.stderr.isatty() and not getattr(args, "quiet", False)
    shown = False
    while True:
        states = [{**query(m), "mountpoint": m} for m in mounts]
        left = [st for st in states if busy(st)]
        if not left:
            if shown:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            if args.json:
                print(json.dumps(states[0] if args.mountpoint else states, indent=1))
            return 0
        if tty:
            print("\r" + progress_line(left) + "\033[K", end="", file=sys.stderr, flush=True)
            shown = True
        if deadline is not None and time.monotonic() > deadline:
            if shown:
                print(file=sys.stderr)
            raise UserError(f"not everything was uploaded within {args.timeout:g}s: "
                            + progress_line(left))
        time.sleep(POLL)


def progress_line(states: list[dict[str, Any]]) -> str:
    """One line: what is left over ``states``."""
    files = sum(st.get("dirty_files", 0) for st in states)
    left = sum(st.get("dirty_bytes", 0) - _sent(st) for st in states)
    ops = sum(st.get("pending_ops", 0) for st in states)
    offline = [st["mountpoint"] for st in states if not st.get("online", True)]
    text = f"waiting: {files} files ({_size(max(0, left))} left), {ops} namespace changes"
    if offline:
        text += f"; hub unreachable from {', '.join(offline)}"
    return text


def _sent(st: dict[str, Any]) -> int:
    return sum(q.get("sent", 0) for q in st.get("queue", []))


def render(st: dict[str, Any]) -> str:
    """A mount's status for people."""
    lines = [
        f"{st['mountpoint']}: bucket {st['bucket']}",
        f"  root:          {st['root'].rsplit('/', 1)[-1]}",
        f"  hub:           {'online' if st.get('online', True) else 'OFFLINE (unreachable)'}"
        + (f", last answer {_when(st['last_contact'])}" if st.get("last_contact") else ""),
        f"  last sync:     {_when(st['last_sync']) if st.get('last_sync') else 'none yet'}",
        f"  dirty:         {st['dirty_files']} files, {_size(st['dirty_bytes'])}",
        f"  pending ops:   {st.get('pending_ops', 0)} namespace changes",
        f"  cache:         {_size(st.get('read_cache_bytes', 0))} of "
        f"{_size(st.get('cache_limit', 0))} (read cache)",
        f"  conflicts:     {st.get('conflicts', 0)}",
    ]
    if st.get("last_error"):
        lines.append(f"  last error:    {st['last_error']}")
    queue = st.get("queue", [])
    if queue:
        lines.append("  upload queue:")
        for q in queue[:50]:
            pct = f"{100 * q['sent'] // q['size']:3d}%" if q["size"] else "  0%"
            lines.append(f"    {pct} {q['state']:9s} {_size(q['size']):>9s}  {q['path']}")
        if len(queue) > 50:
            lines.append(f"    … and {len(queue) - 50} more")
    for op in st.get("ops", [])[:20]:
        to = f" → {op['to']}" if op.get("to") else ""
        lines.append(f"  pending: {op['op']} {op['path']}{to}")
    return "\n".join(lines)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)

