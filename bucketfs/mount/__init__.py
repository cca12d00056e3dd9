"""``bucketfs mount``: a bucket as a local directory (pyfuse3 on trio).

The layers inside, each testable on its own (see docs/semantics.md for the contract):

- :mod:`.remote` — the blocking calls to the hub the mount needs;
- :mod:`.inodes` — inode numbers ↔ paths with kernel lookup counts;
- :mod:`.readcache` — content-addressed, size-bounded read cache with read-ahead;
- :mod:`.writeback` — the persistent dirty-file store (records + 256 KiB chunks);
- :mod:`.fs` — :class:`~.fs.BucketFS`, the core with plain-value methods;
- :mod:`.uploader`, :mod:`.reconciler` — the background threads;
- :mod:`.ops` — the pyfuse3 adapter that only translates; :mod:`.errors` — the errno table;
- :mod:`.control`, :mod:`.daemon` — the control socket and the mount process.
"""
