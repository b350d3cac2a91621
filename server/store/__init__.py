"""Durable storage of executions and their events: the interface, the SQLite and PostgreSQL stores, open_store."""

from server.store._factory import open_store
from server.store.base import (
    TERMINAL_STATES,
    CommitListener,
    CorruptHistoryError,
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
)
from server.store.postgres import PostgresExecutionStore
from server.store.sqlite import SqliteExecutionStore

__all__ = [
    "TERMINAL_STATES",
    "CommitListener",
    "CorruptHistoryError",
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
    "open_store",
]
