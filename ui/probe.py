"""Event-loop latency probe: how late a QTimer fires while the pipeline runs (a benchmark, not a test).

A 10 ms timer records how much later than due each tick runs. On an idle loop that is ~0–1 ms; when
the GUI thread does work it should not (inference, decoding, disk I/O), ticks run tens of ms late.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer


class EventLoopProbe(QObject):
    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_s = interval_ms / 1000.0
        self.lateness_s: list[float] = []
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0

    def start(self) -> None:
        self.lateness_s.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lateness_s.append(max(0.0, now - self._last - self.interval_s))
        self._last = now

    def summary(self) -> dict[str, float]:
        """Lateness of the ticks in ms: count, p50, p95, p99, max."""
        if not self.lateness_s:
            return {"ticks": 0}
        a = np.asarray(self.lateness_s) * 1000.0
        return {"ticks": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2),
                "p95_ms": round(float(np.percentile(a, 95)), 2),
                "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}

    def text(self) -> str:
        s = self.summary()
        if not s.get("ticks"):
            return "event-loop latency: no ticks recorded"
        return (f"event-loop latency over {s['ticks']} ticks of {self.interval_s * 1000:.0f} ms: "
                f"p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms, p99 {s['p99_ms']} ms, max {s['max_ms']} ms")
