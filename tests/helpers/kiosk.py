"""A genuine, live, enrolled face for the access controller, frame after frame (what the face stage would
report), so tests and child processes can drive real AccessController decisions without models."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from vision_app.face.observation import FaceObservation
from vision_app.types import Frame, FrameResult

IMAGE = np.zeros((48, 64, 3), np.uint8)
FPS = 10.0
ALICE = FaceObservation(
    track_id=1, xyxy=(0.0, 0.0, 100.0, 100.0), identity="alice", best_name="alice", similarity=0.7,
    passive_score=0.9, passive_live=True, blink_seen=False, blink_count=0, ear=0.3, motion=0.03,
    temporal_live=True, yaw_deg=0.0, head_turn_seen=False, quality=None, frames_tracked=10, window_s=2.0,
    frame_index=0, timestamp=0.0, candidates=(("alice", 0.7), ("bob", 0.2)), match_threshold=0.41)


def frame(i: int, track: int = 1) -> FrameResult:
    """Frame i (at FPS) showing alice as track `track`."""
    return FrameResult(Frame(IMAGE, i, i / FPS, "test"), IMAGE, extras={"face": (replace(ALICE, track_id=track),)})
