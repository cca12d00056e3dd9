"""The hub's own Ed25519 host key: it signs every thread token (spec 4.2, ``iss``).

The key lives in ``<data dir>/host.key`` (mode 0600) so tokens stay valid across restarts; a
token signed by any other key (another hub, a previous data dir) is rejected as foreign.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bucketfs.keys import Identity, read_identity_file, write_identity_file

log = logging.getLogger(__name__)

HOST_KEY_NAME = "host.key"


def load_host_identity(data_dir: Path) -> Identity:
    """Read the host key from the data dir, creating it (0600) on first start."""
    path = Path(data_dir) / HOST_KEY_NAME
    if path.exists():
        return read_identity_file(path)
    ident = write_identity_file(path)
    log.info("created hub host key %s (%s)", path, ident.public_key_string())
    return ident


def peer_id_bytes(identity: Identity) -> bytes:
    """The libp2p peer ID (binary multihash) of the host: the identity hash of its public key.

    libp2p inlines keys of at most 42 bytes with the identity multihash (code 0x00); the
    Ed25519 public key protobuf is 36 bytes.
    """
    from bucketfs.keys import multibase_decode

    pub = multibase_decode(identity.public_key_string())
    return bytes([0x00, len(pub)]) + pub
