"""Bucket paths, thread IDs and bucket keys: parsing and validation (spec 2.1, 2.3, 5.4).

Textile applies ``cleanPath`` (drop one leading ``/``) everywhere and ``parsePath`` (also reject
``.textileseed``) on mutating RPCs, then lets ``path.Join`` resolve ``.``/``..``. bucketfs is
stricter on purpose: a ``..`` component or a NUL byte is never meaningful in a bucket path, so
both are rejected with INVALID_ARGUMENT instead of being resolved, and so are paths longer than
4096 bytes (PATH_MAX). Empty and ``.`` components are dropped, so ``/a//b/`` and ``a/b`` name
the same entry (and the same metadata key).
"""

from __future__ import annotations

import base64
import os

import grpc

from bucketfs.hub.errors import DB_REQUIRED, SEED_NOT_ALLOWED, HubError, invalid, unknown

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
SEED_NAME = ".textileseed"


def clean_path(path: str) -> str:
    """Validate and normalise a bucket-relative path ("" is the bucket root)."""
    raw = path.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_PATH_BYTES:
        raise invalid(f"path is longer than {MAX_PATH_BYTES} bytes ({len(raw)})")
    if "\0" in path:
        raise invalid("path contains a NUL byte")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise invalid(f"path must not contain '..': {path!r}")
        if len(part.encode()) > MAX_NAME_BYTES:
            raise invalid(f"path component longer than {MAX_NAME_BYTES} bytes: {part[:40]!r}...")
    return "/".join(parts)


def parse_path(path: str) -> str:
    """``clean_path`` plus Textile's reserved-name rule (any ``.textileseed`` substring)."""
    if SEED_NAME in path:
        raise unknown(SEED_NOT_ALLOWED)
    return clean_path(path)


def join(parent: str, name: str) -> str:
    """Join bucket-relative paths ("" is the root)."""
    return f"{parent}/{name}" if parent else name


def parent_of(path: str) -> str:
    """The parent of a bucket-relative path ("" for top-level entries)."""
    return path.rpartition("/")[0]


def basename(path: str) -> str:
    """The last component of a bucket-relative path."""
    return path.rpartition("/")[2]


def _b32(data: bytes) -> str:
    return "b" + base64.b32encode(data).decode().lower().rstrip("=")


def _multibase_decode(text: str) -> bytes:
    if not text:
        raise ValueError("empty string")
    prefix, body = text[0], text[1:]
    if prefix in "bB":
        body = body.upper()
        return base64.b32decode(body + "=" * (-len(body) % 8))
    if prefix in "fF":
        return bytes.fromhex(body)
    raise ValueError(f"unsupported multibase prefix {prefix!r}")


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7


def thread_id_bytes(text: str) -> bytes:
    """Decode a thread ID string (spec 2.1); raises ValueError when it is not one."""
    data = _multibase_decode(text)
    version, pos = _uvarint(data, 0)
    if version != 1:
        raise ValueError(f"expected version 1, got {version}")
    variant, pos = _uvarint(data, pos)
    if variant not in (0x55, 0x70):
        raise ValueError(f"expected Raw or AccessControlled as the id variant, got: {variant}")
    if pos >= len(data):
        raise ValueError("thread ID has no random part")
    return data


def thread_id_string(data: bytes) -> str:
    """The string form (multibase base32) of a binary thread ID."""
    return _b32(data)


def thread_from_metadata(context: grpc.ServicerContext) -> str:
    """The ``x-textile-thread`` header, canonicalised; UNKNOWN ``db required`` if absent or bad.

    Spec 3.1: a value that does not parse as a thread ID is treated as absent.
    """
    for key, value in context.invocation_metadata() or ():
        if key == "x-textile-thread":
            try:
                return thread_id_string(thread_id_bytes(str(value)))
            except ValueError:
                break
    raise HubError(grpc.StatusCode.UNKNOWN, DB_REQUIRED)


def new_bucket_key() -> str:
    """A fresh bucket key: CIDv1 libp2p-key over a sha2-256 multihash (``bafzbei…``, spec 2.3).

    Textile derives it from a new IPNS key; bucketfs has no IPNS, so the digest is random,
    which gives the same shape and the same uniqueness.
    """
    return _b32(bytes([0x01, 0x72, 0x12, 0x20]) + os.urandom(32))
