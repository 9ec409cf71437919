"""Gallery work for the dialogs, run on a BackgroundTasks worker (SQLite, JPEG decoding, models).

Uses the gallery package: vision_app.gallery.gallery.Gallery (people, thumbnails, rename, remove),
vision_app.gallery.enroll (FaceAnalyzer with the quality gates, enroll_images). Nothing here runs in the
GUI thread; thumbnails come back as owned QImages ready to paint.
"""
from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass, replace
from typing import Any, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray
from PySide6.QtGui import QImage

from vision_app.errors import ConfigError
from vision_app.stages import StageContext
from vision_app.types import FrameResult

from ui.bridge import to_qimage
from ui.context import AppContext

log = logging.getLogger(__name__)

# the quality gates' reasons (vision_app.face.quality / enroll) → what the person should do
_HINTS = (
    ("no face", "Look at the camera — no face found"),
    ("faces found", "More than one face — only the person to enrol, please"),
    ("too small", "Step closer — the face is too small"),
    ("blurry", "Hold still — the image is blurred"),
    ("head turned", "Turn your head to face the camera"),
    ("head tilted", "Keep your head straight"),
)


def gallery_available() -> bool:
    """True when the face gallery and enrolment modules are installed in this build."""
    try:
        return all(importlib.util.find_spec(m) is not None
                   for m in ("vision_app.gallery.gallery", "vision_app.gallery.enroll"))
    except (ImportError, ValueError):
        return False


def hint_for(reason: str) -> str:
    """A quality gate's reason as an instruction (the reason itself when no rule matches)."""
    low = reason.lower()
    for key, hint in _HINTS:
        if key in low:
            return f"{hint} ({reason})"
    return reason


@dataclass(frozen=True)
class PersonRow:
    name: str
    templates: int
    thumbnail: QImage | None


class GalleryService:
    """Lazily opens the gallery and the face models; call every method from the same worker thread."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._gallery: Any = None
        self._analyzer: Any = None

    def gallery(self) -> Any:
        if self._gallery is None:
            from vision_app.gallery.gallery import Gallery

            path = self.ctx.gallery_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._gallery = Gallery.from_config(self.ctx.config.face, str(path))
        return self._gallery

    def analyzer(self) -> Any:
        if self._analyzer is None:
            self._analyzer = make_analyzer(self.ctx)
        return self._analyzer

    def people(self) -> list[PersonRow]:
        g = self.gallery()
        rows = []
        for p in g.people():
            thumbs = g.thumbnails(p.name)
            img = None
            if thumbs:
                arr = cv2.imdecode(np.frombuffer(thumbs[0], np.uint8), cv2.IMREAD_COLOR)
                img = to_qimage(arr) if arr is not None else None
            rows.append(PersonRow(p.name, p.templates, img))
        return rows

    def enroll(self, name: str, images: Sequence[Any]) -> int:
        """Image paths or (H, W, 3) uint8 BGR frames; adds to the person when they exist already."""
        from vision_app.gallery.enroll import enroll_images

        g = self.gallery()
        return int(enroll_images(g, name, list(images), self.analyzer(), add=g.has(name.strip())))

    def rename(self, old: str, new: str) -> None:
        self.gallery().rename(old, new)

    def remove(self, name: str) -> int:
        return int(self.gallery().remove(name))

    def close(self) -> None:
        if self._gallery is not None:
            self._gallery.close()
            self._gallery = None


def make_analyzer(ctx: AppContext) -> Any:
    """FaceAnalyzer (detector + quality gates + embedder) on the context's models."""
    from vision_app.gallery.enroll import FaceAnalyzer

    if ctx.store is None:
        raise ConfigError(ctx.store_error or "no model folder: face enrolment needs the face models")
    cfg = ctx.config
    return FaceAnalyzer.from_context(StageContext(cfg, ctx.store))


class EnrolSampler:
    """Runs on the preview's runner thread: checks every frame against the enrolment quality gates,
    draws the face box, and keeps up to `want` good frames (at least `gap_s` apart) while capturing.

    prepare(result) -> (result with the box drawn, (hint text, ok, samples so far))."""

    def __init__(self, ctx: AppContext, want: int = 5, gap_s: float = 0.4) -> None:
        self.ctx = ctx
        self.want = want
        self.gap_s = gap_s
        self.capturing = threading.Event()
        self._lock = threading.Lock()
        self._frames: list[NDArray[np.uint8]] = []
        self._last = 0.0
        self._analyzer: Any = None
        self.error = ""

    def reset(self) -> None:
        with self._lock:
            self._frames = []
        self.capturing.clear()

    def frames(self) -> list[NDArray[np.uint8]]:
        with self._lock:
            return list(self._frames)

    def prepare(self, result: FrameResult) -> tuple[FrameResult, tuple[str, bool, int]]:
        if self._analyzer is None and not self.error:
            try:
                self._analyzer = make_analyzer(self.ctx)
            except Exception as exc:  # shown as the hint: the preview keeps running
                log.error("enrolment preview: %s", exc)
                self.error = f"face models unavailable: {exc}"
        if self._analyzer is None:
            return result, (self.error, False, 0)
        img = result.frame.image
        sample = self._analyzer.face(img)  # the box and the gates only: no embedding per preview frame
        n = len(self._frames)
        if isinstance(sample, str):
            return result, (hint_for(sample), False, n)
        drawn = img.copy()
        x1, y1, x2, y2 = (int(round(v)) for v in sample.xyxy)
        cv2.rectangle(drawn, (x1, y1), (x2, y2), (0, 200, 0), max(2, img.shape[0] // 240))
        if self.capturing.is_set() and result.frame.timestamp - self._last >= self.gap_s:
            with self._lock:
                if len(self._frames) < self.want:
                    self._frames.append(img)
                    self._last = result.frame.timestamp
                n = len(self._frames)
            if n >= self.want:
                self.capturing.clear()
        hint = "Good — hold still" if n < self.want else "Samples complete — press Enrol"
        return replace(result, image=drawn), (hint, True, n)
