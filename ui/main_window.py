"""The main window: live view, source picker, start / stop / pause, pipeline panel, snapshot, record."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QComboBox, QFileDialog, QLabel, QMainWindow, QScrollArea, QSplitter,
                               QToolBar, QVBoxLayout, QWidget)

from vision_app.config import AppConfig
from vision_app.models import user_data_dir

from ui.context import AppContext, setting_list
from ui.controls import PipelineControls
from ui.gallery_service import gallery_available
from ui.live import LiveFeed
from ui.message_bar import MessageBar
from ui.recorder import save_image_async
from ui.session import is_camera
from ui.video_view import VideoView

log = logging.getLogger(__name__)

DEFAULT_SOURCES = ("camera:0", "camera:1", "sample:", "test:")
VIDEO_FILTER = "Videos and images (*.mp4 *.avi *.mkv *.mov *.webm *.m4v *.jpg *.jpeg *.png *.bmp);;All files (*)"
NO_CAMERA = ("No camera found.\n\nChoose “sample:” in the source box for the street clip shipped with the app, "
             "“test:” for a generated pattern, "
             "open a video file with “File…”, or type a stream URL (rtsp://…), then press Start.")


def capture_dir(config: AppConfig) -> Path:
    return Path(config.ui.capture_dir).expanduser() if config.ui.capture_dir else user_data_dir() / "captures"


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.setWindowTitle("vision-app")
        self.ctx = ctx
        self.config = ctx.config
        self.settings = settings = ctx.settings
        self.view = VideoView(placeholder="Press Start to open the source.")
        self.feed = LiveFeed(self.view, config_path=ctx.config_path, base_overrides=ctx.base_overrides,
                             store=lambda: ctx.store, monitoring=ctx.monitoring, name="main", parent=self)
        self.feed.status.connect(self.on_status)
        self.controls = PipelineControls(ctx.config, ctx.store, settings)
        self.controls.changed.connect(self.apply_pipeline)
        self.messages = MessageBar()
        self._build_toolbar()
        self._build_body()
        self._build_statusbar()
        self._stats_timer = QTimer(self, interval=500)
        self._stats_timer.timeout.connect(self.refresh_stats)
        self._stats_timer.start()
        self._set_state("stopped")
        if ctx.store_error:
            self.messages.show_message(ctx.store_error, "warning")
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    # ---- layout -----------------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        tb = QToolBar("Source")
        tb.setMovable(False)
        self.addToolBar(tb)
        tb.addWidget(QLabel(" Source "))
        self.source_box = QComboBox()
        self.source_box.setEditable(True)
        self.source_box.setMinimumContentsLength(46)
        self.source_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source_box.setToolTip("camera index (camera:0), video file, image folder, stream URL "
                                   "(rtsp://…, http://…) or test: for a generated pattern")
        for s in [*DEFAULT_SOURCES, *setting_list(self.settings, "source/recent")]:
            if self.source_box.findText(s) < 0:
                self.source_box.addItem(s)
        self.source_box.setCurrentText(str(self.settings.value("source/last", DEFAULT_SOURCES[0])))
        edit = self.source_box.lineEdit()
        if edit is not None:  # always, for an editable combo box
            edit.returnPressed.connect(self.start)
        self.source_box.currentTextChanged.connect(self._source_changed)
        tb.addWidget(self.source_box)
        self.act_file = tb.addAction("File…", self.choose_file)
        self.act_loop = tb.addAction("Loop")
        self.act_loop.setCheckable(True)
        self.act_loop.setToolTip("play video files in a loop (applies at the next Start)")
        self.act_loop.setChecked(self.settings.value("source/loop", "false") in (True, "true"))
        tb.addSeparator()
        self.act_start = tb.addAction("▶ Start", self.start)
        self.act_stop = tb.addAction("■ Stop", self.stop)
        self.act_pause = tb.addAction("❚❚ Pause")
        self.act_pause.setCheckable(True)
        self.act_pause.toggled.connect(self.set_paused)
        tb.addSeparator()
        self.act_snapshot = tb.addAction("Snapshot", self.snapshot)
        self.act_snapshot.setShortcut(QKeySequence("Ctrl+S"))
        self.act_record = tb.addAction("● Record")
        self.act_record.setCheckable(True)
        self.act_record.toggled.connect(self.set_recording)
        tb.addSeparator()
        self.act_gallery = tb.addAction("Gallery…", self.show_gallery)
        if not gallery_available():
            self.act_gallery.setEnabled(False)
            self.act_gallery.setToolTip("face gallery not available in this build")

    def _build_body(self) -> None:
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.messages)
        lay.addWidget(self.view, 1)
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.controls.sizeHint().width() + 24)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(scroll)
        split.setStretchFactor(0, 1)
        split.setSizes([860, 320])
        self.setCentralWidget(split)
        self.resize(1180, 720)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.lbl_fps = QLabel()
        self.lbl_stages = QLabel()
        self.lbl_dropped = QLabel()
        self.lbl_engine = QLabel("engine: –")
        for w in (self.lbl_fps, self.lbl_stages, self.lbl_dropped, self.lbl_engine):
            sb.addPermanentWidget(w)

    # ---- actions ----------------------------------------------------------------------------
    def source(self) -> str:
        return self.source_box.currentText().strip()

    def _source_changed(self, text: str) -> None:
        self.source_box.setToolTip(text)  # a long path may not fit the box

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video or image", "", VIDEO_FILTER)
        if path:
            if self.source_box.findText(path) < 0:
                self.source_box.addItem(path)
            self.source_box.setCurrentText(path)
            self.start()

    def start(self) -> None:
        problem = self.controls.problem()
        if problem:
            self.messages.show_message(problem, "warning")
        spec = self.controls.spec()
        self.act_pause.setChecked(False)
        self.act_record.setChecked(False)
        self.view.clear("Opening " + self.source() + " …")
        self.feed.session.loop_files = self.act_loop.isChecked()
        self.feed.start(self.source(), spec)
        self._set_state("starting")
        self._remember_source(self.source())

    def stop(self) -> None:
        self.act_record.setChecked(False)
        self.feed.stop()
        self._set_state("stopped")

    def set_paused(self, paused: bool) -> None:
        self.feed.session.set_paused(paused)
        self.statusBar().showMessage("paused" if paused else "resumed", 2000)

    def apply_pipeline(self) -> None:
        problem = self.controls.problem()
        if problem:
            self.messages.show_message(problem, "warning")
            return
        self.controls.save()
        self.feed.session.reconfigure(self.controls.spec())

    def snapshot(self) -> None:
        item = self.feed.last
        if item is None:
            self.statusBar().showMessage("no frame to save yet", 3000)
            return
        path = capture_dir(self.config) / time.strftime("snapshot-%Y%m%d-%H%M%S.png")
        save_image_async(path, item.result.image, self.feed._post_status)

    def set_recording(self, on: bool) -> None:
        rec = self.feed.session.recorder
        if on:
            if not self.feed.session.running:
                self.statusBar().showMessage("start a source before recording", 3000)
                self.act_record.setChecked(False)
                return
            run = self.feed.session.run
            fps = self.config.runner.output_fps or (run.source.fps if run else None) or 25.0
            rec.request_start(capture_dir(self.config) / time.strftime("record-%Y%m%d-%H%M%S.mp4"), fps)
        elif rec.recording:
            rec.request_stop()

    def show_gallery(self) -> None:
        from ui.gallery_dialog import GalleryDialog

        camera = self.source() if is_camera(self.source()) else "camera:0"
        resume = self.feed.session.running and is_camera(self.source())
        if resume:  # one camera cannot feed two windows: lend it to the dialog
            self.stop()
        GalleryDialog(self.ctx, self, camera=camera).exec()
        if resume:
            self.start()

    # ---- feedback ---------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        active = state in ("starting", "running")
        self.act_start.setEnabled(True)
        self.act_stop.setEnabled(active)
        self.act_pause.setEnabled(state == "running")
        self.act_record.setEnabled(state == "running")

    def on_status(self, kind: str, message: str) -> None:
        sb = self.statusBar()
        if kind == "started":
            self._set_state("running")
            self.messages.hide()
            sb.showMessage(f"running: {message}", 4000)
        elif kind == "engine":
            self.lbl_engine.setText("engine: " + message.split(" — ")[0])
            self.lbl_engine.setToolTip(message)
        elif kind == "source_error":
            self._set_state("stopped")
            no_camera = is_camera(self.source())
            self.view.clear(NO_CAMERA if no_camera else message)
            self.messages.show_message(message, "error", "Use test pattern" if no_camera else "",
                                       self.use_test_source if no_camera else None)
        elif kind == "error":
            if not self.feed.session.running and not self.feed.session.starting:
                self._set_state("stopped")
            self.messages.show_message(message, "error")
        elif kind in ("stage_error", "source_lost"):
            self.messages.show_message(message, "warning")
        elif kind == "reconnected":
            self.messages.show_message(message, "info")
        elif kind == "eof":
            self._set_state("stopped")
            self.act_record.setChecked(False)
            sb.showMessage(f"end of file: {message}", 6000)
        elif kind == "stopped":
            sb.showMessage("stopped", 3000)
        else:
            sb.showMessage(message, 5000)
        if kind in ("error", "stage_error", "source_error"):
            sb.showMessage(message, 8000)

    def use_test_source(self) -> None:
        self.source_box.setCurrentText("test:")
        self.start()

    def refresh_stats(self) -> None:
        fps = self.feed.update_rate()
        cap, gui = self.feed.dropped()
        stages = self.feed.stage_text()
        self.lbl_fps.setText(f"{fps:.1f} fps")
        self.lbl_stages.setText(stages)
        self.lbl_dropped.setText(f"dropped: {cap} capture, {gui} display")
        self.view.set_overlay(f"{fps:.1f} fps   {stages}" if self.state == "running" else "")

    def _remember_source(self, src: str) -> None:
        self.settings.setValue("source/last", src)
        if src not in DEFAULT_SOURCES and Path(src).exists():
            recent = setting_list(self.settings, "source/recent")
            self.settings.setValue("source/recent", ([src] + [r for r in recent if r != src])[:8])

    def closeEvent(self, event: QCloseEvent) -> None:
        self._stats_timer.stop()
        self.controls.save()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("source/loop", self.act_loop.isChecked())
        self.feed.stop(timeout=1.0)
        super().closeEvent(event)
