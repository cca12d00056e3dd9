"""AuthContext: the headers of spec 3.1/3.3, re-signed before the signature expires."""

from __future__ import annotations

import pytest

from bucketfs.client.auth import AuthContext
from bucketfs.keys import parse_rfc3339, verify_api_signature

pytestmark = pytest.mark.timeout(30)

SECRET = "baaaqeayeaudaocajbifqydiob4ibceqtcqkrmfy"  # bytes 00..17, spec 3.3


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_headers_carry_thread_key_signature_and_token() -> None:
    clock = Clock(1_900_000_000.0)
    auth = AuthContext(thread="bafkthread", api_key="bkey", api_secret=SECRET, clock=clock)
    auth.set_token("tok")
    md = dict(auth.metadata())
    assert md["x-textile-thread"] == "bafkthread"
    assert md["x-textile-api-key"] == "bkey"
    assert md["authorization"] == "bearer tok"
    # The message is an expiry one lifetime ahead, and the signature verifies against it.
    expiry = parse_rfc3339(md["x-textile-api-sig-msg"]).timestamp()
    assert expiry == clock.now + auth.sig_lifetime
    assert verify_api_signature(
        SECRET, md["x-textile-api-sig-msg"], md["x-textile-api-sig"], now=clock.now
    )
    assert "x-textile-thread" not in dict(auth.metadata(thread=False))


def test_resigns_before_expiry() -> None:
    clock = Clock(1_900_000_000.0)
    auth = AuthContext(
        api_key="bkey", api_secret=SECRET, sig_lifetime=600, sig_margin=60, clock=clock
    )
    first = auth.signature()
    clock.now += 500  # 100 s left: still above the margin, so the signature is reused
    assert auth.signature() == first
    clock.now += 50  # 50 s left: below the margin, so a fresh one is made
    second = auth.signature()
    assert second != first
    assert parse_rfc3339(second[0]).timestamp() == clock.now + 600
    # Never hands out a signature that is already expired or about to be.
    assert parse_rfc3339(second[0]).timestamp() - clock.now >= 60


def test_insecure_key_sends_no_signature() -> None:
    md = dict(AuthContext(api_key="bkey").metadata())
    assert md == {"x-textile-api-key": "bkey"}


def test_copies_share_token_but_not_thread() -> None:
    auth = AuthContext(thread="t1")
    other = auth.with_thread("t2")
    other.set_token("shared")
    assert dict(auth.metadata())["authorization"] == "bearer shared"
    assert dict(auth.metadata())["x-textile-thread"] == "t1"
    assert dict(other.metadata())["x-textile-thread"] == "t2"


def test_malformed_secret_fails_early() -> None:
    with pytest.raises(ValueError):
        AuthContext(api_key="k", api_secret="not multibase!")
