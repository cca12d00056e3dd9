from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_TYPE_UNSPECIFIED: _ClassVar[KeyType]
    KEY_TYPE_ACCOUNT: _ClassVar[KeyType]
    KEY_TYPE_USER: _ClassVar[KeyType]
KEY_TYPE_UNSPECIFIED: KeyType
KEY_TYPE_ACCOUNT: KeyType
KEY_TYPE_USER: KeyType

class KeyInfo(_message.Message):
    __slots__ = ("key", "secret", "type", "valid", "threads", "secure")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    SECURE_FIELD_NUMBER: _ClassVar[int]
    key: str
    secret: str
    type: KeyType
    valid: bool
    threads: int
    secure: bool
    def __init__(self, key: _Optional[str] = ..., secret: _Optional[str] = ..., type: _Optional[_Union[KeyType, str]] = ..., valid: _Optional[bool] = ..., threads: _Optional[int] = ..., secure: _Optional[bool] = ...) -> None: ...

class CreateKeyRequest(_message.Message):
    __slots__ = ("type", "secure")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SECURE_FIELD_NUMBER: _ClassVar[int]
    type: KeyType
    secure: bool
    def __init__(self, type: _Optional[_Union[KeyType, str]] = ..., secure: _Optional[bool] = ...) -> None: ...

class CreateKeyResponse(_message.Message):
    __slots__ = ("key_info",)
    KEY_INFO_FIELD_NUMBER: _ClassVar[int]
    key_info: KeyInfo
    def __init__(self, key_info: _Optional[_Union[KeyInfo, _Mapping]] = ...) -> None: ...

class InvalidateKeyRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class InvalidateKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("list",)
    LIST_FIELD_NUMBER: _ClassVar[int]
    list: _containers.RepeatedCompositeFieldContainer[KeyInfo]
    def __init__(self, list: _Optional[_Iterable[_Union[KeyInfo, _Mapping]]] = ...) -> None: ...
