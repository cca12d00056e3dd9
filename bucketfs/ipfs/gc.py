"""Garbage collection: mark every block reachable from the live roots, sweep the rest.

Safe while writers keep adding blocks: the mark start time ``t0`` is taken before anything
is read, and a block is swept only if it was last put before ``t0 - grace_seconds``. Blocks
written during the collection (new DAGs not yet published as a root) therefore survive, and
so do old blocks that a new DAG reuses, because ``put`` of an existing block refreshes its
put time. The grace period covers DAGs being built from blocks put shortly before the mark
began; it should exceed the longest time a writer holds unpublished blocks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from bucketfs.ipfs import dagpb
from bucketfs.ipfs.blockstore import BlockNotFound, Blockstore
from bucketfs.ipfs.cid import CID, DAG_PB, IDENTITY

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GCStats:
    """Counts from one collection."""

    marked: int
    swept: int
    kept_recent: int
    missing: int
    bytes_freed: int


def mark(store: Blockstore, roots: Iterable[CID]) -> tuple[set[CID], int]:
    """The CIDv1 keys of every block reachable from ``roots``; also how many were missing."""
    seen: set[CID] = set()
    missing = 0
    stack = [c.to_v1() for c in roots]
    while stack:
        cid = stack.pop()
        if cid in seen or cid.multihash[0] == IDENTITY:
            continue
        seen.add(cid)
        if cid.codec != DAG_PB:
            continue  # raw leaves have no links; has() is not needed to keep them
        try:
            block = store.get(cid)
        except BlockNotFound:
            missing += 1
            log.warning("gc: block %s is referenced by a live root but missing", cid)
            continue
        for link in dagpb.decode(block).links:
            key = link.cid.to_v1()
            if key not in seen:
                stack.append(key)
    return seen, missing


def collect(store: Blockstore, live_roots: Iterable[CID], grace_seconds: float = 300.0) -> GCStats:
    """Delete every block not reachable from ``live_roots`` and older than the grace period.

    A corrupt block under a live root aborts the collection (``BlockCorrupt``): its links
    cannot be read, so nothing it references could be proven live.
    """
    t0 = time.time()
    cutoff = t0 - grace_seconds
    live, missing = mark(store, live_roots)
    swept = kept = freed = 0
    put_time = getattr(store, "put_time", None)
    delete_if_older = getattr(store, "delete_if_older", None)
    # Lazily: a snapshot of every CID would cost memory proportional to the whole store.
    for cid in store.iter_cids():
        if cid.to_v1() in live:
            continue
        if delete_if_older is not None:
            n = delete_if_older(cid, cutoff)
            if n or not store.has(cid):
                swept += 1
                freed += n
            else:
                kept += 1
            continue
        when = put_time(cid) if put_time is not None else None
        if when is not None and when >= cutoff:
            kept += 1
            continue
        store.delete(cid)
        swept += 1
    log.info("gc: %d live, %d swept (%d bytes), %d recent kept", len(live), swept, freed, kept)
    return GCStats(len(live), swept, kept, missing, freed)
