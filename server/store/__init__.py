"""Durable storage of executions and their events: the interface, the SQLite and PostgreSQL stores, open_store."""

from server.store._factory import open_store
from server.store._page_tokens import encode_audit_token as audit_page_token
from server.store.base import (
    DEFAULT_AUDIT_PAGE_SIZE,
    TERMINAL_STATES,
    USER_DATA_DELETED,
    AuditPage,
    AuditQuery,
    AuditRecord,
    CommitListener,
    CorruptHistoryError,
    Deletion,
    DeletionNote,
    ExecutionNotFoundError,
    ExecutionPage,
    ExecutionQuery,
    ExecutionRecord,
    ExecutionStore,
    InvalidKeyError,
    InvalidPageTokenError,
    NewExecution,
    SequenceConflictError,
    UnfinishedExecution,
    UnfinishedExecutionsError,
)
from server.store.postgres import PostgresExecutionStore
from server.store.sqlite import SqliteExecutionStore

__all__ = [
    "DEFAULT_AUDIT_PAGE_SIZE",
    "TERMINAL_STATES",
    "USER_DATA_DELETED",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "CommitListener",
    "CorruptHistoryError",
    "Deletion",
    "DeletionNote",
    "ExecutionNotFoundError",
    "ExecutionPage",
    "ExecutionQuery",
    "ExecutionRecord",
    "ExecutionStore",
    "InvalidKeyError",
    "InvalidPageTokenError",
    "NewExecution",
    "PostgresExecutionStore",
    "SequenceConflictError",
    "SqliteExecutionStore",
    "UnfinishedExecution",
    "UnfinishedExecutionsError",
    "audit_page_token",
    "open_store",
]
