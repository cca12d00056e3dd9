"""``api.hubd.pb.APIService``: API keys of the calling account (spec 11).

Only account keys manage keys: a developer's account key manages the developer's keys, and
with ``x-textile-org: NAME`` the org's keys (``CreateKey`` creates the org on first use, with
the caller as its member; bucketfs has no ``CreateOrg``). The secret of a key is returned once,
by ``CreateKey``; ``ListKeys`` leaves it out (Textile's Hub listed secrets again).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import grpc

from bucketfs.hub.accounts import KEY_TYPE_NAMES, APIKey
from bucketfs.hub.auth import Caller, caller
from bucketfs.hub.errors import HubError, grpc_errors
from bucketfs.pb import hubd_pb2, hubd_pb2_grpc

if TYPE_CHECKING:
    from bucketfs.hub.auth import HubAuth

log = logging.getLogger(__name__)

LOCAL_MODE = "this hub runs with --auth none and has no API keys"
ACCOUNT_KEY_REQUIRED = "an account key is required to manage API keys"


class HubdServicer(hubd_pb2_grpc.APIServiceServicer):
    """CreateKey, ListKeys, InvalidateKey."""

    def __init__(self, auth: HubAuth) -> None:
        self.auth = auth

    def _account(self, who: Caller) -> int:
        if who.local:
            raise HubError(grpc.StatusCode.FAILED_PRECONDITION, LOCAL_MODE)
        if who.account is None or who.is_user_key:
            raise HubError(grpc.StatusCode.PERMISSION_DENIED, ACCOUNT_KEY_REQUIRED)
        return who.account

    def _info(self, key: APIKey, with_secret: bool) -> hubd_pb2.KeyInfo:
        return hubd_pb2.KeyInfo(
            key=key.key,
            secret=key.secret if with_secret else "",
            type=key.type,
            valid=key.valid,
            threads=self.auth.threads.count_for_key(key.key),
            secure=key.secure,
        )

    @grpc_errors
    def CreateKey(  # noqa: N802 - gRPC method name
        self, request: hubd_pb2.CreateKeyRequest, context: grpc.ServicerContext
    ) -> hubd_pb2.CreateKeyResponse:
        """Issue a key of the requested type for the calling account (or org)."""
        account = self._account(caller(context))
        if request.type not in KEY_TYPE_NAMES:
            raise HubError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "key type must be KEY_TYPE_ACCOUNT or KEY_TYPE_USER",
            )
        key = self.auth.accounts.create_key(account, request.type, secure=request.secure)
        return hubd_pb2.CreateKeyResponse(key_info=self._info(key, with_secret=True))

    @grpc_errors
    def ListKeys(  # noqa: N802
        self, request: hubd_pb2.ListKeysRequest, context: grpc.ServicerContext
    ) -> hubd_pb2.ListKeysResponse:
        """The account's keys, without secrets."""
        account = self._account(caller(context))
        return hubd_pb2.ListKeysResponse(
            list=[self._info(k, with_secret=False) for k in self.auth.accounts.list_keys(account)]
        )

    @grpc_errors
    def InvalidateKey(  # noqa: N802
        self, request: hubd_pb2.InvalidateKeyRequest, context: grpc.ServicerContext
    ) -> hubd_pb2.InvalidateKeyResponse:
        """Make one of the account's keys unusable from now on."""
        account = self._account(caller(context))
        self.auth.accounts.invalidate_key(account, request.key)
        return hubd_pb2.InvalidateKeyResponse()


def add_hubd_service(server: grpc.Server, auth: HubAuth) -> None:
    """Register ``api.hubd.pb.APIService`` on ``server``."""
    hubd_pb2_grpc.add_APIServiceServicer_to_server(HubdServicer(auth), server)
