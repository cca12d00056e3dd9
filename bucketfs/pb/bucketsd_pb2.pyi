from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PathAccessRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PATH_ACCESS_ROLE_UNSPECIFIED: _ClassVar[PathAccessRole]
    PATH_ACCESS_ROLE_READER: _ClassVar[PathAccessRole]
    PATH_ACCESS_ROLE_WRITER: _ClassVar[PathAccessRole]
    PATH_ACCESS_ROLE_ADMIN: _ClassVar[PathAccessRole]

class ArchiveStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHIVE_STATUS_UNSPECIFIED: _ClassVar[ArchiveStatus]
    ARCHIVE_STATUS_QUEUED: _ClassVar[ArchiveStatus]
    ARCHIVE_STATUS_EXECUTING: _ClassVar[ArchiveStatus]
    ARCHIVE_STATUS_FAILED: _ClassVar[ArchiveStatus]
    ARCHIVE_STATUS_CANCELED: _ClassVar[ArchiveStatus]
    ARCHIVE_STATUS_SUCCESS: _ClassVar[ArchiveStatus]
PATH_ACCESS_ROLE_UNSPECIFIED: PathAccessRole
PATH_ACCESS_ROLE_READER: PathAccessRole
PATH_ACCESS_ROLE_WRITER: PathAccessRole
PATH_ACCESS_ROLE_ADMIN: PathAccessRole
ARCHIVE_STATUS_UNSPECIFIED: ArchiveStatus
ARCHIVE_STATUS_QUEUED: ArchiveStatus
ARCHIVE_STATUS_EXECUTING: ArchiveStatus
ARCHIVE_STATUS_FAILED: ArchiveStatus
ARCHIVE_STATUS_CANCELED: ArchiveStatus
ARCHIVE_STATUS_SUCCESS: ArchiveStatus

class Metadata(_message.Message):
    __slots__ = ("roles", "updated_at", "key")
    class RolesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PathAccessRole
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PathAccessRole, str]] = ...) -> None: ...
    ROLES_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    roles: _containers.ScalarMap[str, PathAccessRole]
    updated_at: int
    key: str
    def __init__(self, roles: _Optional[_Mapping[str, PathAccessRole]] = ..., updated_at: _Optional[int] = ..., key: _Optional[str] = ...) -> None: ...

class Root(_message.Message):
    __slots__ = ("key", "name", "path", "created_at", "updated_at", "thread", "owner", "version", "metadata", "link_key", "path_metadata", "archives")
    class PathMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Metadata
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Metadata, _Mapping]] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    THREAD_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    LINK_KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_METADATA_FIELD_NUMBER: _ClassVar[int]
    ARCHIVES_FIELD_NUMBER: _ClassVar[int]
    key: str
    name: str
    path: str
    created_at: int
    updated_at: int
    thread: str
    owner: str
    version: int
    metadata: Metadata
    link_key: str
    path_metadata: _containers.MessageMap[str, Metadata]
    archives: Archives
    def __init__(self, key: _Optional[str] = ..., name: _Optional[str] = ..., path: _Optional[str] = ..., created_at: _Optional[int] = ..., updated_at: _Optional[int] = ..., thread: _Optional[str] = ..., owner: _Optional[str] = ..., version: _Optional[int] = ..., metadata: _Optional[_Union[Metadata, _Mapping]] = ..., link_key: _Optional[str] = ..., path_metadata: _Optional[_Mapping[str, Metadata]] = ..., archives: _Optional[_Union[Archives, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("roots",)
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    roots: _containers.RepeatedCompositeFieldContainer[Root]
    def __init__(self, roots: _Optional[_Iterable[_Union[Root, _Mapping]]] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("name", "bootstrap_cid", "private", "unfreeze")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_CID_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    UNFREEZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    bootstrap_cid: str
    private: bool
    unfreeze: bool
    def __init__(self, name: _Optional[str] = ..., bootstrap_cid: _Optional[str] = ..., private: _Optional[bool] = ..., unfreeze: _Optional[bool] = ...) -> None: ...

class CreateResponse(_message.Message):
    __slots__ = ("root", "links", "seed", "seed_cid", "pinned", "retrieval_id")
    ROOT_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SEED_CID_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_ID_FIELD_NUMBER: _ClassVar[int]
    root: Root
    links: LinksResponse
    seed: bytes
    seed_cid: str
    pinned: int
    retrieval_id: str
    def __init__(self, root: _Optional[_Union[Root, _Mapping]] = ..., links: _Optional[_Union[LinksResponse, _Mapping]] = ..., seed: _Optional[bytes] = ..., seed_cid: _Optional[str] = ..., pinned: _Optional[int] = ..., retrieval_id: _Optional[str] = ...) -> None: ...

class RootRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class RootResponse(_message.Message):
    __slots__ = ("root",)
    ROOT_FIELD_NUMBER: _ClassVar[int]
    root: Root
    def __init__(self, root: _Optional[_Union[Root, _Mapping]] = ...) -> None: ...

class LinksRequest(_message.Message):
    __slots__ = ("key", "path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class LinksResponse(_message.Message):
    __slots__ = ("url", "www", "ipns")
    URL_FIELD_NUMBER: _ClassVar[int]
    WWW_FIELD_NUMBER: _ClassVar[int]
    IPNS_FIELD_NUMBER: _ClassVar[int]
    url: str
    www: str
    ipns: str
    def __init__(self, url: _Optional[str] = ..., www: _Optional[str] = ..., ipns: _Optional[str] = ...) -> None: ...

class ListPathRequest(_message.Message):
    __slots__ = ("key", "path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ListPathResponse(_message.Message):
    __slots__ = ("item", "root")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    item: PathItem
    root: Root
    def __init__(self, item: _Optional[_Union[PathItem, _Mapping]] = ..., root: _Optional[_Union[Root, _Mapping]] = ...) -> None: ...

class PathItem(_message.Message):
    __slots__ = ("cid", "name", "path", "size", "is_dir", "items", "items_count", "metadata", "file_size", "mode", "mtime", "symlink_target", "is_symlink")
    CID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    IS_DIR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_COUNT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    IS_SYMLINK_FIELD_NUMBER: _ClassVar[int]
    cid: str
    name: str
    path: str
    size: int
    is_dir: bool
    items: _containers.RepeatedCompositeFieldContainer[PathItem]
    items_count: int
    metadata: Metadata
    file_size: int
    mode: int
    mtime: int
    symlink_target: str
    is_symlink: bool
    def __init__(self, cid: _Optional[str] = ..., name: _Optional[str] = ..., path: _Optional[str] = ..., size: _Optional[int] = ..., is_dir: _Optional[bool] = ..., items: _Optional[_Iterable[_Union[PathItem, _Mapping]]] = ..., items_count: _Optional[int] = ..., metadata: _Optional[_Union[Metadata, _Mapping]] = ..., file_size: _Optional[int] = ..., mode: _Optional[int] = ..., mtime: _Optional[int] = ..., symlink_target: _Optional[str] = ..., is_symlink: _Optional[bool] = ...) -> None: ...

class ListIpfsPathRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class ListIpfsPathResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: PathItem
    def __init__(self, item: _Optional[_Union[PathItem, _Mapping]] = ...) -> None: ...

class PushPathRequest(_message.Message):
    __slots__ = ("header", "chunk")
    class Header(_message.Message):
        __slots__ = ("key", "path", "root", "mode", "mtime", "light_root")
        KEY_FIELD_NUMBER: _ClassVar[int]
        PATH_FIELD_NUMBER: _ClassVar[int]
        ROOT_FIELD_NUMBER: _ClassVar[int]
        MODE_FIELD_NUMBER: _ClassVar[int]
        MTIME_FIELD_NUMBER: _ClassVar[int]
        LIGHT_ROOT_FIELD_NUMBER: _ClassVar[int]
        key: str
        path: str
        root: str
        mode: int
        mtime: int
        light_root: bool
        def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., root: _Optional[str] = ..., mode: _Optional[int] = ..., mtime: _Optional[int] = ..., light_root: _Optional[bool] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: PushPathRequest.Header
    chunk: bytes
    def __init__(self, header: _Optional[_Union[PushPathRequest.Header, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class PushPathResponse(_message.Message):
    __slots__ = ("event",)
    class Event(_message.Message):
        __slots__ = ("name", "path", "bytes", "size", "root", "pinned")
        NAME_FIELD_NUMBER: _ClassVar[int]
        PATH_FIELD_NUMBER: _ClassVar[int]
        BYTES_FIELD_NUMBER: _ClassVar[int]
        SIZE_FIELD_NUMBER: _ClassVar[int]
        ROOT_FIELD_NUMBER: _ClassVar[int]
        PINNED_FIELD_NUMBER: _ClassVar[int]
        name: str
        path: str
        bytes: int
        size: str
        root: Root
        pinned: int
        def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., bytes: _Optional[int] = ..., size: _Optional[str] = ..., root: _Optional[_Union[Root, _Mapping]] = ..., pinned: _Optional[int] = ...) -> None: ...
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: PushPathResponse.Event
    def __init__(self, event: _Optional[_Union[PushPathResponse.Event, _Mapping]] = ...) -> None: ...

class PushPathsRequest(_message.Message):
    __slots__ = ("header", "chunk")
    class Header(_message.Message):
        __slots__ = ("key", "root", "paths")
        KEY_FIELD_NUMBER: _ClassVar[int]
        ROOT_FIELD_NUMBER: _ClassVar[int]
        PATHS_FIELD_NUMBER: _ClassVar[int]
        key: str
        root: str
        paths: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, key: _Optional[str] = ..., root: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ...) -> None: ...
    class Chunk(_message.Message):
        __slots__ = ("path", "data", "mode", "mtime")
        PATH_FIELD_NUMBER: _ClassVar[int]
        DATA_FIELD_NUMBER: _ClassVar[int]
        MODE_FIELD_NUMBER: _ClassVar[int]
        MTIME_FIELD_NUMBER: _ClassVar[int]
        path: str
        data: bytes
        mode: int
        mtime: int
        def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ..., mode: _Optional[int] = ..., mtime: _Optional[int] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: PushPathsRequest.Header
    chunk: PushPathsRequest.Chunk
    def __init__(self, header: _Optional[_Union[PushPathsRequest.Header, _Mapping]] = ..., chunk: _Optional[_Union[PushPathsRequest.Chunk, _Mapping]] = ...) -> None: ...

class PushPathsResponse(_message.Message):
    __slots__ = ("path", "cid", "size", "pinned", "root")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    path: str
    cid: str
    size: int
    pinned: int
    root: Root
    def __init__(self, path: _Optional[str] = ..., cid: _Optional[str] = ..., size: _Optional[int] = ..., pinned: _Optional[int] = ..., root: _Optional[_Union[Root, _Mapping]] = ...) -> None: ...

class PullPathRequest(_message.Message):
    __slots__ = ("key", "path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class PullPathResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class PullIpfsPathRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class PullIpfsPathResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class SetPathRequest(_message.Message):
    __slots__ = ("key", "path", "cid")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    cid: str
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., cid: _Optional[str] = ...) -> None: ...

class SetPathResponse(_message.Message):
    __slots__ = ("pinned",)
    PINNED_FIELD_NUMBER: _ClassVar[int]
    pinned: int
    def __init__(self, pinned: _Optional[int] = ...) -> None: ...

class MovePathRequest(_message.Message):
    __slots__ = ("key", "from_path", "to_path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    FROM_PATH_FIELD_NUMBER: _ClassVar[int]
    TO_PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    from_path: str
    to_path: str
    def __init__(self, key: _Optional[str] = ..., from_path: _Optional[str] = ..., to_path: _Optional[str] = ...) -> None: ...

class MovePathResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ("pinned",)
    PINNED_FIELD_NUMBER: _ClassVar[int]
    pinned: int
    def __init__(self, pinned: _Optional[int] = ...) -> None: ...

class RemovePathRequest(_message.Message):
    __slots__ = ("key", "path", "root")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    root: str
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., root: _Optional[str] = ...) -> None: ...

class RemovePathResponse(_message.Message):
    __slots__ = ("root", "pinned")
    ROOT_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    root: Root
    pinned: int
    def __init__(self, root: _Optional[_Union[Root, _Mapping]] = ..., pinned: _Optional[int] = ...) -> None: ...

class PushPathAccessRolesRequest(_message.Message):
    __slots__ = ("key", "path", "roles")
    class RolesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PathAccessRole
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PathAccessRole, str]] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    roles: _containers.ScalarMap[str, PathAccessRole]
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., roles: _Optional[_Mapping[str, PathAccessRole]] = ...) -> None: ...

class PushPathAccessRolesResponse(_message.Message):
    __slots__ = ("pinned",)
    PINNED_FIELD_NUMBER: _ClassVar[int]
    pinned: int
    def __init__(self, pinned: _Optional[int] = ...) -> None: ...

class PullPathAccessRolesRequest(_message.Message):
    __slots__ = ("key", "path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class PullPathAccessRolesResponse(_message.Message):
    __slots__ = ("roles",)
    class RolesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PathAccessRole
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PathAccessRole, str]] = ...) -> None: ...
    ROLES_FIELD_NUMBER: _ClassVar[int]
    roles: _containers.ScalarMap[str, PathAccessRole]
    def __init__(self, roles: _Optional[_Mapping[str, PathAccessRole]] = ...) -> None: ...

class ArchiveConfig(_message.Message):
    __slots__ = ("rep_factor", "deal_min_duration", "excluded_miners", "trusted_miners", "country_codes", "renew", "max_price", "fast_retrieval", "deal_start_offset", "verified_deal")
    REP_FACTOR_FIELD_NUMBER: _ClassVar[int]
    DEAL_MIN_DURATION_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_MINERS_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_MINERS_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODES_FIELD_NUMBER: _ClassVar[int]
    RENEW_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    FAST_RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    DEAL_START_OFFSET_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_DEAL_FIELD_NUMBER: _ClassVar[int]
    rep_factor: int
    deal_min_duration: int
    excluded_miners: _containers.RepeatedScalarFieldContainer[str]
    trusted_miners: _containers.RepeatedScalarFieldContainer[str]
    country_codes: _containers.RepeatedScalarFieldContainer[str]
    renew: ArchiveRenew
    max_price: int
    fast_retrieval: bool
    deal_start_offset: int
    verified_deal: bool
    def __init__(self, rep_factor: _Optional[int] = ..., deal_min_duration: _Optional[int] = ..., excluded_miners: _Optional[_Iterable[str]] = ..., trusted_miners: _Optional[_Iterable[str]] = ..., country_codes: _Optional[_Iterable[str]] = ..., renew: _Optional[_Union[ArchiveRenew, _Mapping]] = ..., max_price: _Optional[int] = ..., fast_retrieval: _Optional[bool] = ..., deal_start_offset: _Optional[int] = ..., verified_deal: _Optional[bool] = ...) -> None: ...

class Archives(_message.Message):
    __slots__ = ("current", "history")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    current: Archive
    history: _containers.RepeatedCompositeFieldContainer[Archive]
    def __init__(self, current: _Optional[_Union[Archive, _Mapping]] = ..., history: _Optional[_Iterable[_Union[Archive, _Mapping]]] = ...) -> None: ...

class Archive(_message.Message):
    __slots__ = ("cid", "job_id", "archive_status", "aborted", "aborted_msg", "failure_msg", "created_at", "deal_info")
    CID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_STATUS_FIELD_NUMBER: _ClassVar[int]
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    ABORTED_MSG_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MSG_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEAL_INFO_FIELD_NUMBER: _ClassVar[int]
    cid: str
    job_id: str
    archive_status: ArchiveStatus
    aborted: bool
    aborted_msg: str
    failure_msg: str
    created_at: int
    deal_info: _containers.RepeatedCompositeFieldContainer[DealInfo]
    def __init__(self, cid: _Optional[str] = ..., job_id: _Optional[str] = ..., archive_status: _Optional[_Union[ArchiveStatus, str]] = ..., aborted: _Optional[bool] = ..., aborted_msg: _Optional[str] = ..., failure_msg: _Optional[str] = ..., created_at: _Optional[int] = ..., deal_info: _Optional[_Iterable[_Union[DealInfo, _Mapping]]] = ...) -> None: ...

class DealInfo(_message.Message):
    __slots__ = ("proposal_cid", "state_id", "state_name", "miner", "piece_cid", "size", "price_per_epoch", "start_epoch", "duration", "deal_id", "activation_epoch", "message")
    PROPOSAL_CID_FIELD_NUMBER: _ClassVar[int]
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_NAME_FIELD_NUMBER: _ClassVar[int]
    MINER_FIELD_NUMBER: _ClassVar[int]
    PIECE_CID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    START_EPOCH_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    DEAL_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    proposal_cid: str
    state_id: int
    state_name: str
    miner: str
    piece_cid: str
    size: int
    price_per_epoch: int
    start_epoch: int
    duration: int
    deal_id: int
    activation_epoch: int
    message: str
    def __init__(self, proposal_cid: _Optional[str] = ..., state_id: _Optional[int] = ..., state_name: _Optional[str] = ..., miner: _Optional[str] = ..., piece_cid: _Optional[str] = ..., size: _Optional[int] = ..., price_per_epoch: _Optional[int] = ..., start_epoch: _Optional[int] = ..., duration: _Optional[int] = ..., deal_id: _Optional[int] = ..., activation_epoch: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ArchiveRenew(_message.Message):
    __slots__ = ("enabled", "threshold")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    threshold: int
    def __init__(self, enabled: _Optional[bool] = ..., threshold: _Optional[int] = ...) -> None: ...

class DefaultArchiveConfigRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class DefaultArchiveConfigResponse(_message.Message):
    __slots__ = ("archive_config",)
    ARCHIVE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    archive_config: ArchiveConfig
    def __init__(self, archive_config: _Optional[_Union[ArchiveConfig, _Mapping]] = ...) -> None: ...

class SetDefaultArchiveConfigRequest(_message.Message):
    __slots__ = ("key", "archive_config")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    key: str
    archive_config: ArchiveConfig
    def __init__(self, key: _Optional[str] = ..., archive_config: _Optional[_Union[ArchiveConfig, _Mapping]] = ...) -> None: ...

class SetDefaultArchiveConfigResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ArchiveRequest(_message.Message):
    __slots__ = ("key", "archive_config", "skip_automatic_verified_deal")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    SKIP_AUTOMATIC_VERIFIED_DEAL_FIELD_NUMBER: _ClassVar[int]
    key: str
    archive_config: ArchiveConfig
    skip_automatic_verified_deal: bool
    def __init__(self, key: _Optional[str] = ..., archive_config: _Optional[_Union[ArchiveConfig, _Mapping]] = ..., skip_automatic_verified_deal: _Optional[bool] = ...) -> None: ...

class ArchiveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ArchivesRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class ArchivesResponse(_message.Message):
    __slots__ = ("current", "history")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    current: Archive
    history: _containers.RepeatedCompositeFieldContainer[Archive]
    def __init__(self, current: _Optional[_Union[Archive, _Mapping]] = ..., history: _Optional[_Iterable[_Union[Archive, _Mapping]]] = ...) -> None: ...

class ArchiveWatchRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class ArchiveWatchResponse(_message.Message):
    __slots__ = ("msg",)
    MSG_FIELD_NUMBER: _ClassVar[int]
    msg: str
    def __init__(self, msg: _Optional[str] = ...) -> None: ...
