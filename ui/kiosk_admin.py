"""The kiosk's admin panel (behind the PIN): enrol people, review the access log with snapshots, change
the PIN, exit kiosk mode. Log reading and snapshot decoding run on a BackgroundTasks worker."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QImage, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from ui.bridge import to_qimage
from ui.notify import Listeners
from ui.tasks import BackgroundTasks

log = logging.getLogger(__name__)

LOG_ROWS = 200
SNAPSHOT_H = 240


@dataclass(frozen=True)
class LogRow:
    ts: str
    decision: str
    identity: str
    reason: str
    liveness: str
    snapshot: str
    image: QImage | None


def read_access_log(path: Path, last: int = LOG_ROWS) -> list[LogRow]:
    """Newest first; snapshots decoded and scaled here (worker thread)."""
    from vision_app.access.accesslog import AccessLog

    if not path.exists():
        return []
    with AccessLog(path) as alog:
        entries = alog.entries(last=last)
    rows = []
    for e in reversed(entries):
        img = None
        if e.snapshot and Path(e.snapshot).is_file():
            arr = cv2.imread(e.snapshot, cv2.IMREAD_COLOR)
            if arr is not None:
                scale = SNAPSHOT_H / arr.shape[0]
                arr = cv2.resize(arr, (max(1, round(arr.shape[1] * scale)), SNAPSHOT_H),
                                 interpolation=cv2.INTER_AREA)
                img = to_qimage(arr)
        rows.append(LogRow(e.ts, e.decision, e.identity or "", e.reason, e.liveness, e.snapshot, img))
    return rows


def threshold_text(ctx: Any) -> str:
    """The admin panel's line on the match threshold: what false-accept rate it gives for this gallery's
    size (vision_app.gallery.threshold), or why that is not known."""
    from vision_app.gallery.threshold import gallery_operating_point

    op = gallery_operating_point(ctx.config, ctx.store, ctx.gallery_path())
    return op if isinstance(op, str) else op.describe()


class AdminPanel(QWidget):
    def __init__(self, log_path: Path, tasks: BackgroundTasks, parent: QWidget | None = None,
                 threshold_info: Callable[[], str] | None = None) -> None:
        """threshold_info: (run on a worker) the gallery's match threshold and the false-accept rate it
        gives for the gallery's size, shown above the log."""
        super().__init__(parent)
        self.threshold_info = threshold_info
        self.back, self.exit_kiosk, self.enrol, self.change_pin = (Listeners() for _ in range(4))
        self.log_path = log_path
        self.tasks = tasks
        title = QLabel("Kiosk administration")
        f = QFont(title.font())
        f.setPointSizeF(f.pointSizeF() * 1.8)
        f.setBold(True)
        title.setFont(f)
        buttons = QHBoxLayout()
        for text, signal in (("Enrol / manage people…", self.enrol), ("Change PIN", self.change_pin),
                             ("Refresh log", None), ("Back to kiosk", self.back),
                             ("Exit kiosk mode", self.exit_kiosk)):
            b = QPushButton(text)
            b.setMinimumHeight(44)
            b.clicked.connect(lambda _=False, s=signal: s.emit() if s is not None else self.refresh())
            buttons.addWidget(b)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["time (UTC)", "decision", "who", "liveness", "reason"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.itemSelectionChanged.connect(self._show_snapshot)
        self.snapshot = QLabel("select a row to see its snapshot")
        self.snapshot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.snapshot.setMinimumSize(320, SNAPSHOT_H)
        self.status = QLabel("")
        self.threshold = QLabel("")
        self.threshold.setWordWrap(True)
        body = QHBoxLayout()
        body.addWidget(self.table, 3)
        body.addWidget(self.snapshot, 2)
        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addLayout(buttons)
        lay.addWidget(self.threshold)
        lay.addLayout(body, 1)
        lay.addWidget(self.status)
        self.rows: list[LogRow] = []

    def refresh(self) -> None:
        self.status.setText(f"reading {self.log_path} …")
        self.tasks.submit(lambda: read_access_log(self.log_path), self._show_rows, self.status.setText)
        if self.threshold_info is not None:
            self.tasks.submit(self.threshold_info, self.threshold.setText,
                              lambda msg: self.threshold.setText(f"match threshold: {msg}"))

    def _show_rows(self, rows: list[LogRow]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, text in enumerate((r.ts.replace("T", " ")[:19], r.decision.upper(), r.identity or "—",
                                      r.liveness, r.reason)):
                item = QTableWidgetItem(text)
                if j == 1:
                    item.setForeground(Qt.GlobalColor.darkGreen if r.decision == "granted" else Qt.GlobalColor.red)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.status.setText(f"{len(rows)} decision(s) in {self.log_path}" if rows else
                            f"no decisions logged yet ({self.log_path})")

    def _show_snapshot(self) -> None:
        sel = self.table.selectionModel().selectedRows()
        if not sel:
            return
        row: Any = self.rows[sel[0].row()]
        if row.image is not None:
            self.snapshot.setPixmap(QPixmap.fromImage(row.image))
        else:
            self.snapshot.setText("no snapshot for this decision")
