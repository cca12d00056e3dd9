"""Per-call credentials: thread header, API-key signature and thread token (spec sections 3, 4).

An :class:`AuthContext` turns into the gRPC metadata every call carries. The API signature is an
HMAC-SHA256 over an RFC 3339 *expiry* time (spec 3.3); the context signs ``now + lifetime`` once
and re-signs when less than ``margin`` remains, so long-lived mounts never send a signature that
expires in flight. The thread token comes from the ``GetToken`` challenge
(:func:`bucketfs.client.threads.get_token`) and does not expire (spec 4.2).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Protocol

from bucketfs.keys import api_signature, format_rfc3339, multibase_decode

SIG_LIFETIME = 3600.0  # the Go `hub` CLI signs now + 1 hour
SIG_MARGIN = 300.0  # re-sign when less than this is left, so a slow call never carries a dead sig


class Signer(Protocol):
    """An ed25519 identity that can answer a GetToken challenge."""

    def public_key_string(self) -> str:
        """The libp2p public key string (spec 2.2)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """A detached 64-byte ed25519 signature of ``data``."""
        ...


@dataclasses.dataclass
class _Signature:
    message: str
    sig: str
    expires: float


class AuthContext:
    """Credentials attached to every call. Thread-safe; cheap to copy with :meth:`with_thread`.

    ``thread`` goes into ``x-textile-thread``; ``api_key``/``api_secret`` produce the signed key
    headers (an insecure key has no secret); ``token`` goes into ``authorization: bearer``.
    ``identity``, if given, lets the client fetch a token on first use.
    """

    def __init__(
        self,
        thread: str = "",
        api_key: str = "",
        api_secret: str = "",
        token: str = "",
        identity: Signer | None = None,
        sig_lifetime: float = SIG_LIFETIME,
        sig_margin: float = SIG_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if api_secret:
            multibase_decode(api_secret)  # fail now (ValueError), not on the first call
        if sig_margin >= sig_lifetime:
            raise ValueError("sig_margin must be shorter than sig_lifetime")
        self.thread = thread
        self.api_key = api_key
        self.api_secret = api_secret
        self.identity = identity
        self.sig_lifetime = sig_lifetime
        self.sig_margin = sig_margin
        self.clock = clock
        # Shared between copies made by with_thread(): one token and one signature per identity.
        self._shared = _Shared(token=token)

    def with_thread(self, thread: str) -> AuthContext:
        """A copy for another thread; token and signature cache are shared."""
        clone = object.__new__(AuthContext)
        clone.__dict__.update(self.__dict__)
        clone.thread = thread
        return clone

    @property
    def token(self) -> str:
        """The thread token, or "" when none was set or fetched yet."""
        return self._shared.token

    def set_token(self, token: str) -> None:
        """Store a token (shared with every copy of this context)."""
        with self._shared.lock:
            self._shared.token = token

    def needs_token(self) -> bool:
        """True when an identity is configured but no token has been fetched yet."""
        return self.identity is not None and not self._shared.token

    def signature(self) -> tuple[str, str] | None:
        """``(message, sig)`` for the API key, re-signed when close to expiry; None if no secret."""
        if not self.api_secret:
            return None
        now = self.clock()
        with self._shared.lock:
            cached = self._shared.sig
            if cached is None or cached.expires - now < self.sig_margin:
                expires = now + self.sig_lifetime
                message = format_rfc3339(expires)
                cached = _Signature(message, api_signature(self.api_secret, message), expires)
                self._shared.sig = cached
            return cached.message, cached.sig

    def metadata(self, thread: bool = True) -> list[tuple[str, str]]:
        """The metadata for one call; ``thread=False`` leaves out ``x-textile-thread``."""
        md: list[tuple[str, str]] = []
        if thread and self.thread:
            md.append(("x-textile-thread", self.thread))
        if self.api_key:
            md.append(("x-textile-api-key", self.api_key))
            signed = self.signature()
            if signed:
                md.append(("x-textile-api-sig-msg", signed[0]))
                md.append(("x-textile-api-sig", signed[1]))
        if self._shared.token:
            md.append(("authorization", f"bearer {self._shared.token}"))
        return md


class _Shared:
    """State shared by an AuthContext and its thread copies, guarded by ``lock``."""

    def __init__(self, token: str) -> None:
        self.lock = threading.Lock()
        self.token = token
        self.sig: _Signature | None = None
