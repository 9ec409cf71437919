"""Access log: hash chain catches edited, deleted, reordered and cut-off rows; writes fail with clear
errors on a locked database or a full disk."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vision_app.access.accesslog import AccessLog
from vision_app.errors import GalleryError

REPO = Path(__file__).resolve().parents[3]


def fill(path: Path, n: int = 5) -> None:
    with AccessLog(path) as log:
        for i in range(n):
            log.append(kiosk="door-1", decision="granted" if i % 2 else "denied",
                       identity="alice" if i % 2 else None, reason=f"attempt {i}",
                       scores={"similarity": 0.5 + i / 100, "passive": 0.9, "nan": float("nan")},
                       liveness="live", snapshot=f"/snaps/{i}.jpg")


def tamper(path: Path, *sql: str) -> None:
    """What someone bypassing the app would do: drop the guards, then change rows."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DROP TRIGGER access_log_no_update")
    con.execute("DROP TRIGGER access_log_no_delete")
    for s in sql:
        con.execute(s)
    con.close()


def test_intact_chain_verifies(tmp_path):
    fill(tmp_path / "log.db")
    with AccessLog(tmp_path / "log.db") as log:
        report = log.verify_chain()
        rows = log.entries()
    assert report.ok and report.rows == 5 and report.head == rows[-1].hash
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[1].identity == "alice" and rows[0].identity is None
    assert rows[1].score_dict() == {"nan": None, "passive": 0.9, "similarity": 0.51}
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))


def test_app_cannot_update_or_delete(tmp_path):
    fill(tmp_path / "log.db")
    con = sqlite3.connect(tmp_path / "log.db")
    for sql in ("UPDATE access_log SET reason = 'x' WHERE seq = 2", "DELETE FROM access_log WHERE seq = 2"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute(sql)
    con.close()


@pytest.mark.parametrize("sql, bad_seq, words", [
    (["UPDATE access_log SET decision = 'granted', identity = 'mallory' WHERE seq = 3"], 3, "edited"),
    (["UPDATE access_log SET scores = '{\"similarity\":0.99}' WHERE seq = 2"], 2, "edited"),
    (["UPDATE access_log SET ts = '2020-01-01T00:00:00Z' WHERE seq = 5"], 5, "edited"),
    (["DELETE FROM access_log WHERE seq = 3"], 4, "missing rows"),
    # delete row 3 and renumber the rest to hide the gap: the link breaks
    (["DELETE FROM access_log WHERE seq = 3", "UPDATE access_log SET seq = seq - 1 WHERE seq > 3"], 3,
     "link does not match"),
    # swap rows 2 and 3 (their sequence numbers are hashed)
    (["UPDATE access_log SET seq = 100 WHERE seq = 2", "UPDATE access_log SET seq = 2 WHERE seq = 3",
      "UPDATE access_log SET seq = 3 WHERE seq = 100"], 2, "link does not match"),
    (["DELETE FROM access_log WHERE seq = 5"], 5, "deleted from the end"),
])
def test_tampering_is_detected(tmp_path, sql, bad_seq, words):
    fill(tmp_path / "log.db")
    tamper(tmp_path / "log.db", *sql)
    with AccessLog(tmp_path / "log.db") as log:
        report = log.verify_chain()
    assert not report.ok
    assert report.bad_seq == bad_seq
    assert f"row seq {bad_seq}" in report.problem or f"after seq {bad_seq - 1}" in report.problem
    assert words in report.problem


def test_verify_log_command(tmp_path):
    db = tmp_path / "log.db"
    fill(db)
    cmd = [sys.executable, "main.py", "verify-log", "--db", str(db)]
    ok = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "5 rows" in ok.stdout and "intact" in ok.stdout
    tamper(db, "UPDATE access_log SET identity = 'mallory' WHERE seq = 4")
    bad = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "row seq 4" in bad.stdout + bad.stderr and "edited" in bad.stdout + bad.stderr


def test_locked_log_gives_clear_error(tmp_path):
    fill(tmp_path / "log.db", 1)
    holder = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with AccessLog(tmp_path / "log.db", busy_timeout_s=0.05, attempts=2) as log:
            with pytest.raises(GalleryError, match="locked by another process"):
                log.append(kiosk="k", decision="denied", identity=None, reason="r", scores={},
                           liveness="live")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_full_disk_gives_clear_error_and_keeps_the_chain(tmp_path):
    fill(tmp_path / "log.db", 2)
    with AccessLog(tmp_path / "log.db") as log:
        (pages,) = log.db.conn.execute("PRAGMA page_count").fetchone()
        log.db.conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: a full disk
        with pytest.raises(GalleryError, match="disk is full"):
            for i in range(200):
                log.append(kiosk="k", decision="denied", identity=None, reason="x" * 2000, scores={},
                           liveness="live")
        report = log.verify_chain()
    assert report.ok and report.rows >= 2
