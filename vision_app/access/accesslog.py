"""Append-only access log in SQLite, each row chained to the previous one by SHA-256.

Row hash = SHA-256(previous row's hash + "\\n" + canonical JSON of the row's content, its sequence
number included). Editing a row breaks its own hash; deleting or reordering rows breaks the next row's
link (and the sequence); the head file beside the database (`<db>.head`: the last sequence number and
hash, replaced atomically after every write) catches rows cut off the end. Triggers refuse UPDATE and
DELETE, so only someone bypassing the app can change rows at all, and verify_chain() finds it.

Note: the chain has no secret, so someone who can write the file could recompute every later hash;
copying the head hash elsewhere now and then (an e-mail, a printout, a second machine) closes that gap.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from vision_app.errors import GalleryError
from vision_app.gallery.db import Database

log = logging.getLogger(__name__)

GENESIS = "0" * 64
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS access_log (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, kiosk TEXT NOT NULL, "
    "decision TEXT NOT NULL, identity TEXT, reason TEXT NOT NULL, scores TEXT NOT NULL, "
    "liveness TEXT NOT NULL, alarm INTEGER NOT NULL, snapshot TEXT NOT NULL, prev_hash TEXT NOT NULL, "
    "hash TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS access_log_no_update BEFORE UPDATE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS access_log_no_delete BEFORE DELETE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END",
]
_COLUMNS = ("seq", "ts", "kiosk", "decision", "identity", "reason", "scores", "liveness", "alarm",
            "snapshot", "prev_hash", "hash")


def default_log_path(configured: str = "") -> Path:
    """access.log_db from config; "" = <per-user data folder>/access_log.db."""
    if configured:
        return Path(configured).expanduser()
    from vision_app.models import user_data_dir

    return user_data_dir() / "access_log.db"


@dataclass(frozen=True)
class LogEntry:
    """One decision. ts: ISO 8601 UTC; scores: canonical JSON text of the numbers behind the decision;
    liveness: "live" | "not live" | "not checked"; alarm: this decision raised the failed-attempts alarm."""

    seq: int
    ts: str
    kiosk: str
    decision: str
    identity: str | None
    reason: str
    scores: str
    liveness: str
    alarm: bool
    snapshot: str
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        """The hashed fields (everything but the hashes)."""
        return {"seq": self.seq, "ts": self.ts, "kiosk": self.kiosk, "decision": self.decision,
                "identity": self.identity, "reason": self.reason, "scores": self.scores,
                "liveness": self.liveness, "alarm": bool(self.alarm), "snapshot": self.snapshot}

    def score_dict(self) -> dict[str, Any]:
        return json.loads(self.scores)


def row_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + "\n" + canonical).encode("utf-8")).hexdigest()


def canonical_scores(scores: Mapping[str, Any]) -> str:
    """Scores as canonical JSON (floats rounded to 6 decimals; NaN/inf become null)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 6) if v == v and abs(v) != float("inf") else None
        return v
    return json.dumps({str(k): clean(v) for k, v in scores.items()}, sort_keys=True,
                      separators=(",", ":"))


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    bad_seq: int | None = None
    problem: str = ""
    head: str = GENESIS


class AccessLog:
    """The access log file (created when missing). Thread-safe; close() it (or use `with`)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 2.0,
                 attempts: int = 3) -> None:
        self.db = Database(path, "access log", busy_timeout_s=busy_timeout_s, attempts=attempts)
        self.path = self.db.path
        self.head_path = Path(f"{self.path}.head")
        try:
            tables = {r[0] for r in self.db.query("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "access_log" not in tables:
                raise GalleryError(f"{self.path} is an SQLite database but not an access log (tables: "
                                   f"{sorted(tables)}); choose another path")
            if not tables:
                self.db.write(lambda conn: [conn.execute(s) for s in _SCHEMA])
        except BaseException:
            self.db.close()
            raise

    def append(self, *, kiosk: str, decision: str, identity: str | None, reason: str,
               scores: Mapping[str, Any], liveness: str, alarm: bool = False, snapshot: str = "",
               ts: str | None = None) -> LogEntry:
        """Write one decision in its own transaction (retried while another process holds the lock).
        Raises GalleryError (locked, disk full, ...) with a message; the caller still has its decision."""
        stamp = ts or datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        score_text = canonical_scores(scores)

        def run(conn: sqlite3.Connection) -> LogEntry:
            last = conn.execute("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
            draft = LogEntry(seq, stamp, kiosk, decision, identity, reason, score_text, liveness,
                             bool(alarm), snapshot, prev, "")
            entry = LogEntry(**{**draft.__dict__, "hash": row_hash(prev, draft.content())})
            conn.execute(f"INSERT INTO access_log ({', '.join(_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(_COLUMNS))})",
                         tuple(int(v) if isinstance(v, bool) else v for v in
                               (getattr(entry, c) for c in _COLUMNS)))
            return entry

        entry = self.db.write(run)
        self._write_head(entry)
        return entry

    def _write_head(self, entry: LogEntry) -> None:
        # one temporary file per process and thread: two writers (two kiosks on one log) must not
        # truncate or move each other's half-written head file
        tmp = self.head_path.with_name(f"{self.head_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps({"seq": entry.seq, "hash": entry.hash}) + "\n", encoding="utf-8")
            os.replace(tmp, self.head_path)
        except OSError as exc:  # the row is committed; only tail-truncation detection is weakened
            log.error("access log %s: cannot update the head file %s: %s", self.path, self.head_path, exc)
            try:
                tmp.unlink(missing_ok=True)
            except OSError as cleanup:
                log.debug("access log %s: leftover %s: %s", self.path, tmp, cleanup)

    def _rows(self, page: int = 1000) -> Iterator[LogEntry]:
        """Rows in storage order, read a page at a time (the lock is not held between pages)."""
        after = 0
        while True:
            rows = self.db.query(f"SELECT rowid, {', '.join(_COLUMNS)} FROM access_log WHERE rowid > ? "
                                 f"ORDER BY rowid LIMIT ?", (after, page))
            for row in rows:
                values = dict(zip(_COLUMNS, row[1:]))
                yield LogEntry(**{**values, "alarm": bool(values["alarm"])})
            if len(rows) < page:
                return
            after = rows[-1][0]

    def entries(self, last: int = 0) -> list[LogEntry]:
        """All rows in order, or only the `last` N."""
        rows = list(self._rows())
        return rows[-last:] if last else rows

    def verify_chain(self) -> ChainReport:
        """Walk the rows in storage order and check every hash, link and sequence number, then the
        head file (rows cut off the end)."""
        head = self._read_head()
        prev, n, expect, head_row_hash = GENESIS, 0, 1, None
        for e in self._rows():
            n += 1
            if e.seq != expect:
                what = "missing rows (deleted)" if e.seq > expect else "out of order or duplicated"
                return ChainReport(False, n, e.seq, f"row seq {e.seq}: expected seq {expect}: {what}", prev)
            if e.prev_hash != prev:
                return ChainReport(False, n, e.seq, f"row seq {e.seq}: its link does not match the hash of "
                                   f"the row before (a row was deleted, inserted or reordered)", prev)
            if row_hash(e.prev_hash, e.content()) != e.hash:
                return ChainReport(False, n, e.seq, f"row seq {e.seq}: content does not match its hash "
                                   f"(the row was edited)", prev)
            if head is not None and e.seq == head[0]:
                head_row_hash = e.hash
            prev, expect = e.hash, expect + 1
        if head is not None:
            hseq, hhash = head
            if hseq > n:
                return ChainReport(False, n, n + 1, f"rows after seq {n} are missing: the head file "
                                   f"{self.head_path.name} says the log had {hseq} rows (rows deleted "
                                   f"from the end)", prev)
            if hseq >= 1 and head_row_hash != hhash:
                return ChainReport(False, n, hseq, f"row seq {hseq}: hash differs from the head file "
                                   f"(the chain was rewritten)", prev)
        return ChainReport(True, n, None, "", prev)

    def _read_head(self) -> tuple[int, str] | None:
        if not self.head_path.is_file():
            return None
        try:
            d = json.loads(self.head_path.read_text(encoding="utf-8"))
            return int(d["seq"]), str(d["hash"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("access log head file %s unreadable (%s); tail truncation not checked",
                        self.head_path, exc)
            return None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "AccessLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
