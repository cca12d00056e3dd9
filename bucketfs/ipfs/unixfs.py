"""The UnixFS ``Data`` message carried in a dag-pb node's Data field (unixfs.md section 3).

Encoded by hand in field-number order with ``blocksizes`` never packed, which is what Kubo and
the JS importer write. The decoder also accepts packed ``blocksizes`` and any field order,
because other writers are allowed to produce them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from bucketfs.ipfs.cid import encode_varint


class UnixFSError(ValueError):
    """A Data message that cannot be parsed or that breaks the UnixFS rules."""


class DataType(IntEnum):
    """UnixFS node types."""

    Raw = 0
    Directory = 1
    File = 2
    Metadata = 3
    Symlink = 4
    HAMTShard = 5


@dataclass(frozen=True, slots=True)
class UnixTime:
    """UnixFS 1.5 mtime: ``seconds`` (may be negative) and nanoseconds (``None`` = absent)."""

    seconds: int
    nanos: int | None = None

    def __post_init__(self) -> None:
        if self.nanos is not None and not 1 <= self.nanos <= 999_999_999:
            # The spec says a zero fraction must be omitted, and >= 1e9 is malformed.
            raise UnixFSError(f"mtime nanoseconds must be in [1, 999999999], not {self.nanos}")

    @classmethod
    def from_ns(cls, ns: int) -> UnixTime:
        """From a Unix time in nanoseconds (``os.stat().st_mtime_ns``)."""
        sec, frac = divmod(ns, 1_000_000_000)
        return cls(sec, frac or None)

    def to_ns(self) -> int:
        """Unix time in nanoseconds."""
        return self.seconds * 1_000_000_000 + (self.nanos or 0)


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """A decoded UnixFS Data message; ``None`` means the field is absent."""

    type: DataType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default_factory=tuple)
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    mtime: UnixTime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.blocksizes, tuple):
            object.__setattr__(self, "blocksizes", tuple(self.blocksizes))


def encode_data(d: UnixFSData) -> bytes:
    """Canonical bytes: fields in number order, one ``20 <varint>`` per blocksize."""
    parts = [b"\x08", encode_varint(int(d.type))]
    if d.data is not None:
        parts += [b"\x12", encode_varint(len(d.data)), d.data]
    if d.filesize is not None:
        parts += [b"\x18", encode_varint(d.filesize)]
    for bs in d.blocksizes:
        parts += [b"\x20", encode_varint(bs)]
    if d.hash_type is not None:
        parts += [b"\x28", encode_varint(d.hash_type)]
    if d.fanout is not None:
        parts += [b"\x30", encode_varint(d.fanout)]
    if d.mode is not None:
        parts += [b"\x38", encode_varint(d.mode)]
    if d.mtime is not None:
        t = d.mtime
        # int64 seconds: negative values are written as 10-byte two's complement varints.
        body = b"\x08" + encode_varint(t.seconds & 0xFFFFFFFFFFFFFFFF)
        if t.nanos is not None:
            body += b"\x15" + struct.pack("<I", t.nanos)
        parts += [b"\x42", encode_varint(len(body)), body]
    return b"".join(parts)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    # Protobuf varints may be up to 10 bytes (negative int64); decode_varint stops at 9.
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise UnixFSError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise UnixFSError("varint too long")


def _decode_mtime(buf: bytes) -> UnixTime:
    seconds: int | None = None
    nanos: int | None = None
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag == 0x08:
            v, pos = _varint(buf, pos)
            seconds = v - (1 << 64) if v >= 1 << 63 else v
        elif tag == 0x15:
            if pos + 4 > len(buf):
                raise UnixFSError("truncated mtime nanoseconds")
            nanos = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise UnixFSError(f"unexpected field tag {tag:#x} in mtime")
    if seconds is None:
        raise UnixFSError("mtime without seconds")
    return UnixTime(seconds, nanos)


def decode_data(buf: bytes) -> UnixFSData:
    """Parse a Data message; raises :class:`UnixFSError` on malformed input."""
    buf = bytes(buf)
    pos = 0
    n = len(buf)
    kw: dict[str, object] = {}
    blocksizes: list[int] = []
    try:
        while pos < n:
            tag, pos = _varint(buf, pos)
            fnum, wire = tag >> 3, tag & 7
            if wire == 0:
                v, pos = _varint(buf, pos)
                if fnum == 1:
                    kw["type"] = v
                elif fnum == 3:
                    kw["filesize"] = v
                elif fnum == 4:
                    blocksizes.append(v)
                elif fnum == 5:
                    kw["hash_type"] = v
                elif fnum == 6:
                    kw["fanout"] = v
                elif fnum == 7:
                    kw["mode"] = v
                # unknown varint fields are skipped, as protobuf readers do
            elif wire == 2:
                length, pos = _varint(buf, pos)
                if pos + length > n:
                    raise UnixFSError("field runs past the end of the Data message")
                value = buf[pos : pos + length]
                pos += length
                if fnum == 2:
                    kw["data"] = value
                elif fnum == 4:  # packed blocksizes, legal protobuf though never written
                    p = 0
                    while p < len(value):
                        v, p = _varint(value, p)
                        blocksizes.append(v)
                elif fnum == 8:
                    kw["mtime"] = _decode_mtime(value)
            elif wire == 5:
                pos += 4
            elif wire == 1:
                pos += 8
            else:
                raise UnixFSError(f"unsupported wire type {wire}")
        if pos > n:
            raise UnixFSError("truncated field")
    except ValueError as exc:
        if isinstance(exc, UnixFSError):
            raise
        raise UnixFSError(f"malformed UnixFS Data: {exc}") from None
    if "type" not in kw:
        raise UnixFSError("UnixFS Data without Type")
    try:
        kw["type"] = DataType(kw["type"])
    except ValueError:
        raise UnixFSError(f"unknown UnixFS type {kw['type']}") from None
    return UnixFSData(blocksizes=tuple(blocksizes), **kw)  # type: ignore[arg-type]
