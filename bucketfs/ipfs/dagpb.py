"""dag-pb blocks, encoded and decoded byte-exactly (unixfs.md section 2).

Written by hand rather than with the ``protobuf`` package because the canonical form puts
Links (field 2) before Data (field 1) and always writes a link's Name, which a generic
serializer does not. The decoder is strict in the same way the IPLD dag-pb spec is (fields in
canonical order, no unknown fields, minimal varints), so ``encode(decode(b)) == b`` for every
block it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bucketfs.ipfs.cid import CID, InvalidCID, decode_varint, encode_varint


class DagPBError(ValueError):
    """A block that is not canonical dag-pb."""


@dataclass(frozen=True, slots=True)
class PBLink:
    """A link: target CID, name bytes (``None`` = field absent) and cumulative size."""

    cid: CID
    name: bytes | None = b""
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class PBNode:
    """A dag-pb node: links in block order, then optional data bytes."""

    links: tuple[PBLink, ...] = field(default_factory=tuple)
    data: bytes | None = None

    def __post_init__(self) -> None:
        # Accept any sequence but store a tuple so nodes stay hashable and immutable.
        if not isinstance(self.links, tuple):
            object.__setattr__(self, "links", tuple(self.links))


def _encode_link(link: PBLink) -> bytes:
    h = link.cid.buffer
    parts = [b"\x0a", encode_varint(len(h)), h]
    if link.name is not None:
        parts += [b"\x12", encode_varint(len(link.name)), link.name]
    if link.tsize is not None:
        parts += [b"\x18", encode_varint(link.tsize)]
    return b"".join(parts)


def encode(node: PBNode) -> bytes:
    """Canonical bytes: every link (Hash, Name, Tsize), then Data if present."""
    parts: list[bytes] = []
    for link in node.links:
        body = _encode_link(link)
        parts += [b"\x12", encode_varint(len(body)), body]
    if node.data is not None:
        parts += [b"\x0a", encode_varint(len(node.data)), node.data]
    return b"".join(parts)


def _read_bytes(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    length, pos = decode_varint(buf, pos)
    stop = pos + length
    if stop > end:
        raise DagPBError("length-delimited field runs past the end of its message")
    return buf[pos:stop], stop


def _decode_link(buf: bytes, pos: int, end: int) -> PBLink:
    if pos >= end or buf[pos] != 0x0A:
        raise DagPBError("link without Hash (field 1 must come first)")
    h, pos = _read_bytes(buf, pos + 1, end)
    try:
        cid = CID.from_bytes(h)
    except InvalidCID as exc:
        raise DagPBError(f"link Hash is not a CID: {exc}") from None
    name: bytes | None = None
    tsize: int | None = None
    if pos < end and buf[pos] == 0x12:
        name, pos = _read_bytes(buf, pos + 1, end)
    if pos < end and buf[pos] == 0x18:
        tsize, pos = decode_varint(buf, pos + 1)
    if pos != end:
        raise DagPBError(f"unexpected byte {buf[pos]:#04x} in link (fields out of order?)")
    return PBLink(cid, name, tsize)


def decode(block: bytes) -> PBNode:
    """Parse a canonical dag-pb block; raises :class:`DagPBError` otherwise."""
    buf = bytes(block)
    n = len(buf)
    pos = 0
    links: list[PBLink] = []
    data: bytes | None = None
    try:
        while pos < n:
            tag = buf[pos]
            if tag == 0x12:
                if data is not None:
                    raise DagPBError("Links after Data (non-canonical dag-pb)")
                length, start = decode_varint(buf, pos + 1)
                end = start + length
                if end > n:
                    raise DagPBError("link runs past the end of the block")
                links.append(_decode_link(buf, start, end))
                pos = end
            elif tag == 0x0A:
                if data is not None:
                    raise DagPBError("duplicate Data field")
                data, pos = _read_bytes(buf, pos + 1, n)
            else:
                raise DagPBError(f"unexpected field tag {tag:#04x} in PBNode")
    except ValueError as exc:
        if isinstance(exc, DagPBError):
            raise
        raise DagPBError(f"malformed dag-pb block: {exc}") from None
    return PBNode(tuple(links), data)
