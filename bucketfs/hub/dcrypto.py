"""Textile's dcrypto v1 stream format (spec 7.2), streaming in both directions.

Layout: ``version (uint32 LE, 0) || IV (16) || AES-256-CTR(plaintext) || HMAC-SHA512(IV || ct)``.
A key is 64 bytes: the AES-256 key, then the HMAC key. The CTR counter block is the whole IV
incremented as a 128-bit big-endian integer, which is what ``cryptography``'s ``modes.CTR``
does, so the library produces Textile's bytes as they are.

Decryption must verify the MAC before releasing any plaintext (spec 7.2). Holding a whole
file to do that would break the hub's bounded-memory rule, so :func:`decrypt_pieces` reads the
ciphertext twice: once to check the MAC, then to decrypt.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable, Iterator
from hashlib import sha512

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 64
IV_SIZE = 16
MAC_SIZE = 64
VERSION = struct.pack("<I", 0)
HEADER_SIZE = len(VERSION) + IV_SIZE
OVERHEAD = HEADER_SIZE + MAC_SIZE  # 84 bytes (spec 7.2)


class DecryptError(ValueError):
    """The ciphertext is malformed or its MAC does not match (wrong key or tampered)."""


def new_key() -> bytes:
    """A fresh 64-byte key (spec 7.1)."""
    return os.urandom(KEY_SIZE)


def _split(key: bytes) -> tuple[bytes, bytes]:
    if len(key) != KEY_SIZE:
        raise ValueError(f"a dcrypto key is {KEY_SIZE} bytes, got {len(key)}")
    return key[:32], key[32:]


class Encryptor:
    """Encrypt one stream: ``header()``, then ``update()`` per piece, then ``finalize()``."""

    def __init__(self, key: bytes, iv: bytes | None = None) -> None:
        aes, mac = _split(key)
        self.iv = iv if iv is not None else os.urandom(IV_SIZE)
        self._ctr = Cipher(algorithms.AES(aes), modes.CTR(self.iv)).encryptor()
        self._mac = hmac.new(mac, self.iv, sha512)

    def header(self) -> bytes:
        """The version and IV that open the stream."""
        return VERSION + self.iv

    def update(self, data: bytes | memoryview) -> bytes:
        """The ciphertext of ``data``."""
        ct = self._ctr.update(data)
        self._mac.update(ct)
        return ct

    def finalize(self) -> bytes:
        """The MAC that closes the stream."""
        self._ctr.finalize()
        return self._mac.digest()


def encrypt(key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """The whole dcrypto stream for a small in-memory plaintext (a directory node, a seed)."""
    enc = Encryptor(key, iv)
    return enc.header() + enc.update(data) + enc.finalize()


def _parse_header(head: bytes) -> bytes:
    if len(head) < HEADER_SIZE:
        raise DecryptError("ciphertext shorter than the dcrypto header")
    if head[:4] != VERSION:
        raise DecryptError(f"unknown dcrypto version {struct.unpack('<I', head[:4])[0]}")
    return head[4:HEADER_SIZE]


def decrypt(key: bytes, blob: bytes) -> bytes:
    """Verify and decrypt a small in-memory dcrypto stream."""
    aes, mac_key = _split(key)
    if len(blob) < OVERHEAD:
        raise DecryptError("ciphertext shorter than the dcrypto overhead")
    iv = _parse_header(blob)
    body, tag = blob[HEADER_SIZE:-MAC_SIZE], blob[-MAC_SIZE:]
    if not hmac.compare_digest(hmac.new(mac_key, iv + body, sha512).digest(), tag):
        raise DecryptError("dcrypto MAC mismatch (wrong key or tampered data)")
    dec = Cipher(algorithms.AES(aes), modes.CTR(iv)).decryptor()
    return dec.update(body) + dec.finalize()


def _sections(pieces: Iterator[bytes], total: int) -> Iterator[tuple[str, memoryview]]:
    """Label the bytes of a stream of ``total`` bytes as 'head', 'body' or 'tag'."""
    body_end = total - MAC_SIZE
    pos = 0
    for piece in pieces:
        view = memoryview(piece)
        n = len(view)
        start = 0
        while start < n:
            at = pos + start
            if at < HEADER_SIZE:
                cut, label = HEADER_SIZE, "head"
            elif at < body_end:
                cut, label = body_end, "body"
            else:
                cut, label = total, "tag"
            take = min(n - start, cut - at)
            yield label, view[start : start + take]
            start += take
        pos += n


def decrypt_pieces(
    key: bytes, open_stream: Callable[[], Iterator[bytes]], total: int
) -> Iterator[bytes]:
    """Plaintext of a dcrypto stream of ``total`` bytes, read twice through ``open_stream``.

    The first pass checks the MAC and releases nothing; a mismatch raises
    :class:`DecryptError` before the first plaintext byte. The second pass decrypts piece by
    piece, so memory stays bounded by the size of one piece.
    """
    aes, mac_key = _split(key)
    if total < OVERHEAD:
        raise DecryptError("ciphertext shorter than the dcrypto overhead")
    head = bytearray()
    tag = bytearray()
    mac: hmac.HMAC | None = None
    for label, part in _sections(open_stream(), total):
        if label == "head":
            head += part
            if len(head) == HEADER_SIZE:
                mac = hmac.new(mac_key, _parse_header(bytes(head)), sha512)
        elif label == "body":
            assert mac is not None
            mac.update(part)
        else:
            tag += part
    if mac is None:
        mac = hmac.new(mac_key, _parse_header(bytes(head)), sha512)
    if len(tag) != MAC_SIZE or not hmac.compare_digest(mac.digest(), bytes(tag)):
        raise DecryptError("dcrypto MAC mismatch (wrong key or tampered data)")
    dec = Cipher(algorithms.AES(aes), modes.CTR(bytes(head[4:]))).decryptor()
    for label, part in _sections(open_stream(), total):
        if label == "body":
            yield dec.update(part)
    dec.finalize()
