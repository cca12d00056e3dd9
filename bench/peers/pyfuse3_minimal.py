"""The least a pyfuse3 filesystem can do for a sequential write: the ceiling of our FUSE stack.

    python bench/peers/pyfuse3_minimal.py MOUNTPOINT BACKING_FILE

One directory with one file, ``f``, whose writes go straight to ``BACKING_FILE`` with one
``pwrite`` each, whose reads are one ``pread`` each and whose fsync is an ``fsync`` of it: no
cache, no metadata, no upload. The same libfuse, pyfuse3 and trio as ``bucketfs mount``, so
what it reaches is what a Python FUSE daemon that keeps the bytes on local disk can reach on
this machine (bench_seqwrite.py runs it in the same rounds as the local disk and bucketfs).
Not a filesystem to use: one file, no persistence of its size.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

import pyfuse3
import trio

FILE_INO = 2


class Minimal(pyfuse3.Operations):
    """One file, ``f``, backed by a local file."""

    def __init__(self, backing: str) -> None:
        super().__init__()
        self.size = 0
        self.fd = os.open(backing, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    async def getattr(self, inode: int, ctx: object = None) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        is_dir = inode == pyfuse3.ROOT_INODE
        a.st_mode = (stat.S_IFDIR | 0o755) if is_dir else (stat.S_IFREG | 0o644)
        a.st_size = self.size if inode == FILE_INO else 0
        a.attr_timeout = a.entry_timeout = 1.0
        return a

    async def lookup(self, parent: int, name: bytes, ctx: object = None) -> pyfuse3.EntryAttributes:
        if parent == pyfuse3.ROOT_INODE and name.startswith(b"f"):
            return await self.getattr(FILE_INO)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def create(self, parent: int, name: bytes, mode: int, flags: int,
                     ctx: object) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self.size = 0
        os.ftruncate(self.fd, 0)
        return pyfuse3.FileInfo(fh=FILE_INO), await self.getattr(FILE_INO)

    async def open(self, inode: int, flags: int, ctx: object) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=inode)

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: object,
                      fh: int | None, ctx: object) -> pyfuse3.EntryAttributes:
        if getattr(fields, "update_size", False):
            self.size = attr.st_size
            os.ftruncate(self.fd, attr.st_size)
        return await self.getattr(inode)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        n = os.pwrite(self.fd, buf, off)
        self.size = max(self.size, off + n)
        return n

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return os.pread(self.fd, size, off)

    async def fsync(self, fh: int, datasync: bool) -> None:
        os.fsync(self.fd)

    async def unlink(self, parent: int, name: bytes, ctx: object) -> None:
        self.size = 0
        os.ftruncate(self.fd, 0)

    async def flush(self, fh: int) -> None:
        return None

    async def release(self, fh: int) -> None:
        return None


def main() -> int:
    mountpoint, backing = sys.argv[1], sys.argv[2]
    opts = set(pyfuse3.default_options) | {"fsname=pyfuse3-minimal"}
    pyfuse3.init(Minimal(backing), mountpoint, opts)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
