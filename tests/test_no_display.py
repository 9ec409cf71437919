"""On a machine without a display: window commands exit at once with a message saying what to do; every
command that needs no window (kiosk --set-pin, the CLI) works and never loads Qt."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vision_app.cli.display import display_problem

REPO = Path(__file__).resolve().parents[1]


def headless_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"), XDG_RUNTIME_DIR=str(tmp_path))
    return env


@pytest.mark.parametrize("args", [[], ["gui"], ["kiosk"], ["monitor", "test:"], ["--source", "test:"]],
                         ids=["no-command", "gui", "kiosk", "monitor", "options-only"])
def test_window_commands_without_a_display_exit_at_once_saying_what_to_do(args: list[str], tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                       timeout=60, env=headless_env(tmp_path), cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)  # not Qt's abort (134)
    assert "no display" in p.stderr and "neither DISPLAY nor WAYLAND_DISPLAY is set" in p.stderr
    assert "QT_QPA_PLATFORM=offscreen" in p.stderr and "python main.py run" in p.stderr
    assert "Traceback" not in p.stderr and "could not connect to display" not in p.stderr
    assert time.monotonic() - t0 < 30  # the interpreter and the parser only


def _run_in_process(tmp_path: Path, argv: list[str], stdin: str = "") -> dict:
    """Run the CLI in a fresh interpreter and report its exit code and whether any Qt module got loaded."""
    code = ("import json, sys\nfrom vision_app.cli import main\n"
            f"rc = main({argv!r})\n"
            "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6'))\n"
            "print('@@' + json.dumps({'rc': rc, 'qt': qt}))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, input=stdin,
                       env=headless_env(tmp_path), cwd=REPO)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("@@")), None)
    assert line is not None, p.stdout + p.stderr
    return {**json.loads(line[2:]), "stdout": p.stdout, "stderr": p.stderr}


def test_kiosk_set_pin_works_without_a_display_and_without_qt(tmp_path: Path) -> None:
    from ui.pin import PinStore

    admin = tmp_path / "admin.json"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[ui]\nadmin_file = '{admin}'\n")
    r = _run_in_process(tmp_path, ["kiosk", "--set-pin", "--config", str(cfg)], stdin="2468\n")
    assert r["rc"] == 0 and r["qt"] == [], r
    assert f"admin PIN set in {admin}" in r["stdout"]
    assert PinStore(admin, 3, 60).check("2468").ok and oct(admin.stat().st_mode & 0o777) == "0o600"
    bad = _run_in_process(tmp_path, ["kiosk", "--set-pin", "--config", str(cfg)], stdin="12\n")
    assert bad["rc"] == 2 and "4 to 12 digits" in bad["stderr"] and bad["qt"] == []


def test_cli_commands_without_a_display_never_load_qt(tmp_path: Path, media_dir: Path) -> None:
    bus = str(media_dir / "scenes/bus.jpg")
    for argv in (["models", "list"],
                 ["run", "--tasks", "detect,segment", "--source", "sample:", "--max-frames", "3", "-q"],
                 ["detect", bus], ["segment", bus, "--json"],
                 ["liveness", str(media_dir / "scenes/astronaut.png")],
                 ["gallery", "enroll", "Ann", str(media_dir / "scenes/astronaut.png"), "--db", str(tmp_path / "g.db")],
                 ["gallery", "list", "--db", str(tmp_path / "g.db")]):
        r = _run_in_process(tmp_path, argv)
        assert r["rc"] == 0, (argv, r["stderr"][-2000:])
        assert r["qt"] == [], (argv, r["qt"])


@pytest.fixture()
def fake_x_server():
    """A TCP listener where an X server for display 127.0.0.1:N would be (port 6000 + N)."""
    for n in range(60, 100):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", 6000 + n))
        except OSError:
            s.close()
            continue
        s.listen(4)
        yield n
        s.close()
        return
    pytest.skip("no free port in 6060..6099 for a stand-in X server")


def test_display_detection(fake_x_server: int, tmp_path: Path) -> None:
    linux = "linux"
    assert display_problem({}, linux) == "neither DISPLAY nor WAYLAND_DISPLAY is set (no X11 or Wayland session)"
    for qpa in ("offscreen", "minimal", "vnc", "eglfs", "offscreen:fontdir=/x"):
        assert display_problem({"QT_QPA_PLATFORM": qpa}, linux) is None, qpa
    assert display_problem({}, "win32") is None and display_problem({}, "darwin") is None
    assert display_problem({"DISPLAY": f"127.0.0.1:{fake_x_server}"}, linux) is None
    assert display_problem({"DISPLAY": f"127.0.0.1:{fake_x_server}.0", "QT_QPA_PLATFORM": "xcb"}, linux) is None
    gone = display_problem({"DISPLAY": "127.0.0.1:59"}, linux)  # 6059: nothing listens there
    assert gone is not None and gone.startswith("DISPLAY=127.0.0.1:59 is set, but no X server answers")
    assert display_problem({"DISPLAY": f"127.0.0.1:{fake_x_server}", "QT_QPA_PLATFORM": "wayland"}, linux) \
        is not None  # Qt would not use X11 here
    (tmp_path / "wayland-1").touch()
    env = {"WAYLAND_DISPLAY": "wayland-1", "XDG_RUNTIME_DIR": str(tmp_path)}
    assert display_problem(env, linux) is None
    assert display_problem({**env, "WAYLAND_DISPLAY": "wayland-9"}, linux) == \
        "WAYLAND_DISPLAY=wayland-9 is set, but its socket does not exist"
