"""The uploader: a background thread that pushes due dirty files to the bucket.

A file is due ``writeback_delay`` seconds after its last close (``BucketFS.release``); fsync
uploads in the calling thread instead. Small files that are due at the same moment go up
together in one ``PushPaths`` stream (:func:`batches`): one new root for all of them.
Pending namespace operations (the journal, :mod:`.oplog`) go to the hub before any content:
:meth:`BucketFS.upload` replays them first, and this thread replays them on its own when no
file is due. A failure (hub unreachable, hub error) is retried with a capped doubling delay, so
a hub that comes back gets everything without anyone asking; and as soon as any call (the
reconciler polls every few seconds) finds the hub answering again, the delays are forgotten
and everything is retried at once. The queues themselves are persisted (dirty store,
journal); the thread also saves the listing snapshot now and then, so that a mount can start
while the hub is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from bucketfs.client import errors as ce
from bucketfs.mount.fs import BATCH_MAX_BYTES, BATCH_MAX_FILE, BATCH_MAX_FILES, BucketFS
from bucketfs.mount.writeback import Record

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
MIN_PASS = 0.1  # seconds between the starts of two passes over the dirty files
SNAPSHOT_EVERY = 2.0  # seconds between saves of the listing snapshot (when it changed)


def batches(recs: list[Record]) -> Iterator[list[Record]]:
    """``recs`` in upload order: the small files together in PushPaths batches (bounded in
    count and bytes) — one stream and one new root instead of one PushPath each — then each
    large file on its own."""
    small = [r for r in recs if r.size <= BATCH_MAX_FILE]
    batch: list[Record] = []
    size = 0
    for rec in small:
        if batch and (len(batch) >= BATCH_MAX_FILES or size + rec.size > BATCH_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(rec)
        size += rec.size
    if batch:
        yield batch
    for rec in recs:
        if rec.size > BATCH_MAX_FILE:
            yield [rec]


class Uploader:
    """Runs :meth:`BucketFS.upload` for due files; :meth:`flush_all` drains everything."""

    def __init__(self, fs: BucketFS) -> None:
        self.fs = fs
        self._stop = threading.Event()
        self._failures: dict[str, int] = {}
        self._op_failures = 0
        self._ops_after = 0.0  # monotonic time before which the journal is not retried
        self._snap_at = 0.0
        self._hub_back = threading.Event()
        fs.remote.on_back = self._on_hub_back
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (what is still dirty stays persisted for the next mount)."""
        self._stop.set()
        with self.fs.work:
            self.fs.work.notify_all()
        self._thread.join(timeout=30)

    def _on_hub_back(self) -> None:
        # Runs in whichever thread got the answer: only log, flag it and wake the uploader.
        # Logged at the level of the failures it ends, so the log shows the outage's end.
        log.warning("the hub answers again")
        self._hub_back.set()
        with self.fs.work:
            self.fs.work.notify_all()

    def _forget_backoff(self) -> None:
        """The hub answers again: retry the journal and every failed upload now."""
        self._hub_back.clear()
        if not self._failures and not self._op_failures:
            return
        log.info("retrying %d failed uploads%s now", len(self._failures),
                 " and the namespace journal" if self._op_failures else "")
        self.fs.retry_now(list(self._failures))
        self._failures.clear()
        self._op_failures = 0
        self._ops_after = 0.0

    def _run(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            if self._hub_back.is_set():
                self._forget_backoff()
            # Every close wakes this thread, and a pass scans every dirty file: while many
            # small files are created, passes back to back cost O(files²) of CPU taken from the
            # creating threads. At most one pass per MIN_PASS (a close-to-bucket delay of that
            # much at worst).
            gap = time.monotonic() - last
            if gap < MIN_PASS:
                self._stop.wait(MIN_PASS - gap)
            last = now = time.monotonic()
            if self.fs.pending_ops() and now >= self._ops_after:
                self._try_ops()
            ready, nxt = self.fs.due_uploads(time.monotonic())
            for batch in batches(ready):
                if self._stop.is_set():
                    return
                self._try_many(batch)
            self._snapshot()
            timeout = 1.0 if nxt is None else max(0.01, min(1.0, nxt - time.monotonic()))
            if self.fs.pending_ops():
                timeout = max(0.01, min(timeout, self._ops_after - time.monotonic()))
            if not ready:
                with self.fs.work:
                    self.fs.work.wait(timeout)

    def _snapshot(self) -> None:
        now = time.monotonic()
        if now - self._snap_at < SNAPSHOT_EVERY:
            return
        self._snap_at = now
        try:
            self.fs.save_snapshot()
        except Exception as exc:  # the snapshot only helps an offline start; keep serving
            log.warning("could not save the listing snapshot: %s", exc)

    def _try_ops(self) -> bool:
        """Replay the journal; on failure, back off (capped doubling) before the next try."""
        try:
            self.fs.replay()
        except Exception as exc:
            self._op_failures += 1
            delay = min(MAX_BACKOFF, 0.5 * 2 ** (self._op_failures - 1))
            self._ops_after = time.monotonic() + delay
            self.fs.stats.upload_errors += 1
            self.fs.stats.last_error = f"namespace operations: {exc}"
            log.warning("replaying %d namespace operations failed (attempt %d, retry in "
                        "%.1fs): %s", len(self.fs.pending_ops()), self._op_failures, delay, exc)
            return False
        self._op_failures = 0
        self._ops_after = 0.0
        return True

    def _try(self, rec: Record) -> bool:
        return self._try_many([rec])

    def _try_many(self, recs: list[Record]) -> bool:
        """Upload ``recs`` (one PushPath, or one PushPaths stream for several); on failure,
        back off each of them (capped doubling)."""
        try:
            if len(recs) == 1:
                self.fs.upload(recs[0])
            else:
                self.fs.upload_many(recs)
        except Exception as exc:
            if len(recs) > 1 and not isinstance(exc, ce.HubUnavailable):
                # The hub refused the stream: maybe because of one file. Each on its own, so
                # that one bad file cannot hold back the others.
                log.warning("batch upload of %d files failed (%s); uploading them one by one",
                            len(recs), exc)
                return all([self._try_many([rec]) for rec in recs])
            self.fs.stats.upload_errors += 1
            what = recs[0].path if len(recs) == 1 else f"{len(recs)} files ({recs[0].path}, …)"
            self.fs.stats.last_error = f"{what}: {exc}"
            for rec in recs:
                n = self._failures.get(rec.file_id, 0) + 1
                self._failures[rec.file_id] = n
                delay = min(MAX_BACKOFF, 0.5 * 2 ** (n - 1))
                self.fs.retry_later(rec, delay)
            log.warning("upload of %s failed (attempt %d): %s", what,
                        self._failures.get(recs[0].file_id, 0), exc)
            return False
        for rec in recs:
            self._failures.pop(rec.file_id, None)
        return True

    def drain(self) -> Iterator[dict]:
        """Upload every dirty file now (open or not), yielding a status after each attempt,
        until nothing is dirty. Failures are retried with backoff, forever: the caller stops
        iterating to give up."""
        backoff = 0.5
        while True:
            recs = self.fs.dirty_records()
            yield self.fs.status()
            if not recs and not self.fs.pending_ops():
                return
            ok = True
            if self.fs.pending_ops():
                ok = self._try_ops()
                yield self.fs.status()
            for batch in batches(recs) if ok else []:
                ok = self._try_many(batch) and ok
                yield self.fs.status()
            if not ok:
                time.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)

    def flush_all(self, deadline: float | None = None) -> bool:
        """:meth:`drain` until done (True) or until ``deadline`` (monotonic; False)."""
        for _status in self.drain():
            if deadline is not None and time.monotonic() > deadline:
                return not self.fs.dirty_records() and not self.fs.pending_ops()
        return True
