"""Monitoring mode: up to 4 live sources in a grid, each with its own capture thread, in-order steps and
statistics, all sharing one pool of workers sized to the machine (engine.workers), and an event list."""
from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QColor, QIcon, QMouseEvent, QPixmap
from PySide6.QtWidgets import (QFrame, QGridLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow,
                               QSplitter, QVBoxLayout, QWidget)

from vision_app.errors import ConfigError
from vision_app.monitoring.face_events import EventDetector
from vision_app.multirun import SharedPool
from vision_app.parallelism import plan_workers

from ui.context import AppContext
from ui.controls import task_available
from ui.events import EventSink, MonitorEvent
from ui.live import LiveFeed
from ui.notify import Listeners
from ui.session import PipelineSpec
from ui.video_view import VideoView

log = logging.getLogger(__name__)

MAX_SOURCES = 4
EVENT_COLOURS = {"person_entered": "#1b7f2a", "unknown_face": "#a0521b", "source_lost": "#b00020",
                 "reconnected": "#1f4a7a", "error": "#b00020", "source_error": "#b00020"}


def short_name(source: str) -> str:
    """A file's name without its folder; other sources as given."""
    return Path(source).name if "://" not in source and Path(source).suffix else source


def default_tasks() -> tuple[str, ...]:
    for t in ("face", "detect"):
        if task_available(t):
            return (t,)
    return ("passthrough",)


def shared_pool(ctx: AppContext, spec: PipelineSpec, sources: int,
                on_error: Callable[[str, str], None]) -> SharedPool | None:
    """One pool of workers for all tiles (engine.workers; "auto": one per core), None for one source."""
    if sources < 2:
        return None
    engine = spec.config(ctx.config_path, ctx.base_overrides).engine
    plan = plan_workers(engine, sources=sources, live=True,
                        backend="none" if set(spec.tasks) <= {"passthrough"} else "onnxruntime")
    log.info("monitor: %d worker(s) for %d sources — %s", plan.workers, sources, plan.reason)
    return SharedPool(plan.workers, plan.threads, on_error=on_error)


class Tile(QFrame):
    """One source: a title line (source, state, fps) over its video; a click asks to enlarge it."""

    def __init__(self, source: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.clicked = Listeners()  # (tile)
        self.source = source
        self.name = short_name(source)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(self.name)
        self.title.setStyleSheet("font-weight: bold; padding: 2px 4px;")
        self.view = VideoView(placeholder=f"opening {source} …")
        self.view.setMinimumSize(240, 150)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)
        self.state = "opening"
        self.setToolTip(f"{source}\nclick to enlarge / back to the grid")

    def set_state(self, state: str, fps: float | None = None) -> None:
        self.state = state
        extra = f" — {fps:.1f} fps" if fps is not None and state == "live" else f" — {state}"
        self.title.setText(self.name + extra)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self)
        super().mousePressEvent(event)


class MonitorWindow(QMainWindow):
    def __init__(self, ctx: AppContext, sources: Sequence[str], tasks: Sequence[str] | None = None,
                 loop_files: bool = False) -> None:
        super().__init__()
        if not 1 <= len(sources) <= MAX_SOURCES:
            raise ConfigError(f"monitor: expected 1 to {MAX_SOURCES} sources, got {len(sources)}")
        self.setWindowTitle(f"vision-app monitor — {len(sources)} source(s)")
        self.ctx = ctx
        self.spec = PipelineSpec(tuple(tasks) if tasks else default_tasks())
        self.pool = shared_pool(ctx, self.spec, len(sources), self._pool_error)
        self.tiles: list[Tile] = []
        self.feeds: list[LiveFeed] = []
        self.enlarged: Tile | None = None
        self.grid = QGridLayout()
        self.grid.setSpacing(4)
        grid_host = QWidget()
        grid_host.setLayout(self.grid)
        self.events = QListWidget()
        self.events.setIconSize(QSize(96, 72))
        self.events.setMinimumWidth(330)
        self.events.setWordWrap(True)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(4, 0, 0, 0)
        rl.addWidget(QLabel(f"Events  ({', '.join(self.spec.tasks)})"))
        rl.addWidget(self.events, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(grid_host)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setSizes([900, 340])
        self.setCentralWidget(split)
        cols = 1 if len(sources) == 1 else 2
        for i, src in enumerate(sources):
            tile = Tile(src)
            tile.clicked.connect(self.toggle_enlarged)
            self.grid.addWidget(tile, i // cols, i % cols)
            self.tiles.append(tile)
            detector = EventDetector(ctx.config.ui.event_cooldown_s, ctx.config.ui.event_min_frames)
            sink = EventSink(short_name(src), detector, post=lambda payload: None)  # set below
            feed = LiveFeed(tile.view, config_path=ctx.config_path, base_overrides=ctx.base_overrides,
                            store=lambda: ctx.store, extra_sinks=partial(list, (sink,)), loop_files=loop_files,
                            status_hook=sink.status, monitoring=ctx.monitoring, name=f"monitor{i}", parent=self,
                            pool=self.pool)
            sink.post = feed.post
            feed.other.connect(self.add_event)
            feed.status.connect(lambda kind, msg, t=tile: self.on_status(t, kind, msg))
            self.feeds.append(feed)
        self._timer = QTimer(self, interval=1000)
        self._timer.timeout.connect(self.refresh_titles)
        self._timer.start()
        self.resize(1280, 720)

    def start(self) -> None:
        for tile, feed in zip(self.tiles, self.feeds):
            feed.start(tile.source, self.spec)

    # ---- feedback ---------------------------------------------------------------------------
    def add_event(self, event: object) -> None:
        if not isinstance(event, MonitorEvent):
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(event.wall_time))
        item = QListWidgetItem(f"{stamp}  {event.source}\n{event.text}")
        item.setData(Qt.ItemDataRole.UserRole, event)
        item.setToolTip(event.text)
        item.setForeground(QColor(EVENT_COLOURS.get(event.kind, "#202020")))
        if event.thumbnail is not None:
            item.setIcon(QIcon(QPixmap.fromImage(event.thumbnail)))
        self.events.insertItem(0, item)
        while self.events.count() > 500:
            self.events.takeItem(self.events.count() - 1)

    def event_kinds(self) -> list[str]:
        return [self.events.item(i).data(Qt.ItemDataRole.UserRole).kind for i in range(self.events.count())]

    def on_status(self, tile: Tile, kind: str, message: str) -> None:
        if kind == "started":
            tile.set_state("live")
        elif kind in ("source_lost", "error", "source_error"):
            tile.set_state("lost" if kind == "source_lost" else "error")
            tile.setToolTip(f"{tile.source}\n{message}")
            if kind == "source_error":
                tile.view.clear(message)
        elif kind == "reconnected":
            tile.set_state("live")
        elif kind == "eof":
            tile.set_state("ended")
        elif kind == "stage_error":
            tile.setToolTip(f"{tile.source}\n{message}")
            self.statusBar().showMessage(f"{tile.source}: {message}", 8000)
        if kind in ("error", "source_error"):
            self.statusBar().showMessage(f"{tile.source}: {message}", 8000)

    def refresh_titles(self) -> None:
        for tile, feed in zip(self.tiles, self.feeds):
            if tile.state == "live":
                tile.set_state("live", feed.update_rate())

    def toggle_enlarged(self, tile: Tile) -> None:
        """Show only this tile, or go back to the grid."""
        self.enlarged = None if self.enlarged is tile else tile
        for t in self.tiles:
            t.setVisible(self.enlarged is None or t is self.enlarged)

    def _pool_error(self, stage: str, message: str) -> None:
        """A stage failed on one of the shared workers (a worker thread): an error event in the list."""
        if self.feeds:
            self.feeds[0].post(MonitorEvent(time.time(), "shared workers", "error", message))

    def closeEvent(self, event: QCloseEvent) -> None:
        self._timer.stop()
        for feed in self.feeds:  # all stop together, then each is joined
            feed.session.signal_stop()
        for feed in self.feeds:
            feed.stop(timeout=1.0)
        if self.pool is not None:
            self.pool.close()
        super().closeEvent(event)
