"""The thread writer: one thread owns the write connection and commits queued writes in batches.

Rules:
1. Only the writer thread touches the write connection.
2. The thread drains everything queued, commits it as ONE transaction (``commit_batch``), and
   writes arriving meanwhile form the next batch, so the batch grows with the load and one
   commit (one fsync with ``synchronous=FULL``) serves many writers.
3. Nothing is acknowledged before COMMIT returns. Results and commit notifications go to the
   event loop with one ``call_soon_threadsafe`` per batch, in commit order.

The fsync of ``synchronous=FULL`` and the WAL checkpoints happen here, off the event loop.
The price is the GIL: every SQLite call hands it over and must win it back from the event
loop, which under load can take up to ``sys.getswitchinterval()`` each time (see LoopWriter).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading

from server.store._sqlite_batch import Outcome, WriteOp
from server.store._sqlite_commit import (
    CommitObserver,
    Deliver,
    WriterBusyError,
    WriterConfig,
    WriterStats,
    commit_batch,
    connect_writer,
)

logger = logging.getLogger(__name__)


class _Stop:
    """The queue's end marker."""


class ThreadWriter:
    """Commits writes on a dedicated thread; see the module's rules."""

    def __init__(self, config: WriterConfig, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        self._config = config
        self._loop = loop
        self._deliver = deliver
        self._queue: queue.SimpleQueue[WriteOp | _Stop] = queue.SimpleQueue()
        self.stats = WriterStats()
        self.observe_commit: CommitObserver | None = None
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Set once the connection is open and migrated (or with the error that stopped it)."""
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Set once everything queued before stop() is committed and the connection closed."""
        self._lock = threading.Lock()
        self._dead = False
        self._thread = threading.Thread(target=self._run, name="baton-store-writer", daemon=True)

    def start(self) -> None:
        """Starts the thread, which opens the database and applies migrations."""
        self._thread.start()

    def submit(self, op: WriteOp) -> None:
        """Queues a write.

        Raises:
            RuntimeError: the writer has stopped.
        """
        with self._lock:
            if self._dead:
                raise RuntimeError("the store's writer has stopped")
            self._queue.put(op)

    def stop(self) -> None:
        """Asks the thread to commit the writes queued so far, then close."""
        self._queue.put(_Stop())

    def _run(self) -> None:
        try:
            conn = connect_writer(self._config)
        except BaseException as error:
            with self._lock:
                self._dead = True
            self.ready.set_exception(error)
            self.stopped.set_result(None)
            return
        self.ready.set_result(None)
        batch: list[WriteOp] = []
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                while True:
                    if isinstance(item, _Stop):
                        stopping = True
                        break
                    batch.append(item)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    outcomes = self._commit(conn, batch)
                    batch = []
                    self._post(outcomes)
        except BaseException as error:
            # A bug, not a database error (those become outcomes): fail what is held rather
            # than leave its callers waiting, and refuse further writes.
            logger.exception("store writer thread stopped")
            self._post([Outcome(op.future, error=error) for op in batch])
        finally:
            with self._lock:
                self._dead = True
            self._fail_queued(RuntimeError("the store is closed"))
            conn.close()
            self.stopped.set_result(None)

    def _commit(self, conn: sqlite3.Connection, batch: list[WriteOp]) -> list[Outcome]:
        try:
            return commit_batch(conn, batch, self.stats, self.observe_commit)
        except WriterBusyError as error:
            # The connection already waited its busy timeout for another process's lock.
            logger.error("store batch of %d writes failed: %s", len(batch), error)
            return [Outcome(op.future, error=error) for op in batch]

    def _fail_queued(self, error: BaseException) -> None:
        left: list[Outcome] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Stop):
                left.append(Outcome(item.future, error=error))
        if left:
            self._post(left)

    def _post(self, outcomes: list[Outcome]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, outcomes)
        except RuntimeError:
            # The loop is closed: nobody is left to await these futures.
            logger.warning("event loop closed; %d store results dropped", len(outcomes))
