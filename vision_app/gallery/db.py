"""SQLite plumbing shared by the face gallery and the access log.

WAL journal (readers never block the writer), a busy timeout, explicit `BEGIN IMMEDIATE` write
transactions retried a few times when another process holds the lock, and every sqlite3 error turned
into a GalleryError whose message says which file, what went wrong and what to do — a raw
"database is locked" never reaches the caller.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from vision_app.errors import GalleryError

log = logging.getLogger(__name__)

T = TypeVar("T")


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class Database:
    """One SQLite connection to one file, usable from several threads (calls are serialised by a lock).

    what: a human name for messages ("face gallery", "access log"). busy_timeout_s: how long a statement
    waits for another process's lock before the write is retried (`attempts` times in all).
    """

    def __init__(self, path: str | os.PathLike[str], what: str, *, busy_timeout_s: float = 5.0,
                 attempts: int = 3) -> None:
        self.path = Path(path).expanduser()
        self.what = what
        self.busy_timeout_s = float(busy_timeout_s)
        self.attempts = max(1, int(attempts))
        self.lock = threading.RLock()
        if self.path.parent and not self.path.parent.exists():
            try:
                self.path.parent.mkdir(parents=True, mode=0o700)
            except OSError as exc:
                raise GalleryError(f"cannot create the folder {self.path.parent} for the {what}: {exc}; "
                                   f"choose another path (--db) or fix the folder's permissions") from exc
        if not self.path.exists():  # owner-only from the start; SQLite gives -wal/-shm the same mode
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise GalleryError(f"cannot create the {what} {self.path}: {exc}; choose another path "
                                   f"(--db) or fix the folder's permissions") from exc
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None,
                                        check_same_thread=False)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc
        try:
            with self.guard():
                self.conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                mode = self._switch_to_wal()
                if str(mode).lower() != "wal":
                    log.warning("%s %s: journal mode is %s, not WAL (file system without shared memory?)",
                                what, self.path, mode)
                # FULL: a committed access decision or enrolment survives a power cut, not only a crash
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.execute("PRAGMA foreign_keys=ON")
                self.conn.execute("PRAGMA secure_delete=ON")  # removed people leave no bytes behind
        except GalleryError:
            self.conn.close()
            raise

    def _switch_to_wal(self) -> str:
        """PRAGMA journal_mode=WAL, retried while another process converts the same new file: SQLite can
        answer SQLITE_BUSY here at once, without waiting on the busy handler."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.01
        while True:
            try:
                return str(self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def error(self, exc: BaseException) -> GalleryError:
        """A GalleryError with a message for an sqlite3 error on this file."""
        text = str(exc).lower()
        where = f"{self.what} {self.path}"
        if _is_busy(exc):
            return GalleryError(f"{where} is locked by another process or thread (waited "
                                f"{self.busy_timeout_s:g} s, {self.attempts} attempts): close the other "
                                f"program using it, then retry")
        if "full" in text:
            return GalleryError(f"{where}: the disk is full ({exc}); free some space, then retry")
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return GalleryError(f"{where} is not a valid SQLite database or is damaged ({exc}); restore it "
                                f"from a backup or choose another path")
        if "readonly" in text or "read-only" in text:
            return GalleryError(f"{where} is read-only ({exc}); check the file's and folder's permissions")
        if "unable to open" in text:
            return GalleryError(f"cannot open {where} ({exc}); check that the folder exists and is "
                                f"writable")
        if "disk i/o" in text:
            code = getattr(exc, "sqlite_errorname", "")  # e.g. SQLITE_IOERR_WRITE on EFBIG / EIO
            if code in ("SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "SQLITE_IOERR_TRUNCATE"):
                return GalleryError(f"{where}: writing failed ({code}): the disk is full, the file reached a "
                                    f"size limit, or the disk failed; free some space or check the disk, "
                                    f"then retry")
            return GalleryError(f"{where}: disk I/O error ({exc}); check the disk and free space")
        return GalleryError(f"{where}: SQLite error: {exc}")

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run a block under the connection lock; sqlite3 errors become GalleryError."""
        with self.lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise self.error(exc) from exc

    def _retry_busy(self, fn: Callable[[], T]) -> T:
        """fn() under the connection lock, retried like writes when SQLite answers busy at once (a reader
        can get SQLITE_BUSY while another process creates or recovers the file's WAL)."""
        with self.lock:
            for attempt in range(1, self.attempts + 1):
                try:
                    return fn()
                except sqlite3.Error as exc:
                    self._rollback()
                    if _is_busy(exc) and attempt < self.attempts:
                        self._backoff(attempt, exc)
                        continue
                    raise self.error(exc) from exc
            raise GalleryError(f"{self.what} {self.path}: read failed after {self.attempts} attempts")

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read statement, return all rows."""
        return self._retry_busy(lambda: self.conn.execute(sql, params).fetchall())

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) inside one read transaction: its queries see one consistent snapshot."""
        def snapshot() -> T:
            self.conn.execute("BEGIN")
            try:
                return fn(self.conn)
            finally:
                self.conn.execute("COMMIT")  # nothing written: this only ends the snapshot
        return self._retry_busy(snapshot)

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) inside one `BEGIN IMMEDIATE … COMMIT` transaction and return its result.

        All or nothing: any exception rolls the whole transaction back. When another process holds the
        write lock past the busy timeout, the transaction is retried from the start (fn must not have
        side effects outside the database); after the last attempt a GalleryError says so.
        """
        with self.lock:
            for attempt in range(1, self.attempts + 1):
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    if _is_busy(exc) and attempt < self.attempts:
                        self._backoff(attempt, exc)
                        continue
                    raise self.error(exc) from exc
                try:
                    result = fn(self.conn)
                    self.conn.execute("COMMIT")
                    return result
                except BaseException as exc:
                    self._rollback()
                    if _is_busy(exc) and attempt < self.attempts:
                        self._backoff(attempt, exc)
                        continue
                    if isinstance(exc, sqlite3.Error):
                        raise self.error(exc) from exc
                    raise
            raise GalleryError(f"{self.what} {self.path}: write failed after {self.attempts} attempts")

    def _backoff(self, attempt: int, exc: BaseException) -> None:
        log.warning("%s %s busy (%s); retrying (attempt %d of %d)", self.what, self.path, exc,
                    attempt + 1, self.attempts)
        time.sleep(0.05 * 2 ** attempt)

    def _rollback(self) -> None:
        if not self.conn.in_transaction:
            return
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the transaction is gone either way; say so and go on
            log.warning("%s %s: rollback failed: %s", self.what, self.path, exc)

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.close()
            except sqlite3.Error as exc:
                log.warning("closing %s %s failed: %s", self.what, self.path, exc)
