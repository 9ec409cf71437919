"""Worker thread: slot → pipeline → sinks, with stats (fps, drops, latency percentiles).

`LiveRun` wires one source end to end (source → capture thread → LatestSlot → runner → sinks) and is
what the CLI, the GUI and the monitor all use.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.capture import CaptureThread, LatestSlot
from vision_app.errors import VisionAppError
from vision_app.pipeline import Pipeline
from vision_app.pool import WorkerPool
from vision_app.sources import FrameSource
from vision_app.types import Frame, FrameResult

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, str], None]


class Sink(Protocol):
    def write(self, result: FrameResult) -> None: ...

    def close(self) -> None: ...


class CallbackSink:
    """Calls fn(result) for every result (the GUI bridge uses this)."""

    def __init__(self, fn: Callable[[FrameResult], Any]) -> None:
        self.fn = fn

    def write(self, result: FrameResult) -> None:
        self.fn(result)

    def close(self) -> None:
        pass


class VideoWriterSink:
    """Writes result.image to a video file. The size is fixed by the first frame; later frames of another
    size (a camera that reconnected at another resolution) are resized to it."""

    def __init__(self, path: str | Path, fps: float, codec: str = "mp4v") -> None:
        self.path = Path(path)
        self.fps = fps if fps > 0 else 25.0
        self.codec = codec
        self._writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.error: str | None = None  # why the recording failed (also raised from write / close)

    def write(self, result: FrameResult) -> None:
        img = result.image
        if self._writer is None:
            if self.path.parent and not self.path.parent.exists():
                raise VisionAppError(f"cannot record to {self.path}: folder {self.path.parent} does not exist")
            self.size = (img.shape[1], img.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*self.codec), self.fps,
                                           self.size)
            if not self._writer.isOpened():
                self._writer = None
                raise VisionAppError(f"cannot record to {self.path}: OpenCV has no writer for codec "
                                     f"'{self.codec}' and this extension (try .mp4 with mp4v or .avi with MJPG)")
        if (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)  # type: ignore[assignment]
        # OpenCV buffers encoded frames (~256 KiB with FFmpeg) and says False once a flush fails: a full
        # disk or a file-size limit. Without this check the recording stops growing and nobody knows.
        if not self._writer.write(np.ascontiguousarray(img)):
            self.error = self._failure(f"frame {self.frames + 1} could not be written")
            raise VisionAppError(self.error)
        self.frames += 1

    def _failure(self, what: str) -> str:
        try:
            size = f"{self.path.stat().st_size} bytes on disk"
            free = f"{shutil.disk_usage(self.path.parent).free / 2 ** 20:.0f} MiB free"
        except OSError as exc:
            size, free = "size unknown", f"free space unknown: {exc}"
        return (f"recording to {self.path} failed: {what} after {self.frames} frames ({size}, {free}): the "
                f"disk is full, the file reached a size limit or the disk failed; free some space or record "
                f"to another disk")

    def close(self) -> None:
        """Finish the file. Raises VisionAppError when frames were written but the file cannot be read back
        (the last flush or the index failed, e.g. on a full disk), unless a write already reported it."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if self.frames and self.error is None:
            cap = cv2.VideoCapture(str(self.path))
            try:
                readable = cap.isOpened() and cap.read()[0]
            finally:
                cap.release()
            if not readable:
                self.error = self._failure("the finished file cannot be read back")
                raise VisionAppError(self.error)


class Ring:
    """The last `size` float values in a preallocated array: memory is fixed from the first value on, so
    a months-long run's statistics never grow (a deque of Python floats grows until it is full)."""

    def __init__(self, size: int) -> None:
        self._buf = np.empty(size, np.float64)
        self._n = 0

    def append(self, value: float) -> None:
        self._buf[self._n % self._buf.size] = value
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, self._buf.size)

    def last(self, k: int) -> NDArray[np.float64]:
        """The newest min(k, len) values, oldest first (a copy)."""
        n = min(k, len(self))
        return self._buf[np.arange(self._n - n, self._n) % self._buf.size]

    def values(self) -> NDArray[np.float64]:
        return self._buf[:len(self)]  # percentiles do not care about order


def _pct(values: Ring, q: float) -> float | None:
    return float(np.percentile(values.values(), q)) * 1000.0 if len(values) else None


class RunStats:
    """Collects per-frame timings; summary() gives the numbers the CLI prints and saves (ms, fps).

    Percentiles cover the last `window` frames: a kiosk runs for months, so the history is bounded and
    preallocated."""

    def __init__(self, window: int = 20_000) -> None:
        self.window = window
        self.processed = 0
        self.errors = 0
        self.stage_times: dict[str, Ring] = {}
        self.latencies = Ring(window)
        self.t_first: float | None = None
        self.t_last: float | None = None
        self._lock = threading.Lock()

    def add(self, result: FrameResult) -> None:
        with self._lock:
            now = time.monotonic()
            if self.t_first is None:
                self.t_first = result.frame.timestamp
            self.t_last = now
            self.processed += 1
            self.errors += len(result.errors)
            for name, t in result.timings.items():
                ring = self.stage_times.get(name)
                if ring is None:
                    ring = self.stage_times[name] = Ring(self.window)
                ring.append(t)
            self.latencies.append(result.latency)

    def fps(self) -> float:
        if self.t_first is None or self.t_last is None or self.processed == 0:
            return 0.0
        span = self.t_last - self.t_first
        return self.processed / span if span > 0 else 0.0

    def summary(self, read: int, dropped: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                "frames_read": read,
                "frames_processed": self.processed,
                "frames_dropped": dropped,
                "stage_errors": self.errors,
                "throughput_fps": round(self.fps(), 2),
                "stage_latency_ms": {n: {"p50": _pct(v, 50), "p95": _pct(v, 95)}
                                     for n, v in self.stage_times.items()},
                "capture_to_result_ms": {"p50": _pct(self.latencies, 50), "p95": _pct(self.latencies, 95)},
            }
        out.update(extra or {})
        return out


class Runner(threading.Thread):
    """Takes frames from the slot, runs the pipeline, hands results to the sinks. A sink that fails is
    reported once and removed; the loop never dies silently.

    With a worker pool (pool.py) the pool's workers run the stages' per-frame `process` on whole frames
    in parallel (each worker with its own pipeline and model sessions, e.g. one ONNX Runtime thread
    each), and this thread puts the results back in capture order and runs `pipeline`'s in-order
    `finish` steps (trackers, smoothing), drawing and sinks. On a 2-core CPU this keeps both cores
    busy, which one multi-threaded session on small models does not. The pool may serve other sources
    too; `pipeline` then holds this source's own stage state (Pipeline.fork()).
    """

    def __init__(self, slot: LatestSlot[Frame], pipeline: Pipeline, sinks: Iterable[Sink] = (),
                 on_status: StatusCallback | None = None, name: str = "runner",
                 pool: WorkerPool | None = None, own_pool: bool = False,
                 post: Callable[[FrameResult], FrameResult] | None = None) -> None:
        """post: an in-order step of this source between the pipeline and the sinks (zones and events,
        vision_app.monitoring); it runs before the stats, so its time shows as a stage."""
        super().__init__(name=name, daemon=True)
        self.post = post
        self.slot = slot
        self.pipeline = pipeline
        self.pool = pool
        self.own_pool = own_pool
        self.sinks = list(sinks)
        self.on_status = on_status or (lambda kind, msg: None)
        self.stats = RunStats()
        self._stop_event = threading.Event()
        self.paused = threading.Event()
        self.error: str | None = None
        self._done: dict[int, FrameResult | None] = {}
        self._total: int | None = None  # frames the pool took from the slot, once the source ended
        self._cond = threading.Condition()

    def stop(self) -> None:
        self._stop_event.set()
        with self._cond:
            self._cond.notify_all()

    def _status(self, kind: str, msg: str) -> None:
        try:
            self.on_status(kind, msg)
        except Exception:
            log.exception("status callback failed")

    def _deliver(self, result: FrameResult) -> None:
        if self.post is not None:
            result = self.post(result)
        self.stats.add(result)
        for sink in list(self.sinks):
            try:
                sink.write(result)
            except Exception as exc:
                msg = f"output {_sink_name(sink)} failed and was stopped: {exc}"
                log.error("%s", msg, exc_info=not isinstance(exc, VisionAppError))
                self._status("error", msg)
                self.sinks.remove(sink)
                self.error = msg
                self._close_sink(sink, quiet=True)

    def _close_sink(self, sink: Sink, quiet: bool = False) -> None:
        """Close a sink; a failure is reported like a write failure (quiet: only logged, for a sink
        whose failure was already reported) — a recording that could not be finished must not pass
        unnoticed at the end of a run either."""
        try:
            sink.close()
        except Exception as exc:
            msg = f"output {_sink_name(sink)} failed when closing: {exc}"
            log.error("%s", msg, exc_info=not isinstance(exc, VisionAppError))
            if not quiet:
                self._status("error", msg)
                self.error = self.error or msg

    def _run_single(self) -> None:
        while not self._stop_event.is_set():
            frame = self.slot.get(timeout=0.1)
            if frame is None:
                if self.slot.closed:
                    return
                continue
            if not self.paused.is_set():
                self._deliver(self.pipeline.run(frame))

    def _done_one(self, seq: int, partial: FrameResult | None) -> None:
        with self._cond:
            self._done[seq] = partial
            self._cond.notify_all()

    def _ended(self, total: int) -> None:
        with self._cond:
            self._total = total
            self._cond.notify_all()

    def _run_pooled(self, pool: WorkerPool) -> None:
        feed = pool.attach(self.slot, self._done_one, self._ended, self.paused)
        if self.own_pool:
            pool.start()
        nxt = 0
        try:
            while True:
                with self._cond:
                    while (nxt not in self._done and not self._stop_event.is_set()
                           and (self._total is None or nxt < self._total)):
                        self._cond.wait(0.5)
                    if nxt not in self._done:
                        return  # stopped, or the source ended and every frame was delivered
                    partial = self._done.pop(nxt)
                nxt += 1
                if partial is not None:
                    self._deliver(self.pipeline.finish(partial))
        finally:
            pool.detach(feed)
            if self.own_pool:
                pool.stop()

    def run(self) -> None:
        try:
            if self.pool is not None:
                self._run_pooled(self.pool)
            else:
                self._run_single()
        except Exception as exc:
            log.exception("runner crashed")
            self.error = f"runner crashed: {exc}"
            self._status("error", self.error)
        finally:
            for sink in self.sinks:
                self._close_sink(sink)


def _sink_name(sink: Sink) -> str:
    """The class name of a sink, or of the sink a BackgroundSink writes to."""
    return type(getattr(sink, "inner", sink)).__name__


class LiveRun:
    """source → capture thread → LatestSlot → runner thread → sinks."""

    def __init__(self, source: FrameSource, pipeline: Pipeline, sinks: Iterable[Sink] = (), *,
                 mode: str = "offline", max_frames: int = 0, on_status: StatusCallback | None = None,
                 reconnect: tuple[float, float, int] = (0.5, 10.0, 0),
                 extra_pipelines: Iterable[Pipeline] = (), pool: WorkerPool | None = None,
                 post: Callable[[FrameResult], FrameResult] | None = None) -> None:
        """extra_pipelines: copies of `pipeline` (own engines): this source gets a worker pool of its own,
        `pipeline` and the copies each on a worker thread. pool: a pool shared with other sources;
        `pipeline` then only runs this source's in-order steps (give each source its own fork()).
        post: see Runner."""
        self.source = source
        self.pipeline = pipeline
        extra = list(extra_pipelines)
        if pool is not None and extra:
            raise VisionAppError("LiveRun: give either extra_pipelines or a shared pool, not both")
        own = pool is None and bool(extra)
        if own:
            pool = WorkerPool([pipeline, *extra], name=f"workers[{source.source_id}]")
        self.slot: LatestSlot[Frame] = LatestSlot(drop=source.live or mode == "paced",
                                                  cond=pool.cond if pool is not None else None)
        self.capture = CaptureThread(source, self.slot, mode=mode, max_frames=max_frames,
                                     reconnect_initial_s=reconnect[0], reconnect_max_s=reconnect[1],
                                     reconnect_attempts=reconnect[2], on_status=on_status)
        self.runner = Runner(self.slot, pipeline, sinks, on_status=on_status,
                             name=f"runner[{source.source_id}]", pool=pool, own_pool=own, post=post)

    def start(self) -> "LiveRun":
        self.runner.start()
        self.capture.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the source ended and the runner drained it. True when finished."""
        self.runner.join(timeout)
        return not self.runner.is_alive()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop both threads; True if both ended within timeout seconds."""
        self.capture.stop()
        self.runner.stop()
        deadline = time.monotonic() + timeout
        self.capture.join(max(0.0, deadline - time.monotonic()))
        self.runner.join(max(0.0, deadline - time.monotonic()))
        return not (self.capture.is_alive() or self.runner.is_alive())

    def counters(self) -> dict[str, int]:
        """Frames read, processed and dropped so far (the metrics endpoint reads these when scraped)."""
        return {"read": self.capture.stats.read, "processed": self.runner.stats.processed,
                "dropped": self.slot.dropped}

    def summary(self) -> dict[str, Any]:
        return self.runner.stats.summary(
            self.capture.stats.read, self.slot.dropped,
            {"source": self.source.source_id, "reconnects": self.capture.stats.reconnects,
             "source_failures": self.capture.stats.failures, "source_error": self.capture.error,
             "frames_undecodable": getattr(self.source, "skipped_frames", 0)})

