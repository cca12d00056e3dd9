"""Client configuration: a TOML file, ``BUCKETFS_*`` / ``BUCK_*`` environment variables, flags.

Precedence, highest first: command-line flags, environment, the config file, built-in defaults.

The file lives at ``$BUCKETFS_CONFIG`` if set, else ``<XDG config dir>/bucketfs/config.toml``::

    api = "127.0.0.1:3006"
    thread = "bafk..."            # default thread for new buckets (written on first use)
    key = ""                      # default bucket key (like buck's BUCK_KEY)
    api_key = "b..."
    api_secret_file = "hub-secret"  # relative paths are relative to the config file
    identity_file = "identity"
    insecure = false              # allow sending credentials in clear text to a remote host

    [tls]
    enabled = false
    ca = ""                       # PEM roots to trust (system roots when empty)
    cert = ""                     # client certificate, for mutual TLS
    key = ""

    [mount]
    cache_dir = ""                # default: <XDG cache dir>/bucketfs
    cache_size = "10G"
    poll = 2.0                    # seconds between remote-root checks when WatchRoot is absent
    writeback_delay = 1.0         # seconds after the last close before a file is uploaded

Secrets (the API secret, the identity key) are never stored in the TOML file itself but in files
of mode 0600 that it names; :func:`read_secret_file` refuses a file that group or others can read,
the way ssh refuses a loose private key, because such a secret may already be compromised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from bucketfs.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_API = "127.0.0.1:3006"
DEFAULT_CACHE_SIZE = 10 * 1024**3
CONFIG_ENV = "BUCKETFS_CONFIG"
HUB_SECRET_NAME = "hub-secret"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass
class TLSConfig:
    """TLS options for the connection to the hub."""

    enabled: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""


@dataclass
class MountConfig:
    """Defaults for ``bucketfs mount`` (each can be overridden by a mount flag)."""

    cache_dir: str = ""
    cache_size: int = DEFAULT_CACHE_SIZE
    poll: float = 2.0
    writeback_delay: float = 1.0

    def resolved_cache_dir(self) -> Path:
        """The cache directory, defaulting to the XDG cache dir."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return Path(platformdirs.user_cache_dir("bucketfs"))


@dataclass
class Config:
    """The effective client configuration after merging every source.

    ``path`` is the config file this was loaded from (it may not exist). ``origin`` maps each
    field name that did not come from the defaults to ``"file"``, ``"env"`` or ``"flag"``.
    """

    api: str = DEFAULT_API
    thread: str = ""
    key: str = ""
    api_key: str = ""
    api_secret_file: str = ""
    identity_file: str = ""
    insecure: bool = False
    tls: TLSConfig = field(default_factory=TLSConfig)
    mount: MountConfig = field(default_factory=MountConfig)
    path: Path = field(default_factory=lambda: config_path())
    origin: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: str, field: str = "") -> Path | None:
        """Resolve a file option: ``~`` expanded; a relative path is taken beside the config
        file when it came from the file, else (flag, environment) from the working directory."""
        if not value:
            return None
        p = Path(value).expanduser()
        if p.is_absolute():
            return p
        if self.origin.get(field) in ("env", "flag"):
            return Path.cwd() / p
        return self.path.parent / p

    def api_secret(self) -> str | None:
        """The API secret from ``api_secret_file`` (checked to be 0600), or None if unset."""
        p = self.resolve(self.api_secret_file, "api_secret_file")
        return read_secret_file(p, "API secret").strip() if p else None

    def identity_path(self) -> Path | None:
        """The identity key file; its mode is checked by :func:`check_secret_file`."""
        p = self.resolve(self.identity_file, "identity_file")
        if p is not None:
            check_secret_file(p, "identity key")
        return p

    def to_toml_dict(self) -> dict[str, Any]:
        """The persistable fields as a TOML-ready dict (empty strings left out)."""
        out: dict[str, Any] = {}
        for name in ("api", "thread", "key", "api_key", "api_secret_file", "identity_file"):
            value = getattr(self, name)
            if value:
                out[name] = value
        out["insecure"] = self.insecure
        out["tls"] = {k: v for k, v in dataclasses.asdict(self.tls).items() if v != ""}
        out["mount"] = {k: v for k, v in dataclasses.asdict(self.mount).items() if v != ""}
        return out

    def save(self, path: Path | None = None) -> Path:
        """Write every persistable field to the config file atomically; returns the path.

        Note this writes values that came from the environment or flags too; to change a single
        key without persisting those, use :func:`update_file`.
        """
        target = Path(path) if path else self.path
        with _locked(target):
            _write_atomic(target, self.to_toml_dict())
        return target


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file lives: ``$BUCKETFS_CONFIG`` or the XDG config dir."""
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    return Path(platformdirs.user_config_dir("bucketfs")) / "config.toml"


_default_config_path = config_path  # for functions whose parameter shadows the name

# Environment variables per field. Earlier names win: bucketfs's own name is more specific than
# the Textile `buck` name it shadows.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "api": ("BUCKETFS_API", "BUCK_API"),
    "thread": ("BUCKETFS_THREAD", "BUCK_THREAD"),
    "key": ("BUCKETFS_KEY", "BUCK_KEY"),
    "api_key": ("BUCKETFS_API_KEY",),
    "api_secret_file": ("BUCKETFS_API_SECRET_FILE",),
    "identity_file": ("BUCKETFS_IDENTITY_FILE",),
    "insecure": ("BUCKETFS_INSECURE",),
    "tls.enabled": ("BUCKETFS_TLS",),
    "tls.ca": ("BUCKETFS_TLS_CA",),
    "tls.cert": ("BUCKETFS_TLS_CERT",),
    "tls.key": ("BUCKETFS_TLS_KEY",),
    "mount.cache_dir": ("BUCKETFS_CACHE_DIR",),
    "mount.cache_size": ("BUCKETFS_CACHE_SIZE",),
    "mount.poll": ("BUCKETFS_POLL",),
    "mount.writeback_delay": ("BUCKETFS_WRITEBACK_DELAY",),
}


def load(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective :class:`Config`.

    ``overrides`` are flag values keyed like :data:`ENV_VARS` (``"api"``, ``"tls.ca"``,
    ``"mount.poll"``); ``None`` values mean "flag not given" and are skipped.
    A malformed file or value raises :class:`UserError` naming its source.
    """
    env = os.environ if env is None else env
    cfg_path = Path(path).expanduser() if path else config_path(env)
    cfg = Config(path=cfg_path)
    raw = read_file(cfg_path)
    _apply_file(cfg, raw, cfg_path)
    for name, names in ENV_VARS.items():
        for var in names:
            # An empty variable counts as unset, as shells make "unset" hard to spell inline.
            if env.get(var):
                _set(cfg, name, env[var], f"environment variable {var}")
                cfg.origin[name] = "env"
                break
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        _set(cfg, name, value, f"option for {name}")
        cfg.origin[name] = "flag"
    return cfg


def read_file(path: Path) -> dict[str, Any]:
    """Parse the TOML file; a missing file is an empty config."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from exc


def update_file(updates: Mapping[str, Any], path: Path | None = None) -> Path:
    """Set some keys in the config file (``"mount.poll"`` style for tables), keeping the rest.

    Read-modify-write happens under an exclusive lock so two processes (the hub writing its
    credentials, the CLI saving a default thread) cannot lose each other's update.
    """
    target = Path(path) if path else config_path()
    with _locked(target):
        data = read_file(target)
        for dotted, value in updates.items():
            table = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                table = table.setdefault(part, {})
            if value is None:
                table.pop(leaf, None)
            else:
                table[leaf] = value
        # Validate before writing so a bad value never lands in the file.
        _apply_file(Config(path=target), data, target)
        _write_atomic(target, data)
    return target


def write_hub_credentials(
    api: str, api_key: str, secret: str, config_path: Path | str | None = None
) -> Path:
    """Store a hub account key for the local CLI and mount; returns the secret file's path.

    The secret goes into a 0600 file beside the config file; the config references it by name
    and gets ``api`` and ``api_key``. Called by the hub on its first start.
    """
    target = Path(config_path) if config_path else _default_config_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    secret_path = target.parent / HUB_SECRET_NAME
    write_secret_file(secret_path, secret.strip() + "\n")
    update_file(
        {"api": api, "api_key": api_key, "api_secret_file": HUB_SECRET_NAME}, path=target
    )
    log.info("wrote hub credentials", extra={"fields": {"config": target, "secret": secret_path}})
    return secret_path


def write_secret_file(path: Path, text: str) -> None:
    """Write a secret atomically; the file is 0600 from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp uses 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_secret_file(path: Path, what: str = "secret") -> None:
    """Refuse a secret file that is missing or readable/writable by group or others."""
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise UserError(f"{what} file {path} does not exist") from exc
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} file {path} is not a regular file")
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise UserError(
            f"refusing to use {what} file {path}: mode {mode:04o} lets group/others access it; "
            f"run `chmod 600 {path}`"
        )


def read_secret_file(path: Path, what: str = "secret") -> str:
    """Read a secret file after :func:`check_secret_file`."""
    check_secret_file(path, what)
    try:
        return path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror}") from exc


def parse_size(value: str | int | float) -> int:
    """Parse a byte size: ``1048576``, ``"512M"``, ``"10G"``, ``"1.5GiB"`` (powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return int(value)
    m = _SIZE_RE.match(value)
    if not m:
        raise ValueError(f"not a size: {value!r} (use e.g. 512M, 10G)")
    number, unit = float(m.group(1)), m.group(2).lower()
    return int(number * 1024 ** " kmgtp".index(unit or " "))


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r} (use true or false)")


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)
    if number < 0:
        raise ValueError(f"must not be negative: {value!r}")
    return number


_CONVERT = {
    "insecure": _parse_bool,
    "tls.enabled": _parse_bool,
    "mount.cache_size": parse_size,
    "mount.poll": _parse_float,
    "mount.writeback_delay": _parse_float,
}


def _set(cfg: Config, dotted: str, value: Any, source: str) -> None:
    """Set one field from a source, converting and validating it."""
    convert = _CONVERT.get(dotted, _parse_str)
    try:
        converted = convert(value)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad value for {dotted} in {source}: {exc}") from exc
    if dotted == "api":
        _check_api(converted, source)
    target: Any = cfg
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = getattr(target, part)
    setattr(target, leaf, converted)


def _parse_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _check_api(api: str, source: str) -> None:
    host, sep, port = api.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"bad value for api in {source}: {api!r} is not HOST:PORT")


def _apply_file(cfg: Config, raw: Mapping[str, Any], path: Path) -> None:
    """Apply the file's values. Unknown keys are warned about, not fatal: a config written by
    a newer bucketfs must not stop an older one; a bad value of a known key is fatal."""
    source = f"config file {path}"
    for key, value in raw.items():
        if isinstance(value, dict) and key in ("tls", "mount"):
            for sub, subvalue in value.items():
                dotted = f"{key}.{sub}"
                if dotted not in ENV_VARS:
                    log.warning("ignoring unknown key %s in %s", dotted, source)
                    continue
                _set(cfg, dotted, subvalue, source)
                cfg.origin[dotted] = "file"
        elif key in ENV_VARS and not isinstance(value, dict):
            _set(cfg, key, value, source)
            cfg.origin[key] = "file"
        else:
            log.warning("ignoring unknown key %s in %s", key, source)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``<path>.lock`` for read-modify-write of the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write TOML to a temp file in the same directory, fsync, then rename over the target."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            tomli_w.dump(dict(data), f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # not secret: it names the secret files, never holds them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
