from google.protobuf import struct_pb2 as _struct_pb2
from baton.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NotifyRequest(_message.Message):
    __slots__ = ("user_id", "channel", "title", "message", "data")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    channel: str
    title: str
    message: str
    data: _struct_pb2.Struct
    def __init__(self, user_id: _Optional[str] = ..., channel: _Optional[str] = ..., title: _Optional[str] = ..., message: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class NotifyResponse(_message.Message):
    __slots__ = ("notification_id", "delivered", "channel", "quality")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    delivered: bool
    channel: str
    quality: _common_pb2.Quality
    def __init__(self, notification_id: _Optional[str] = ..., delivered: _Optional[bool] = ..., channel: _Optional[str] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...
