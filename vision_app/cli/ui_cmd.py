"""`python main.py gui | kiosk | monitor`: the desktop app's windows.

PySide6 is imported only inside the command functions (via ui.app), so importing vision_app, building
the parser or running headless commands never loads Qt; a window command first checks that there is a
display (vision_app/cli/display.py) and `kiosk --set-pin` needs none.
"""
from __future__ import annotations

import argparse
from types import ModuleType

from vision_app.cli.common import add_monitoring_options, app_config
from vision_app.cli.display import require_display
from vision_app.errors import VisionAppError


def _window_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window when quitting "
                   "(with --quit-after)")
    p.add_argument("--quit-after", type=float, default=0.0, metavar="SECONDS",
                   help="close the window after this many seconds (screenshots, demos, benchmarks)")
    p.add_argument("--settings", metavar="INI", help="keep window settings in this INI file instead of "
                   "the per-user QSettings store")
    add_monitoring_options(p)


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("gui", help="the desktop window (default when no command is given)")
    add_common(p)
    p.add_argument("--source", help="source to start with: camera:0 | video file | rtsp://… | test: "
                   "(default: the last one used, else camera:0)")
    p.add_argument("--tasks", help="comma-separated pipelines to switch on: detect, face, segment, style")
    p.add_argument("--db", metavar="PATH", help="face gallery database (default from config)")
    p.add_argument("--loop", action="store_true", help="play a video file source in a loop")
    p.add_argument("--video-mode", choices=["paced", "offline"], default=None,
                   help="video files at their own fps like a camera (paced, default) or every frame as fast "
                   "as the pipeline goes (offline: the heaviest load on the GUI)")
    p.add_argument("--latency", action="store_true", help="measure how late a 10 ms QTimer fires while "
                   "the pipeline runs and print it when the window closes (event-loop responsiveness)")
    _window_options(p)
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("kiosk", help="full-screen door kiosk: face verification with liveness")
    add_common(p)
    p.add_argument("--source", help="camera or file to watch (default camera:0)")
    p.add_argument("--db", metavar="PATH", help="face gallery database (default from config)")
    p.add_argument("--windowed", action="store_true", help="a normal window instead of full screen (testing)")
    p.add_argument("--quit-on-decision", action="store_true", help="quit (and take --screenshot) shortly "
                   "after the first access decision (demos, screenshots); --quit-after still caps the wait")
    p.add_argument("--set-pin", action="store_true", help="set the admin PIN (read from the terminal or "
                   "stdin) and exit")
    _window_options(p)
    p.set_defaults(func=cmd_kiosk)

    p = sub.add_parser("monitor", help="grid of up to 4 live sources with an event list")
    add_common(p)
    p.add_argument("sources", nargs="+", metavar="SRC", help="1 to 4 sources (camera:N, files, URLs, test:)")
    p.add_argument("--tasks", help="pipelines per source (default: face when available, else detect)")
    p.add_argument("--db", metavar="PATH", help="face gallery database (default from config)")
    p.add_argument("--loop", action="store_true", help="play video file sources in a loop")
    _window_options(p)
    p.set_defaults(func=cmd_monitor)


def _ui_app(command: str) -> ModuleType:
    """ui.app, after checking there is a display: without one, Qt would abort the process."""
    require_display(command)
    try:
        import ui.app
    except ImportError as exc:
        raise VisionAppError(f"the desktop app needs PySide6, which cannot be imported here ({exc}); "
                             "install it with pip install PySide6, or use `python main.py run` "
                             "for headless runs") from exc
    return ui.app


def cmd_gui(args: argparse.Namespace) -> int:
    return int(_ui_app("gui").run_gui(args))


def cmd_kiosk(args: argparse.Namespace) -> int:
    if args.set_pin:  # an admin over SSH: no window, no Qt
        from ui.pin import set_pin_interactive

        return set_pin_interactive(app_config(args))
    return int(_ui_app("kiosk").run_kiosk(args))


def cmd_monitor(args: argparse.Namespace) -> int:
    return int(_ui_app("monitor").run_monitor(args))
