"""Shared helpers of the fsx, real-tool and POSIX-detail tests (tests/posix).

The fixtures (``hub``, ``thread``, ``client``: one real hub per module, from
``tests/mount/conftest.py``) come from ``tests/posix/conftest.py``, which also skips the
directory where FUSE is not available. Here: sha256 digests of a tree on disk and of the same
tree in the bucket (walked with ListPath, every file fetched with PullPath), so a test can say
"the source, the mount, a fresh mount and the hub all hold the same bytes" in one comparison.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # tests/hubproc.py, tests/mountproc.py

from mountproc import Mount, mounted, new_bucket, sha256_file, sha256_stream  # noqa: E402

__all__ = ["Mount", "mounted", "new_bucket", "tree_digests", "hub_digests", "sha256_file",
           "sha256_stream", "remount"]

SEED_NAME = ".textileseed"  # the bucket's hidden seed block: never part of a compared tree


def tree_digests(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every regular file under ``root``; directories as
    ``"dir"`` and symlinks as ``"-> target"`` (so empty directories count too). Names in
    ``skip`` (at any depth) are left out, as is the bucket's seed file."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            p = Path(dirpath) / d
            key = os.path.normpath(os.path.join(rel_dir, d))
            out[key] = f"-> {os.readlink(p)}" if p.is_symlink() else "dir"
        for name in filenames:
            if name in skip or name == SEED_NAME:
                continue
            p = Path(dirpath) / name
            key = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[key] = f"-> {os.readlink(p)}"
            else:
                out[key] = sha256_file(p)
    return out


def hub_digests(client: Any, key: str, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[
        str, str]:
    """The same map as :func:`tree_digests`, read from the bucket through the hub: ListPath
    for each directory, PullPath for each file (streamed into a hash). Symlinks are files in
    the bucket whose ``symlink_target`` is set."""
    out: dict[str, str] = {}
    stack = [prefix]
    while stack:
        d = stack.pop()
        for item in client.list_path(key, d).item.items:
            if item.name == SEED_NAME or item.name in skip:
                continue
            path = f"{d}/{item.name}" if d else item.name
            rel = path[len(prefix):].lstrip("/") if prefix else path
            if item.is_dir:
                out[rel] = "dir"
                stack.append(path)
            elif getattr(item, "symlink_target", ""):
                out[rel] = f"-> {item.symlink_target}"
            else:
                out[rel] = _pull_digest(client, key, path)
    return out


class _HashWriter:
    """A write-only file object that hashes what it is given (PullPath streams into it)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.h.update(b)
        return len(b)

    def flush(self) -> None:
        """Nothing buffered."""


def _pull_digest(client: Any, key: str, path: str) -> str:
    w = _HashWriter()
    client.pull_path(key, path, w)
    return w.h.hexdigest()


def remount(hub: Any, tmp: Path, m: Mount, name: str) -> Any:
    """A FRESH mount of ``m``'s bucket (own mount point and empty cache) as a context manager:
    what it shows came from the hub, not from ``m``'s caches."""
    return mounted(hub, tmp, m.key, thread=m.thread, name=name, poll=0.5, writeback_delay=0.2)
