"""Soak test: long headless runs that sample process resources and give a verdict.

Memory growth is the slope of a least-squares line through the RSS samples taken after the warm-up, so a
single late allocation (a cache filling once) does not read as a leak but steady growth does.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    t: float              # seconds since the start
    rss_mb: float
    threads: int
    fds: int
    frames: int           # frames processed so far (all runs)
    fps: float            # over the last interval
    latency_p95_ms: float | None


def process_rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def slope_per_minute(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 3:
        return 0.0
    a, _ = np.polyfit(np.asarray(ts) / 60.0, np.asarray(ys), 1)
    return float(a)


def verdict(samples: list[Sample], warmup_s: float, *, max_mb_per_min: float = 0.5,
            max_fd_growth: int = 3, max_thread_growth: int = 1, min_growth_mb: float = 2.0) -> dict[str, Any]:
    """Growth after the warm-up, and PASS/FAIL with the reasons."""
    steady = [s for s in samples if s.t >= warmup_s]
    if len(steady) < 3:
        return {"verdict": "INCONCLUSIVE", "reasons": ["too few samples after the warm-up; run longer"]}
    mem = slope_per_minute([s.t for s in steady], [s.rss_mb for s in steady])
    fd_growth = steady[-1].fds - steady[0].fds
    th_growth = steady[-1].threads - steady[0].threads
    reasons = []
    grown = mem * (steady[-1].t - steady[0].t) / 60.0
    if mem > max_mb_per_min and grown > min_growth_mb:  # steady growth, and enough of it to matter
        reasons.append(f"memory grows {mem:.2f} MB/min after warm-up (limit {max_mb_per_min})")
    if fd_growth > max_fd_growth:
        reasons.append(f"open file descriptors grew by {fd_growth}")
    if th_growth > max_thread_growth:
        reasons.append(f"threads grew by {th_growth}")
    fps = [s.fps for s in steady if s.fps > 0]
    return {"verdict": "FAIL" if reasons else "PASS", "reasons": reasons,
            "rss_mb_start": round(steady[0].rss_mb, 1), "rss_mb_end": round(steady[-1].rss_mb, 1),
            "rss_mb_max": round(max(s.rss_mb for s in samples), 1),
            "memory_slope_mb_per_min": round(mem, 3), "fd_growth": fd_growth, "thread_growth": th_growth,
            "fps_mean": round(float(np.mean(fps)), 1) if fps else 0.0,
            "fps_min": round(float(np.min(fps)), 1) if fps else 0.0,
            "latency_p95_ms_max": max((s.latency_p95_ms or 0.0) for s in steady)}


class Sampler(threading.Thread):
    """Samples the process every `interval` seconds; frames_fn() gives (frames processed, recent latencies)."""

    def __init__(self, interval: float, frames_fn: Callable[[], tuple[int, list[float]]],
                 on_sample: Callable[[Sample], None] | None = None) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.interval = interval
        self.frames_fn = frames_fn
        self.on_sample = on_sample
        self.samples: list[Sample] = []
        self._stop_event = threading.Event()
        self.t0 = time.monotonic()

    def stop(self) -> None:
        self._stop_event.set()

    def take(self) -> Sample:
        frames, lat = self.frames_fn()
        now = time.monotonic() - self.t0
        prev = self.samples[-1] if self.samples else None
        dt = now - prev.t if prev else now
        fps = (frames - (prev.frames if prev else 0)) / dt if dt > 0 else 0.0
        s = Sample(round(now, 2), process_rss_mb(), threading.active_count(), open_fds(), frames,
                   round(fps, 2), float(np.percentile(lat, 95)) * 1000 if lat else None)
        self.samples.append(s)
        if self.on_sample:
            self.on_sample(s)
        return s

    def run(self) -> None:
        self.take()
        while not self._stop_event.wait(self.interval):
            self.take()


def write_samples_csv(path: Path, samples: list[Sample]) -> None:
    cols = list(asdict(samples[0])) if samples else []
    lines = [",".join(cols)] + [",".join(str(v) for v in asdict(s).values()) for s in samples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
