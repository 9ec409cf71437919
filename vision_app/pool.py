"""WorkerPool: whole-frame workers shared by any number of sources.

Each worker thread owns one Pipeline (its own model sessions) and runs the stages' per-frame `begin`
on a frame of whichever source it serves next: among the sources with a frame waiting, the one served
least recently (round robin), so no source starves another. Live sources keep only their newest frame
(LatestSlot), so a busy pool drops old frames per source, never whole sources. Each result goes back to
its source's Runner (runner.py), which restores capture order and runs the in-order `finish` steps
(trackers, smoothing), drawing and sinks with that source's own stage state and statistics.

One file processed offline with W workers is this pool with one source; `run` and the monitor with
several sources share one pool sized to the machine (parallelism.py) instead of one pipeline each.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

from vision_app.capture import LatestSlot
from vision_app.errors import VisionAppError
from vision_app.pipeline import Pipeline
from vision_app.types import Frame, FrameResult

log = logging.getLogger(__name__)

Deliver = Callable[[int, "FrameResult | None"], None]


class Feed:
    """One source's side of the pool. The pool numbers the frames it takes from `slot` 0, 1, 2, ... and
    calls deliver(seq, partial) from a worker thread for each (partial None: paused or failed); once the
    slot is closed and empty it calls on_end(total) once, total = the number of frames taken."""

    def __init__(self, slot: LatestSlot[Frame], deliver: Deliver, on_end: Callable[[int], None],
                 paused: threading.Event) -> None:
        self.slot = slot
        self.deliver = deliver
        self.on_end = on_end
        self.paused = paused
        self.issued = 0
        self.served = 0      # the pool's pick counter at this feed's last frame (round robin)
        self.ended = False


class WorkerPool:
    """Worker threads, one per pipeline, serving the attached feeds. Slots must be made with this pool's
    `cond` (LatestSlot(cond=pool.cond)) so that a new frame on any source wakes a free worker."""

    def __init__(self, pipelines: Iterable[Pipeline], name: str = "pool") -> None:
        self.pipelines = list(pipelines)
        if not self.pipelines:
            raise VisionAppError("a worker pool needs at least one pipeline")
        self.name = name
        self.cond = threading.Condition()
        self._feeds: list[Feed] = []
        self._picks = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def workers(self) -> int:
        return len(self.pipelines)

    def attach(self, slot: LatestSlot[Frame], deliver: Deliver, on_end: Callable[[int], None],
               paused: threading.Event | None = None) -> Feed:
        if slot.cond is not self.cond:
            raise VisionAppError("the slot was not made with this pool's condition: use "
                                 "LatestSlot(cond=pool.cond)")
        feed = Feed(slot, deliver, on_end, paused or threading.Event())
        with self.cond:
            self._feeds.append(feed)
            self.cond.notify_all()
        return feed

    def detach(self, feed: Feed) -> None:
        with self.cond:
            if feed in self._feeds:
                self._feeds.remove(feed)

    def start(self) -> "WorkerPool":
        if self._threads:
            return self
        self._threads = [threading.Thread(target=self._work, args=(p,), name=f"{self.name}-w{i}", daemon=True)
                         for i, p in enumerate(self.pipelines)]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop the workers (each finishes its current frame); True if all ended within timeout."""
        self._stop.set()
        with self.cond:
            self.cond.notify_all()
        for t in self._threads:
            t.join(timeout / max(len(self._threads), 1))
        return not any(t.is_alive() for t in self._threads)

    def close(self) -> None:
        """Stop the workers and close their pipelines."""
        self.stop()
        for p in self.pipelines:
            p.close()

    def _next(self) -> tuple[Feed, int, Frame | None] | None:
        """Under cond: the next (feed, seq, frame) to work on, or None when nothing waits. Feeds whose
        source ended are told so here, once."""
        best: Feed | None = None
        for feed in self._feeds:
            if feed.slot.ready:
                if best is None or feed.served < best.served:
                    best = feed
            elif not feed.ended and feed.slot.drained:
                feed.ended = True
                feed.on_end(feed.issued)
        if best is None:
            return None
        frame = best.slot.get_nowait()
        seq = best.issued
        best.issued += 1
        self._picks += 1
        best.served = self._picks
        return best, seq, None if best.paused.is_set() else frame

    def _work(self, pipeline: Pipeline) -> None:
        while not self._stop.is_set():
            with self.cond:
                job = self._next()
                if job is None:
                    self.cond.wait(0.5)
                    continue
            feed, seq, frame = job
            partial = None
            if frame is not None:
                try:
                    partial = pipeline.begin(frame)
                except Exception:
                    log.exception("worker %s failed on frame %d of %s", threading.current_thread().name,
                                  frame.index, frame.source_id)
            try:
                feed.deliver(seq, partial)
            except Exception:
                log.exception("delivering frame %d failed", seq)
