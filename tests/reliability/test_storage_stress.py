"""Storage under stress, with real processes: two writers on the gallery and the access log at once, a full
disk (RLIMIT_FSIZE in a child, SIGXFSZ ignored so writes fail with EFBIG) while recording video and while
logging decisions, and kill -9 in the middle of access-log writes.

(kill -9 during an enrolment: tests/vision_app/gallery/test_gallery.py::test_sigkill_mid_enrolment_leaves_all_or_nothing.)
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vision_app.access.accesslog import AccessLog
from vision_app.gallery.gallery import Gallery

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.helpers.storage_workers", *args], cwd=REPO, env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(child: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = child.communicate(timeout=timeout)
    assert child.returncode == 0, f"worker failed (exit {child.returncode}):\n{err[-3000:]}"
    assert "database is locked" not in err.lower().replace("locked by another", "")
    return json.loads(out.strip().splitlines()[-1])


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=60)


def test_two_processes_write_the_gallery_and_the_log_at_once(tmp_path: Path) -> None:
    """Two writers (an enrolment station and a second kiosk, say) and a reader (the kiosk's matcher and a
    log check) on the same two files."""
    log_db, gallery_db = tmp_path / "log.db", tmp_path / "g.db"
    AccessLog(log_db).close()
    Gallery(gallery_db).close()
    n, stop = 40, tmp_path / "stop"
    children = [worker("writer", str(log_db), str(gallery_db), tag, str(n)) for tag in ("a", "b")]
    children.append(worker("reader", str(log_db), str(gallery_db), str(stop)))  # the kiosk, reading along
    for c in children:  # all have their connections open before anyone writes
        assert c.stdout.readline().strip() == "READY"
    for c in children:
        c.stdin.write("go\n")
        c.stdin.flush()
    got = {tag: result(c) for tag, c in zip(("a", "b"), children)}
    stop.touch()
    read = result(children[2])
    assert read["errors"] == [] and read["rounds"] >= 1, read["errors"][:3]
    for tag, r in got.items():
        assert r["errors"] == [], f"writer {tag}: {r['errors'][:3]}"
        assert len(r["rows"]) == n and r["people"] == n
    seqs = sorted(got["a"]["rows"] + got["b"]["rows"])
    assert seqs == list(range(1, 2 * n + 1))  # every row kept, each sequence number given once
    with AccessLog(log_db) as log:
        report = log.verify_chain()
        rows = log.entries()
    assert report.ok and report.rows == 2 * n, report.problem
    for tag in ("a", "b"):  # each writer's own rows are in its order
        assert [r.reason for r in rows if r.kiosk == tag] == [f"{tag} {i}" for i in range(n)]
    with Gallery(gallery_db) as g:
        people = {p.name: p.templates for p in g.people()}
    assert people == {f"{tag}-{i}": 2 for tag in ("a", "b") for i in range(n)}
    assert cli("verify-log", "--db", str(log_db)).returncode == 0


def test_two_processes_create_the_same_new_gallery_at_once(tmp_path: Path) -> None:
    gallery_db = tmp_path / "new.db"
    children = [worker("open-gallery", str(gallery_db)) for _ in range(3)]
    for c in children:
        assert c.stdout.readline().strip() == "READY"
    for c in children:
        c.stdin.write("go\n")
        c.stdin.flush()
    got = [result(c) for c in children]
    assert [r["ok"] for r in got] == [True] * 3, got
    assert len({r["key_id"] for r in got}) == 1  # one key, shared: nobody wrote templates with another
    assert (tmp_path / "new.db.key").stat().st_mode & 0o777 == 0o600
    with Gallery(gallery_db) as g:
        assert len(g.people()) == 3 and len(g.embeddings([r.id for r in g.template_rows()])) == 3


def test_full_disk_while_logging_decisions(tmp_path: Path) -> None:
    log_db = tmp_path / "log.db"
    AccessLog(log_db).close()
    r = result(worker("full-log", str(log_db), "60000"))
    decisions = r["decisions"]
    logged = [d for d in decisions if d["logged"]]
    failed = [d for d in decisions if not d["logged"]]
    assert logged and failed, "the file-size limit was never reached"
    assert [d["seq"] for d in logged] == list(range(1, len(logged) + 1))
    for d in failed:  # the decision is still reported, with a clear reason; the door stays closed
        assert d["decision"] == "denied"
        assert "disk is full" in d["log_error"] and str(log_db) in d["log_error"]
        assert "access log unavailable" in d["reason"] and "door stays closed" in d["reason"]
    # space again: the same controller and connection log the next decision, which is granted
    assert r["after"] == [{"decision": "granted", "logged": True, "seq": len(logged) + 1}]
    assert r["door_opened"] == len(logged) + 1
    assert sqlite3.connect(log_db).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ok = cli("verify-log", "--db", str(log_db))  # what was written is a valid chain
    assert ok.returncode == 0 and f"{len(logged) + 1} rows, chain intact" in ok.stdout, ok.stdout + ok.stderr
    with AccessLog(log_db) as log:  # and the log goes on once there is space again
        log.append(kiosk="k", decision="denied", identity=None, reason="after", scores={}, liveness="live")
        assert log.verify_chain().ok and log.verify_chain().rows == len(logged) + 2


@pytest.mark.parametrize("video, limit, when", [
    ("bikes_640x272.mp4", 150_000, "frame"),         # OpenCV's write() fails once its buffer flush fails
    ("carphone_face_176x144.mp4", 20_000, "close"),  # all of it still buffered: only the finished file shows it
])
def test_full_disk_while_recording_video(tmp_path: Path, media_dir: Path, video: str, limit: int,
                                         when: str) -> None:
    out = tmp_path / "rec.mp4"
    r = result(worker("full-video", str(media_dir / "video" / video), str(out), str(limit)))
    assert r["finished"] and r["stopped"]  # the run ended by itself, threads joined
    assert r["processed"] == r["summary"]["frames_read"] > 100  # every frame went through the pipeline
    errors = [msg for kind, msg in r["events"] if kind == "error"]
    assert len(errors) == 1, r["events"]  # reported once, not once per frame
    assert str(out) in errors[0] and "disk is full" in errors[0] and "VideoWriterSink" in errors[0]
    assert r["runner_error"] == errors[0]
    if when == "frame":
        assert r["recorded"] < r["processed"] and "could not be written" in errors[0]
    else:
        assert r["recorded"] == r["processed"] and "cannot be read back" in errors[0]
    assert not r["writer_open"]  # the failed writer was closed (file handle released)
    assert out.stat().st_size <= limit


@pytest.mark.parametrize("pause_at", [0, 7])
def test_kill_9_during_access_log_writes(tmp_path: Path, pause_at: int) -> None:
    """pause_at 0: killed at a random point of a tight append loop; 7: killed inside row 7's transaction."""
    log_db = tmp_path / "log.db"
    child = worker("log-forever", str(log_db), str(pause_at))
    last, line = 0, ""
    try:
        while line != "PAUSED" and not (pause_at == 0 and last >= 25):
            line = child.stdout.readline().strip()
            if not line:  # the child died by itself
                break
            if line.startswith("ROW"):
                last = int(line.split()[1])
    finally:  # kill -9 (also when the loop above failed: the child would append forever)
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL and last >= 6, child.stderr.read()[-2000:]
    assert sqlite3.connect(log_db).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with AccessLog(log_db) as log:
        report = log.verify_chain()
        assert report.ok, report.problem
        if pause_at:
            assert report.rows == pause_at - 1  # the row being written when killed is not there at all
        else:
            assert report.rows >= last
        log.append(kiosk="k", decision="denied", identity=None, reason="after the crash", scores={},
                   liveness="live")
        assert log.verify_chain().ok
    ok = cli("verify-log", "--db", str(log_db))
    assert ok.returncode == 0 and "chain intact" in ok.stdout
