"""Content addressing: CIDs, dag-pb, UnixFS import/read/edit/diff, blockstores and GC.

The byte layouts follow ``/work/shared/protocol/unixfs.md``; the module contracts are in
``docs/architecture.md`` (Layer 2). Nothing here does network I/O.
"""
