from bucketfs.pb import bucketsd_pb2 as _bucketsd_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RenameFlag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RENAME_FLAG_NONE: _ClassVar[RenameFlag]
    RENAME_NOREPLACE: _ClassVar[RenameFlag]
    RENAME_EXCHANGE: _ClassVar[RenameFlag]
RENAME_FLAG_NONE: RenameFlag
RENAME_NOREPLACE: RenameFlag
RENAME_EXCHANGE: RenameFlag

class ReadFileRequest(_message.Message):
    __slots__ = ("key", "path", "cid", "offset", "length")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    cid: str
    offset: int
    length: int
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., cid: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class ReadFileReply(_message.Message):
    __slots__ = ("data", "offset", "file_size", "cid")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    file_size: int
    cid: str
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., file_size: _Optional[int] = ..., cid: _Optional[str] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("cid", "data")
    CID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    cid: str
    data: bytes
    def __init__(self, cid: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetBlocksRequest(_message.Message):
    __slots__ = ("key", "cids")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CIDS_FIELD_NUMBER: _ClassVar[int]
    key: str
    cids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., cids: _Optional[_Iterable[str]] = ...) -> None: ...

class HasBlocksRequest(_message.Message):
    __slots__ = ("key", "cids")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CIDS_FIELD_NUMBER: _ClassVar[int]
    key: str
    cids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., cids: _Optional[_Iterable[str]] = ...) -> None: ...

class HasBlocksReply(_message.Message):
    __slots__ = ("has",)
    HAS_FIELD_NUMBER: _ClassVar[int]
    has: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, has: _Optional[_Iterable[bool]] = ...) -> None: ...

class PutBlocksReply(_message.Message):
    __slots__ = ("blocks", "bytes")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    blocks: int
    bytes: int
    def __init__(self, blocks: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class SetAttrRequest(_message.Message):
    __slots__ = ("key", "path", "root", "mode", "mtime")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    root: str
    mode: int
    mtime: int
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., root: _Optional[str] = ..., mode: _Optional[int] = ..., mtime: _Optional[int] = ...) -> None: ...

class SymlinkRequest(_message.Message):
    __slots__ = ("key", "path", "target", "root", "mode", "mtime")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    target: str
    root: str
    mode: int
    mtime: int
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., target: _Optional[str] = ..., root: _Optional[str] = ..., mode: _Optional[int] = ..., mtime: _Optional[int] = ...) -> None: ...

class MkdirRequest(_message.Message):
    __slots__ = ("key", "path", "root", "mode", "mtime")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    root: str
    mode: int
    mtime: int
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., root: _Optional[str] = ..., mode: _Optional[int] = ..., mtime: _Optional[int] = ...) -> None: ...

class RenameRequest(_message.Message):
    __slots__ = ("key", "from_path", "to_path", "flags", "root")
    KEY_FIELD_NUMBER: _ClassVar[int]
    FROM_PATH_FIELD_NUMBER: _ClassVar[int]
    TO_PATH_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    key: str
    from_path: str
    to_path: str
    flags: int
    root: str
    def __init__(self, key: _Optional[str] = ..., from_path: _Optional[str] = ..., to_path: _Optional[str] = ..., flags: _Optional[int] = ..., root: _Optional[str] = ...) -> None: ...

class LinkRequest(_message.Message):
    __slots__ = ("key", "path", "cid", "root", "mode", "mtime")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    cid: str
    root: str
    mode: int
    mtime: int
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., cid: _Optional[str] = ..., root: _Optional[str] = ..., mode: _Optional[int] = ..., mtime: _Optional[int] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("key", "path", "root", "rmdir")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    RMDIR_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    root: str
    rmdir: bool
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., root: _Optional[str] = ..., rmdir: _Optional[bool] = ...) -> None: ...

class MutationReply(_message.Message):
    __slots__ = ("root", "item")
    ROOT_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    root: _bucketsd_pb2.Root
    item: _bucketsd_pb2.PathItem
    def __init__(self, root: _Optional[_Union[_bucketsd_pb2.Root, _Mapping]] = ..., item: _Optional[_Union[_bucketsd_pb2.PathItem, _Mapping]] = ...) -> None: ...

class ListDirRequest(_message.Message):
    __slots__ = ("key", "path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ListDirReply(_message.Message):
    __slots__ = ("item", "root")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    item: _bucketsd_pb2.PathItem
    root: str
    def __init__(self, item: _Optional[_Union[_bucketsd_pb2.PathItem, _Mapping]] = ..., root: _Optional[str] = ...) -> None: ...

class WatchRootRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class WatchRootReply(_message.Message):
    __slots__ = ("key", "path", "updated_at", "removed")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    key: str
    path: str
    updated_at: int
    removed: bool
    def __init__(self, key: _Optional[str] = ..., path: _Optional[str] = ..., updated_at: _Optional[int] = ..., removed: _Optional[bool] = ...) -> None: ...

class LocalIngestRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LocalIngestReply(_message.Message):
    __slots__ = ("socket",)
    SOCKET_FIELD_NUMBER: _ClassVar[int]
    socket: str
    def __init__(self, socket: _Optional[str] = ...) -> None: ...
