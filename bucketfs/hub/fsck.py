"""Consistency check of a hub data dir: every block reachable from every bucket root is present
and matches its CID, and the metadata rows belong to existing buckets.

Run it on a stopped hub (``python -m bucketfs.hub.fsck DATA_DIR``; exit 0 when clean) or from
tests after a crash. Each block is read once however many buckets share it; memory grows with
the number of distinct blocks (one CID each), never with their size.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bucketfs.hub.db import Database
from bucketfs.hub.private import key_bytes, live_nodes
from bucketfs.ipfs import dagpb
from bucketfs.ipfs.blockstore import BlockCorrupt, BlockNotFound, FSBlockstore
from bucketfs.ipfs.cid import CID, DAG_PB, IDENTITY, InvalidCID

log = logging.getLogger(__name__)


@dataclass
class FsckReport:
    """What the check found; ``ok`` when ``problems`` is empty."""

    buckets: int = 0
    blocks: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dag(
    store: FSBlockstore, root: CID, seen: set[CID], report: FsckReport, what: str
) -> None:
    """Verify every block under ``root`` not yet in ``seen``; append problems to ``report``."""
    stack = [root]
    while stack:
        cid = stack.pop()
        key = cid.to_v1()
        if key in seen or cid.multihash[0] == IDENTITY:
            continue
        seen.add(key)
        try:
            block = store.get(cid)  # get() verifies the hash
        except BlockNotFound:
            report.problems.append(f"{what}: block {cid} is missing")
            continue
        except BlockCorrupt:
            report.problems.append(f"{what}: block {cid} does not match its CID")
            continue
        report.blocks += 1
        if cid.codec != DAG_PB:
            continue
        try:
            node = dagpb.decode(block)
        except ValueError as exc:
            report.problems.append(f"{what}: block {cid} is not valid dag-pb: {exc}")
            continue
        stack.extend(link.cid for link in node.links)


def fsck(data_dir: Path) -> FsckReport:
    """Check the hub data in ``data_dir`` (the layout HubStore uses)."""
    data_dir = Path(data_dir)
    db = Database(data_dir / "hub.db")
    store = FSBlockstore(data_dir / "blockstore", fsync=False)
    report = FsckReport()
    seen: set[CID] = set()
    try:
        conn = db.conn()
        rows = conn.execute("SELECT key, root, link_key FROM buckets ORDER BY key").fetchall()
        for key, root, link_key in rows:
            report.buckets += 1
            try:
                cid = CID.decode(root)
            except InvalidCID as exc:
                report.problems.append(f"bucket {key}: root {root!r} is not a CID: {exc}")
                continue
            if link_key:
                # A private bucket's directory nodes are encrypted and have no links.
                for node in live_nodes(store, cid, key_bytes(link_key)):
                    check_dag(store, node, seen, report, f"bucket {key}")
            else:
                check_dag(store, cid, seen, report, f"bucket {key}")
        for table in ("path_meta", "attrs"):
            orphans = conn.execute(
                f"SELECT DISTINCT bucket FROM {table} WHERE bucket NOT IN (SELECT key FROM buckets)"
            ).fetchall()
            for (bucket,) in orphans:
                report.problems.append(f"{table} rows for missing bucket {bucket}")
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            report.problems.append(f"sqlite integrity_check: {integrity}")
    finally:
        db.close()
        store.close()
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m bucketfs.hub.fsck DATA_DIR``."""
    p = argparse.ArgumentParser(prog="python -m bucketfs.hub.fsck", description=__doc__)
    p.add_argument("data_dir", type=Path)
    args = p.parse_args(argv)
    if not (args.data_dir / "hub.db").exists():
        print(f"bucketfs: no hub database in {args.data_dir}", file=sys.stderr)
        return 2
    report = fsck(args.data_dir)
    for problem in report.problems:
        print(problem)
    print(
        f"{report.buckets} buckets, {report.blocks} blocks checked, {len(report.problems)} problems"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
