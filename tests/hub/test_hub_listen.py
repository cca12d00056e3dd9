"""threads.pb.API/Listen on bucket changes (spec 8.6): CREATE, SAVE and DELETE events with the
instance JSON, filtered by instance ID and action."""

from __future__ import annotations

import json
import queue
import threading

import grpc
import pytest
from hub_helpers import TIMEOUT, Api

from bucketfs import keys
from bucketfs.pb import bucketsd_pb2 as pb
from bucketfs.pb import threads_pb2, threads_pb2_grpc

pytestmark = pytest.mark.timeout(120)

Filter = threads_pb2.ListenRequest.Filter


def _listen(api: Api, filters: list[Filter]) -> tuple[queue.Queue, object]:
    req = threads_pb2.ListenRequest(dbID=keys.parse_thread_id(api.thread), filters=filters)
    stream = threads_pb2_grpc.APIStub(api.channel).Listen(req, metadata=api.md, timeout=TIMEOUT)
    out: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for ev in stream:
                out.put(ev)
        except grpc.RpcError as exc:
            out.put(exc)

    threading.Thread(target=pump, daemon=True).start()
    return out, stream


def _until_live(events: queue.Queue, poke) -> None:
    """Poke until the stream delivers an event (the server subscribes asynchronously), then
    drop what arrived."""
    for _ in range(100):
        poke()
        try:
            events.get(timeout=0.5)
            break
        except queue.Empty:
            continue
    else:
        raise AssertionError("Listen never delivered an event")
    while True:
        try:
            events.get(timeout=0.5)
        except queue.Empty:
            return


def test_listen_reports_bucket_changes(api: Api) -> None:
    warm = api.create("warm-up").root.key
    everything, all_stream = _listen(api, [])
    _until_live(everything, lambda: api.push(warm, "poke", b"p"))
    key = api.create("watched").root.key
    created = everything.get(timeout=TIMEOUT)
    assert created.action == threads_pb2.ListenReply.CREATE and created.instanceID == key
    assert created.collectionName == "buckets"
    assert json.loads(created.instance)["name"] == "watched"

    saves, save_stream = _listen(
        api, [Filter(instanceID=key, action=threads_pb2.ListenRequest.Filter.SAVE)]
    )
    _until_live(saves, lambda: api.push(key, "poke", b"p"))
    other = api.create("other").root.key  # filtered out of `saves`
    api.push(other, "x", b"x")
    api.push(key, "f", b"data")
    ev = saves.get(timeout=TIMEOUT)
    assert ev.action == threads_pb2.ListenReply.SAVE and ev.instanceID == key
    doc = json.loads(ev.instance)
    assert doc["_id"] == key and doc["path"] == api.root(key).path and "f" in doc["metadata"]

    api.call("Remove", pb.RemoveRequest(key=key))
    seen = []
    while True:
        ev = everything.get(timeout=TIMEOUT)
        seen.append((ev.instanceID, ev.action))
        if ev.action == threads_pb2.ListenReply.DELETE:
            break
    assert seen[-1] == (key, threads_pb2.ListenReply.DELETE)
    assert (other, threads_pb2.ListenReply.CREATE) in seen
    all_stream.cancel()
    save_stream.cancel()


def test_listen_rejects_bad_filter(api: Api) -> None:
    out, stream = _listen(api, [Filter(action=7)])
    err = out.get(timeout=TIMEOUT)
    assert isinstance(err, grpc.RpcError)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "invalid filter action 7"
