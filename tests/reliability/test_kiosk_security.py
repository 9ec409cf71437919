"""Security of the kiosk: the admin PIN lockout survives a restart (a fresh process), the app refuses a gallery
key file that group or others can read (the CLI commands and the kiosk window, saying to chmod 600), the
access log's chain catches edited, deleted, reordered and cut-off rows through `verify-log`, and a door
webhook that never answers neither blocks the decision loop nor waits forever.

Covered elsewhere (not repeated): the key file is created 0600 and Gallery() refuses 0644/0640/0604/0660
(tests/vision_app/gallery/test_gallery.py::test_new_gallery_key_is_0600_and_roundtrips,
::test_group_or_world_readable_key_is_refused); templates and thumbnails cannot be read from the database
without the key (::test_db_file_alone_does_not_reveal_templates).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.kiosk import frame
from tests.vision_app.access.test_accesslog import tamper
from vision_app.access.accesslog import AccessLog
from vision_app.access.controller import AccessController
from vision_app.access.door import WebhookDoor
from vision_app.access.policy import AccessPolicy
from vision_app.cli import main
from vision_app.gallery.gallery import Gallery

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


# ---- admin PIN ---------------------------------------------------------------------------------------------
_PIN_CHILD = """
import dataclasses, json, sys
from ui.pin import PinStore
store = PinStore(sys.argv[1], 3, 600)
if sys.argv[2] == "set":
    store.set_pin("2468")
print(json.dumps([dataclasses.asdict(store.check(pin)) for pin in sys.argv[3:]]))
"""


def pin_process(path: Path, *args: str) -> list[dict]:
    """A separate process (a kiosk restart) checking PINs with a 3-attempt, 600 s lockout."""
    done = subprocess.run([sys.executable, "-c", _PIN_CHILD, str(path), *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pin_lockout_survives_a_restart(tmp_path: Path) -> None:
    admin = tmp_path / "kiosk_admin.json"
    first = pin_process(admin, "set", "1111", "2222", "3333")  # three wrong PINs: locked
    assert [c["ok"] for c in first] == [False] * 3 and first[-1]["locked_for_s"] > 590
    later = pin_process(admin, "check", "2468")  # restarted kiosk, the right PIN: still locked
    assert later[0]["ok"] is False and 0 < later[0]["locked_for_s"] <= 600
    assert "2468" not in admin.read_text() and admin.stat().st_mode & 0o777 == 0o600
    rec = json.loads(admin.read_text())  # the lock ends: a fresh start would be allowed in
    rec["locked_until"] = 0.0
    admin.write_text(json.dumps(rec))
    assert pin_process(admin, "check", "2468")[0]["ok"] is True


# ---- gallery key file permissions --------------------------------------------------------------------------
@pytest.fixture()
def readable_key_gallery(tmp_path: Path) -> Path:
    db = tmp_path / "g.db"
    x = np.random.default_rng(0).standard_normal((1, 128)).astype(np.float32)
    with Gallery(db) as g:
        g.enroll("alice", x / np.linalg.norm(x), "mobilefacenet", "1")
    return db


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_gallery_commands_refuse_a_readable_key(readable_key_gallery: Path, capsys, mode: int) -> None:
    key = Path(f"{readable_key_gallery}.key")
    key.chmod(mode)
    assert main(["gallery", "list", "--db", str(readable_key_gallery)]) == 2
    err = capsys.readouterr().err
    assert f"chmod 600 {key}" in err and f"{mode:04o}" in err
    key.chmod(0o600)
    assert main(["gallery", "list", "--db", str(readable_key_gallery)]) == 0


def test_verify_command_refuses_a_readable_key(readable_key_gallery: Path, tmp_path: Path, media_dir: Path,
                                               models_dir: Path) -> None:
    key = Path(f"{readable_key_gallery}.key")
    key.chmod(0o644)
    log_db = tmp_path / "log.db"
    done = subprocess.run([sys.executable, "main.py", "verify", "--source",
                           str(media_dir / "video/carphone_face_176x144.mp4"), "--db", str(readable_key_gallery),
                           "--log-db", str(log_db), "--max-frames", "5", "--models", str(models_dir)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"chmod 600 {key}" in done.stderr
    assert not log_db.exists()  # it never ran: no decision was made or logged


def test_kiosk_window_refuses_a_readable_key(qtbot, readable_key_gallery: Path, tmp_path: Path, store,
                                             monkeypatch) -> None:
    pytest.importorskip("PySide6")
    from PySide6.QtCore import QSettings

    from ui.context import AppContext
    from ui.kiosk import KioskWindow
    from ui.kiosk_access import build_controller
    from ui.pin import PinStore
    from vision_app.config import load_config

    key = Path(f"{readable_key_gallery}.key")
    key.chmod(0o644)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    overrides = {"face.gallery": str(readable_key_gallery), "ui.admin_file": str(tmp_path / "admin.json"),
                 "access.log_db": str(tmp_path / "log.db"), "engine.backend": "onnxruntime"}
    ctx = AppContext(load_config(None, overrides), None, QSettings(str(tmp_path / "s.ini"),
                     QSettings.Format.IniFormat), store, "", overrides)
    PinStore(ctx.admin_file(), 3, 600).set_pin("2468")
    win = KioskWindow(ctx, "test:160x120@10", lambda: build_controller(ctx), windowed=True)
    qtbot.addWidget(win)
    win.start()
    try:
        qtbot.waitUntil(lambda: "chmod 600" in win.banner.text(), timeout=60_000)
        assert win.current_banner.kind == "error" and "Out of order" in win.banner.text()
        assert f"chmod 600 {key}" in win.banner.text()
        assert not win.feed.session.running  # no pipeline, no decisions
    finally:
        win.shutdown()


# ---- access log tampering through verify-log ---------------------------------------------------------------
@pytest.mark.parametrize("sql, words", [
    (["UPDATE access_log SET decision = 'granted', identity = 'mallory' WHERE seq = 3"], "row seq 3: content"),
    (["DELETE FROM access_log WHERE seq = 3"], "row seq 4: expected seq 3: missing rows"),
    (["DELETE FROM access_log WHERE seq = 3", "UPDATE access_log SET seq = seq - 1 WHERE seq > 3"],
     "row seq 3: its link does not match"),
    (["UPDATE access_log SET seq = 100 WHERE seq = 2", "UPDATE access_log SET seq = 2 WHERE seq = 3",
      "UPDATE access_log SET seq = 3 WHERE seq = 100"], "row seq 2: its link does not match"),
    # two rows' contents exchanged, each keeping its place in the sequence (seq is the row id)
    (["CREATE TABLE t AS SELECT * FROM access_log WHERE seq IN (2, 4)", "DELETE FROM access_log WHERE seq IN (2, 4)",
      "INSERT INTO access_log SELECT 6 - seq, ts, kiosk, decision, identity, reason, scores, liveness, alarm, "
      "snapshot, prev_hash, hash FROM t", "DROP TABLE t"], "row seq 2: its link does not match"),
    (["DELETE FROM access_log WHERE seq = 5"], "deleted from the end"),
])
def test_verify_log_detects_edited_deleted_reordered_rows(tmp_path: Path, capsys, sql: list[str],
                                                          words: str) -> None:
    db = tmp_path / "log.db"
    with AccessLog(db) as log:
        for i in range(5):
            log.append(kiosk="door-1", decision="denied", identity=None, reason=f"attempt {i}",
                       scores={"similarity": 0.3}, liveness="live")
    assert main(["verify-log", "--db", str(db)]) == 0
    assert "5 rows, chain intact" in capsys.readouterr().out
    tamper(db, *sql)
    assert main(["verify-log", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "CHAIN BROKEN" in out and words in out, out


# ---- door webhook that never answers -----------------------------------------------------------------------
class SilentDoorController:
    """A TCP server on 127.0.0.1 that accepts connections and reads the request, then never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/door"
        self.requests = threading.Semaphore(0)
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            conn.recv(65536)
            self.requests.release()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_webhook_door_that_never_answers(tmp_path: Path) -> None:
    server = SilentDoorController()
    door = WebhookDoor(server.url, timeout_s=1.0)
    policy = AccessPolicy(blink_challenge=False, result_s=0.0, cooldown_s=0.0, recognition_interval_s=0.0)
    ctl = AccessController(policy, AccessLog(tmp_path / "log.db"), door, kiosk_id="k")
    try:
        decisions = [d for i in range(8) for d in ctl.update(frame(i, track=1))]
        assert [d.decision for d in decisions] == ["granted"] and decisions[0].logged
        assert server.requests.acquire(timeout=10)  # the door controller got the request...
        decisions += [d for i in range(8, 16) for d in ctl.update(frame(i, track=2))]
        # ...and has not answered, yet the next person was decided too: the loop never waited for it
        assert [d.decision for d in decisions] == ["granted", "granted"]
        assert door.sent == 0 and door.failed == 0
        assert door.wait_idle(10)  # each request gives up after its timeout
        assert door.failed == 2 and door.sent == 0
        assert "did not answer within 1 s" in door.last_error
    finally:
        ctl.close()
        server.close()
    with AccessLog(tmp_path / "log.db") as log:  # the grants are logged although the door never confirmed
        assert [e.decision for e in log.entries()] == ["granted", "granted"] and log.verify_chain().ok


@pytest.mark.parametrize("field, value", [
    ("failures", -100), ("locked_until", float("nan")), ("locked_until", -1.0), ("salt", 12),
    ("hash", "zz"), ("n", 1 << 30), ("failures", True),
])
def test_tampered_pin_file_fails_closed_with_a_clear_error(tmp_path, field, value) -> None:
    import json

    from ui.pin import PinStore
    from vision_app.errors import ConfigError

    store = PinStore(tmp_path / "admin.json", max_attempts=3, lockout_s=60)
    store.set_pin("4826")
    data = json.loads((tmp_path / "admin.json").read_text())
    data[field] = value
    (tmp_path / "admin.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="admin file .* is unreadable"):
        store.check("4826")
