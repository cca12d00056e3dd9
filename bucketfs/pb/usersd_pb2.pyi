from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetThreadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetThreadResponse(_message.Message):
    __slots__ = ("id", "name", "is_db")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IS_DB_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    name: str
    is_db: bool
    def __init__(self, id: _Optional[bytes] = ..., name: _Optional[str] = ..., is_db: _Optional[bool] = ...) -> None: ...

class ListThreadsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListThreadsResponse(_message.Message):
    __slots__ = ("list",)
    LIST_FIELD_NUMBER: _ClassVar[int]
    list: _containers.RepeatedCompositeFieldContainer[GetThreadResponse]
    def __init__(self, list: _Optional[_Iterable[_Union[GetThreadResponse, _Mapping]]] = ...) -> None: ...
