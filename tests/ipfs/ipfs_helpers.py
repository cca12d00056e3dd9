"""Shared helpers for the tests of bucketfs.ipfs: the deterministic ChaCha20 data generator."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from collections.abc import Iterator

_MASK = 0xFFFFFFFF


def _rotl(v: int, c: int) -> int:
    return ((v << c) & _MASK) | (v >> (32 - c))


def _block(key: bytes, counter: int, nonce: bytes) -> bytes:
    """One 64-byte ChaCha20 keystream block (RFC 8439 section 2.3)."""
    const = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
    state = [*const, *struct.unpack("<8I", key), counter, *struct.unpack("<3I", nonce)]
    x = list(state)

    def qr(a: int, b: int, c: int, d: int) -> None:
        x[a] = (x[a] + x[b]) & _MASK
        x[d] = _rotl(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & _MASK
        x[b] = _rotl(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & _MASK
        x[d] = _rotl(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & _MASK
        x[b] = _rotl(x[b] ^ x[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12)
        qr(1, 5, 9, 13)
        qr(2, 6, 10, 14)
        qr(3, 7, 11, 15)
        qr(0, 5, 10, 15)
        qr(1, 6, 11, 12)
        qr(2, 7, 8, 13)
        qr(3, 4, 9, 14)
    return struct.pack("<16I", *((x[i] + state[i]) & _MASK for i in range(16)))


def chacha20_python(key: bytes, n: int) -> bytes:
    """First ``n`` keystream bytes, pure Python (slow: only for small n and for checking)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += _block(key, counter, bytes(12))
        counter += 1
    return bytes(out[:n])


def have_openssl_chacha() -> bool:
    """True if the ``openssl`` CLI can produce a ChaCha20 keystream."""
    return shutil.which("openssl") is not None


def chacha20_stream(seed: str, n: int, piece: int = 1 << 20) -> Iterator[bytes]:
    """ChaCha20(seed, n) of unixfs.md 8.1 in pieces, via ``openssl enc -chacha20`` (fast).

    Key = SHA-256(seed), 16-byte IV (counter || nonce) all zeros: the encryption of zeros.
    """
    key = hashlib.sha256(seed.encode()).hexdigest()
    proc = subprocess.Popen(
        ["openssl", "enc", "-chacha20", "-K", key, "-iv", "0" * 32, "-in", "/dev/zero"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        left = n
        while left:
            data = proc.stdout.read(min(piece, left))
            if not data:
                raise RuntimeError("openssl stopped early")
            left -= len(data)
            yield data
    finally:
        proc.kill()
        proc.wait()


def chacha20(seed: str, n: int) -> bytes:
    """ChaCha20(seed, n) as bytes (openssl when present, else pure Python)."""
    if have_openssl_chacha():
        return b"".join(chacha20_stream(seed, n))
    return chacha20_python(hashlib.sha256(seed.encode()).digest(), n)


class StreamReader:
    """A read()-able file over an iterator of byte pieces (streams a generator into import)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            nxt = next(self._pieces, None)
            if nxt is None:
                break
            self._buf += nxt
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out
