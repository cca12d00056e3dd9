"""gRPC status → client exception: one table, every class reachable, causes kept."""

from __future__ import annotations

import logging
import socket

import grpc
import pytest

from bucketfs.client import errors
from bucketfs.client.buckets import BucketsClient
from bucketfs.client.channel import RetryPolicy

pytestmark = pytest.mark.timeout(60)

S = grpc.StatusCode


@pytest.mark.parametrize(
    "code, message, cls",
    [
        (S.FAILED_PRECONDITION, "update is non-fast-forward", errors.NonFastForward),
        (S.FAILED_PRECONDITION, "DB not empty (delete buckets first)", errors.FailedPrecondition),
        (S.NOT_FOUND, "Thread not found", errors.NotFound),
        (S.UNKNOWN, 'no link named "x" under bafy', errors.NotFound),
        (S.UNKNOWN, "could not resolve path: a/b", errors.NotFound),
        (S.UNKNOWN, "remove: no link by that name", errors.NotFound),
        (S.UNKNOWN, "app denied net record body: permission denied", errors.PermissionDenied),
        (S.UNKNOWN, "paths containing .textileseed are not allowed", errors.HubError),
        (S.PERMISSION_DENIED, "User does not own thread", errors.PermissionDenied),
        (S.UNAUTHENTICATED, "Bad API key signature", errors.Unauthenticated),
        (S.INVALID_ARGUMENT, "Key is required", errors.InvalidArgument),
        (S.ALREADY_EXISTS, "exists", errors.AlreadyExists),
        (S.UNAVAILABLE, "connection refused", errors.HubUnavailable),
        (S.DEADLINE_EXCEEDED, "Deadline Exceeded", errors.HubUnavailable),
        (S.UNIMPLEMENTED, "Method not found", errors.Unimplemented),
        (S.INTERNAL, "boom", errors.HubError),
    ],
)
def test_classify(code: grpc.StatusCode, message: str, cls: type) -> None:
    assert errors.classify(code, message) is cls


def test_every_error_class_has_a_mapping() -> None:
    """Each ClientError subclass is produced by the table (or the message refinements)."""
    produced = set(errors.CODE_TABLE.values()) | {errors.NonFastForward, errors.HubError}
    declared = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, errors.ClientError)
        and obj is not errors.ClientError
    }
    assert declared == produced


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: nothing listens there


def test_dead_port_is_hub_unavailable_after_bounded_retries(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="bucketfs.client.channel")
    policy = RetryPolicy(attempts=3, initial=0.05, cap=0.1)
    with BucketsClient(f"127.0.0.1:{_dead_port()}", retry=policy, timeout=5) as client:
        client = client.with_thread("bafkthread")
        with pytest.raises(errors.HubUnavailable) as info:
            client.list()
        assert isinstance(info.value.__cause__, grpc.RpcError)
        assert info.value.code == S.UNAVAILABLE
    retries = [r for r in caplog.records if r.getMessage() == "hub unavailable; retrying"]
    assert len(retries) == policy.attempts - 1  # retried, and then gave up


def test_dead_port_push_from_unseekable_stream_fails_clearly(tmp_path) -> None:
    policy = RetryPolicy(attempts=2, initial=0.01, cap=0.02)

    class Unseekable:
        def __init__(self) -> None:
            self.left = 3

        def read(self, n: int) -> bytes:
            self.left -= 1
            return b"x" * 100 if self.left > 0 else b""

        def seekable(self) -> bool:
            return False

    with BucketsClient(f"127.0.0.1:{_dead_port()}", retry=policy, timeout=5) as client:
        with pytest.raises(errors.HubUnavailable):
            client.push_path("bafzbkey", "a.txt", Unseekable())
