"""``-o`` mount options (mount(8) style) and their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bucketfs import metrics
from bucketfs.config import parse_size
from bucketfs.errors import UserError

#: Defaults of the mount issue (config.toml's [mount] section and -o override them).
DEFAULT_POLL = 2.0
DEFAULT_WRITEBACK_DELAY = 1.0
#: Seconds a call to the hub may take before the mount treats the hub as unreachable (a read of
#: data that is not cached then fails with EIO instead of hanging).
DEFAULT_HUB_TIMEOUT = 30.0
#: Size at which a new file starts going up while it is still written (bucketfs.mount.leafpipe).
DEFAULT_EARLY_UPLOAD = 8 * 1024**2


@dataclass
class MountOptions:
    """Everything that shapes one mount."""

    cache_dir: Path | None = None
    cache_size: int = 10 * 1024**3
    poll: float = DEFAULT_POLL
    writeback_delay: float = DEFAULT_WRITEBACK_DELAY
    read_only: bool = False
    allow_other: bool = False
    fsync_local: bool = False
    ttl: float = 1.0
    hub_timeout: float = DEFAULT_HUB_TIMEOUT
    # A new file this big starts sending its leaves while it is written (0 = never).
    early_upload: int = DEFAULT_EARLY_UPLOAD
    watch: bool = True  # follow FS.WatchRoot when the hub offers it
    # Hand big files' leaves to a hub on this host by descriptor (bucketfs.mount.leafsend).
    local_ingest: bool = True
    # Write-only descriptors bypass the kernel's page cache (FOPEN_DIRECT_IO; see BucketFS.open).
    direct_write: bool = True
    metrics: str = ""  # HOST:PORT to serve Prometheus metrics on ("" = off)
    extra: list[str] = field(default_factory=list)  # passed to FUSE as is (e.g. "noatime")

    def fuse_options(self, fsname: str) -> set[str]:
        """The libfuse option set."""
        import pyfuse3

        opts = set(pyfuse3.default_options) | {f"fsname={fsname}", "subtype=bucketfs"}
        if self.read_only:
            opts.add("ro")
        if self.allow_other:
            opts.add("allow_other")
        opts.update(self.extra)
        return opts


_KNOWN_FUSE = {"noatime", "atime", "relatime", "nodev", "nosuid", "dev", "suid", "exec", "noexec",
               "rw", "auto", "noauto", "user", "nouser", "_netdev"}


def parse(text: str | list[str] | None, base: MountOptions | None = None) -> MountOptions:
    """Parse ``ro,allow_other,cache_dir=…,cache_size=…,poll=…,writeback_delay=…,fsync=local``."""
    opts = base or MountOptions()
    items: list[str] = []
    for part in [text] if isinstance(text, str) else (text or []):
        items.extend(p.strip() for p in part.split(",") if p.strip())
    for item in items:
        name, eq, value = item.partition("=")
        try:
            if name == "ro":
                opts.read_only = True
            elif name == "rw":
                opts.read_only = False
            elif name == "allow_other":
                opts.allow_other = True
            elif name == "default_permissions":
                # Always on (pyfuse3's default options): the kernel checks mode bits against
                # the caller. Accepted so fstab lines and `-o default_permissions` from other
                # FUSE mounts work.
                pass
            elif name == "cache_dir" and eq:
                opts.cache_dir = Path(value).expanduser()
            elif name == "cache_size" and eq:
                opts.cache_size = parse_size(value)
            elif name == "poll" and eq:
                opts.poll = _positive(value)
            elif name == "writeback_delay" and eq:
                opts.writeback_delay = _non_negative(value)
            elif name == "ttl" and eq:
                opts.ttl = _non_negative(value)
            elif name == "hub_timeout" and eq:
                opts.hub_timeout = _positive(value)
            elif name == "early_upload" and eq:
                opts.early_upload = parse_size(value)
            elif name == "fsync" and value in ("local", "remote"):
                opts.fsync_local = value == "local"
            elif name == "metrics" and eq:
                metrics.parse_listen(value)  # fail at mount time, not in the daemon
                opts.metrics = value
            elif name == "nowatch":
                opts.watch = False
            elif name == "nolocal_ingest":
                opts.local_ingest = False
            elif name in ("direct_write", "nodirect_write"):
                opts.direct_write = name == "direct_write"
            elif name in _KNOWN_FUSE:
                if name not in ("rw", "auto", "noauto", "user", "nouser", "_netdev"):
                    opts.extra.append(name)
            else:
                raise UserError(
                    f"unknown mount option {item!r} (known: ro, allow_other, default_permissions, "
                    "cache_dir=DIR, "
                    "cache_size=SIZE, poll=SECONDS, writeback_delay=SECONDS, fsync=local, "
                    "hub_timeout=SECONDS, early_upload=SIZE, metrics=HOST:PORT, nowatch, "
                    "nolocal_ingest, direct_write, nodirect_write)",
                    exit_code=2,
                )
        except (ValueError, UserError) as exc:
            if isinstance(exc, UserError):
                raise
            raise UserError(f"bad value in mount option {item!r}: {exc}", exit_code=2) from exc
    return opts


def _positive(value: str) -> float:
    v = float(value)
    if not v > 0:
        raise ValueError("must be > 0")
    return v


def _non_negative(value: str) -> float:
    v = float(value)
    if not v >= 0:
        raise ValueError("must be >= 0")
    return v
