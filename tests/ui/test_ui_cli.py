"""`python main.py gui | monitor`: Qt only imported by the UI commands; the windows run and quit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vision_app.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_vision_app_and_the_parser_never_import_pyside6():
    code = ("import sys, vision_app, engines; from vision_app.cli import build_parser; "
            "p = build_parser(); assert {'gui', 'kiosk', 'monitor'} <= set(p.get_default('commands')); "
            "assert not [m for m in sys.modules if m.startswith('PySide6')], 'PySide6 imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_no_sub_command_opens_the_gui_and_quits(qtbot, tmp_path, capsys):
    shot = tmp_path / "gui.png"
    code = main(["--source", "test:320x240@30", "--quit-after", "1.5", "--screenshot", str(shot),
                 "--settings", str(tmp_path / "s.ini"), "--latency"])
    out = capsys.readouterr().out
    assert code == 0 and shot.stat().st_size > 1000
    assert "event-loop latency over" in out and "frames: processed" in out


def test_monitor_command_runs_two_sources(qtbot, tmp_path, media_dir, models_dir):
    shot = tmp_path / "monitor.png"
    video = str(media_dir / "video" / "carphone_face_176x144.mp4")
    code = main(["monitor", video, "test:160x120@30", "--tasks", "passthrough", "--quit-after", "1.5",
                 "--screenshot", str(shot), "--settings", str(tmp_path / "s.ini"), "--models", str(models_dir)])
    assert code == 0 and shot.stat().st_size > 1000


def test_the_installed_qt_binding_is_usable_and_the_broken_one_is_refused(monkeypatch):
    import PySide6
    import pytest

    from ui.app import check_qt_binding
    from vision_app.errors import VisionAppError

    check_qt_binding()  # this environment: not PySide6 6.12 on Python < 3.12
    monkeypatch.setattr(PySide6, "__version__", "6.12.0")
    monkeypatch.setattr(sys, "version_info", (3, 11, 7))
    with pytest.raises(VisionAppError, match="6.12"):
        check_qt_binding()
