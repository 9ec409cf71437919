"""BackgroundSink: another sink's writes on a thread of their own (video encoding off the runner thread).

The runner hands a result over and goes on with the next frame while this one is encoded; on a 2-core
machine processing a file with whole-frame workers, encoding then overlaps the in-order steps instead
of adding to them. Results are written in the order they were handed over. The queue is bounded and
write() waits when it is full, so nothing is lost and memory stays fixed. A failure of the inner sink
is raised from the next write() or from close(), so the runner reports and removes it like any sink.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from vision_app.errors import VisionAppError
from vision_app.types import FrameResult

log = logging.getLogger(__name__)

_END = object()


class BackgroundSink:
    """Wraps `inner` (a Sink: write(result), close()). depth: results that may wait to be written."""

    def __init__(self, inner: Any, depth: int = 8, name: str = "sink") -> None:
        self.inner = inner
        self.name = type(inner).__name__
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._reported = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"{name}-writer", daemon=True)
        self._thread.start()

    def __getattr__(self, attr: str) -> Any:  # the inner sink's figures (frames, path, error)
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is not None:
                continue  # keep draining so that a writer waiting on a full queue is never stuck
            try:
                self.inner.write(item)
            except BaseException as exc:  # reported from the next write() / close()
                self._error = exc

    def _raise(self) -> None:
        exc = self._error
        if exc is not None and not self._reported:
            self._reported = True  # once: close() after a failed write does not raise it again
            raise exc

    def write(self, result: FrameResult) -> None:
        if self._error is not None:
            self._raise()
            return  # already reported: the runner has removed this sink
        if self._closed:
            raise VisionAppError(f"{self.name} is closed; results can no longer be written")
        self._queue.put(result)

    def close(self) -> None:
        """Write what is queued, then close the inner sink; raises the first failure of either."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_END)
        self._thread.join()
        try:
            self.inner.close()
        finally:
            self._raise()
