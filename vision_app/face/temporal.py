"""Temporal liveness: a face that neither moves nor blinks across the check window is not live.

"Moves" means NON-RIGID motion: each frame's mesh points are fitted to the window's mean shape with a
2-D affine transform, and what the transform cannot explain is the motion. A flat photo or a screen
moved, rotated or tilted in front of the camera changes only by (nearly) an affine map, so it stays
still by this measure; a real face talking, changing expression or turning its head does not (the nose
and the face outline are not in one plane). Measured with the mesh on the shared media, over 2 s:
carphone video .024–.036, a photo shaken and tilted by hand .006–.007, a still photo < .003 (fractions
of the distance between the outer eye corners).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vision_app.face.mesh import EYE_CORNERS


def nonrigid_motion(points: NDArray[np.float32], scale_idx: tuple[int, int] = EYE_CORNERS,
                    iterations: int = 2) -> float:
    """Non-rigid motion of a point track: (T, K, 2) positions of K points over T frames → RMS distance of
    the affinely normalised points from their mean shape, divided by the distance between points
    scale_idx of the mean shape. 0 for any sequence of affine images of one shape."""
    pts = np.asarray(points, np.float64)[..., :2]
    if pts.ndim != 3 or pts.shape[0] < 2:
        return 0.0
    ones = np.ones(pts.shape[:2] + (1,))
    x = np.concatenate([pts, ones], axis=2)                # (T, K, 3)
    xtx = np.einsum("tki,tkj->tij", x, x)                    # (T, 3, 3)
    ref = pts.mean(0)
    fitted = pts
    for _ in range(iterations):                              # fit every frame to the mean shape, refine
        xty = np.einsum("tki,kj->tij", x, ref)               # (T, 3, 2)
        m = np.linalg.solve(xtx + 1e-9 * np.eye(3), xty)     # least-squares affine per frame
        fitted = x @ m                                       # (T, K, 2)
        ref = fitted.mean(0)
    scale = float(np.linalg.norm(ref[scale_idx[1]] - ref[scale_idx[0]]))
    if scale < 1e-6:
        return 0.0
    return float(np.sqrt(((fitted - ref) ** 2).sum(2).mean()) / scale)


@dataclass(frozen=True)
class TemporalParams:
    """window_s: the check window in seconds; motion_min: non-rigid motion (fraction of the outer eye
    corner distance) above landmark noise that counts as moving; min_frames: frames needed in a window
    before a verdict."""

    window_s: float
    motion_min: float
    min_frames: int = 5


@dataclass(frozen=True, slots=True)
class TemporalVerdict:
    """live: True (moved or blinked in the window), False (a full window with neither), None (window not
    full yet). motion: non-rigid motion over the window; span_s: seconds the window covers."""

    live: bool | None
    motion: float
    blinked: bool
    span_s: float
    frames: int


class TemporalCheck:
    """Per tracked face: feed mesh points (or any fixed landmark set) and blink flags every frame."""

    def __init__(self, params: TemporalParams, scale_idx: tuple[int, int] = EYE_CORNERS) -> None:
        """scale_idx: the two landmark indices whose distance normalises the motion (mesh eye corners)."""
        self.p = params
        self.scale_idx = scale_idx
        self._t: deque[float] = deque()
        self._pts: deque[NDArray[np.float32]] = deque()
        self._first_t: float | None = None

    def update(self, t: float, points: NDArray[np.float32] | None, blinked_in_window: bool) -> TemporalVerdict:
        """t: frame time (s); points: (K, 2+) landmarks in source pixels (None when the mesh did not run);
        blinked_in_window: the blink detector saw a blink ending within the last window_s."""
        if self._first_t is None:
            self._first_t = t
        if points is not None:
            self._t.append(t)
            self._pts.append(np.asarray(points, np.float32)[:, :2])
        while self._t and self._t[0] < t - self.p.window_s:
            self._t.popleft()
            self._pts.popleft()
        motion = nonrigid_motion(np.stack(self._pts), self.scale_idx) if len(self._pts) >= 2 else 0.0
        span = t - self._first_t
        full = span >= self.p.window_s and len(self._pts) >= self.p.min_frames
        if blinked_in_window or motion >= self.p.motion_min:
            live: bool | None = True
        else:
            live = False if full else None
        return TemporalVerdict(live, motion, blinked_in_window, min(span, self.p.window_s), len(self._pts))
