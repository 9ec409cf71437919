"""Kiosk mode: full screen, no window controls, a large banner that guides the person, and an admin panel
behind a PIN.

The access decision is made by the access package's AccessController (vision_app.access.controller) running
as a sink on the runner thread (`AccessSink`); this window only shows its guidance and decisions. The
door actuator is the controller's (log-only by default); tests pass a fake one.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from vision_app.types import FrameResult

from ui.bridge import ViewItem
from ui.context import AppContext
from ui.kiosk_access import AccessSink, Banner, access_log_path, decision_banner
from ui.kiosk_admin import AdminPanel, threshold_text
from ui.live import LiveFeed
from ui.pin import PinStore
from ui.pin_pad import PinPad
from ui.session import PipelineSpec
from ui.tasks import BackgroundTasks
from ui.video_view import VideoView

log = logging.getLogger(__name__)

BANNER_STYLES = {
    "guide": "background:#1d3557; color:white;",
    "granted": "background:#1b7f2a; color:white;",
    "denied": "background:#b00020; color:white;",
    "error": "background:#7a5a12; color:white;",
}


class KioskWindow(QWidget):
    def __init__(self, ctx: AppContext, source: str, controller_factory: Callable[[], Any], *,
                 windowed: bool = False, tasks: tuple[str, ...] = ("face",)) -> None:
        super().__init__(None, Qt.WindowType.Window | Qt.WindowType.FramelessWindowHint)
        self.setWindowTitle("vision-app kiosk")
        self.ctx = ctx
        self.source = source
        self.spec = PipelineSpec(tasks)
        self.windowed = windowed
        self._exit_allowed = False
        self.jobs = BackgroundTasks("kiosk", self)
        self.pins = PinStore(ctx.admin_file(), ctx.config.ui.pin_max_attempts, ctx.config.ui.pin_lockout_s)

        self.view = VideoView(placeholder="Starting the camera …")
        self.access = AccessSink(controller_factory)
        self.feed = LiveFeed(self.view, config_path=ctx.config_path, base_overrides=ctx.base_overrides,
                             store=lambda: ctx.store, extra_sinks=lambda: [self.access.start(self.feed.post)],
                             prepare=self.access.prepare, loop_files=True, monitoring=ctx.monitoring,
                             name="kiosk", parent=self)
        self.access.on_decision = self._report_decision  # decisions to MQTT / metrics (runner thread)
        self.feed.frame.connect(self._on_frame)
        self.feed.other.connect(self._on_event)
        self.feed.status.connect(self._on_status)

        self.banner = QLabel("")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)
        self.banner.setMinimumHeight(120)
        self.admin_button = QPushButton("⚙", self)  # floats over the view's top-right corner
        self.admin_button.setFlat(True)
        self.admin_button.setFixedSize(44, 44)
        self.admin_button.setToolTip("administration (PIN)")
        self.admin_button.setStyleSheet("color: rgba(255,255,255,120); font-size: 22px; border: none;")
        self.admin_button.clicked.connect(self.ask_pin)
        live = QWidget()
        ll = QVBoxLayout(live)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.setSpacing(0)
        ll.addWidget(self.view, 1)
        ll.addWidget(self.banner)

        self.pinpad = PinPad(self.pins, self.jobs)
        self.pinpad.unlocked.connect(self.open_admin)
        self.pinpad.cancelled.connect(self.show_live)
        self.admin = AdminPanel(access_log_path(ctx), self.jobs, threshold_info=lambda: threshold_text(ctx))
        self.admin.back.connect(self.show_live)
        self.admin.exit_kiosk.connect(self.shutdown)
        self.admin.enrol.connect(self.open_gallery)
        self.admin.change_pin.connect(lambda: self._show_pin("set", can_cancel=True))
        self.pages = QStackedWidget()
        for page in (live, self.pinpad, self.admin):
            self.pages.addWidget(page)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.pages)

        self.decision: Banner | None = None
        self._decision_until = 0.0
        self.set_banner(Banner("guide", "Starting …"))

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self.windowed:
            self.resize(1024, 720)
            self.show()
        else:
            screen = self.screen().geometry()
            self.setGeometry(screen)  # without a window manager (bare X, Xvfb) full screen is only a hint
            self.showFullScreen()
        self.feed.start(self.source, self.spec)
        self.jobs.submit(self.pins.is_set, self._pin_state, self._pin_error)

    def _pin_state(self, is_set: bool) -> None:
        if not is_set:  # first run: the administrator chooses the PIN before anything else
            self._show_pin("set", "First run: choose the administrator PIN (4 to 12 digits)", can_cancel=False)

    def _pin_error(self, message: str) -> None:
        self.set_banner(Banner("error", message))

    def shutdown(self) -> None:
        """Exit kiosk mode (admin panel, --quit-after): stop the threads and close."""
        self._exit_allowed = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._exit_allowed:  # Alt+F4 and friends: only the admin panel leaves kiosk mode
            event.ignore()
            return
        self.feed.stop(timeout=1.0)
        self.jobs.shutdown(wait=True)
        super().closeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            return  # no escape from a kiosk
        super().keyPressEvent(event)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.admin_button.move(self.width() - self.admin_button.width() - 8, 8)
        self.admin_button.raise_()

    # ---- pages ------------------------------------------------------------------------------
    def show_live(self) -> None:
        self.pages.setCurrentIndex(0)
        self.admin_button.show()

    def _show_pin(self, mode: str, message: str = "", can_cancel: bool = True) -> None:
        self.pinpad.begin(mode, message, can_cancel)
        self.pages.setCurrentWidget(self.pinpad)
        self.admin_button.hide()

    def ask_pin(self) -> None:
        self._show_pin("unlock")

    def open_admin(self) -> None:
        self.pages.setCurrentWidget(self.admin)
        self.admin_button.hide()
        self.admin.refresh()

    def open_gallery(self) -> None:
        from ui.gallery_dialog import GalleryDialog

        self.feed.stop()  # the dialog may need the camera; the kiosk is in admin mode meanwhile
        GalleryDialog(self.ctx, self, camera=self.source).exec()
        self.feed.start(self.source, self.spec)

    # ---- banner -----------------------------------------------------------------------------
    def set_banner(self, banner: Banner) -> None:
        self.current_banner = banner
        self.banner.setText(banner.text)
        size = 18 if banner.kind == "error" else 34  # long error text must fit; guidance is read from afar
        self.banner.setStyleSheet(BANNER_STYLES.get(banner.kind, BANNER_STYLES["guide"])
                                  + f" padding: 12px; font-size: {size}pt; font-weight: bold;")

    def _on_frame(self, item: ViewItem) -> None:
        if time.monotonic() < self._decision_until:
            return  # a decision stays up for decision_hold_s
        if item.extra is not None:
            self.set_banner(item.extra)

    def _report_decision(self, decision: Any, result: FrameResult) -> None:
        """Runner thread: the decision as an MQTT event and a metric (the frame as its snapshot)."""
        report = self.feed.session.report
        if report is not None:
            report.decision(decision, result)

    def _on_event(self, payload: Any) -> None:
        if isinstance(payload, tuple) and payload and payload[0] == "decision":
            banner = decision_banner(payload[1])
            self.decision = banner
            self._decision_until = time.monotonic() + self.ctx.config.ui.decision_hold_s
            self.set_banner(banner)
        elif isinstance(payload, tuple) and payload and payload[0] == "access_error":
            self.set_banner(Banner("error", payload[1]))

    def _on_status(self, kind: str, message: str) -> None:
        if kind in ("error", "source_error", "stage_error", "source_lost"):
            self.set_banner(Banner("error", f"Out of order — {message}"))
            self._decision_until = 0.0
            if kind == "error" and not self.feed.session.running:
                self.view.clear("Out of order")
        elif kind == "reconnected":
            self.set_banner(Banner("guide", "Look at the camera"))

