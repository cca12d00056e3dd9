"""bucketfs.keys: every worked example of the spec (sections 2, 3.3, 4.2, Appendix A) and the
error paths of each parser."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucketfs import keys
from bucketfs.errors import UserError

SEED_0_31 = bytes(range(32))
SEED_ONES = b"\x01" * 32
PUB_0_31 = "bbaareiadued3746occ7b24g5ddtuxqezm7snmme3uugv6ho4qzsbevjrxa"
PUB_ONES = "bbaareiekrdr525aj6gk72uw3fu6luxlszjtqtpy5sqjbx43uraa3id3plq"
SPEC_TOKEN = (
    "eyJhbGciOiJFZDI1NTE5IiwidHlwIjoiSldUIn0."
    "eyJpYXQiOjE2MDAwMDAwMDAsImlzcyI6ImJiYWFyZWlla3JkcjUyNWFqNmdrNzJ1dzNmdTZsdXhsc3pqdHF0cHk1c3Fq"
    "Yng0M3VyYWEzaWQzcGxxIiwic3ViIjoiYmJhYXJlaWFkdWVkMzc0Nm9jYzdiMjRnNWRkdHV4cWV6bTdzbm1tZTN1dWd2"
    "NmhvNHF6c2JldmpyeGEifQ."
    "zZVwY-rzH0edsEPDiEWaWK4vSVmvKEaW7b8X8oHnKeF2lTYjPib305hA9BMpvJootGnAQXYn9c255SMwoZcUAw"
)

pytestmark = pytest.mark.timeout(60)


# --- spec worked examples ---------------------------------------------------------------------


def test_thread_id_example() -> None:
    data = bytes([0x01, 0x55]) + SEED_0_31
    text = "bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy"
    assert keys.thread_id_to_string(data) == text
    assert keys.parse_thread_id(text) == data


def test_thread_id_spec_header_example_parses() -> None:
    text = "bafk7hwlvk67pkyoama7cq5yqdkameur3gjuohckdzmkpzzzutyp4e5i"
    data = keys.parse_thread_id(text)
    assert data[:2] == b"\x01\x55" and len(data) == 34
    assert keys.thread_id_to_string(data) == text


def test_public_key_string_examples() -> None:
    ident = keys.Identity(SEED_0_31)
    assert ident.public_key.hex() == (
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    )
    assert ident.public_key_string() == PUB_0_31
    assert keys.Identity(SEED_ONES).public_key_string() == PUB_ONES
    assert keys.parse_public_key(PUB_0_31) == ident.public_key
    assert len(PUB_0_31) == 59


def test_challenge_signature_example() -> None:
    sig = keys.Identity(SEED_0_31).sign(bytes(32))
    assert sig.hex() == (
        "f726a1147f71f0ded8fb576ddb369acebf5becc3fc93a31c827fb18eef8de7b1"
        "68d4d57205874ada00debe2e855023e0ecfc86586e86bd7d4bd5b4feb640da0b"
    )
    assert keys.verify_signature(PUB_0_31, bytes(32), sig)
    assert not keys.verify_signature(PUB_0_31, b"\x01" + bytes(31), sig)


def test_api_signature_example() -> None:
    secret = "baaaqeayeaudaocajbifqydiob4ibceqtcqkrmfy"
    assert keys.multibase_decode(secret) == bytes(range(24))
    sig = keys.api_signature(secret, "2030-01-01T00:00:00Z")
    assert keys.multibase_decode(sig).hex() == (
        "56f4a6218c844a8397c0b61df9e1e136fc73cd93bae762180c28df9c61a75a45"
    )
    assert sig == "bk32kmimmqrfihf6awyo7typbg36hhtmtxltwegamfdpzyynhljcq"
    now = datetime(2029, 6, 1, tzinfo=UTC).timestamp()
    assert keys.verify_api_signature(secret, "2030-01-01T00:00:00Z", sig, now=now)


def test_token_example() -> None:
    host = keys.Identity(SEED_ONES)
    token = keys.issue_token(host, PUB_0_31, iat=1600000000)
    assert token == SPEC_TOKEN
    claims = keys.verify_token(SPEC_TOKEN, PUB_ONES)
    assert claims == keys.TokenClaims(iat=1600000000, iss=PUB_ONES, sub=PUB_0_31)
    assert keys.token_subject_unverified(SPEC_TOKEN) == PUB_0_31


# --- API keys and signatures ------------------------------------------------------------------


def test_new_api_key_formats() -> None:
    key, secret = keys.new_api_key()
    assert len(key) == 27 and key.startswith("b")
    assert len(secret) == 40 and secret.startswith("b")
    assert len(keys.multibase_decode(key)) == 16
    assert len(keys.multibase_decode(secret)) == 24
    assert keys.new_api_key() != (key, secret)


def test_expired_signature_rejected() -> None:
    _, secret = keys.new_api_key()
    msg, sig = keys.sign_api_request(secret, lifetime=60, now=1_000_000)
    assert keys.verify_api_signature(secret, msg, sig, now=1_000_000)
    assert not keys.verify_api_signature(secret, msg, sig, now=1_000_061)


def test_signature_with_wrong_secret_or_message_rejected() -> None:
    _, secret = keys.new_api_key()
    _, other = keys.new_api_key()
    msg, sig = keys.sign_api_request(secret, now=1_000_000)
    assert not keys.verify_api_signature(other, msg, sig, now=1_000_000)
    later = keys.format_rfc3339(1_000_000 + 7200)
    assert not keys.verify_api_signature(secret, later, sig, now=1_000_000)
    assert not keys.verify_api_signature(secret, msg, "bnotbase32!", now=1_000_000)
    assert not keys.verify_api_signature(secret, "tomorrow", sig, now=1_000_000)


def test_signature_accepts_go_and_js_date_forms() -> None:
    """Go signs with a UTC offset, JS with toISOString() milliseconds (spec 3.3)."""
    _, secret = keys.new_api_key()
    now = datetime(2021, 3, 1, 14, 0, tzinfo=UTC).timestamp()
    for msg in ("2021-03-01T12:00:00-03:00", "2021-03-01T15:00:00.000Z"):
        sig = keys.api_signature(secret, msg)
        assert keys.verify_api_signature(secret, msg, sig, now=now), msg
    # 12:00-03:00 is 15:00 UTC: past at 15:00:01 UTC.
    late = datetime(2021, 3, 1, 15, 0, 1, tzinfo=UTC).timestamp()
    msg = "2021-03-01T12:00:00-03:00"
    assert not keys.verify_api_signature(secret, msg, keys.api_signature(secret, msg), now=late)


def test_parse_rfc3339() -> None:
    tz = timezone(timedelta(hours=-3))
    assert keys.parse_rfc3339("2021-03-01T12:00:00-03:00") == datetime(2021, 3, 1, 12, tzinfo=tz)
    assert keys.parse_rfc3339("2021-03-01T15:00:00.123456789Z").microsecond == 123456
    for bad in ("2021-03-01", "2021-03-01T12:00:00", "2021-13-01T00:00:00Z", "x"):
        with pytest.raises(ValueError):
            keys.parse_rfc3339(bad)


def test_signature_accepts_other_multibase() -> None:
    """Servers accept any multibase for the signature (spec 3.1)."""
    _, secret = keys.new_api_key()
    msg = "2030-01-01T00:00:00Z"
    raw = keys.multibase_decode(keys.api_signature(secret, msg))
    assert keys.verify_api_signature(secret, msg, "f" + raw.hex(), now=0)
    upper = "B" + keys.api_signature(secret, msg)[1:].upper()
    assert keys.verify_api_signature(secret, msg, upper, now=0)


# --- tokens -----------------------------------------------------------------------------------


def test_tampered_token_rejected() -> None:
    header, claims, sig = SPEC_TOKEN.split(".")
    other_claims = keys.issue_token(keys.Identity(SEED_ONES), PUB_ONES, iat=1).split(".")[1]
    for bad in (
        f"{header}.{other_claims}.{sig}",  # claims swapped
        f"{header}.{claims}.{sig[:-2]}AA",  # signature changed
        f"{header}.{claims}",  # truncated
        "not a token",
        f"{header}.{claims}.{sig}.x",
    ):
        with pytest.raises(keys.InvalidToken, match="invalid thread token"):
            keys.verify_token(bad, PUB_ONES)


def test_foreign_token_rejected() -> None:
    """A token signed by another host's key never verifies here."""
    token = keys.issue_token(keys.Identity.generate(), PUB_0_31)
    with pytest.raises(keys.InvalidToken):
        keys.verify_token(token, PUB_ONES)
    # ... even though its subject can be read without verifying, as the Hub did.
    assert keys.token_subject_unverified(token) == PUB_0_31


def test_alg_none_rejected() -> None:
    import base64

    def enc(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).decode().rstrip("=")

    claims = SPEC_TOKEN.split(".")[1]
    token = enc(b'{"alg":"none","typ":"JWT"}') + "." + claims + "."
    with pytest.raises(keys.InvalidToken):
        keys.verify_token(token, PUB_ONES)
    with pytest.raises(keys.InvalidToken):
        keys.token_subject_unverified(token)


def test_issue_token_refuses_bad_subject() -> None:
    with pytest.raises(keys.InvalidKey):
        keys.issue_token(keys.Identity(SEED_ONES), "not-a-key")


# --- keys and identities ----------------------------------------------------------------------


def test_identity_string_roundtrip() -> None:
    ident = keys.Identity(SEED_0_31)
    text = ident.to_string()
    assert text.startswith("bbaareq")  # libp2p private key, Ed25519, 64 bytes of data
    again = keys.Identity.from_string(text)
    assert again.seed == SEED_0_31
    assert again.public_key_string() == PUB_0_31
    assert "seed" not in repr(ident) and SEED_0_31.hex() not in repr(ident)


def test_identity_from_string_rejects_mismatch_and_junk() -> None:
    ident = keys.Identity(SEED_0_31)
    data = keys.multibase_decode(ident.to_string())
    wrong = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(keys.InvalidKey, match="does not match"):
        keys.Identity.from_string(keys.multibase_encode(wrong))
    for junk in ("", "hello", PUB_0_31[:-3], "bzzzz"):
        with pytest.raises(keys.InvalidKey):
            keys.Identity.from_string(junk)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("?abc", "unsupported multibase"),
        ("b" + "1" * 10, "invalid"),
        # RSA key type (0) with 32 bytes of data
        (keys.multibase_encode(b"\x08\x00\x12\x20" + bytes(32)), "RSA"),
        (keys.multibase_encode(b"\x08\x01\x12\x10" + bytes(16)), "32 bytes"),
        (keys.multibase_encode(b"\x08\x01\x12\x20" + bytes(3)), "truncated"),
        (keys.multibase_encode(b"\x08\x01"), "missing"),
    ],
)
def test_parse_public_key_errors(text: str, match: str) -> None:
    with pytest.raises(keys.InvalidKey, match=match):
        keys.parse_public_key(text)


def test_public_key_other_multibase() -> None:
    raw = keys.parse_public_key(PUB_0_31)
    data = keys.multibase_decode(PUB_0_31)
    assert keys.parse_public_key("f" + data.hex()) == raw
    assert keys.parse_public_key("B" + PUB_0_31[1:].upper()) == raw


def test_base58_decode() -> None:
    # "z" + base58btc of b"\x00\x00hello" (leading zero bytes are '1's)
    assert keys.multibase_decode("z11Cn8eVZg") == b"\x00\x00hello"


def test_identity_file_mode_and_refusal(tmp_path) -> None:
    path = tmp_path / "id" / "identity"
    ident = keys.write_identity_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.read_identity_file(path).public_key_string() == ident.public_key_string()
    with pytest.raises(UserError, match="already exists"):
        keys.write_identity_file(path)
    before = path.read_text()
    os.chmod(path, 0o644)
    with pytest.raises(UserError, match="chmod 600"):
        keys.read_identity_file(path)
    assert path.read_text() == before  # refusing changed nothing
    os.chmod(path, 0o600)
    replaced = keys.write_identity_file(path, force=True)
    assert replaced.public_key_string() != ident.public_key_string()


def test_identity_file_bad_content(tmp_path) -> None:
    path = tmp_path / "identity"
    path.write_text("garbage\n")
    os.chmod(path, 0o600)
    with pytest.raises(UserError, match="does not hold an Ed25519 key"):
        keys.read_identity_file(path)
    with pytest.raises(UserError, match="does not exist"):
        keys.read_identity_file(tmp_path / "missing")


# --- thread IDs -------------------------------------------------------------------------------


def test_new_thread_id() -> None:
    tid = keys.new_thread_id()
    assert len(tid) == 34 and tid[:2] == b"\x01\x55"
    text = keys.thread_id_to_string(tid)
    assert len(text) == 56 and text.startswith("bafk")
    assert keys.new_thread_id(keys.VARIANT_ACCESS_CONTROLLED)[:2] == b"\x01\x70"


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\x01\x56abc", "expected Raw or AccessControlled as the id variant, got: 86"),
        (b"\x02\x55abc", "expected 1 as the id version number, got: 2"),
        (b"\x01\x55", "id too short"),
        (b"\x01", "id too short"),
        (b"", "id too short"),
    ],
)
def test_thread_id_errors(data: bytes, match: str) -> None:
    with pytest.raises(keys.InvalidThreadID, match=match):
        keys.validate_thread_id(data)


def test_parse_thread_id_rejects_junk() -> None:
    for junk in ("", "hello", "bafk!!!", PUB_0_31):
        with pytest.raises(keys.InvalidThreadID):
            keys.parse_thread_id(junk)


def test_canonical_thread_id() -> None:
    tid = keys.new_thread_id()
    assert keys.canonical_thread_id("f" + tid.hex()) == keys.thread_id_to_string(tid)


@given(st.binary(max_size=80))
def test_multibase_roundtrip(data: bytes) -> None:
    assert keys.multibase_decode(keys.multibase_encode(data)) == data


@given(st.binary(min_size=1, max_size=40))
def test_thread_id_roundtrip(random_part: bytes) -> None:
    tid = b"\x01\x55" + random_part
    assert keys.parse_thread_id(keys.thread_id_to_string(tid)) == tid
