"""The reconciler: notices when the bucket root changed elsewhere and adopts it.

It follows the hub's ``FS.WatchRoot`` stream when the hub offers it (a change shows up at once)
and otherwise polls ``Root`` every ``poll`` seconds. Either way it calls
:meth:`BucketFS.check_remote`, which runs a Merkle diff of the old and new roots
(:mod:`bucketfs.ipfs.diff`), re-lists only the cached directories on changed paths, invalidates
only the kernel entries that changed (through the notifier thread, never from a request handler)
and moves conflicting dirty files aside.
"""

from __future__ import annotations

import logging
import threading

from bucketfs.client import errors as ce
from bucketfs.mount.fs import BucketFS

log = logging.getLogger(__name__)


class Reconciler:
    """Background thread keeping the mount's root in step with the bucket."""

    def __init__(self, fs: BucketFS, poll: float = 2.0, watch: bool = True) -> None:
        self.fs = fs
        self.poll = poll
        self.watch = watch
        self._stop = threading.Event()
        self._call = None  # the WatchRoot call, cancelled by stop()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.watch:
                try:
                    self._follow()
                except ce.Unimplemented:
                    log.info("hub has no WatchRoot; polling the root every %.1fs", self.poll)
                    self.watch = False
                except Exception as exc:
                    if not self._stop.is_set():
                        log.info("root watch ended (%s); polling until it can resume", exc)
            self._check()
            self._stop.wait(self.poll)

    def _follow(self) -> None:
        """Block on the WatchRoot stream, adopting each new root as it arrives."""
        self._call = self.fs.remote.watch_root()
        try:
            for path, updated_at in self._call:
                if self._stop.is_set():
                    return
                if path != self.fs.root or updated_at > self.fs.known_updated_at():
                    self._check()
        finally:
            self._call = None

    def _check(self) -> None:
        try:
            if self.fs.check_remote():
                log.info("bucket root changed elsewhere; now %s", self.fs.root)
        except Exception as exc:
            log.warning("checking the bucket root failed: %s", exc)
