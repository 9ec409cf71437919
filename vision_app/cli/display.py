"""Is there a display a window can open on? Checked before Qt is imported, because Qt's xcb platform
plugin aborts the whole process (exit 134, "could not connect to display") when there is none.

Plain Python: the X11 display named by DISPLAY is tried with a socket connection (the local
/tmp/.X11-unix socket, its abstract twin, or TCP 6000+N), a Wayland one by its socket in
XDG_RUNTIME_DIR. Platforms that need no display server (QT_QPA_PLATFORM=offscreen, minimal, vnc,
eglfs, linuxfb, ...) and other operating systems are never refused.
"""
from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import Mapping

from vision_app.errors import VisionAppError

_DISPLAY_SERVER_PLATFORMS = ("xcb", "wayland", "wayland-egl")
_X_DISPLAY = re.compile(r"^(?P<host>[^:]*):(?P<num>\d+)(?:\.\d+)?$")


def _x_display_reachable(display: str, timeout_s: float = 1.0) -> str | None:
    """None when the X server of DISPLAY answers a connection, else why not. Unusual DISPLAY forms (e.g.
    macOS launchd paths) are let through: Qt decides."""
    m = _X_DISPLAY.match(display)
    if not m:
        return None
    host, num = m.group("host"), int(m.group("num"))
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{num}"
        for address in (path, "\0" + path):  # the filesystem socket, then Linux's abstract one
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(timeout_s)
                    s.connect(address)
                    return None
            except OSError as exc:
                err = exc
        return f"no X server answers on {path} ({err})"
    try:
        with socket.create_connection((host, 6000 + num), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"no X server answers at {host}:{6000 + num} ({exc})"


def _wayland_reachable(env: Mapping[str, str]) -> bool:
    name = env.get("WAYLAND_DISPLAY", "")
    if not name:
        return False
    path = Path(name) if name.startswith("/") else Path(env.get("XDG_RUNTIME_DIR", "/nonexistent")) / name
    return path.exists()


def display_problem(env: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """None when a window can be opened here, else a sentence saying why not."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin")) or platform == "cygwin":
        return None
    qpa = env.get("QT_QPA_PLATFORM", "").strip()
    # "xcb", "wayland;xcb" (fallbacks in order), "offscreen:fontdir=..." (platform options)
    wanted = [p.split(":", 1)[0].strip().lower() for p in qpa.split(";") if p.strip()]
    if wanted and any(p not in _DISPLAY_SERVER_PLATFORMS for p in wanted):
        return None  # offscreen, minimal, vnc, eglfs, linuxfb: no display server needed
    if (not wanted or any(p.startswith("wayland") for p in wanted)) and _wayland_reachable(env):
        return None
    display = env.get("DISPLAY", "")
    if display and (not wanted or "xcb" in wanted):
        problem = _x_display_reachable(display)
        return None if problem is None else f"DISPLAY={display} is set, but {problem}"
    if env.get("WAYLAND_DISPLAY"):
        return f"WAYLAND_DISPLAY={env['WAYLAND_DISPLAY']} is set, but its socket does not exist"
    return "neither DISPLAY nor WAYLAND_DISPLAY is set (no X11 or Wayland session)"


def require_display(command: str) -> None:
    """Raise VisionAppError, saying what to do instead, when `command`'s window cannot open here."""
    problem = display_problem()
    if problem is None:
        return
    raise VisionAppError(
        f"no display: `{command}` opens a window, and this machine has no display to show it on: {problem}. "
        f"Without a screen use the headless commands (python main.py run | detect | identify | verify | "
        f"segment | stylize ...; python main.py --help lists them; `kiosk --set-pin` needs no display), "
        f"log in with a desktop session or `ssh -X`, or render the window off-screen for screenshots with "
        f"QT_QPA_PLATFORM=offscreen (e.g. QT_QPA_PLATFORM=offscreen python main.py {command} --screenshot "
        f"shot.png --quit-after 5)")
