"""An fsx-style random I/O exerciser: one file, many chunks, a shadow copy in memory.

After the classic ``fsx`` (Apple, then Linux LTP/xfstests): a random sequence of writes,
truncates (grow and shrink), reads, mmap reads and writes, fsyncs and close/reopen steps on one
file that spans many of the mount's 256 KiB chunks, each checked against an in-memory shadow
copy right after it runs (the touched range is read back), plus a whole-file comparison every
``full_check_every`` operations and at the end.

    from fsx import Fsx

    fx = Fsx(path, seed=1234, max_size=4 << 20)
    result = fx.run(3000)          # raises FsxMismatch with the seed and the last operations
    fx.close()

The seed comes from ``BUCKETFS_FSX_SEED`` (see :func:`seed_from_env`) so a failure reproduces
with ``BUCKETFS_FSX_SEED=<seed> pytest …``; every failure message names it.

The shadow is the only whole-file buffer (``max_size`` bytes, a few MiB); the file itself is
compared in 256 KiB pieces.
"""

from __future__ import annotations

import collections
import mmap
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 256 * 1024  # the mount's chunk size: operations are biased towards its boundaries
PIECE = 256 * 1024  # how much of the file a whole-file comparison reads at a time
SEED_ENV = "BUCKETFS_FSX_SEED"

#: Relative frequency of each operation (the classic fsx mix, plus close/reopen and fsync).
DEFAULT_WEIGHTS: dict[str, int] = {
    "write": 36,
    "read": 24,
    "mapread": 14,
    "mapwrite": 6,
    "truncate": 10,
    "reopen": 6,
    "fsync": 2,
}


class FsxMismatch(AssertionError):
    """The file and its shadow disagree (or an operation failed); the message says how."""


def seed_from_env() -> int:
    """``BUCKETFS_FSX_SEED`` if set, else a fresh random seed (callers print it)."""
    text = os.environ.get(SEED_ENV, "").strip()
    return int(text) if text else random.SystemRandom().randrange(1 << 32)


@dataclass
class FsxResult:
    """What a run did: operations per kind, the final size, the seed."""

    seed: int
    ops: int
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: collections.Counter[str] = field(default_factory=collections.Counter)  # per kind
    size: int = 0


class Fsx:
    """The exerciser for one file at ``path`` (created empty, or truncated to empty)."""

    def __init__(
        self,
        path: Path,
        *,
        seed: int,
        max_size: int = 4 << 20,
        max_io: int = 96 * 1024,
        full_check_every: int = 200,
        weights: dict[str, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.seed = seed
        self.max_size = max_size
        self.max_io = max_io
        self.full_check_every = full_check_every
        self.rng = random.Random(seed)
        w = dict(weights or DEFAULT_WEIGHTS)
        self._kinds = list(w)
        self._weights = [w[k] for k in self._kinds]
        self.shadow = bytearray()
        self.step = 0
        self.history: collections.deque[str] = collections.deque(maxlen=25)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    # -- driving -------------------------------------------------------------------------------

    def run(self, ops: int) -> FsxResult:
        """Run ``ops`` random operations, then compare the whole file; returns the counts."""
        result = FsxResult(seed=self.seed, ops=ops)
        for _ in range(ops):
            kind = self.rng.choices(self._kinds, self._weights)[0]
            self.step += 1
            t = time.perf_counter()
            try:
                getattr(self, f"_op_{kind}")()
            except FsxMismatch:
                raise
            except OSError as exc:
                # An errno from the filesystem is a failure of the run, not of the exerciser:
                # report it with the same reproduction hint as a data mismatch.
                self._fail(f"{kind} raised {exc!r}")
            result.counts[kind] += 1
            result.seconds[kind] += time.perf_counter() - t
            if self.full_check_every and self.step % self.full_check_every == 0:
                t = time.perf_counter()
                self.check_all()
                result.counts["fullcheck"] += 1
                result.seconds["fullcheck"] += time.perf_counter() - t
        self.check_all()
        result.size = len(self.shadow)
        return result

    def close(self) -> None:
        """Close the file (its contents stay)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def check_all(self) -> None:
        """Compare size and every byte of the file with the shadow (in ``PIECE`` reads)."""
        size = os.fstat(self.fd).st_size
        if size != len(self.shadow):
            self._fail(f"fstat size {size} != shadow size {len(self.shadow)}")
        check_file(self.path, self.shadow, self._context())

    # -- operations ----------------------------------------------------------------------------

    def _offset_len(self, limit: int) -> tuple[int, int]:
        """A random range; a third of them start near a chunk boundary (the edge cases)."""
        if self.rng.random() < 0.33:
            boundary = self.rng.randrange(0, max(1, limit // CHUNK) + 1) * CHUNK
            off = max(0, boundary + self.rng.randint(-64, 64))
        else:
            off = self.rng.randrange(0, max(1, limit))
        length = self.rng.randint(1, self.max_io)
        return off, length

    def _op_write(self) -> None:
        off, length = self._offset_len(self.max_size)
        off = min(off, self.max_size - 1)
        length = min(length, self.max_size - off)
        data = self.rng.randbytes(length)
        self._log(f"write off={off} len={length} (size {len(self.shadow)})")
        n = os.pwrite(self.fd, data, off)
        if n != length:
            self._fail(f"short write: {n} of {length}")
        if off > len(self.shadow):
            self.shadow.extend(bytes(off - len(self.shadow)))  # the hole reads as zeros
        self.shadow[off:off + length] = data
        self._check_range(off, length)

    def _op_read(self) -> None:
        if not self.shadow:
            return self._op_write()
        off, length = self._offset_len(len(self.shadow))
        off = min(off, len(self.shadow) - 1)
        # Reads may run past EOF on purpose: they must come back short, not padded.
        self._log(f"read off={off} len={length} (size {len(self.shadow)})")
        self._check_range(off, length)

    def _op_mapread(self) -> None:
        if not self.shadow:
            return self._op_write()
        off, length = self._offset_len(len(self.shadow))
        off = min(off, len(self.shadow) - 1)
        length = min(length, len(self.shadow) - off)  # a mapping ends at EOF
        self._log(f"mapread off={off} len={length} (size {len(self.shadow)})")
        # Map only the pages around the range: mmap offsets must be page aligned.
        start = off - off % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(self.fd, off + length - start, prot=mmap.PROT_READ, offset=start) as m:
            got = m[off - start:off - start + length]
        want = bytes(self.shadow[off:off + length])
        if got != want:
            self._fail(f"mapread mismatch at {off}+{length}: {_first_diff(got, want, off)}")

    def _op_mapwrite(self) -> None:
        if not self.shadow:
            return self._op_write()
        off, length = self._offset_len(len(self.shadow))
        off = min(off, len(self.shadow) - 1)
        length = min(length, len(self.shadow) - off)  # a shared mapping cannot grow the file
        data = self.rng.randbytes(length)
        self._log(f"mapwrite off={off} len={length} (size {len(self.shadow)})")
        start = off - off % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(self.fd, off + length - start, flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=start) as m:
            m[off - start:off - start + length] = data
            m.flush()  # msync(MS_SYNC): the dirty pages go to the filesystem now
        self.shadow[off:off + length] = data
        self._check_range(off, length)

    def _op_truncate(self) -> None:
        cur = len(self.shadow)
        r = self.rng.random()
        if r < 0.4 and cur:  # shrink
            new = self.rng.randrange(0, cur)
        elif r < 0.8:  # grow (a hole that must read as zeros)
            new = self.rng.randrange(cur, self.max_size + 1)
        else:  # onto or next to a chunk boundary
            new = min(self.max_size, self.rng.randrange(0, self.max_size // CHUNK + 1) * CHUNK
                      + self.rng.choice((-1, 0, 1)) * self.rng.randint(0, 1))
            new = max(0, new)
        self._log(f"truncate {cur} -> {new}")
        os.ftruncate(self.fd, new)
        if new < cur:
            del self.shadow[new:]
        else:
            self.shadow.extend(bytes(new - cur))
        size = os.fstat(self.fd).st_size
        if size != new:
            self._fail(f"size after truncate is {size}, not {new}")
        # The bytes on both sides of the cut, where a stale chunk tail would show.
        lo = max(0, min(cur, new) - 4096)
        self._check_range(lo, abs(new - cur) + 8192)

    def _op_reopen(self) -> None:
        self._log("close + reopen")
        os.close(self.fd)
        self.fd = -1
        self.fd = os.open(self.path, os.O_RDWR)
        size = os.fstat(self.fd).st_size
        if size != len(self.shadow):
            self._fail(f"size after reopen is {size}, not {len(self.shadow)}")
        if self.shadow:
            off = self.rng.randrange(0, len(self.shadow))
            self._check_range(off, self.max_io)

    def _op_fsync(self) -> None:
        self._log("fsync")
        os.fsync(self.fd)

    # -- checking ------------------------------------------------------------------------------

    def _check_range(self, off: int, length: int) -> None:
        got = os.pread(self.fd, length, off)
        want = bytes(self.shadow[off:off + length])
        if got != want:
            self._fail(f"read-back mismatch at {off}+{length} (got {len(got)} bytes, want "
                       f"{len(want)}): {_first_diff(got, want, off)}")

    def _log(self, what: str) -> None:
        self.history.append(f"#{self.step} {what}")

    def _context(self) -> str:
        return (f"fsx seed {self.seed} (rerun with {SEED_ENV}={self.seed}), step {self.step}, "
                f"file {self.path}; last operations:\n  " + "\n  ".join(self.history))

    def _fail(self, what: str) -> None:
        raise FsxMismatch(f"{what}\n{self._context()}")


def check_file(path: Path, shadow: bytes | bytearray, context: str = "") -> None:
    """Raise :class:`FsxMismatch` unless the file at ``path`` holds exactly ``shadow``."""
    with open(path, "rb", buffering=0) as f:
        off = 0
        while True:
            got = f.read(PIECE)
            want = bytes(shadow[off:off + PIECE])
            if got != want:
                raise FsxMismatch(f"file differs from shadow at {off}: "
                                  f"{_first_diff(got, want, off)}\n{context}")
            if not got:
                return
            off += len(got)


def _first_diff(got: bytes, want: bytes, base: int) -> str:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"first difference at byte {base + i}: got {a:#04x}, want {b:#04x}"
    return f"lengths differ: got {len(got)}, want {len(want)}"
