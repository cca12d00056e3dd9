"""Readers see every write made through another descriptor at once, whatever the kernel has
cached (write-only writers, readers opened before or while a writer is open, a memory map).

Real hub, real mount. The cases are the ways a cached page could go stale: pages cached
before a write-only descriptor opened, a reader opened while one is open, a reader opened
before it, a shared memory map; each is read back through the mount and, at the end, through
the hub. Write-only descriptors bypass the kernel's page cache by default (``direct_write``, see
``BucketFS.open``); the cases run with it and with ``nodirect_write``.
"""

from __future__ import annotations

import errno
import io
import mmap
import os
from pathlib import Path

import pytest
from mountproc import mounted, new_bucket

KiB = 1024


def _pread(path: Path, n: int, off: int = 0) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("direct", [True, False], ids=["direct_write", "nodirect_write"])
def test_readers_see_writes_made_through_other_descriptors(
    hub, thread, client, tmp_path, direct: bool  # noqa: ANN001
) -> None:
    _, key = new_bucket(hub, "direct", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, direct_write=direct,
                 nodirect_write=not direct) as m:
        f = m.path / "f.bin"
        model = bytearray(os.urandom(600 * KiB))
        f.write_bytes(model)  # (O_WRONLY|O_CREAT|O_TRUNC: a direct descriptor)
        assert f.read_bytes() == model  # now in the page cache

        # 1. Pages cached before: the write-only open drops them.
        w = os.open(f, os.O_WRONLY)
        try:
            os.pwrite(w, b"A" * 5000, 100 * KiB)
            model[100 * KiB : 100 * KiB + 5000] = b"A" * 5000
        finally:
            os.close(w)
        assert f.read_bytes() == model

        # 2. A reader opened while a write-only descriptor is open (direct too): sees each
        #    write at once, including one past the old end.
        w = os.open(f, os.O_WRONLY | os.O_APPEND)
        r = os.open(f, os.O_RDONLY)
        try:
            for i in range(3):
                data = bytes([i + 1]) * 70_000
                os.write(w, data)
                model += data
                assert os.pread(r, len(model) + 10, 0) == model
                os.pwrite(w, b"B" * 10, 7)  # (O_APPEND: goes to the end)
                model += b"B" * 10
                assert os.pread(r, 100, len(model) - 100) == model[-100:]
        finally:
            os.close(r)
            os.close(w)
        # ... and overwrites that change neither the size nor (after the first write of a
        # session) the mtime, which would not make the kernel drop a reader's cached pages.
        w = os.open(f, os.O_WRONLY)
        r = os.open(f, os.O_RDONLY)
        try:
            for i in range(3):
                os.pwrite(w, bytes([0x60 + i]) * 9000, 50 * KiB * (i + 1))
                model[50 * KiB * (i + 1) : 50 * KiB * (i + 1) + 9000] = bytes([0x60 + i]) * 9000
                assert os.pread(r, len(model), 0) == model
        finally:
            os.close(r)
            os.close(w)

        # 3. A reader opened first and reading on (not direct: the kernel keeps its cache
        #    coherent for write-through descriptors itself).
        r = os.open(f, os.O_RDONLY)
        try:
            assert os.pread(r, len(model), 0) == model
            w = os.open(f, os.O_WRONLY)
            try:
                for i in range(3):
                    os.pwrite(w, bytes([0x43 + i]) * 3000, 1000 + 40 * KiB * i)
                    model[1000 + 40 * KiB * i : 4000 + 40 * KiB * i] = bytes([0x43 + i]) * 3000
                    assert os.pread(r, len(model), 0) == model
            finally:
                os.close(w)
        finally:
            os.close(r)

        # 4. A shared memory map made before (its descriptor closed since): the mapping is
        #    kept, and sees the write once its pages are dropped.
        fd = os.open(f, os.O_RDWR)
        mm = mmap.mmap(fd, 64 * KiB)
        os.close(fd)
        try:
            assert mm[:4096] == model[:4096]
            w = os.open(f, os.O_WRONLY)
            try:
                os.pwrite(w, b"D" * 4096, 8192)
                model[8192 : 8192 + 4096] = b"D" * 4096
            finally:
                os.close(w)
            assert mm[8192 : 8192 + 4096] == b"D" * 4096
        finally:
            mm.close()

        # 5. A memory map made while a write-only descriptor is open: with direct writes the
        #    new descriptor is direct too, so a shared map is refused (ENODEV: this kernel
        #    interface does not let us allow it) and a private one works; without, both work.
        w = os.open(f, os.O_WRONLY)
        fd = os.open(f, os.O_RDWR)
        try:
            if direct:
                with pytest.raises(OSError) as err:
                    mmap.mmap(fd, 4096, flags=mmap.MAP_SHARED)
                assert err.value.errno == errno.ENODEV
            else:
                with mmap.mmap(fd, 4096, flags=mmap.MAP_SHARED) as mm:
                    assert mm[:4096] == model[:4096]
            with mmap.mmap(fd, 4096, flags=mmap.MAP_PRIVATE) as mm:
                assert mm[:4096] == model[:4096]
        finally:
            os.close(fd)
            os.close(w)

        assert _pread(f, len(model) + 1) == model
        m.wait_synced()
    out = io.BytesIO()
    client.pull_path(key, "f.bin", out)
    assert out.getvalue() == model

