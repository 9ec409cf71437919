"""One or several sources on the workers of a run: `run`, the soak test and the monitor.

Each source keeps its own capture thread, newest-frame slot, runner (in-order finish steps on its own
fork of the stages, drawing, sinks) and statistics; the per-frame model work of all of them runs on one
WorkerPool sized to the machine (parallelism.py), instead of one pipeline, with its own model sessions
and threads, per source.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from vision_app.pipeline import ErrorCallback, Pipeline
from vision_app.pool import WorkerPool
from vision_app.runner import LiveRun, Sink, StatusCallback
from vision_app.sources import FrameSource
from vision_app.types import FrameResult

log = logging.getLogger(__name__)


class MultiRun:
    """sources → one LiveRun each (own slot, runner, stats) → the workers' `pipelines` (one per worker,
    each with its own engines).

    One source: its LiveRun uses the pipelines directly (several: a worker pool of its own, results in
    capture order; one: the runner thread runs it, lowest latency). Several sources: one shared
    WorkerPool, each source finishing on its own fork. sinks[i] are source i's outputs; on_status(i)
    gives source i's status callback (or None). close() closes every pipeline."""

    def __init__(self, sources: Sequence[FrameSource], pipelines: Sequence[Pipeline],
                 sinks: Sequence[Iterable[Sink]] | None = None, *, mode: str = "offline", max_frames: int = 0,
                 on_status: Callable[[int], StatusCallback | None] = lambda i: None,
                 reconnect: tuple[float, float, int] = (0.5, 10.0, 0),
                 posts: Sequence[Callable[[FrameResult], FrameResult] | None] | None = None) -> None:
        """posts[i]: source i's in-order step before its sinks (Runner's `post`: zones, events)."""
        self.pipelines = list(pipelines)
        self.pool = WorkerPool(self.pipelines, name="pool") if len(sources) > 1 else None
        self.runs: list[LiveRun] = []
        for i, src in enumerate(sources):
            status = on_status(i)
            outputs = list(sinks[i]) if sinks is not None else []
            common: dict[str, Any] = {"mode": mode, "max_frames": max_frames, "on_status": status,
                                      "reconnect": reconnect, "post": posts[i] if posts is not None else None}
            if self.pool is None:
                self.runs.append(LiveRun(src, self.pipelines[0], outputs, extra_pipelines=self.pipelines[1:],
                                         **common))
                continue
            errors: ErrorCallback | None = (lambda stage, msg, s=status: s("error", msg)) if status else None
            self.runs.append(LiveRun(src, self.pipelines[0].fork(on_error=errors), outputs, pool=self.pool,
                                     **common))

    def start(self) -> "MultiRun":
        if self.pool is not None:
            self.pool.start()
        for r in self.runs:
            r.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every source ended and was drained. True when all finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for r in self.runs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not r.wait(left):
                return False
        return True

    @property
    def processed(self) -> int:
        return sum(r.runner.stats.processed for r in self.runs)

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop every source's threads, then the workers; True if all ended within timeout seconds."""
        for r in self.runs:  # all at once, then each is joined
            r.capture.stop()
            r.runner.stop()
        deadline = time.monotonic() + timeout
        ok = all([r.stop(max(0.0, deadline - time.monotonic())) for r in self.runs])
        if self.pool is not None:
            ok = self.pool.stop(max(0.1, deadline - time.monotonic())) and ok
        return ok

    def close(self) -> None:
        """Close the per-source forks and the workers' pipelines (after stop())."""
        if self.pool is not None:
            for r in self.runs:
                r.pipeline.close()
        for p in self.pipelines:
            p.close()

    def summaries(self) -> list[dict[str, Any]]:
        return [r.summary() for r in self.runs]


class SharedPool:
    """A WorkerPool built on first use, for sources that start one by one (the monitor's tiles): the
    first caller builds the workers' pipelines, every caller gets a fork for its own in-order steps.
    Thread-safe. close() stops the workers and closes their pipelines."""

    def __init__(self, workers: int, threads: int, on_error: ErrorCallback | None = None) -> None:
        self.workers = workers
        self.threads = threads  # ONNX Runtime threads per session that build() should use
        self.on_error = on_error
        self.context: Any = None  # what build() may leave here: the StageContext the workers were built in
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> WorkerPool | None:
        return self._pool

    def stream(self, build: Callable[[int, int], list[Pipeline]], on_error: ErrorCallback | None = None
               ) -> tuple[WorkerPool, Pipeline]:
        """(the started pool, a fork of its first pipeline for one source). build(workers, threads)
        makes the workers' pipelines (stages.build_pipelines); it runs on the first call only."""
        with self._lock:
            if self._pool is None:
                pipelines = build(self.workers, self.threads)
                self._pool = WorkerPool(pipelines, name="shared-pool").start()
                log.info("shared pool: %d worker(s), %s ONNX Runtime thread(s) each", self.workers,
                         self.threads or "default")
            return self._pool, self._pool.pipelines[0].fork(on_error=on_error)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
