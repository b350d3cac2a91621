from baton.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnalyzeDocumentRequest(_message.Message):
    __slots__ = ("user_id", "document_id", "content")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    document_id: str
    content: str
    def __init__(self, user_id: _Optional[str] = ..., document_id: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class AnalyzeDocumentResponse(_message.Message):
    __slots__ = ("document_id", "candidate_name", "skills", "titles", "years_experience", "sections", "profile_completeness", "word_count", "quality")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_NAME_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    TITLES_FIELD_NUMBER: _ClassVar[int]
    YEARS_EXPERIENCE_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_COMPLETENESS_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    candidate_name: str
    skills: _containers.RepeatedScalarFieldContainer[str]
    titles: _containers.RepeatedScalarFieldContainer[str]
    years_experience: float
    sections: _containers.RepeatedScalarFieldContainer[str]
    profile_completeness: float
    word_count: int
    quality: _common_pb2.Quality
    def __init__(self, document_id: _Optional[str] = ..., candidate_name: _Optional[str] = ..., skills: _Optional[_Iterable[str]] = ..., titles: _Optional[_Iterable[str]] = ..., years_experience: _Optional[float] = ..., sections: _Optional[_Iterable[str]] = ..., profile_completeness: _Optional[float] = ..., word_count: _Optional[int] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...

class OptimizeDocumentRequest(_message.Message):
    __slots__ = ("user_id", "content", "target_skills")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_SKILLS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    content: str
    target_skills: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., content: _Optional[str] = ..., target_skills: _Optional[_Iterable[str]] = ...) -> None: ...

class OptimizeDocumentResponse(_message.Message):
    __slots__ = ("missing_skills", "suggestions", "score_before", "score_after", "quality")
    MISSING_SKILLS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SCORE_AFTER_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    missing_skills: _containers.RepeatedScalarFieldContainer[str]
    suggestions: _containers.RepeatedScalarFieldContainer[str]
    score_before: float
    score_after: float
    quality: _common_pb2.Quality
    def __init__(self, missing_skills: _Optional[_Iterable[str]] = ..., suggestions: _Optional[_Iterable[str]] = ..., score_before: _Optional[float] = ..., score_after: _Optional[float] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...
