"""Entry points behind `python main.py gui | kiosk | monitor` (called by vision_app/cli/ui_cmd.py)."""
from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import threading
import time
from typing import Callable

from PySide6.QtCore import QCoreApplication, QEvent, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from vision_app.errors import VisionAppError
from vision_app.stages import parse_tasks

from ui.context import AppContext
from ui.probe import EventLoopProbe

log = logging.getLogger(__name__)


def _drop_opencv_qt_paths() -> None:
    """opencv-python's Linux wheels point QT_QPA_PLATFORM_PLUGIN_PATH (and QT_QPA_FONTDIR) at their own
    Qt 5 plugins when cv2 is imported; Qt 6 then fails to load its xcb platform plugin on a real display.
    Unset them (only when they point into the cv2 package) before the QApplication is made."""
    import cv2

    cv2_dir = os.path.dirname(os.path.abspath(cv2.__file__))
    for var in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR"):
        value = os.environ.get(var, "")
        if value and os.path.abspath(value).startswith(cv2_dir):
            log.debug("unsetting %s=%s (set by OpenCV for its own Qt 5)", var, value)
            del os.environ[var]


def check_qt_binding() -> None:
    """PySide6 6.12 under Python < 3.12 drops a reference to None/True/False on every call (void
    methods, Signal.emit): a window aborts after a few thousand calls ('Fatal Python error:
    none_dealloc'). Refuse to start with it, saying what to install."""
    import PySide6

    if sys.version_info < (3, 12) and PySide6.__version__.startswith("6.12."):
        raise VisionAppError(
            f"PySide6 {PySide6.__version__} is not usable with Python {sys.version.split()[0]}: it corrupts "
            f"the reference count of None and the app would abort within minutes. Install another "
            f"version: pip install 'PySide6>=6.6,!=6.12.*' (or use Python 3.12+)")


def application() -> QApplication:
    check_qt_binding()
    app = QApplication.instance()
    if app is None:
        _drop_opencv_qt_paths()
        app = QApplication(sys.argv[:1])
        app.setOrganizationName("vision-app")
        app.setApplicationName("vision-app")
    return app  # type: ignore[return-value]


def grab_to_file(window: QWidget, path: str) -> threading.Thread:
    """Screenshot of `window`: grabbed in the GUI thread (Qt needs that), PNG written on a worker."""
    image = window.grab().toImage()

    def save() -> None:
        if not image.save(path):  # the format follows the extension (.png)
            log.error("could not write screenshot %s", path)
        else:
            print(f"screenshot saved to {path}")

    t = threading.Thread(target=save, name="screenshot-writer")
    t.start()
    return t


def quit_later(app: QApplication, window: QWidget, args: argparse.Namespace) -> Callable[[], None]:
    """--quit-after / --screenshot: after the delay, grab the window, then close it (its closeEvent
    stops the threads). Returns the finishing function for other triggers (kiosk --quit-on-decision)."""
    writers: list[threading.Thread] = []
    done = False

    def finish() -> None:
        nonlocal done
        if done:
            return
        done = True
        if args.screenshot:
            writers.append(grab_to_file(window, args.screenshot))
        getattr(window, "shutdown", window.close)()  # the kiosk ignores plain close requests
        for w in writers:
            w.join(5.0)
        app.quit()

    if args.quit_after:
        QTimer.singleShot(int(args.quit_after * 1000), finish)
    elif args.screenshot:
        log.warning("--screenshot is taken when the window quits; add --quit-after SECONDS")
    return finish


def exec_and_wind_down(app: QApplication, window: QWidget,
                       after_loop: Callable[[], None] | None = None) -> int:
    """Run the event loop; afterwards wait (bounded) for every worker thread of the window's feeds and
    delete the window while Python is still fully alive: a worker that outlives the window would
    otherwise touch Qt objects during interpreter shutdown."""
    from ui.live import LiveFeed

    code = app.exec()
    if after_loop is not None:  # read what the window knows before it is deleted
        after_loop()
    deadline = time.monotonic() + 3.0
    for feed in window.findChildren(LiveFeed):
        feed.stop(timeout=1.0)
        for t in feed.session.threads():
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("thread %s still running at exit", t.name)
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    # closing the last window posts a Quit that would stop every later event loop of this process
    # (an embedding program, the tests): it has done its job, drop it
    QCoreApplication.removePostedEvents(app, QEvent.Type.Quit)
    gc.collect()
    return int(code)


def run_gui(args: argparse.Namespace) -> int:
    from ui.main_window import MainWindow

    app = application()
    ctx = AppContext.from_args(args, **{"ui.file_mode": args.video_mode})
    win = MainWindow(ctx)
    if args.tasks:
        wanted = parse_tasks(args.tasks)
        for t in ("detect", "face", "segment", "style"):
            win.controls.set_task(t, t in wanted)
    if args.source:
        win.source_box.setCurrentText(args.source)
    if args.loop:
        win.act_loop.setChecked(True)
    win.show()
    probe = EventLoopProbe(parent=win)
    report: list[str] = []

    def latency_report() -> None:
        probe.stop()
        report.append(probe.text())
        report.append(f"frames: processed {win.feed.bridge.published}, shown {win.view.frames_shown}, "
                      f"skipped by the GUI (newer one already waiting) {win.feed.bridge.coalesced}")

    if args.latency:
        probe.start()
    QTimer.singleShot(0, win.start)
    quit_later(app, win, args)
    try:
        code = exec_and_wind_down(app, win, latency_report if args.latency else None)
    finally:
        close_monitoring(ctx)
    if report:
        print("\n".join(report))
    return code


def run_monitor(args: argparse.Namespace) -> int:
    from ui.monitor import MonitorWindow

    app = application()
    ctx = AppContext.from_args(args)
    tasks = parse_tasks(args.tasks) if args.tasks else None
    win = MonitorWindow(ctx, args.sources, tasks, loop_files=args.loop)
    if ctx.store_error:
        win.statusBar().showMessage(ctx.store_error)
    win.show()
    QTimer.singleShot(0, win.start)
    quit_later(app, win, args)
    try:
        return exec_and_wind_down(app, win)
    finally:
        close_monitoring(ctx)


def run_kiosk(args: argparse.Namespace) -> int:
    from ui.kiosk import KioskWindow
    from ui.kiosk_access import build_controller

    app = application()
    # the person at the door sees the banner's guidance only: no names or scores over the video
    # (the operator reads them in the admin panel's access log)
    ctx = AppContext.from_args(args, **{"face.overlay_details": False})
    win = KioskWindow(ctx, args.source or "camera:0", lambda: build_controller(ctx), windowed=args.windowed)
    win.start()
    finish = quit_later(app, win, args)
    if args.quit_on_decision:  # screenshots of a decision: quit once its banner has been painted
        win.feed.other.connect(lambda payload: QTimer.singleShot(800, finish)
                               if isinstance(payload, tuple) and payload[0] == "decision" else None)
    try:
        return exec_and_wind_down(app, win)
    finally:
        close_monitoring(ctx)


def close_monitoring(ctx: AppContext) -> None:
    """After the window's threads stopped: send the queued MQTT events, say offline, stop the metrics."""
    if ctx.monitoring is not None:
        ctx.monitoring.close()

