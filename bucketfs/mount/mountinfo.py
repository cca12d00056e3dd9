"""The kernel's table of mounts (``/proc/self/mountinfo``), parsed.

One place for its format: the fields are space-separated, with space, tab, newline and
backslash in a mount point escaped as ``\\ooo`` (octal), and the file-system type after a lone
``-``. Mount points are listed as the kernel resolved them (symlinks followed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class MountEntry:
    """One mount: where, which device (``MAJOR:MINOR``) and which file-system type."""

    point: str
    dev: str
    fstype: str


def mounts(path: str = MOUNTINFO) -> list[MountEntry]:
    """Every mount, in the kernel's order (a mount listed later is on top of earlier ones)."""
    out = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-", 6)
            except ValueError:
                continue
            out.append(MountEntry(unescape(fields[4]), fields[2], fields[sep + 1]))
    return out


def find(mountpoint: str, path: str = MOUNTINFO) -> MountEntry | None:
    """The mount on top at ``mountpoint``, which must be as the kernel lists it: absolute,
    symlinks resolved (``os.path.realpath``; not done here, because it stats the mount point,
    which a FUSE daemon must not do to its own mount before serving it)."""
    found = None
    for m in mounts(path):
        if m.point == mountpoint:
            found = m
    return found


def is_mounted(path: str | os.PathLike[str]) -> bool:
    """Whether something is mounted at ``path`` (resolved here: not for a daemon's own mount
    point before it serves, see :func:`find`)."""
    return find(os.path.realpath(path)) is not None


def unescape(field: str) -> str:
    """A mountinfo field with its ``\\ooo`` escapes decoded (UTF-8 names kept)."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode(
        "utf-8", "surrogateescape")
