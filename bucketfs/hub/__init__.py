"""The embedded hub: a server that speaks the Textile buckets gRPC API (plus bucketfs's FS service).

Modules: ``db`` (SQLite), ``store`` (buckets, blocks, locks, GC), ``tree`` (in-memory DAG
edits), ``pushing`` (PushPath/PushPaths ingestion), ``buckets`` and ``fs`` (the servicers),
``fsck`` (consistency check), ``server`` (assembly). Auth lives in ``auth``/``threads``/...
"""
