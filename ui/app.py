"""Entry points behind `python main.py gui | kiosk | monitor` (called by vision_app/cli/ui_cmd.py)."""
from __future__ import annotations

import argparse
import logging
import sys
import threading

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget

from vision_app.stages import parse_tasks

from ui.context import AppContext
from ui.probe import EventLoopProbe

log = logging.getLogger(__name__)


def application() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setOrganizationName("vision-app")
        app.setApplicationName("vision-app")
    return app  # type: ignore[return-value]


def grab_to_file(window: QWidget, path: str) -> threading.Thread:
    """Screenshot of `window`: grabbed in the GUI thread (Qt needs that), PNG written on a worker."""
    image = window.grab().toImage()

    def save() -> None:
        if not image.save(path, "PNG"):
            log.error("could not write screenshot %s", path)
        else:
            print(f"screenshot saved to {path}")

    t = threading.Thread(target=save, name="screenshot-writer")
    t.start()
    return t


def quit_later(app: QApplication, window: QWidget, args: argparse.Namespace) -> None:
    """--quit-after / --screenshot: grab the window, then close it (its closeEvent stops the threads)."""
    if not args.quit_after:
        if args.screenshot:
            log.warning("--screenshot is taken when the window quits; add --quit-after SECONDS")
        return
    writers: list[threading.Thread] = []

    def finish() -> None:
        if args.screenshot:
            writers.append(grab_to_file(window, args.screenshot))
        getattr(window, "shutdown", window.close)()  # the kiosk ignores plain close requests
        for w in writers:
            w.join(5.0)
        app.quit()

    QTimer.singleShot(int(args.quit_after * 1000), finish)


def _gallery_opener(ctx: AppContext):  # type: ignore[no-untyped-def]
    def open_gallery(parent: QWidget) -> None:
        from ui.gallery_dialog import GalleryDialog

        GalleryDialog(ctx, parent).exec()

    return open_gallery


def run_gui(args: argparse.Namespace) -> int:
    from ui.main_window import MainWindow

    app = application()
    ctx = AppContext.from_args(args)
    win = MainWindow(ctx, open_gallery=_gallery_opener(ctx))
    if args.tasks:
        wanted = parse_tasks(args.tasks)
        for t in ("detect", "face", "segment", "style"):
            win.controls.set_task(t, t in wanted)
    if args.source:
        win.source_box.setCurrentText(args.source)
    win.show()
    probe = EventLoopProbe(parent=win)
    if args.latency:
        probe.start()
    QTimer.singleShot(0, win.start)
    quit_later(app, win, args)
    code = app.exec()
    if args.latency:
        probe.stop()
        print(probe.text())
        print(f"frames: processed {win.feed.bridge.published}, shown {win.view.frames_shown}, "
              f"skipped by the GUI (newer one already waiting) {win.feed.bridge.coalesced}")
    return int(code)


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
    return int(app.exec())


def run_kiosk(args: argparse.Namespace) -> int:
    from ui.kiosk import KioskWindow
    from ui.kiosk_access import build_controller

    app = application()
    ctx = AppContext.from_args(args)
    if args.set_pin:
        return set_pin(ctx)
    win = KioskWindow(ctx, args.source or "camera:0", lambda: build_controller(ctx), windowed=args.windowed)
    win.start()
    quit_later(app, win, args)
    return int(app.exec())


def set_pin(ctx: AppContext) -> int:
    """`kiosk --set-pin`: read the new admin PIN (twice on a terminal, once from a pipe)."""
    import getpass

    from ui.pin import PinStore

    store = PinStore(ctx.admin_file(), ctx.config.ui.pin_max_attempts, ctx.config.ui.pin_lockout_s)
    if sys.stdin.isatty():
        pin = getpass.getpass("new admin PIN (4-12 digits): ")
        if getpass.getpass("again: ") != pin:
            print("the two PINs differ; nothing changed", file=sys.stderr)
            return 1
    else:
        pin = sys.stdin.readline().strip()
    store.set_pin(pin)
    print(f"admin PIN set in {store.path}")
    return 0
