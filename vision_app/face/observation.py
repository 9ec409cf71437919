"""What the face stage tells the access controller about each face, every frame.

The face stage puts a tuple of FaceObservation (one per detected face, best score first) in
`result.extras["face"]` (key FACE_EXTRAS_KEY). The access controller consumes them; it applies the kiosk
policy (which checks must pass, over how many frames) — the stage only measures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray

FACE_EXTRAS_KEY = "face"


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """One face in one frame, with its track's liveness evidence so far.

    track_id: stable id of the face across frames (IoU tracker), >= 0.
    xyxy: box in source-frame pixels (x1, y1, x2, y2).
    identity: best gallery match when it clears the matcher's threshold, else None (unknown, or no
        gallery configured). best_name: the best candidate even when below the threshold ("" if none).
    similarity: cosine similarity of the best match (nan when no gallery is configured / no templates).
    passive_score: MiniFASNet real-score in 0..1 (p_real of the summed pair / 2); passive_live: its verdict
        (argmax is "real" and the score reaches face.passive_threshold).
    blink_seen: a blink was seen on this track within the check window; blink_count: blinks since the
        track started; ear: this frame's eye aspect ratio (nan if the mesh did not run).
    motion: landmark motion over the check window, normalised by face size (fraction of the face's
        inter-ocular distance); temporal_live: True once the track moved or blinked within the window,
        False when a full window passed with neither, None while the window is not full yet.
    yaw_deg: rough head yaw from the 5 landmarks (+ = subject turned to their left), for the optional
        head-turn challenge; head_turn_seen: the challenge's turn was seen on this track.
    quality: the first failed quality gate ("too small", "blurry", "pose", ...) or None when good enough
        to match/enrol.
    frames_tracked: frames this track has been seen in; window_s: seconds covered by its evidence.
    frame_index / timestamp: the frame this observation belongs to (Frame.index, Frame.timestamp).
    embedding: (D,) float32 L2-normalised embedding of the configured recognizer (None if quality failed
        before embedding); not part of equality.
    candidates: the best gallery people for this frame and their similarities (best template each), best
        first, up to 5 (empty: not identified); the kiosk averages them over a tracked face's frames.
    match_threshold: the matcher's threshold for this frame (nan when not identified).
    """

    track_id: int
    xyxy: tuple[float, float, float, float]
    identity: str | None
    best_name: str
    similarity: float
    passive_score: float
    passive_live: bool
    blink_seen: bool
    blink_count: int
    ear: float
    motion: float
    temporal_live: bool | None
    yaw_deg: float
    head_turn_seen: bool
    quality: str | None
    frames_tracked: int
    window_s: float
    frame_index: int
    timestamp: float
    embedding: NDArray[np.float32] | None = field(default=None, compare=False, repr=False)
    candidates: tuple[tuple[str, float], ...] = ()
    match_threshold: float = math.nan

    @property
    def matched(self) -> bool:
        return self.identity is not None

    @property
    def face_size(self) -> float:
        """Shorter side of the box in pixels."""
        return float(min(self.xyxy[2] - self.xyxy[0], self.xyxy[3] - self.xyxy[1]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (no embedding, no candidates; nan becomes None)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("embedding", "candidates"):  # candidates name enrolled people even for a stranger
                continue
            v = getattr(self, f.name)
            if isinstance(v, float) and math.isnan(v):
                v = None
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


def observations(extras: Mapping[str, Any]) -> tuple[FaceObservation, ...]:
    """The face stage's observations from a FrameResult.extras mapping (empty when the stage did not run)."""
    obs = extras.get(FACE_EXTRAS_KEY, ())
    return tuple(o for o in obs if isinstance(o, FaceObservation))
