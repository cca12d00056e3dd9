"""One table from every exception the mount core can see to the errno the kernel gets.

pyfuse3's request handlers catch only ``FUSEError``; anything else ends ``pyfuse3.main()`` and
with it the mount (see the field notes). So :mod:`.ops` passes every failure through
:func:`to_errno`, and ``tests/mount/test_mount_errors.py`` checks that every client exception
class has its own row here.
"""

from __future__ import annotations

import errno
import logging
import sqlite3

from bucketfs.client import errors as ce

log = logging.getLogger(__name__)


class FSError(Exception):
    """A failure the core decided on itself, with the errno to report (ENOENT, ENOTEMPTY, ...)."""

    def __init__(self, err: int, message: str = "") -> None:
        super().__init__(message or errno.errorcode.get(err, str(err)))
        self.errno = err


#: Exception class → errno. Looked up along the MRO, so a subclass without a row gets its
#: parent's; the test still demands an explicit row for each client class.
TABLE: dict[type[BaseException], int] = {
    # The path vanished between our listing and the call (someone else removed it).
    ce.NotFound: errno.ENOENT,
    # Retried by the core after a rebase; if it still escapes, the file changed under us —
    # gcsfuse's and mountpoint-s3's choice for "the remote moved on".
    ce.NonFastForward: errno.ESTALE,
    # The hub's rename(2) reports a non-empty target directory this way.
    ce.FailedPrecondition: errno.ENOTEMPTY,
    ce.PermissionDenied: errno.EACCES,
    ce.Unauthenticated: errno.EACCES,
    ce.InvalidArgument: errno.EINVAL,
    ce.AlreadyExists: errno.EEXIST,
    # The hub is down or slow: an I/O error, never a hang (retries happen before this).
    ce.HubUnavailable: errno.EIO,
    # A hub without the bucketfs FS service cannot do this operation at all.
    ce.Unimplemented: errno.ENOTSUP,
    ce.HubError: errno.EIO,
    ce.ClientError: errno.EIO,
    TimeoutError: errno.EIO,
    ValueError: errno.EINVAL,
}


#: FAILED_PRECONDITION texts of the FS service (hub/fs.py) that name a more exact errno.
PRECONDITION_TEXTS = {
    "not a directory": errno.ENOTDIR,
    "is a directory": errno.EISDIR,
    "directory not empty": errno.ENOTEMPTY,
}


def to_errno(exc: BaseException) -> int:
    """The errno for ``exc``; unexpected exceptions are logged with their traceback (EIO)."""
    if isinstance(exc, FSError):
        return exc.errno
    if type(exc) is ce.FailedPrecondition:
        for text, err in PRECONDITION_TEXTS.items():
            if text in exc.message:
                return err
    for cls in type(exc).__mro__:
        if cls in TABLE:
            return TABLE[cls]
    if isinstance(exc, OSError) and exc.errno:
        # Local disk trouble in the cache (ENOSPC above all) is passed through as is.
        return exc.errno
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        # The dirty store's and the journal's SQLite: "database or disk is full". The
        # transaction was rolled back, so nothing stored changed; the writer must know.
        log.warning("cache disk full: %s", exc)
        return errno.ENOSPC
    log.error("unexpected error in a filesystem operation", exc_info=exc)
    return errno.EIO
