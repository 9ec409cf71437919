"""Active and temporal liveness for one tracked face: blink, temporal (motion or blink), head turn.

Passive (single-image) anti-spoofing is vision_app.face.passive.PassiveLiveness; the pieces here need a
sequence of frames of the same face (one TrackLiveness per track id). The kiosk policy — which checks
must pass, over how many frames — belongs to the access controller; this only measures.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vision_app.face.blink import BlinkDetector, BlinkParams
from vision_app.face.mesh import EYE_CORNERS, MeshResult, mean_ear
from vision_app.face.quality import yaw_degrees
from vision_app.face.temporal import TemporalCheck, TemporalParams

_YAW_BASELINE_FRAMES = 5
# Every 4th mesh point (117, spread over the whole face) plus the outer eye corners: the motion measure
# changes by < 5 % against all 468 points at a quarter of the cost.
MOTION_POINTS = np.array(sorted(set(range(0, 468, 4)) | set(EYE_CORNERS)))
_MOTION_SCALE = (int(np.searchsorted(MOTION_POINTS, EYE_CORNERS[0])),
                 int(np.searchsorted(MOTION_POINTS, EYE_CORNERS[1])))


@dataclass(frozen=True)
class LivenessParams:
    blink: BlinkParams
    temporal: TemporalParams
    head_turn_deg: float
    mesh_min_presence: float = 0.5

    @classmethod
    def from_config(cls, face_cfg: Any) -> "LivenessParams":
        """From the [face] config section (vision_app.config.FaceConfig)."""
        return cls(
            BlinkParams(face_cfg.blink_close_ratio, face_cfg.blink_open_ratio, face_cfg.blink_max_closed_s,
                        face_cfg.blink_baseline_frames),
            TemporalParams(face_cfg.liveness_window_s, face_cfg.motion_min),
            face_cfg.head_turn_deg)


class HeadTurnChallenge:
    """Seen once the yaw has departed from the track's own starting yaw (median of its first frames) by
    min_deg in the asked direction: 'left' (the subject's left, + yaw), 'right' or 'any'."""

    def __init__(self, min_deg: float, direction: str = "any") -> None:
        if direction not in ("left", "right", "any"):
            raise ValueError(f"head-turn direction: expected 'left', 'right' or 'any', got {direction!r}")
        self.min_deg = float(min_deg)
        self.direction = direction
        self._start: deque[float] = deque(maxlen=_YAW_BASELINE_FRAMES)
        self.seen = False
        self.max_turn = 0.0

    def update(self, yaw_deg: float) -> bool:
        if len(self._start) < _YAW_BASELINE_FRAMES:
            self._start.append(yaw_deg)
            return self.seen
        turn = yaw_deg - float(np.median(self._start))
        signed = {"left": turn, "right": -turn, "any": abs(turn)}[self.direction]
        self.max_turn = max(self.max_turn, signed)
        self.seen = self.seen or signed >= self.min_deg
        return self.seen


@dataclass(frozen=True, slots=True)
class TrackLivenessState:
    """This frame's evidence for one track. ear: mean EAR (nan without a mesh); blink_seen: a blink ended
    within the check window; temporal_live: see TemporalVerdict.live; motion: non-rigid motion."""

    ear: float
    blink_seen: bool
    blink_count: int
    motion: float
    temporal_live: bool | None
    yaw_deg: float
    head_turn_seen: bool
    window_s: float


class TrackLiveness:
    """Blink detector + temporal check + head-turn challenge for one tracked face."""

    def __init__(self, params: LivenessParams, head_turn_direction: str = "any") -> None:
        self.params = params
        self.blink = BlinkDetector(params.blink)
        self.temporal = TemporalCheck(params.temporal, _MOTION_SCALE)
        self.head_turn = HeadTurnChallenge(params.head_turn_deg, head_turn_direction)
        self.frames = 0

    def update(self, t: float, landmarks5: NDArray[np.float32], mesh: MeshResult | None) -> TrackLivenessState:
        """t: frame time in seconds; landmarks5: (5, 2) YuNet landmarks (source pixels); mesh: this
        frame's mesh of the face (None when it did not run or found no face)."""
        self.frames += 1
        points = mesh.points if mesh is not None and mesh.presence >= self.params.mesh_min_presence else None
        ear = mean_ear(points) if points is not None else math.nan
        self.blink.update(ear, t)
        blinked = self.blink.blinked_since(t - self.params.temporal.window_s)
        verdict = self.temporal.update(t, points[MOTION_POINTS] if points is not None else None, blinked)
        yaw = yaw_degrees(landmarks5)
        turned = self.head_turn.update(yaw)
        return TrackLivenessState(ear, blinked, len(self.blink.events), verdict.motion, verdict.live, yaw,
                                  turned, verdict.span_s)
