from baton.v1 import common_pb2 as _common_pb2
from baton.v1 import job_discovery_pb2 as _job_discovery_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreMatchesRequest(_message.Message):
    __slots__ = ("user_id", "skills", "titles", "years_experience", "jobs", "top_n", "min_score")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    TITLES_FIELD_NUMBER: _ClassVar[int]
    YEARS_EXPERIENCE_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    skills: _containers.RepeatedScalarFieldContainer[str]
    titles: _containers.RepeatedScalarFieldContainer[str]
    years_experience: float
    jobs: _containers.RepeatedCompositeFieldContainer[_job_discovery_pb2.JobPosting]
    top_n: int
    min_score: float
    def __init__(self, user_id: _Optional[str] = ..., skills: _Optional[_Iterable[str]] = ..., titles: _Optional[_Iterable[str]] = ..., years_experience: _Optional[float] = ..., jobs: _Optional[_Iterable[_Union[_job_discovery_pb2.JobPosting, _Mapping]]] = ..., top_n: _Optional[int] = ..., min_score: _Optional[float] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("job_id", "title", "company", "score", "matched_skills", "missing_skills")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_SKILLS_FIELD_NUMBER: _ClassVar[int]
    MISSING_SKILLS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    title: str
    company: str
    score: float
    matched_skills: _containers.RepeatedScalarFieldContainer[str]
    missing_skills: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., title: _Optional[str] = ..., company: _Optional[str] = ..., score: _Optional[float] = ..., matched_skills: _Optional[_Iterable[str]] = ..., missing_skills: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoreMatchesResponse(_message.Message):
    __slots__ = ("matches", "skill_gaps", "quality")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    SKILL_GAPS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    skill_gaps: _containers.RepeatedScalarFieldContainer[str]
    quality: _common_pb2.Quality
    def __init__(self, matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ..., skill_gaps: _Optional[_Iterable[str]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...
