from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetTokenRequest(_message.Message):
    __slots__ = ("key", "signature")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    key: str
    signature: bytes
    def __init__(self, key: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class GetTokenReply(_message.Message):
    __slots__ = ("challenge", "token")
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    challenge: bytes
    token: str
    def __init__(self, challenge: _Optional[bytes] = ..., token: _Optional[str] = ...) -> None: ...

class NewDBRequest(_message.Message):
    __slots__ = ("dbID", "key", "logKey", "name", "collections", "block")
    DBID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    LOGKEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    dbID: bytes
    key: bytes
    logKey: bytes
    name: str
    collections: _containers.RepeatedCompositeFieldContainer[CollectionConfig]
    block: bool
    def __init__(self, dbID: _Optional[bytes] = ..., key: _Optional[bytes] = ..., logKey: _Optional[bytes] = ..., name: _Optional[str] = ..., collections: _Optional[_Iterable[_Union[CollectionConfig, _Mapping]]] = ..., block: _Optional[bool] = ...) -> None: ...

class NewDBReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CollectionConfig(_message.Message):
    __slots__ = ("name", "schema", "indexes", "writeValidator", "readFilter")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    WRITEVALIDATOR_FIELD_NUMBER: _ClassVar[int]
    READFILTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    schema: bytes
    indexes: _containers.RepeatedCompositeFieldContainer[Index]
    writeValidator: str
    readFilter: str
    def __init__(self, name: _Optional[str] = ..., schema: _Optional[bytes] = ..., indexes: _Optional[_Iterable[_Union[Index, _Mapping]]] = ..., writeValidator: _Optional[str] = ..., readFilter: _Optional[str] = ...) -> None: ...

class Index(_message.Message):
    __slots__ = ("path", "unique")
    PATH_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_FIELD_NUMBER: _ClassVar[int]
    path: str
    unique: bool
    def __init__(self, path: _Optional[str] = ..., unique: _Optional[bool] = ...) -> None: ...

class ListDBsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDBsReply(_message.Message):
    __slots__ = ("dbs",)
    class DB(_message.Message):
        __slots__ = ("dbID", "info")
        DBID_FIELD_NUMBER: _ClassVar[int]
        INFO_FIELD_NUMBER: _ClassVar[int]
        dbID: bytes
        info: GetDBInfoReply
        def __init__(self, dbID: _Optional[bytes] = ..., info: _Optional[_Union[GetDBInfoReply, _Mapping]] = ...) -> None: ...
    DBS_FIELD_NUMBER: _ClassVar[int]
    dbs: _containers.RepeatedCompositeFieldContainer[ListDBsReply.DB]
    def __init__(self, dbs: _Optional[_Iterable[_Union[ListDBsReply.DB, _Mapping]]] = ...) -> None: ...

class GetDBInfoRequest(_message.Message):
    __slots__ = ("dbID",)
    DBID_FIELD_NUMBER: _ClassVar[int]
    dbID: bytes
    def __init__(self, dbID: _Optional[bytes] = ...) -> None: ...

class GetDBInfoReply(_message.Message):
    __slots__ = ("addrs", "key", "name")
    ADDRS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    addrs: _containers.RepeatedScalarFieldContainer[bytes]
    key: bytes
    name: str
    def __init__(self, addrs: _Optional[_Iterable[bytes]] = ..., key: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteDBRequest(_message.Message):
    __slots__ = ("dbID",)
    DBID_FIELD_NUMBER: _ClassVar[int]
    dbID: bytes
    def __init__(self, dbID: _Optional[bytes] = ...) -> None: ...

class DeleteDBReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCollectionInfoRequest(_message.Message):
    __slots__ = ("dbID", "name")
    DBID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    dbID: bytes
    name: str
    def __init__(self, dbID: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class GetCollectionInfoReply(_message.Message):
    __slots__ = ("name", "schema", "indexes", "writeValidator", "readFilter")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    WRITEVALIDATOR_FIELD_NUMBER: _ClassVar[int]
    READFILTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    schema: bytes
    indexes: _containers.RepeatedCompositeFieldContainer[Index]
    writeValidator: str
    readFilter: str
    def __init__(self, name: _Optional[str] = ..., schema: _Optional[bytes] = ..., indexes: _Optional[_Iterable[_Union[Index, _Mapping]]] = ..., writeValidator: _Optional[str] = ..., readFilter: _Optional[str] = ...) -> None: ...

class ListenRequest(_message.Message):
    __slots__ = ("dbID", "filters")
    class Filter(_message.Message):
        __slots__ = ("collectionName", "instanceID", "action")
        class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            ALL: _ClassVar[ListenRequest.Filter.Action]
            CREATE: _ClassVar[ListenRequest.Filter.Action]
            SAVE: _ClassVar[ListenRequest.Filter.Action]
            DELETE: _ClassVar[ListenRequest.Filter.Action]
        ALL: ListenRequest.Filter.Action
        CREATE: ListenRequest.Filter.Action
        SAVE: ListenRequest.Filter.Action
        DELETE: ListenRequest.Filter.Action
        COLLECTIONNAME_FIELD_NUMBER: _ClassVar[int]
        INSTANCEID_FIELD_NUMBER: _ClassVar[int]
        ACTION_FIELD_NUMBER: _ClassVar[int]
        collectionName: str
        instanceID: str
        action: ListenRequest.Filter.Action
        def __init__(self, collectionName: _Optional[str] = ..., instanceID: _Optional[str] = ..., action: _Optional[_Union[ListenRequest.Filter.Action, str]] = ...) -> None: ...
    DBID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    dbID: bytes
    filters: _containers.RepeatedCompositeFieldContainer[ListenRequest.Filter]
    def __init__(self, dbID: _Optional[bytes] = ..., filters: _Optional[_Iterable[_Union[ListenRequest.Filter, _Mapping]]] = ...) -> None: ...

class ListenReply(_message.Message):
    __slots__ = ("collectionName", "instanceID", "action", "instance")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREATE: _ClassVar[ListenReply.Action]
        SAVE: _ClassVar[ListenReply.Action]
        DELETE: _ClassVar[ListenReply.Action]
    CREATE: ListenReply.Action
    SAVE: ListenReply.Action
    DELETE: ListenReply.Action
    COLLECTIONNAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCEID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    collectionName: str
    instanceID: str
    action: ListenReply.Action
    instance: bytes
    def __init__(self, collectionName: _Optional[str] = ..., instanceID: _Optional[str] = ..., action: _Optional[_Union[ListenReply.Action, str]] = ..., instance: _Optional[bytes] = ...) -> None: ...
