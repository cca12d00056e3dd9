"""Logging set-up: structured ``key=value`` lines to stderr, or to the journal under systemd.

Under systemd (``JOURNAL_STREAM`` is set) lines carry a ``<N>`` syslog priority prefix so the
journal records the level, and no timestamp since the journal adds its own.
"""

from __future__ import annotations

import logging
import os
import sys
import time

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class StructuredFormatter(logging.Formatter):
    """Formats records as ``ts level logger msg key=value...``.

    Extra fields passed as ``logger.info("...", extra={"fields": {...}})`` are appended as
    ``key=value`` pairs so log lines can be grepped and parsed.
    """

    def __init__(self, journal: bool) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        fields = getattr(record, "fields", None) or {}
        parts = [f"level={record.levelname.lower()}", f"logger={record.name}", f"msg={_q(msg)}"]
        parts += [f"{k}={_q(str(v))}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if self.journal:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"ts={ts}.{int(record.msecs):03d}Z {line}"


def _q(value: str) -> str:
    """Quote a value when it holds spaces, quotes or '=' so lines stay parseable."""
    if value and not any(c in value for c in ' "=\n\t'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def setup(verbosity: int = 0, stream=None) -> None:
    """Configure the root logger.

    ``verbosity``: -1 for ``-q`` (errors only), 0 warnings, 1 (``-v``) info, 2+ debug.
    """
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(StructuredFormatter(journal=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # grpc and hypothesis are chatty at debug; keep them at warning unless asked twice.
    for noisy in ("grpc", "hpack", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbosity < 3 else logging.DEBUG)
