"""Annotators: draw results on a COPY of the frame (results never draw themselves)."""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import Iterable

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.types import Detections, Faces, FrameResult


@functools.cache
def _hue_colors() -> tuple[tuple[int, int, int], ...]:
    """BGR of the 180 OpenCV hues at saturation 200, value 255 (built once, on first use)."""
    hsv = np.dstack([np.arange(180, dtype=np.uint8)[None, :], np.full((1, 180), 200, np.uint8),
                     np.full((1, 180), 255, np.uint8)])
    return tuple((int(b), int(g), int(r)) for b, g, r in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0])


def _color(key: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class or track id."""
    return _hue_colors()[(key * 47) % 180]


_FAR = 1 << 20  # pixels: beyond any frame, well inside the 32-bit ints OpenCV's drawing takes (and shifts)


def _px(*values: float) -> tuple[int, ...] | None:
    """Pixel coordinates as ints, clamped to ±_FAR (a face box may reach far past the frame; a box
    1e30 px wide from a broken model must not make OpenCV raise); None when one is NaN or infinite."""
    arr = np.asarray(values, np.float64)
    if not np.isfinite(arr).all():
        return None
    return tuple(int(v) for v in np.rint(np.clip(arr, -_FAR, _FAR)))


def _label(img: NDArray[np.uint8], text: str, x: int, y: int, color: tuple[int, int, int]) -> None:
    scale = max(0.4, min(img.shape[:2]) / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    width = img.shape[1]
    if tw + 2 > width:  # a long label on a small frame (176x144 video): smaller text, not cut-off text
        scale *= (width - 2) / (tw + 2)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = min(max(x, 0), max(width - tw - 2, 0))  # kept inside the frame, like y below
    y = max(y, th + base + 2)
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 2, y), color, -1)
    cv2.putText(img, text, (x + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _boxes_px(xyxy: NDArray[np.float32]) -> tuple[list[list[int]], list[bool]]:
    """(N, 4) boxes -> their pixel coordinates as ints clamped to ±_FAR (as _px, for all boxes in a few
    numpy calls) and whether each box is drawable (all four values finite)."""
    arr = np.asarray(xyxy, np.float64)
    finite = np.isfinite(arr)
    px = np.rint(np.clip(np.where(finite, arr, 0.0), -_FAR, _FAR)).astype(np.int64)
    return px.tolist(), [bool(row.all()) for row in finite]


def draw_detections(img: NDArray[np.uint8], dets: Detections) -> NDArray[np.uint8]:
    """Boxes, labels, scores and track ids drawn in place on img (BGR uint8, source pixels)."""
    if not len(dets):
        return img
    thick = max(1, round(min(img.shape[:2]) / 400))
    boxes, drawable = _boxes_px(dets.xyxy)
    classes = dets.class_id.tolist()
    scores = dets.confidence.tolist()
    tids = dets.tracker_id.tolist() if dets.tracker_id is not None else None
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        if not drawable[i]:
            continue
        tid = None if tids is None else tids[i]
        color = _color(classes[i] if tid is None or tid < 0 else tid)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thick)
        text = f"{dets.label(i)} {scores[i]:.2f}"
        if tid is not None and tid >= 0:
            text = f"#{tid} {text}"
        _label(img, text, x1, y1, color)
    return img


def draw_faces(img: NDArray[np.uint8], faces: Faces, details: bool = True) -> NDArray[np.uint8]:
    """Face boxes and the 5 landmarks drawn in place on img; with details, identity, similarity and
    liveness labels too (a kiosk turns them off: the person at the door learns nothing from the screen,
    the banner tells them what to do)."""
    thick = max(1, round(min(img.shape[:2]) / 400))
    for i in range(len(faces)):
        box = _px(*faces.xyxy[i])
        if box is None:
            continue
        x1, y1, x2, y2 = box
        name = faces.identity[i] if faces.identity is not None else ""
        color = (0, 200, 0) if name and details else (0, 165, 255)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thick)
        for (px, py) in faces.landmarks[i]:
            if (point := _px(px, py)) is not None:
                cv2.circle(img, point, thick + 1, (255, 0, 255), -1)
        if not details:
            continue
        parts = [name or ("unknown" if faces.identity is not None else f"face {faces.score[i]:.2f}")]
        if faces.match_score is not None:
            parts.append(f"{faces.match_score[i]:.2f}")
        if faces.liveness is not None:
            parts.append(f"live {faces.liveness[i]:.2f}")
        _label(img, " ".join(parts), x1, y1, color)
    return img


def render_result(result: FrameResult, face_details: bool = True) -> FrameResult:
    """Final pipeline step: annotations drawn on a copy of result.image (face_details: see draw_faces)."""
    if not (result.detections is not None and len(result.detections)) and not (
            result.faces is not None and len(result.faces)):
        return result
    img = result.image.copy()
    if result.detections is not None:
        draw_detections(img, result.detections)
    if result.faces is not None:
        draw_faces(img, result.faces, face_details)
    return replace(result, image=img)


ZONE_COLOR = (255, 200, 0)   # BGR: light blue outline for polygon zones
LINE_COLOR = (0, 220, 255)   # BGR: yellow for counting lines


def draw_zones(img: NDArray[np.uint8], polygons: Iterable[tuple[str, NDArray[np.int32], int]],
               lines: Iterable[tuple[str, NDArray[np.float64], NDArray[np.float64], int, int]]) -> NDArray[np.uint8]:
    """Zones drawn in place on img (BGR uint8, source pixels): each polygon's outline with 'name: objects
    inside', each counting line with its end points and 'name in N out M'."""
    thick = max(1, round(min(img.shape[:2]) / 300))
    for name, points, inside in polygons:
        cv2.polylines(img, [points.reshape(-1, 1, 2)], True, ZONE_COLOR, thick, cv2.LINE_AA)
        top = points[np.argmin(points[:, 1])]
        _label(img, f"{name}: {inside}", int(top[0]), int(top[1]), ZONE_COLOR)
    for name, start, end, n_in, n_out in lines:
        a, b = _px(*start), _px(*end)
        if a is None or b is None:
            continue
        cv2.line(img, a[:2], b[:2], LINE_COLOR, thick + 1, cv2.LINE_AA)
        for p in (a, b):
            cv2.circle(img, p[:2], thick + 3, LINE_COLOR, -1, cv2.LINE_AA)
        mid = ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2)
        _label(img, f"{name} in {n_in} out {n_out}", mid[0], mid[1], LINE_COLOR)
    return img
