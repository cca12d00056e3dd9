"""CIDs: parse and format v0 and v1 (base32 ``b``, base58btc ``z``, base36 ``k`` on parse).

Hand-written on the stdlib because a CID is parsed for every directory entry: the binary form
is split with two varint reads, and the base32 text form is one ``base64.b32encode`` call
(see ``bench/bench_import.py`` for the parse rate). Only sha2-256 and identity multihashes can
be verified; other hash functions parse fine but ``verify`` reports False.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

#: Multicodec codes (unixfs.md 1.2).
RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
LIBP2P_KEY = 0x72

#: Multihash codes.
IDENTITY = 0x00
SHA2_256 = 0x12

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_B36_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


class InvalidCID(ValueError):
    """A string or byte sequence that is not a CID we understand."""


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128 (multiformats and protobuf varints)."""
    if n < 0:
        raise ValueError(f"varint cannot be negative: {n}")
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(buf: bytes, pos: int = 0) -> tuple[int, int]:
    """Read a minimal unsigned varint at ``pos``; returns ``(value, next_pos)``.

    Raises ``ValueError`` on truncation, on more than 9 bytes, and on non-minimal encodings
    (a trailing zero byte), because a non-minimal varint would not round-trip byte-exactly.
    """
    result = 0
    shift = 0
    start = pos
    n = len(buf)
    while True:
        if pos >= n:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 and pos - start > 1:
                raise ValueError("non-minimal varint")
            return result, pos
        shift += 7
        if shift >= 63:
            raise ValueError("varint too long")


def b58encode(data: bytes) -> str:
    """Base58btc (Bitcoin alphabet); leading zero bytes become ``1``."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; raises ``ValueError`` on a character outside the alphabet."""
    n = 0
    for ch in text:
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"invalid base58 character {ch!r}") from None
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def _b36decode(text: str) -> bytes:
    """Base36 lower case (multibase ``k``); leading ``0`` digits are leading zero bytes."""
    try:
        n = int(text, 36) if text else 0
    except ValueError:
        raise ValueError("invalid base36 text") from None
    zeros = len(text) - len(text.lstrip("0"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def _b36encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_B36_ALPHABET[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "0" * zeros + "".join(reversed(out))


def b32encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase ``b`` without its prefix)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str) -> bytes:
    """Inverse of :func:`b32encode`; accepts either case, no padding."""
    pad = -len(text) % 8
    try:
        return base64.b32decode(text.upper() + "=" * pad)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base32 text: {exc}") from None


def sha256_multihash(data: bytes) -> bytes:
    """``12 20 <sha256(data)>``."""
    return b"\x12\x20" + hashlib.sha256(data).digest()


class CID:
    """An immutable, hashable content identifier.

    ``version`` is 0 or 1, ``codec`` a multicodec code, ``multihash`` the full multihash bytes.
    Equality is exact: a CIDv0 and its CIDv1 form are different CIDs (use :meth:`to_v1` to
    compare content).
    """

    __slots__ = ("version", "codec", "multihash", "_buffer", "_hash")

    version: int
    codec: int
    multihash: bytes

    def __init__(self, version: int, codec: int, multihash: bytes) -> None:
        if version == 0:
            if codec != DAG_PB:
                raise InvalidCID("a CIDv0 is always dag-pb")
            if len(multihash) != 34 or multihash[:2] != b"\x12\x20":
                raise InvalidCID("a CIDv0 is always a 32-byte sha2-256 multihash")
            buffer = bytes(multihash)
        elif version == 1:
            _check_multihash(multihash)
            buffer = b"\x01" + encode_varint(codec) + multihash
        else:
            raise InvalidCID(f"unsupported CID version {version}")
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "multihash", bytes(multihash))
        object.__setattr__(self, "_buffer", buffer)
        object.__setattr__(self, "_hash", hash(buffer))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CID is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("CID is immutable")

    def __reduce__(self) -> tuple[object, tuple[int, int, bytes]]:
        return (CID, (self.version, self.codec, self.multihash))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CID):
            return NotImplemented
        return self._buffer == other._buffer

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: CID) -> bool:
        return self._buffer < other._buffer

    def __repr__(self) -> str:
        return f"CID({str(self)!r})"

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self._buffer)
        return "b" + b32encode(self._buffer)

    def encode(self, base: str = "base32") -> str:
        """Text form in ``base32`` (default), ``base58btc`` or ``base36`` (v1 only for those)."""
        if self.version == 0 and base != "base58btc":
            if base == "base32":
                return str(self)
            raise InvalidCID("a CIDv0 has only its base58btc form")
        if base == "base32":
            return str(self)
        if base == "base58btc":
            return b58encode(self._buffer) if self.version == 0 else "z" + b58encode(self._buffer)
        if base == "base36":
            return "k" + _b36encode(self._buffer)
        raise InvalidCID(f"unsupported multibase {base!r}")

    @property
    def buffer(self) -> bytes:
        """The binary form (34 bytes for v0, ``01 <codec> <multihash>`` for v1)."""
        return self._buffer

    @property
    def digest(self) -> bytes:
        """The hash digest inside the multihash."""
        _, pos = decode_varint(self.multihash)
        _, pos = decode_varint(self.multihash, pos)
        return self.multihash[pos:]

    @property
    def hash_code(self) -> int:
        """The multihash function code (0x12 for sha2-256)."""
        return decode_varint(self.multihash)[0]

    def to_v1(self) -> CID:
        """The same content as a CIDv1 (lossless for v0: prefix ``01 70``)."""
        return self if self.version == 1 else CID(1, self.codec, self.multihash)

    def to_v0(self) -> CID:
        """The CIDv0 form; only dag-pb sha2-256 CIDs have one."""
        return self if self.version == 0 else CID(0, self.codec, self.multihash)

    def verify(self, block: bytes) -> bool:
        """True when ``block`` hashes to this CID's multihash."""
        mh = self.multihash
        if mh[0] == SHA2_256:
            return mh[2:] == hashlib.sha256(block).digest()
        if mh[0] == IDENTITY:
            return self.digest == bytes(block)
        return False

    @classmethod
    def decode(cls, value: str | bytes | bytearray | memoryview) -> CID:
        """Parse a text CID (``Qm…``, ``b…``, ``z…``, ``k…``) or a binary one.

        Raises :class:`InvalidCID` with a message saying what is wrong.
        """
        if isinstance(value, str):
            return cls._from_text(value)
        return cls.from_bytes(bytes(value))

    @classmethod
    def _from_text(cls, text: str) -> CID:
        if not text:
            raise InvalidCID("empty CID")
        if len(text) == 46 and text.startswith("Qm"):
            try:
                raw = b58decode(text)
            except ValueError as exc:
                raise InvalidCID(f"invalid CIDv0 {text!r}: {exc}") from None
            return cls.from_bytes(raw, _text=text)
        prefix, body = text[0], text[1:]
        try:
            if prefix in "bB":
                raw = b32decode(body)
            elif prefix == "z":
                raw = b58decode(body)
            elif prefix in "kK":
                raw = _b36decode(body.lower())
            else:
                raise InvalidCID(
                    f"invalid CID {text!r}: unsupported multibase prefix {prefix!r} "
                    "(expected 'b', 'z', 'k' or a CIDv0 'Qm…')"
                )
        except ValueError as exc:
            if isinstance(exc, InvalidCID):
                raise
            raise InvalidCID(f"invalid CID {text!r}: {exc}") from None
        if raw[:1] == b"\x12":
            raise InvalidCID(f"invalid CID {text!r}: a CIDv0 cannot be multibase-encoded")
        return cls.from_bytes(raw, _text=text)

    @classmethod
    def from_bytes(cls, raw: bytes, _text: str | None = None) -> CID:
        """Parse the binary form (what dag-pb links hold)."""
        what = repr(_text) if _text is not None else f"bytes {raw[:8].hex()}…"
        if len(raw) == 34 and raw[0] == 0x12 and raw[1] == 0x20:
            return cls(0, DAG_PB, raw)
        if not raw:
            raise InvalidCID("invalid CID: empty input")
        try:
            version, pos = decode_varint(raw)
            if version != 1:
                raise InvalidCID(f"invalid CID {what}: unsupported version {version}")
            codec, pos = decode_varint(raw, pos)
        except ValueError as exc:
            if isinstance(exc, InvalidCID):
                raise
            raise InvalidCID(f"invalid CID {what}: {exc}") from None
        return cls(1, codec, raw[pos:])

    @classmethod
    def of_raw(cls, data: bytes) -> CID:
        """CIDv1 raw sha2-256 of ``data``."""
        return cls(1, RAW, sha256_multihash(data))

    @classmethod
    def of_dagpb(cls, block: bytes, version: int = 1) -> CID:
        """dag-pb sha2-256 CID of ``block`` (v1 by default, v0 on request)."""
        return cls(version, DAG_PB, sha256_multihash(block))


def _check_multihash(mh: bytes) -> None:
    try:
        code, pos = decode_varint(mh)
        length, pos = decode_varint(mh, pos)
    except ValueError as exc:
        raise InvalidCID(f"invalid multihash: {exc}") from None
    if len(mh) - pos != length:
        raise InvalidCID(
            f"invalid multihash: digest is {len(mh) - pos} bytes, header says {length}"
        )
    if code == SHA2_256 and length != 32:
        raise InvalidCID(f"invalid multihash: sha2-256 digest must be 32 bytes, not {length}")
