"""Recording and snapshots, with all file I/O off the GUI thread.

`RecorderSink` sits in the runner's sink list for the whole session. The GUI only *requests* a start
or stop; the runner thread opens, writes and closes the vision_app VideoWriterSink when it handles the
next frame, so no encoder call ever runs on the GUI thread. `save_image_async` writes a snapshot PNG on
a short-lived thread.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import VisionAppError
from vision_app.runner import VideoWriterSink
from vision_app.types import FrameResult

log = logging.getLogger(__name__)


class RecorderSink:
    """A sink that records result.image to a video file between request_start and request_stop.

    on_status(kind, message) is called from the runner thread with kind 'recording' / 'recorded' /
    'error'. A writer failure stops the recording but keeps this sink (and the session) alive.
    """

    def __init__(self, on_status: Callable[[str, str], None], codec: str = "mp4v") -> None:
        self.on_status = on_status
        self.codec = codec
        self._lock = threading.Lock()
        self._request: tuple[str, Path, float] | None = None   # ('start', path, fps) or ('stop', …)
        self._writer: VideoWriterSink | None = None

    @property
    def recording(self) -> bool:
        return self._writer is not None or (self._request is not None and self._request[0] == "start")

    def request_start(self, path: str | Path, fps: float) -> None:
        with self._lock:
            self._request = ("start", Path(path), fps)

    def request_stop(self) -> None:
        with self._lock:
            self._request = ("stop", Path(), 0.0)

    def _close_writer(self) -> None:
        w, self._writer = self._writer, None
        if w is None:
            return
        try:
            w.close()  # finishing the file can fail too (a full disk shows at the last flush)
        except Exception as exc:
            log.error("recording failed at close: %s", exc, exc_info=not isinstance(exc, VisionAppError))
            self.on_status("error", f"recording failed: {exc}")
            return
        self.on_status("recorded", f"saved {w.frames} frame(s) to {w.path}")

    def write(self, result: FrameResult) -> None:
        with self._lock:
            request, self._request = self._request, None
        if request is not None:
            self._close_writer()
            if request[0] == "start":
                try:
                    request[1].parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    self.on_status("error", f"cannot record to {request[1]}: {exc}")
                    return
                self._writer = VideoWriterSink(request[1], request[2], self.codec)
                self.on_status("recording", f"recording to {request[1]}")
        if self._writer is None:
            return
        try:
            self._writer.write(result)
        except Exception as exc:  # reported in the window; the session keeps running
            log.error("recording failed: %s", exc, exc_info=not isinstance(exc, (OSError, VisionAppError)))
            w, self._writer = self._writer, None
            try:
                w.close()  # release the encoder and the file handle
            except Exception:
                log.debug("closing the failed writer failed too", exc_info=True)
            self.on_status("error", f"recording stopped: {exc}")

    def close(self) -> None:
        with self._lock:
            self._request = None
        self._close_writer()


def save_image_async(path: str | Path, image: NDArray[np.uint8],
                     on_done: Callable[[str, str], None]) -> threading.Thread:
    """Write a BGR uint8 (H, W, 3) image as PNG on a worker thread; on_done('snapshot'|'error', msg)."""
    target = Path(path)

    def work() -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), image):
                raise OSError("OpenCV could not encode or write the file (check the extension and folder)")
        except Exception as exc:
            on_done("error", f"snapshot to {target} failed: {exc}")
            return
        on_done("snapshot", f"snapshot saved to {target}")

    t = threading.Thread(target=work, name="snapshot-writer", daemon=True)
    t.start()
    return t
