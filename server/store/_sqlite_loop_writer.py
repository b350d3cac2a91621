"""The loop writer: batches are committed on the event loop itself, checkpoints on a thread.

Rules:
1. Writes queued during one turn of the event loop are committed together by one callback
   scheduled with ``call_soon``, as ONE transaction (``commit_batch``); under load a turn
   carries many writes, so one commit serves many writers.
2. The loop never waits for a lock: the connection's busy timeout is 0, and a batch whose
   BEGIN finds another process holding the write lock is retried a few milliseconds later,
   for up to the configured busy timeout.
3. The loop never fsyncs with ``synchronous=NORMAL``: a commit only appends to the WAL (which
   survives a process kill), and checkpoints (which fsync) run on the Checkpointer's thread.

Why not a writer thread: in CPython every SQLite call hands over the GIL and must win it back
from a busy event loop (up to ``sys.getswitchinterval()``, 5 ms by default, each time). Doing
the few hundred microseconds of SQLite work per batch on the loop costs less than those
hand-overs. With ``synchronous=FULL`` every commit fsyncs, so that setting uses ThreadWriter.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
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

# Ask for a checkpoint after this many commits; a PASSIVE checkpoint of few pages is cheap.
_COMMITS_PER_CHECKPOINT = 16
# PASSIVE checkpoints copy the WAL but, with commits landing meanwhile, rarely let it start
# over. Past this many frames (4 KiB pages, 32 MiB) the checkpointer runs a RESTART one, which
# holds writes off for a few milliseconds (the loop writer retries), so the WAL stays bounded.
_RESTART_FRAMES = 8_192
# Writes per transaction: bounds how long one commit holds the loop after a burst (about
# 10 µs per write); the rest commit on the next turn.
_MAX_BATCH = 1_000
# Backoff while another process holds the write lock.
_BUSY_RETRY_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


class Checkpointer:
    """Copies the WAL back into the database on its own thread and connection."""

    def __init__(self, config: WriterConfig) -> None:
        self._config = config
        self._wake = threading.Event()
        self._stopping = False
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Set once the thread has closed its connection."""
        self._thread = threading.Thread(target=self._run, name="baton-store-checkpoint", daemon=True)

    def start(self) -> None:
        """Starts the thread."""
        self._thread.start()

    def request(self) -> None:
        """Asks for a checkpoint soon (any thread, never blocks)."""
        self._wake.set()

    def stop(self) -> None:
        """Asks the thread to finish."""
        self._stopping = True
        self._wake.set()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self._config.path, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self._config.busy_timeout_ms)}")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                self._checkpoint(conn)
        except sqlite3.Error:
            logger.exception("store checkpointer stopped; the WAL will grow until the store reopens")
        finally:
            if conn is not None:
                conn.close()
            self.stopped.set_result(None)

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection) -> None:
        try:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= _RESTART_FRAMES:
                # Blocks new writes (the loop writer retries) until the whole WAL is copied,
                # so the next commit starts the WAL over from its beginning.
                conn.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.OperationalError as error:
            logger.warning("store checkpoint skipped: %s", error)


class LoopWriter:
    """Commits writes on the event loop; see the module's rules."""

    def __init__(self, config: WriterConfig, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        self._config = config
        self._loop = loop
        self._deliver = deliver
        self.stats = WriterStats()
        self.observe_commit: CommitObserver | None = None
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Set once the connection is open and migrated (or with the error that stopped it)."""
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Set once everything queued before stop() is committed and the connections closed."""
        self._conn: sqlite3.Connection | None = None
        self._pending: list[WriteOp] = []
        self._scheduled = False
        self._busy_attempt = 0
        self._busy_waited = 0.0
        self._stopping = False
        self._checkpointer = Checkpointer(config)
        self._commits_since_checkpoint = 0

    def start(self) -> None:
        """Opens and migrates the database on a helper thread (the loop must not wait on it)."""
        threading.Thread(target=self._open, name="baton-store-open", daemon=True).start()

    def _open(self) -> None:
        try:
            # Made here, used on the loop's thread; only ever one thread at a time.
            conn = connect_writer(self._config, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException as error:
            self._stopping = True
            self.ready.set_exception(error)
            self.stopped.set_result(None)
            return
        self._conn = conn
        self._checkpointer.start()
        self.ready.set_result(None)

    def submit(self, op: WriteOp) -> None:
        """Queues a write for the commit at the end of this turn of the loop (loop thread only).

        Raises:
            RuntimeError: the writer has stopped.
        """
        if self._stopping or self._conn is None:
            raise RuntimeError("the store's writer has stopped")
        self._pending.append(op)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def stop(self) -> None:
        """Commits the writes queued so far, then closes (``stopped`` tells when)."""
        if self._stopping:
            return
        self._stopping = True
        if not self._scheduled:
            self._finish()

    def _flush(self) -> None:
        self._scheduled = False
        conn = self._conn
        if conn is None:
            return
        batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
        try:
            outcomes = commit_batch(conn, batch, self.stats, self.observe_commit)
        except WriterBusyError as error:
            retried = self._retry_later(batch, error)
            if retried is None:
                return
            outcomes = retried
        except Exception as error:
            # A bug, not a database error (those become outcomes): fail the batch rather than
            # leave its callers waiting.
            logger.exception("store batch of %d writes failed", len(batch))
            outcomes = [Outcome(op.future, error=error) for op in batch]
        self._busy_attempt = 0
        self._busy_waited = 0.0
        self._commits_since_checkpoint += 1
        if self._commits_since_checkpoint >= _COMMITS_PER_CHECKPOINT:
            self._commits_since_checkpoint = 0
            self._checkpointer.request()
        if self._pending and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        self._deliver(outcomes)
        if self._stopping and not self._scheduled:
            self._finish()

    def _retry_later(self, batch: list[WriteOp], error: WriterBusyError) -> list[Outcome] | None:
        """Puts a busy batch back for a later turn; returns failures once the busy timeout is spent."""
        if self._busy_waited * 1000 >= self._config.busy_timeout_ms:
            logger.error("store batch of %d writes failed: %s", len(batch), error)
            return [Outcome(op.future, error=error) for op in batch]
        delay = _BUSY_RETRY_S[min(self._busy_attempt, len(_BUSY_RETRY_S) - 1)]
        self._busy_attempt += 1
        self._busy_waited += delay
        self.stats.busy_retries += 1
        self._pending = batch + self._pending
        self._scheduled = True
        self._loop.call_later(delay, self._flush)
        return None

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            # Never opened (or already finished): there is no checkpointer thread to wait for.
            if not self.stopped.done():
                self.stopped.set_result(None)
            return
        conn.close()
        self._checkpointer.stop()
        self._checkpointer.stopped.add_done_callback(lambda _: self.stopped.set_result(None))
