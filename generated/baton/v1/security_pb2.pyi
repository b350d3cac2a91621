from baton.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ComplianceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLIANCE_STATUS_UNSPECIFIED: _ClassVar[ComplianceStatus]
    COMPLIANCE_STATUS_COMPLIANT: _ClassVar[ComplianceStatus]
    COMPLIANCE_STATUS_AT_RISK: _ClassVar[ComplianceStatus]
    COMPLIANCE_STATUS_NON_COMPLIANT: _ClassVar[ComplianceStatus]
COMPLIANCE_STATUS_UNSPECIFIED: ComplianceStatus
COMPLIANCE_STATUS_COMPLIANT: ComplianceStatus
COMPLIANCE_STATUS_AT_RISK: ComplianceStatus
COMPLIANCE_STATUS_NON_COMPLIANT: ComplianceStatus

class ScreenComplianceRequest(_message.Message):
    __slots__ = ("user_id", "content", "job_ids")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    content: str
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., content: _Optional[str] = ..., job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("rule", "detail", "severity")
    RULE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    rule: str
    detail: str
    severity: str
    def __init__(self, rule: _Optional[str] = ..., detail: _Optional[str] = ..., severity: _Optional[str] = ...) -> None: ...

class ScreenComplianceResponse(_message.Message):
    __slots__ = ("compliance_status", "compliant", "findings", "quality")
    COMPLIANCE_STATUS_FIELD_NUMBER: _ClassVar[int]
    COMPLIANT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    compliance_status: ComplianceStatus
    compliant: bool
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    quality: _common_pb2.Quality
    def __init__(self, compliance_status: _Optional[_Union[ComplianceStatus, str]] = ..., compliant: _Optional[bool] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...
