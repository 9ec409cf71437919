"""Gallery manager: enrol from the live camera (with a quality hint) or from files; list, rename, delete."""
from __future__ import annotations

import logging

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent, QFont, QIcon, QPixmap
from PySide6.QtWidgets import (QComboBox, QDialog, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout,
                               QInputDialog, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QMessageBox, QPushButton, QVBoxLayout, QWidget)

from ui.bridge import ViewItem
from ui.context import AppContext
from ui.gallery_service import EnrolSampler, GalleryService, PersonRow
from ui.live import LiveFeed
from ui.session import PipelineSpec
from ui.tasks import BackgroundTasks
from ui.video_view import VideoView

log = logging.getLogger(__name__)

IMAGE_FILTER = "Photos (*.jpg *.jpeg *.png *.bmp *.webp)"


class GalleryDialog(QDialog):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None, camera: str = "camera:0") -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Face gallery — {ctx.gallery_path()}")
        self.ctx = ctx
        self.tasks = BackgroundTasks("gallery", self)
        self.service = GalleryService(ctx)
        self.sampler = EnrolSampler(ctx)
        self.preview = VideoView(placeholder="Start the camera to enrol from live video.")
        self.preview.setMinimumSize(320, 240)
        self.feed = LiveFeed(self.preview, config_path=ctx.config_path, base_overrides=ctx.base_overrides,
                             store=lambda: ctx.store, prepare=self.sampler.prepare, name="enrol",
                             parent=self)
        self.feed.frame.connect(self._on_frame)
        self.feed.status.connect(self._on_feed_status)

        self.people = QListWidget()
        self.people.setIconSize(QSize(56, 56))
        self.people.setMinimumWidth(240)
        self.people.itemSelectionChanged.connect(self._selection_changed)
        self.btn_rename = QPushButton("Rename…")
        self.btn_delete = QPushButton("Delete…")
        self.btn_rename.clicked.connect(self.rename_selected)
        self.btn_delete.clicked.connect(self.delete_selected)
        left = QVBoxLayout()
        left.addWidget(QLabel("People"))
        left.addWidget(self.people, 1)
        row = QHBoxLayout()
        row.addWidget(self.btn_rename)
        row.addWidget(self.btn_delete)
        left.addLayout(row)

        self.name = QLineEdit()
        self.name.setPlaceholderText("name of the person to enrol")
        self.btn_files = QPushButton("Enrol from photos…")
        self.btn_files.clicked.connect(self.enrol_from_files)
        self.camera = QComboBox()
        self.camera.setEditable(True)
        self.camera.addItems([camera, "camera:1", "test:"])
        self.btn_camera = QPushButton("Start camera")
        self.btn_camera.setCheckable(True)
        self.btn_camera.toggled.connect(self.toggle_camera)
        self.hint = QLabel("")
        f = QFont(self.hint.font())
        f.setPointSizeF(f.pointSizeF() * 1.3)
        f.setBold(True)
        self.hint.setFont(f)
        self.hint.setWordWrap(True)
        self.btn_capture = QPushButton(f"Capture {self.sampler.want} samples")
        self.btn_capture.clicked.connect(self.capture)
        self.btn_enrol_live = QPushButton("Enrol")
        self.btn_enrol_live.clicked.connect(self.enrol_from_camera)
        self.count = QLabel("")
        box = QGroupBox("Enrol")
        grid = QGridLayout(box)
        grid.addWidget(QLabel("Name"), 0, 0)
        grid.addWidget(self.name, 0, 1, 1, 2)
        grid.addWidget(self.btn_files, 1, 1, 1, 2)
        grid.addWidget(QLabel("Camera"), 2, 0)
        grid.addWidget(self.camera, 2, 1)
        grid.addWidget(self.btn_camera, 2, 2)
        grid.addWidget(self.preview, 3, 0, 1, 3)
        grid.addWidget(self.hint, 4, 0, 1, 3)
        grid.addWidget(self.btn_capture, 5, 0, 1, 1)
        grid.addWidget(self.count, 5, 1)
        grid.addWidget(self.btn_enrol_live, 5, 2)
        grid.setRowStretch(3, 1)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addLayout(left)
        top.addWidget(box, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top, 1)
        lay.addWidget(self.status)
        self.resize(900, 600)
        self.rows: list[PersonRow] = []
        self._update_buttons()
        self.refresh()

    # ---- list -------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.tasks.submit(self.service.people, self._show_people, self._error)

    def _show_people(self, rows: list[PersonRow]) -> None:
        self.rows = rows
        self.people.clear()
        for r in rows:
            item = QListWidgetItem(f"{r.name}\n{r.templates} template(s)")
            item.setData(Qt.ItemDataRole.UserRole, r.name)
            if r.thumbnail is not None:
                item.setIcon(QIcon(QPixmap.fromImage(r.thumbnail)))
            self.people.addItem(item)
        self._update_buttons()

    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    def selected(self) -> str:
        items = self.people.selectedItems()
        return str(items[0].data(Qt.ItemDataRole.UserRole)) if items else ""

    def _selection_changed(self) -> None:
        self._update_buttons()
        if self.selected():
            self.name.setText(self.selected())

    def _update_buttons(self) -> None:
        has = bool(self.selected())
        self.btn_rename.setEnabled(has)
        self.btn_delete.setEnabled(has)
        n = len(self.sampler.frames())
        self.btn_enrol_live.setEnabled(n >= self.sampler.want)
        self.btn_capture.setEnabled(self.btn_camera.isChecked())

    def rename_selected(self, new: str | None = None) -> None:
        old = self.selected()
        if not old:
            return
        if new is None:
            new, ok = QInputDialog.getText(self, "Rename", f"New name for {old}:", text=old)
            if not ok or not new.strip() or new.strip() == old:
                return
        self.tasks.submit(lambda: self.service.rename(old, new),
                          lambda _: self._done(f"renamed {old} to {new}"), self._error)

    def delete_selected(self, confirmed: bool = False) -> None:
        name = self.selected()
        if not name:
            return
        if not confirmed:
            answer = QMessageBox.question(
                self, "Delete person", f"Delete {name} and all their face templates? This cannot be undone.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.tasks.submit(lambda: self.service.remove(name),
                          lambda n: self._done(f"deleted {name} ({n} template(s))"), self._error)

    # ---- enrolment --------------------------------------------------------------------------
    def _name(self) -> str:
        name = self.name.text().strip()
        if not name:
            self._error("type the person's name first")
        return name

    def enrol_from_files(self, paths: list[str] | None = None) -> None:
        name = self._name()
        if not name:
            return
        if paths is None:
            paths, _ = QFileDialog.getOpenFileNames(self, f"Photos of {name}", "", IMAGE_FILTER)
            if not paths:
                return
        self.status.setText(f"enrolling {name} from {len(paths)} photo(s)…")
        self.tasks.submit(lambda: self.service.enroll(name, paths),
                          lambda n: self._done(f"enrolled {name}: {n} template(s) added"), self._error)

    def toggle_camera(self, on: bool) -> None:
        if on:
            self.sampler.reset()
            self.feed.start(self.camera.currentText().strip(), PipelineSpec())
            self.btn_camera.setText("Stop camera")
        else:
            self.feed.stop()
            self.btn_camera.setText("Start camera")
            self.preview.clear()
        self._update_buttons()

    def capture(self) -> None:
        self.sampler.reset()
        self.sampler.capturing.set()
        self.count.setText(f"0 / {self.sampler.want}")

    def enrol_from_camera(self) -> None:
        name = self._name()
        frames = self.sampler.frames()
        if not name or not frames:
            return
        self.sampler.reset()
        self._update_buttons()
        self.tasks.submit(lambda: self.service.enroll(name, frames),
                          lambda n: self._done(f"enrolled {name} from the camera: {n} template(s) added"),
                          self._error)

    def _on_frame(self, item: ViewItem) -> None:
        if item.extra is None:
            return
        hint, ok, n = item.extra
        self.hint.setText(hint)
        self.hint.setStyleSheet("color: #1b7f2a;" if ok else "color: #a0521b;")
        self.count.setText(f"{n} / {self.sampler.want} samples")
        self._update_buttons()

    def _on_feed_status(self, kind: str, message: str) -> None:
        if kind in ("error", "source_error", "stage_error", "source_lost"):
            self._error(message)
            if kind == "source_error":
                self.btn_camera.setChecked(False)

    # ---- feedback ---------------------------------------------------------------------------
    def _done(self, message: str) -> None:
        self.status.setStyleSheet("color: #1b7f2a;")
        self.status.setText(message)
        self.refresh()

    def _error(self, message: str) -> None:
        self.status.setStyleSheet("color: #b00020;")
        self.status.setText(message)

    def done(self, result: int) -> None:  # accept / reject / close all end here
        self.feed.stop()
        self.tasks.submit(self.service.close)
        self.tasks.shutdown(wait=True)
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.feed.stop()
        super().closeEvent(event)
