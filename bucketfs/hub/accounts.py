"""Accounts (developers and orgs) and their API keys, in the hub database (spec 2.6, 3.4, 11).

An *account* is what an account key acts as: a developer or an org. Each account has its own
Ed25519 identity, whose public key string is the owner of the threads and buckets the account
creates (Textile's Hub did the same with the account's own thread token). A *user key*
(``KEY_TYPE_USER``) belongs to an account too, but its callers act as the identity in their
thread token, and threads they create are owned by that identity and tied to the key.

Secrets are stored as issued because the HMAC (spec 3.3) needs them; the database file lives in
the hub's private data dir.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from bucketfs.hub.db import Database
from bucketfs.hub.errors import HubError
from bucketfs.keys import Identity, new_api_key

log = logging.getLogger(__name__)

# Protobuf KeyType values (api.hubd.pb); the table stores these, not Textile's internal numbers.
KEY_TYPE_ACCOUNT = 1
KEY_TYPE_USER = 2
KEY_TYPE_NAMES = {KEY_TYPE_ACCOUNT: "account", KEY_TYPE_USER: "user"}

DEV = "dev"
ORG = "org"

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('dev', 'org')),
    name       TEXT NOT NULL,          -- username or org slug
    identity   TEXT NOT NULL,          -- the account's Ed25519 private key string
    pubkey     TEXT NOT NULL UNIQUE,   -- its public key string: owner of what the account makes
    created_at INTEGER NOT NULL        -- Unix ns
);
CREATE UNIQUE INDEX IF NOT EXISTS accounts_kind_name ON accounts(kind, name COLLATE NOCASE);

CREATE TABLE IF NOT EXISTS org_members (
    org    INTEGER NOT NULL REFERENCES accounts(id),
    member INTEGER NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (org, member)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS api_keys (
    key        TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    account    INTEGER NOT NULL REFERENCES accounts(id),
    type       INTEGER NOT NULL CHECK (type IN (1, 2)),   -- api.hubd.pb.KeyType
    secure     INTEGER NOT NULL,
    valid      INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_account ON api_keys(account);
"""

Database.register_schema(SCHEMA)

# Usernames and org slugs: like thread names, plus underscores and dots.
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Account:
    """A developer or org account."""

    id: int
    kind: str
    name: str
    pubkey: str

    @property
    def is_org(self) -> bool:
        """True for an org account."""
        return self.kind == ORG


@dataclass(frozen=True)
class APIKey:
    """An API key record. ``secret`` is only ever shown to a client when the key is created."""

    key: str
    secret: str
    account: int
    type: int
    secure: bool
    valid: bool
    created_at: int

    @property
    def is_user_key(self) -> bool:
        """True for a user-group key (callers act as their token's identity)."""
        return self.type == KEY_TYPE_USER


def _account(row: sqlite3.Row) -> Account:
    return Account(id=row["id"], kind=row["kind"], name=row["name"], pubkey=row["pubkey"])


def _key(row: sqlite3.Row) -> APIKey:
    return APIKey(
        key=row["key"],
        secret=row["secret"],
        account=row["account"],
        type=row["type"],
        secure=bool(row["secure"]),
        valid=bool(row["valid"]),
        created_at=row["created_at"],
    )


def check_account_name(name: str) -> str:
    """Validate a username or org slug; raises INVALID_ARGUMENT with the rule."""
    if not _NAME_RE.match(name):
        raise HubError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"invalid account name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit",
        )
    return name


class Accounts:
    """Account and API-key operations on the hub database. Thread-safe (see ``Database``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- accounts ------------------------------------------------------------------------------

    def create_account(self, kind: str, name: str, owner: int | None = None) -> Account:
        """Create a developer or org account; an org's creator (``owner``) becomes a member."""
        check_account_name(name)
        ident = Identity.generate()
        try:
            with self.db.write() as conn:
                cur = conn.execute(
                    "INSERT INTO accounts (kind, name, identity, pubkey, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (kind, name, ident.to_string(), ident.public_key_string(), time.time_ns()),
                )
                account_id = int(cur.lastrowid or 0)
                if kind == ORG and owner is not None:
                    conn.execute(
                        "INSERT INTO org_members (org, member) VALUES (?, ?)", (account_id, owner)
                    )
        except sqlite3.IntegrityError as exc:
            raise HubError(
                grpc.StatusCode.ALREADY_EXISTS, f"{'org' if kind == ORG else 'user'} {name} exists"
            ) from exc
        log.info("created %s account %s", kind, name)
        return Account(id=account_id, kind=kind, name=name, pubkey=ident.public_key_string())

    def account(self, account_id: int) -> Account:
        """The account with this id (NOT_FOUND if missing)."""
        row = (
            self.db.conn().execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        )
        if row is None:
            raise HubError(grpc.StatusCode.NOT_FOUND, "Account not found")
        return _account(row)

    def find(self, kind: str, name: str) -> Account | None:
        """The account of this kind and name (case-insensitive), or None."""
        row = (
            self.db.conn()
            .execute(
                "SELECT * FROM accounts WHERE kind = ? AND name = ? COLLATE NOCASE", (kind, name)
            )
            .fetchone()
        )
        return _account(row) if row else None

    def identity(self, account_id: int) -> Identity:
        """The account's own Ed25519 identity (what account-key requests act as)."""
        row = (
            self.db.conn()
            .execute("SELECT identity FROM accounts WHERE id = ?", (account_id,))
            .fetchone()
        )
        if row is None:
            raise HubError(grpc.StatusCode.NOT_FOUND, "Account not found")
        return Identity.from_string(row["identity"])

    def is_member(self, org: int, member: int) -> bool:
        """True if ``member`` belongs to the org."""
        row = (
            self.db.conn()
            .execute("SELECT 1 FROM org_members WHERE org = ? AND member = ?", (org, member))
            .fetchone()
        )
        return row is not None

    def org_for(self, name: str, member: int, create: bool = False) -> Account:
        """The org ``name`` as seen by ``member``: NOT_FOUND ``Org not found``, PERMISSION_DENIED
        ``User is not an org member`` (spec 3.4); ``create`` makes it with ``member`` as owner."""
        org = self.find(ORG, name)
        if org is None:
            if not create:
                raise HubError(grpc.StatusCode.NOT_FOUND, "Org not found")
            return self.create_account(ORG, name, owner=member)
        if not self.is_member(org.id, member):
            raise HubError(grpc.StatusCode.PERMISSION_DENIED, "User is not an org member")
        return org

    # -- keys ----------------------------------------------------------------------------------

    def create_key(self, account: int, key_type: int, secure: bool = True) -> APIKey:
        """Issue a new API key for the account."""
        if key_type not in KEY_TYPE_NAMES:
            raise HubError(grpc.StatusCode.INVALID_ARGUMENT, "Invalid key type")
        key, secret = new_api_key()
        created = time.time_ns()
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO api_keys (key, secret, account, type, secure, valid, created_at)"
                " VALUES (?, ?, ?, ?, ?, 1, ?)",
                (key, secret, account, key_type, int(secure), created),
            )
        log.info("created %s key %s for account %d", KEY_TYPE_NAMES[key_type], key, account)
        return APIKey(key, secret, account, key_type, secure, True, created)

    def get_key(self, key: str) -> APIKey | None:
        """The key record, or None if there is no such key."""
        row = self.db.conn().execute("SELECT * FROM api_keys WHERE key = ?", (key,)).fetchone()
        return _key(row) if row else None

    def key_with_account(self, key: str) -> tuple[APIKey, Account] | None:
        """The key and its account in one indexed query (every authenticated call needs both)."""
        row = (
            self.db.conn()
            .execute(
                "SELECT k.*, a.id AS a_id, a.kind, a.name, a.pubkey FROM api_keys k"
                " JOIN accounts a ON a.id = k.account WHERE k.key = ?",
                (key,),
            )
            .fetchone()
        )
        if row is None:
            return None
        account = Account(id=row["a_id"], kind=row["kind"], name=row["name"], pubkey=row["pubkey"])
        return _key(row), account

    def list_keys(self, account: int) -> list[APIKey]:
        """Every key of the account, oldest first."""
        rows = self.db.conn().execute(
            "SELECT * FROM api_keys WHERE account = ? ORDER BY created_at, key", (account,)
        )
        return [_key(r) for r in rows]

    def invalidate_key(self, account: int, key: str) -> None:
        """Mark a key invalid; NOT_FOUND if the account has no such key."""
        with self.db.write() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET valid = 0 WHERE key = ? AND account = ?", (key, account)
            )
            if cur.rowcount == 0:
                raise HubError(grpc.StatusCode.NOT_FOUND, "API key not found")
        log.info("invalidated key %s", key)

    def is_empty(self) -> bool:
        """True when no account exists yet (a new data dir)."""
        return self.db.conn().execute("SELECT 1 FROM accounts LIMIT 1").fetchone() is None


def local_username() -> str:
    """A valid account name for the local user (the login name, cleaned up)."""
    import getpass

    try:
        raw = getpass.getuser()
    except (KeyError, OSError) as exc:  # no passwd entry, e.g. in some containers
        log.info("no login name (%s); naming the local account 'local'", exc)
        raw = "local"
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", raw).strip("._-")[:64] or "local"
    return cleaned


def client_address(listen: str) -> str:
    """The address a local client should dial for a hub listening on ``listen``: a wildcard
    host (``0.0.0.0``, ``::``, empty) becomes the loopback address of the same family."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        return listen
    bare = host.strip("[]")
    if bare in ("", "0.0.0.0"):
        return f"127.0.0.1:{port}"
    if bare == "::":
        return f"[::1]:{port}"
    return listen


def bootstrap_local_account(
    db: Database, config_path: Path | str | None = None, api: str = "127.0.0.1:3006"
) -> tuple[str, str] | None:
    """On a new data dir, create the local developer account and an account key, and write
    the client config so the local CLI and mount work with no further step.

    Returns ``(key, secret)`` when it created them, None when the data dir already had an
    account (nothing is written then: a restart must not clobber credentials the user changed).
    The secret goes to a 0600 file beside the config (``bucketfs.config.write_hub_credentials``).
    """
    from bucketfs import config as configmod

    accounts = Accounts(db)
    if not accounts.is_empty():
        return None
    api = client_address(api)
    account = accounts.create_account(DEV, local_username())
    key = accounts.create_key(account.id, KEY_TYPE_ACCOUNT, secure=True)
    try:
        secret_path = configmod.write_hub_credentials(api, key.key, key.secret, config_path)
    except BaseException:
        # Undo, so the next start tries again instead of leaving an account whose only key
        # nobody was ever shown.
        with db.write() as conn:
            conn.execute("DELETE FROM api_keys WHERE account = ?", (account.id,))
            conn.execute("DELETE FROM accounts WHERE id = ?", (account.id,))
        raise
    log.info(
        "first start: created account %s with key %s; credentials in %s",
        account.name,
        key.key,
        secret_path,
    )
    return key.key, key.secret
