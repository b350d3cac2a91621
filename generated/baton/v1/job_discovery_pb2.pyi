import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from baton.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobPosting(_message.Message):
    __slots__ = ("job_id", "title", "company", "location", "remote", "skills", "description", "source", "salary_min", "salary_max", "posted_at", "seniority")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SALARY_MIN_FIELD_NUMBER: _ClassVar[int]
    SALARY_MAX_FIELD_NUMBER: _ClassVar[int]
    POSTED_AT_FIELD_NUMBER: _ClassVar[int]
    SENIORITY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    title: str
    company: str
    location: str
    remote: bool
    skills: _containers.RepeatedScalarFieldContainer[str]
    description: str
    source: str
    salary_min: int
    salary_max: int
    posted_at: _timestamp_pb2.Timestamp
    seniority: str
    def __init__(self, job_id: _Optional[str] = ..., title: _Optional[str] = ..., company: _Optional[str] = ..., location: _Optional[str] = ..., remote: _Optional[bool] = ..., skills: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., source: _Optional[str] = ..., salary_min: _Optional[int] = ..., salary_max: _Optional[int] = ..., posted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seniority: _Optional[str] = ...) -> None: ...

class SearchJobsRequest(_message.Message):
    __slots__ = ("user_id", "keywords", "skills", "titles", "location", "remote_only", "sources", "limit")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    TITLES_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ONLY_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    keywords: _containers.RepeatedScalarFieldContainer[str]
    skills: _containers.RepeatedScalarFieldContainer[str]
    titles: _containers.RepeatedScalarFieldContainer[str]
    location: str
    remote_only: bool
    sources: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    def __init__(self, user_id: _Optional[str] = ..., keywords: _Optional[_Iterable[str]] = ..., skills: _Optional[_Iterable[str]] = ..., titles: _Optional[_Iterable[str]] = ..., location: _Optional[str] = ..., remote_only: _Optional[bool] = ..., sources: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchJobsResponse(_message.Message):
    __slots__ = ("jobs", "total_matches", "sources_searched", "quality")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MATCHES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobPosting]
    total_matches: int
    sources_searched: _containers.RepeatedScalarFieldContainer[str]
    quality: _common_pb2.Quality
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobPosting, _Mapping]]] = ..., total_matches: _Optional[int] = ..., sources_searched: _Optional[_Iterable[str]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...
