"""A reference model: random pushes, batch pushes, moves and removes through BucketsClient
against the real hub, compared after every step with a dict of path → bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bucketfs.client import errors
from bucketfs.client.buckets import BucketsClient

pytestmark = pytest.mark.timeout(290)

# File names and directory names never overlap, so a path never needs to be both.
FILES = st.sampled_from(["a", "b", "c.txt"])
DIRS = st.lists(st.sampled_from(["d", "e"]), max_size=2)
PATHS = st.builds(lambda ds, f: "/".join([*ds, f]), DIRS, FILES)
DATA = st.binary(max_size=600_000)  # up to a few 256 KiB blocks


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory):
    from hubproc import running_hub

    with running_hub(tmp_path_factory.mktemp("model-hub"), auth="none") as h:
        yield h.address


def _walk(client: BucketsClient, key: str, path: str = "") -> dict[str, str]:
    """path → cid for every file in the bucket (empty directories contribute nothing)."""
    out: dict[str, str] = {}
    for item in client.list_path(key, path).item.items:
        rel = f"{path}/{item.name}" if path else item.name
        if item.name == ".textileseed" and not path:
            continue
        if item.is_dir:
            out.update(_walk(client, key, rel))
        else:
            out[rel] = item.cid
    return out


def test_client_against_model(shared_hub: str, tmp_path: Path) -> None:
    client = BucketsClient(shared_hub)
    client = client.with_thread(client.threads.new_db())
    counter = [0]

    class Model(RuleBasedStateMachine):
        @initialize()
        def fresh_bucket(self) -> None:
            counter[0] += 1
            self.key = client.create(f"model-{counter[0]}").root.key
            self.files: dict[str, bytes] = {}
            self.cids: dict[str, str] = {}
            self.root = client.root(self.key).path

        @rule(path=PATHS, data=DATA)
        def push(self, path: str, data: bytes) -> None:
            res = client.push_path(self.key, path, io.BytesIO(data), root=self.root)
            self.root = res.root.path
            self.files[path], self.cids[path] = data, res.cid

        @rule(batch=st.dictionaries(PATHS, DATA, min_size=1, max_size=6))
        def push_many(self, batch: dict[str, bytes]) -> None:
            res = client.push_paths(self.key, list(batch.items()), root=self.root)
            self.root = res.root.path
            assert {f.path for f in res.files} == set(batch)
            for f in res.files:
                self.files[f.path], self.cids[f.path] = batch[f.path], f.cid

        @rule(path=PATHS)
        def stale_push_is_refused(self, path: str) -> None:
            stale = "/ipfs/bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
            with pytest.raises(errors.NonFastForward):
                client.push_path(self.key, path, io.BytesIO(b"never"), root=stale)

        @precondition(lambda self: self.files)
        @rule(data=st.data())
        def remove(self, data: st.DataObject) -> None:
            path = data.draw(st.sampled_from(sorted(self.files)))
            self.root = client.remove_path(self.key, path, root=self.root).path
            del self.files[path], self.cids[path]

        @rule(path=PATHS)
        def remove_missing(self, path: str) -> None:
            if path in self.files:
                return
            with pytest.raises(errors.NotFound):
                client.remove_path(self.key, path)

        @precondition(lambda self: self.files)
        @rule(data=st.data(), dest=PATHS)
        def move(self, data: st.DataObject, dest: str) -> None:
            src = data.draw(st.sampled_from(sorted(self.files)))
            if dest in self.files or dest == src:
                return  # mv onto a file or itself: not modelled here
            client.move_path(self.key, src, dest)
            self.root = client.root(self.key).path
            self.files[dest], self.cids[dest] = self.files.pop(src), self.cids.pop(src)

        @invariant()
        def matches_model(self) -> None:
            if not hasattr(self, "key"):
                return
            assert _walk(client, self.key) == self.cids
            assert client.root(self.key).path == self.root

        @precondition(lambda self: self.files)
        @rule(data=st.data())
        def pull(self, data: st.DataObject) -> None:
            path = data.draw(st.sampled_from(sorted(self.files)))
            out = io.BytesIO()
            client.pull_path(self.key, path, out)
            assert out.getvalue() == self.files[path]
            offset = data.draw(st.integers(0, len(self.files[path])))
            assert client.read_file(self.key, path, offset, 1000) == self.files[path][
                offset : offset + 1000
            ]

    try:
        run_state_machine_as_test(
            Model,
            settings=settings(
                max_examples=30,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )
    finally:
        client.close()


def test_push_path_chunk_wire_bytes_are_protobufs() -> None:
    """push_path writes chunk messages itself; they must be the bytes protobuf would send."""
    import os

    from bucketfs.client.buckets import _serialize_push_path, _WireChunk
    from bucketfs.pb import bucketsd_pb2 as pb

    sizes = (0, 1, 127, 128, 16385, 1 << 20)
    for data in (os.urandom(n) for n in sizes):
        assert _serialize_push_path(_WireChunk(data)) == pb.PushPathRequest(
            chunk=data
        ).SerializeToString()
    header = pb.PushPathRequest(header=pb.PushPathRequest.Header(key="k", path="p"))
    assert _serialize_push_path(header) == header.SerializeToString()
