"""Keys and identifiers shared by the hub and the client (spec sections 2, 3.3, 4).

This is a layer-0 module: the client imports it without importing the hub. It holds

- multibase encoding (``b`` base32 on output; many bases accepted on input, as Go's parsers do);
- libp2p Ed25519 public-key strings (``bbaarei…``, spec 2.2) and :class:`Identity`, an ed25519
  key pair with its key file (mode 0600, refused when group/others can read it);
- thread IDs (spec 2.1);
- hub API keys and secrets (spec 2.6) and the HMAC API signature (spec 3.3);
- thread tokens: JWTs signed with the non-standard ``"alg": "Ed25519"`` (spec 4.2).

Every worked example of the spec is reproduced in ``tests/test_keys.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nacl.exceptions
import nacl.signing

from bucketfs.errors import UserError

# ---------------------------------------------------------------------------------------------
# Multibase


_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


class MultibaseError(ValueError):
    """A string that is not valid multibase (or uses a base we do not decode)."""


def multibase_encode(data: bytes) -> str:
    """Multibase base32: ``b`` + RFC 4648 base32, lower case, no padding (what Textile emits)."""
    return "b" + base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _b58decode(text: str) -> bytes:
    num = 0
    for ch in text:
        if ch not in _B58_INDEX:
            raise MultibaseError(f"invalid base58btc character {ch!r}")
        num = num * 58 + _B58_INDEX[ch]
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * zeros + body


def _b32decode(body: str, alphabet_hex: bool = False) -> bytes:
    body = body.upper().rstrip("=")
    padded = body + "=" * (-len(body) % 8)
    if alphabet_hex:
        return base64.b32hexdecode(padded)
    return base64.b32decode(padded)


def _b64decode(body: str, urlsafe: bool) -> bytes:
    body = body.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    if urlsafe:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=True)


def multibase_decode(text: str) -> bytes:
    """Decode a multibase string in any of the common bases Go's ``multibase.Decode`` accepts.

    Supported prefixes: ``b B c C`` (base32, with/without padding), ``v V t T`` (base32hex),
    ``z`` (base58btc), ``m M u U`` (base64 / base64url), ``f F`` (hex). Raises
    :class:`MultibaseError` otherwise.
    """
    if not isinstance(text, str) or len(text) < 1:
        raise MultibaseError("empty multibase string")
    prefix, body = text[0], text[1:]
    try:
        if prefix in "bBcC":
            return _b32decode(body)
        if prefix in "vVtT":
            return _b32decode(body, alphabet_hex=True)
        if prefix == "z":
            return _b58decode(body)
        if prefix in "mM":
            return _b64decode(body, urlsafe=False)
        if prefix in "uU":
            return _b64decode(body, urlsafe=True)
        if prefix in "fF":
            return bytes.fromhex(body)
    except (binascii.Error, ValueError) as exc:
        raise MultibaseError(f"invalid multibase string: {exc}") from exc
    raise MultibaseError(f"unsupported multibase prefix {prefix!r}")


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read an unsigned varint at ``pos``; returns ``(value, new_pos)``."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("buffer too short")
        if shift > 63:
            raise ValueError("varint too long")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


# ---------------------------------------------------------------------------------------------
# libp2p public keys and identities (spec 2.2)

KEY_TYPE_ED25519 = 1
_KEY_TYPE_NAMES = {0: "RSA", 1: "Ed25519", 2: "Secp256k1", 3: "ECDSA"}
# The protobuf `{Type = 1: Ed25519, Data = 2: <32 bytes>}` has this fixed prefix.
_ED25519_PUB_PREFIX = b"\x08\x01\x12\x20"
_ED25519_PRIV_PREFIX = b"\x08\x01\x12\x40"  # Data = seed (32) || public key (32)


class InvalidKey(ValueError):
    """A public or private key string that does not decode to an Ed25519 key."""


def public_key_bytes_to_string(raw: bytes) -> str:
    """The libp2p public key string (``bbaarei…``, 59 chars) of a raw 32-byte Ed25519 key."""
    if len(raw) != 32:
        raise InvalidKey(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return multibase_encode(_ED25519_PUB_PREFIX + raw)


def parse_libp2p_key(data: bytes) -> tuple[int, bytes]:
    """Parse the libp2p key protobuf ``{KeyType Type = 1; bytes Data = 2}`` to ``(type, data)``."""
    pos = 0
    key_type: int | None = None
    key_data: bytes | None = None
    try:
        while pos < len(data):
            tag, pos = _read_uvarint(data, pos)
            field, wire = tag >> 3, tag & 7
            if field == 1 and wire == 0:
                key_type, pos = _read_uvarint(data, pos)
            elif field == 2 and wire == 2:
                length, pos = _read_uvarint(data, pos)
                if pos + length > len(data):
                    raise ValueError("truncated key data")
                key_data = data[pos : pos + length]
                pos += length
            else:
                raise ValueError(f"unexpected field {field} (wire type {wire})")
    except ValueError as exc:
        raise InvalidKey(f"malformed libp2p key: {exc}") from exc
    if key_type is None or key_data is None:
        raise InvalidKey("malformed libp2p key: missing type or data")
    return key_type, key_data


def parse_public_key(text: str) -> bytes:
    """Parse a libp2p public key string (any multibase) to the raw 32-byte Ed25519 key.

    Raises :class:`InvalidKey` for anything else, including other key types, which bucketfs
    does not verify.
    """
    try:
        data = multibase_decode(text)
    except MultibaseError as exc:
        raise InvalidKey(f"invalid public key string: {exc}") from exc
    key_type, raw = parse_libp2p_key(data)
    if key_type != KEY_TYPE_ED25519:
        name = _KEY_TYPE_NAMES.get(key_type, str(key_type))
        raise InvalidKey(f"unsupported public key type {name} (only Ed25519 is supported)")
    if len(raw) != 32:
        raise InvalidKey(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return raw


def verify_signature(public_key: str | bytes, data: bytes, signature: bytes) -> bool:
    """True if ``signature`` is a valid detached Ed25519 signature of ``data``."""
    raw = parse_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        nacl.signing.VerifyKey(raw).verify(data, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        # TypeError/ValueError: wrong signature length; a forged value is just a bad signature.
        return False
    return True


class Identity:
    """An Ed25519 key pair: a user's identity for GetToken, or the hub's host key.

    Its text form (the identity file content) is what Textile's JS ``PrivateKey.toString()``
    gives: multibase base32 of the libp2p-marshalled private key (``bbaareq…``), so identities
    move between bucketfs and Textile tools.
    """

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise InvalidKey(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        self._signing = nacl.signing.SigningKey(seed)

    @classmethod
    def generate(cls) -> Identity:
        """A new random identity."""
        return cls(secrets.token_bytes(32))

    @property
    def seed(self) -> bytes:
        """The 32-byte private seed."""
        return bytes(self._signing)

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return bytes(self._signing.verify_key)

    def public_key_string(self) -> str:
        """The libp2p public key string (spec 2.2)."""
        return public_key_bytes_to_string(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """A detached 64-byte Ed25519 signature of ``data`` (no prefix, no hashing)."""
        return self._signing.sign(data).signature

    def to_string(self) -> str:
        """Multibase base32 of the libp2p private key protobuf (seed || public key)."""
        return multibase_encode(_ED25519_PRIV_PREFIX + self.seed + self.public_key)

    @classmethod
    def from_string(cls, text: str) -> Identity:
        """Parse :meth:`to_string` output (any multibase; 32- or 64-byte key data)."""
        try:
            data = multibase_decode(text.strip())
        except MultibaseError as exc:
            raise InvalidKey(f"invalid private key string: {exc}") from exc
        key_type, raw = parse_libp2p_key(data)
        if key_type != KEY_TYPE_ED25519:
            raise InvalidKey("unsupported private key type (only Ed25519 is supported)")
        if len(raw) not in (32, 64):
            raise InvalidKey(f"an Ed25519 private key is 32 or 64 bytes, got {len(raw)}")
        ident = cls(raw[:32])
        if len(raw) == 64 and raw[32:] != ident.public_key:
            raise InvalidKey("private key does not match its embedded public key")
        return ident

    def __repr__(self) -> str:  # never show the seed
        return f"Identity({self.public_key_string()})"


def write_identity_file(
    path: Path, identity: Identity | None = None, force: bool = False
) -> Identity:
    """Write an identity key file of mode 0600 (a new identity unless one is given).

    An existing file is kept unless ``force``: overwriting a key loses access to everything it
    owns, so that must be asked for.
    """
    from bucketfs.config import write_secret_file

    path = Path(path).expanduser()
    if path.exists() and not force:
        raise UserError(f"identity file {path} already exists (use --force to replace it)")
    identity = identity or Identity.generate()
    try:
        write_secret_file(path, identity.to_string() + "\n")
    except OSError as exc:
        raise UserError(f"cannot write identity file {path}: {exc.strerror}") from exc
    return identity


def read_identity_file(path: Path) -> Identity:
    """Read an identity key file; refuses one that group or others can access, like ssh."""
    from bucketfs.config import read_secret_file

    path = Path(path).expanduser()
    text = read_secret_file(path, "identity key")
    try:
        return Identity.from_string(text)
    except InvalidKey as exc:
        raise UserError(f"identity file {path} does not hold an Ed25519 key: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Thread IDs (spec 2.1)

THREAD_ID_VERSION = 1
VARIANT_RAW = 0x55
VARIANT_ACCESS_CONTROLLED = 0x70


class InvalidThreadID(ValueError):
    """A thread ID that does not parse (texts follow go-threads' ``core/thread/id.go``)."""


def new_thread_id(variant: int = VARIANT_RAW, random_len: int = 32) -> bytes:
    """A new binary thread ID: ``uvarint(1) || uvarint(variant) || random`` (34 bytes)."""
    if variant not in (VARIANT_RAW, VARIANT_ACCESS_CONTROLLED):
        raise InvalidThreadID(f"expected Raw or AccessControlled as the id variant, got: {variant}")
    return _uvarint(THREAD_ID_VERSION) + _uvarint(variant) + secrets.token_bytes(random_len)


def validate_thread_id(data: bytes) -> bytes:
    """Check a binary thread ID; returns it unchanged or raises :class:`InvalidThreadID`."""
    try:
        version, pos = _read_uvarint(data, 0)
        if version != THREAD_ID_VERSION:
            raise InvalidThreadID(f"expected 1 as the id version number, got: {version}")
        variant, pos = _read_uvarint(data, pos)
    except ValueError as exc:
        if isinstance(exc, InvalidThreadID):
            raise
        raise InvalidThreadID("id too short") from exc
    if variant not in (VARIANT_RAW, VARIANT_ACCESS_CONTROLLED):
        raise InvalidThreadID(f"expected Raw or AccessControlled as the id variant, got: {variant}")
    if pos >= len(data):
        raise InvalidThreadID("id too short")
    return bytes(data)


def thread_id_to_string(data: bytes) -> str:
    """The string form (multibase base32) of a binary thread ID, after validating it."""
    return multibase_encode(validate_thread_id(data))


def parse_thread_id(text: str) -> bytes:
    """Parse a thread ID string (any multibase) to its binary form."""
    try:
        data = multibase_decode(text)
    except MultibaseError as exc:
        raise InvalidThreadID(f"invalid thread id: {exc}") from exc
    return validate_thread_id(data)


def canonical_thread_id(text: str) -> str:
    """The canonical (``b…`` base32) string of a thread ID given in any multibase."""
    return multibase_encode(parse_thread_id(text))


# ---------------------------------------------------------------------------------------------
# Hub API keys and signatures (spec 2.6, 3.3)

API_KEY_BYTES = 16
API_SECRET_BYTES = 24


def new_api_key() -> tuple[str, str]:
    """A new ``(key, secret)``: 16 and 24 random bytes in multibase base32 (27 and 40 chars)."""
    return (
        multibase_encode(secrets.token_bytes(API_KEY_BYTES)),
        multibase_encode(secrets.token_bytes(API_SECRET_BYTES)),
    )


def api_signature(secret: str, message: str) -> str:
    """The ``x-textile-api-sig`` value: multibase base32 of HMAC-SHA256(secret bytes, message)."""
    key = multibase_decode(secret)
    return multibase_encode(hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest())


# RFC 3339 as Go's time.RFC3339 parses it: date 'T' time, optional fraction, Z or ±hh:mm.
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 date-time with offset (fraction optional) to an aware datetime."""
    m = _RFC3339_RE.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 date-time: {text[:40]!r}")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    # Python keeps microseconds; Go's extra precision below that cannot matter for an expiry.
    micros = int((frac[1:] + "000000")[:6]) if frac else 0
    if offset in ("Z", "z"):
        tz = UTC
    else:
        tz = datetime.strptime(offset.replace(":", ""), "%z").tzinfo
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz
    )


def format_rfc3339(ts: float) -> str:
    """A Unix time as RFC 3339 UTC with second precision (``2030-01-01T00:00:00Z``)."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_api_request(
    secret: str, lifetime: float = 3600.0, now: float | None = None
) -> tuple[str, str]:
    """``(message, signature)`` for a request: the message is the expiry ``now + lifetime``."""
    message = format_rfc3339((time.time() if now is None else now) + lifetime)
    return message, api_signature(secret, message)


def verify_api_signature(
    secret: str, message: str, signature: str, now: float | None = None
) -> bool:
    """True if ``signature`` is the HMAC of ``message`` and the expiry in ``message`` is not past.

    The HMAC is recomputed over the message bytes exactly as received and compared in constant
    time (spec 3.3); any parse failure is simply a bad signature.
    """
    try:
        expiry = parse_rfc3339(message)
        sent = multibase_decode(signature)
        key = multibase_decode(secret)
    except ValueError:
        return False
    if expiry.timestamp() < (time.time() if now is None else now):
        return False
    expected = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return hmac.compare_digest(expected, sent)


# ---------------------------------------------------------------------------------------------
# Thread tokens (spec 4.2)

_JWT_HEADER = b'{"alg":"Ed25519","typ":"JWT"}'


class InvalidToken(ValueError):
    """A thread token that does not parse or whose signature is not the hub's."""

    def __init__(self, message: str = "invalid thread token") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class TokenClaims:
    """The claims of a thread token: issue time, issuer and subject public key strings."""

    iat: int
    iss: str
    sub: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise InvalidToken()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken() from exc


def issue_token(host: Identity, subject: str, iat: int | None = None) -> str:
    """A thread token for ``subject`` (a public key string), signed by the host identity."""
    parse_public_key(subject)  # refuse to sign a subject no one could ever verify against
    claims = {
        "iat": int(time.time()) if iat is None else int(iat),
        "iss": host.public_key_string(),
        "sub": subject,
    }
    payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    signing_input = _b64url(_JWT_HEADER) + "." + _b64url(payload)
    return signing_input + "." + _b64url(host.sign(signing_input.encode("ascii")))


def _split_token(token: str) -> tuple[str, dict, bytes]:
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken()
    header_b, claims_b, sig = (_b64url_decode(p) for p in parts)
    try:
        header = json.loads(header_b)
        claims = json.loads(claims_b)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken() from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken()
    if header.get("alg") != "Ed25519":
        # Never let a token pick a weaker algorithm ("none", HS256 with the public key...).
        raise InvalidToken()
    return parts[0] + "." + parts[1], claims, sig


def _claims(raw: dict) -> TokenClaims:
    iat, iss, sub = raw.get("iat", 0), raw.get("iss", ""), raw.get("sub")
    if not isinstance(sub, str) or not isinstance(iss, str) or not isinstance(iat, int):
        raise InvalidToken()
    try:
        parse_public_key(sub)
    except InvalidKey as exc:
        raise InvalidToken() from exc
    return TokenClaims(iat=iat, iss=iss, sub=sub)


def verify_token(token: str, host_public_key: bytes | str) -> TokenClaims:
    """Verify a token's signature against the host key and return its claims.

    Raises :class:`InvalidToken` (``invalid thread token``) for a tampered token, one signed by
    another host, or anything that does not parse.
    """
    raw = (
        host_public_key if isinstance(host_public_key, bytes) else parse_public_key(host_public_key)
    )
    signing_input, claims, sig = _split_token(token)
    if not verify_signature(raw, signing_input.encode("ascii"), sig):
        raise InvalidToken()
    return _claims(claims)


def token_subject_unverified(token: str) -> str:
    """The ``sub`` of a token without checking its signature (go-threads ``Token.PubKey``)."""
    _, claims, _ = _split_token(token)
    return _claims(claims).sub


__all__ = [
    "Identity",
    "InvalidKey",
    "InvalidThreadID",
    "InvalidToken",
    "MultibaseError",
    "TokenClaims",
    "VARIANT_ACCESS_CONTROLLED",
    "VARIANT_RAW",
    "api_signature",
    "canonical_thread_id",
    "format_rfc3339",
    "issue_token",
    "multibase_decode",
    "multibase_encode",
    "new_api_key",
    "new_thread_id",
    "parse_libp2p_key",
    "parse_public_key",
    "parse_rfc3339",
    "parse_thread_id",
    "public_key_bytes_to_string",
    "read_identity_file",
    "sign_api_request",
    "thread_id_to_string",
    "token_subject_unverified",
    "validate_thread_id",
    "verify_api_signature",
    "verify_signature",
    "verify_token",
    "write_identity_file",
]
