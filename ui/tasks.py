"""Run short jobs (gallery reads and writes, model loading, PIN hashing) off the GUI thread.

`BackgroundTasks.submit(fn, on_done, on_error)` runs fn() on one worker thread (jobs run in order, so
gallery writes never race each other) and calls on_done(result) or on_error(message) in the GUI thread.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from PySide6.QtCore import QObject

from vision_app.errors import VisionAppError

from ui.notify import CallQueue

log = logging.getLogger(__name__)


class BackgroundTasks(QObject):
    def __init__(self, name: str = "ui-tasks", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._calls = CallQueue(self)  # results reach the GUI thread without a cross-thread Qt signal
        self.pending = 0

    def submit(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[str], None] | None = None) -> Future:
        """fn runs on the worker; a VisionAppError's message (or 'Type: message' for a bug, logged with
        its traceback) goes to on_error in the GUI thread."""
        self.pending += 1

        def job() -> None:
            try:
                value = fn()
            except VisionAppError as exc:
                self._calls.call_soon(self._call, on_error, str(exc), True)
            except Exception as exc:
                log.exception("background job failed")
                self._calls.call_soon(self._call, on_error, f"{type(exc).__name__}: {exc}", True)
            else:
                self._calls.call_soon(self._call, on_done, value, False)

        return self._pool.submit(job)

    def _call(self, callback: Callable[[Any], None] | None, value: Any, is_error: bool) -> None:
        self.pending -= 1
        if callback is not None:
            callback(value)
        elif is_error:
            log.error("background job failed: %s", value)

    def shutdown(self, wait: bool = True) -> None:
        """Run what was submitted (wait=True blocks until done), then stop the worker."""
        self._pool.shutdown(wait=wait)
