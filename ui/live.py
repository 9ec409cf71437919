"""LiveFeed: a Session wired to a FrameBridge and a VideoView (the unit the main window, the kiosk and
each monitor tile use). Everything here runs in the GUI thread except `_on_result`, which the runner
thread calls."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

from PySide6.QtCore import QObject

from vision_app.models import ModelStore
from vision_app.monitoring.hub import Monitoring
from vision_app.multirun import SharedPool
from vision_app.runner import Sink
from vision_app.types import FrameResult

from ui.bridge import FrameBridge, ViewItem
from ui.notify import Listeners
from ui.session import PipelineSpec, Session
from ui.video_view import VideoView

log = logging.getLogger(__name__)


class LiveFeed(QObject):
    """status(kind, message) and frame(ViewItem) are emitted in the GUI thread; `other(payload)` carries
    any non-status event posted with `post(payload)` from a worker (decisions, monitor events).

    prepare(result) -> (result, extra), optional, runs on the runner thread before the QImage is built:
    a view's own per-frame work (e.g. the enrolment quality hint) with its answer in ViewItem.extra."""

    def __init__(self, view: VideoView, *, config_path: str | None,
                 base_overrides: Mapping[str, Any] | None = None,
                 store: Callable[[], ModelStore | None],
                 extra_sinks: Callable[[], Sequence[Sink]] = lambda: (),
                 prepare: Callable[[FrameResult], tuple[FrameResult, Any]] | None = None,
                 loop_files: bool = False, status_hook: Callable[[str, str], None] | None = None,
                 monitoring: Monitoring | None = None, name: str = "feed", parent: QObject | None = None,
                 pool: SharedPool | None = None) -> None:
        super().__init__(parent)
        self.status = Listeners()   # (kind, message)
        self.frame = Listeners()    # ViewItem
        self.other = Listeners()    # any other posted payload
        self.view = view
        self.prepare = prepare
        self.status_hook = status_hook
        self.bridge = FrameBridge(self)
        self.session = Session(config_path=config_path, store=store, on_result=self._on_result,
                               on_status=self._post_status, extra_sinks=extra_sinks,
                               loop_files=loop_files, base_overrides=base_overrides, monitoring=monitoring,
                               name=name, pool=pool)
        self.bridge.frame_ready.connect(self._show)
        self.bridge.events.connect(self._event)
        self.last: ViewItem | None = None
        self._rate_t = time.monotonic()
        self._rate_n = 0
        self.fps = 0.0

    # ---- worker side ------------------------------------------------------------------------
    def _on_result(self, result: FrameResult) -> None:
        extra = None
        if self.prepare is not None:  # worker-side extra work for this view (hints, overlays)
            result, extra = self.prepare(result)
        self.bridge.publish(result, extra)

    def _post_status(self, kind: str, message: str) -> None:
        if self.status_hook is not None:  # worker-side listener (e.g. the monitor's event sink)
            self.status_hook(kind, message)
        self.bridge.post_event(("status", kind, message))

    def post(self, payload: Any) -> None:
        """Any thread: deliver payload to `other` in the GUI thread."""
        self.bridge.post_event(payload)

    # ---- GUI side ---------------------------------------------------------------------------
    def _show(self, item: ViewItem) -> None:
        self.last = item
        self.view.set_image(item.image)
        self.frame.emit(item)

    def _event(self, payload: Any) -> None:
        if isinstance(payload, tuple) and len(payload) == 3 and payload[0] == "status":
            self.status.emit(payload[1], payload[2])
        else:
            self.other.emit(payload)

    def start(self, source: str, spec: PipelineSpec) -> None:
        self.last = None
        self._rate_n = self.processed()
        self._rate_t = time.monotonic()
        self.session.start(source, spec)

    def stop(self, timeout: float = 1.0) -> bool:
        return self.session.stop(timeout)

    def processed(self) -> int:
        run = self.session.run
        return run.runner.stats.processed if run is not None else 0

    def dropped(self) -> tuple[int, int]:
        """(frames the capture dropped because inference was busy, results the GUI skipped)."""
        run = self.session.run
        return (run.slot.dropped if run is not None else 0), self.bridge.coalesced

    def update_rate(self) -> float:
        """Processed frames per second since the last call (call it from a GUI timer)."""
        now, n = time.monotonic(), self.processed()
        dt = now - self._rate_t
        if dt > 0.2:
            self.fps = max(0, n - self._rate_n) / dt
            self._rate_t, self._rate_n = now, n
        return self.fps

    def stage_text(self) -> str:
        """'detect 7.2 ms · draw 0.4 ms' from the newest shown result."""
        if self.last is None:
            return ""
        return " · ".join(f"{name} {t * 1000:.1f} ms" for name, t in self.last.result.timings.items())
