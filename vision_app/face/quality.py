"""Quality gates for matching and enrolment: each returns a reason string, or None when the face passes.

Thresholds come from the `[face]` config section (min_face_px, blur_min, max_yaw_ratio, max_roll_deg);
QualityGates.from_config builds them. Measured on the shared media: identity photos have a Laplacian
variance of 188..4100 on the aligned crop, the carphone video 77..199, a face blurred with sigma ≈ 2 px
(aligned scale) about 17; frontal faces have |yaw ratio| < 0.4 and a profile (zidane.jpg) 0.65.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.types import Faces

# Nose-tip depth in front of the eye plane, as a fraction of the inter-ocular distance (average adult
# head); turns the 2-D nose offset into a rough yaw angle.
_NOSE_DEPTH_RATIO = 0.55


def face_size(xyxy: NDArray[np.float32]) -> float:
    """Shorter side in pixels of one (4,) xyxy box."""
    return float(min(xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]))


def blur_score(aligned_bgr: NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the (112, 112, 3) uint8 BGR aligned crop (higher = sharper).

    Measured on the aligned crop so the value does not depend on how large the face is in the frame."""
    gray = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def pose_ratios(landmarks5: NDArray[np.float32]) -> tuple[float, float]:
    """(yaw_ratio, roll_deg) from (5, 2) landmarks (right eye, left eye, nose, mouth right, mouth left).

    yaw_ratio: horizontal offset of the nose tip from the eye midpoint, measured along the eye line,
    divided by the inter-ocular distance (0 frontal; + = subject turned to their left). roll_deg: angle of
    the eye line to the image x axis in degrees (+ = clockwise in the image)."""
    lm = np.asarray(landmarks5, np.float64)
    eye_vec = lm[1] - lm[0]
    iod = float(np.hypot(*eye_vec))
    if iod < 1e-6:
        return float("inf"), 0.0
    u = eye_vec / iod
    offset = float(np.dot(lm[2] - (lm[0] + lm[1]) / 2, u))
    return offset / iod, float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))


def yaw_degrees(landmarks5: NDArray[np.float32]) -> float:
    """Rough head yaw in degrees from (5, 2) landmarks (+ = subject turned to their left); good to
    ±10° near frontal, for a head-turn challenge, not for measurement."""
    ratio, _ = pose_ratios(landmarks5)
    if not np.isfinite(ratio):
        return 0.0
    return float(np.degrees(np.arctan(ratio / _NOSE_DEPTH_RATIO)))


def check_enrollment(faces: Faces) -> str | None:
    """Enrolment needs exactly one face in the image; returns the reason when not."""
    n = len(faces)
    if n == 1:
        return None
    if n == 0:
        return "no face found"
    return f"{n} faces found; enrolment needs exactly one (crop the photo to one person)"


@dataclass(frozen=True)
class QualityGates:
    """Thresholds for one face (defaults live in the config, not here). min_face_px: shorter box side in pixels; blur_min: minimum Laplacian
    variance on the aligned crop; max_yaw_ratio: |nose offset| / inter-ocular distance; max_roll_deg:
    |eye-line angle|."""

    min_face_px: float
    blur_min: float
    max_yaw_ratio: float
    max_roll_deg: float

    @classmethod
    def from_config(cls, face_cfg: Any) -> "QualityGates":
        """From the [face] config section (vision_app.config.FaceConfig)."""
        return cls(face_cfg.min_face_px, face_cfg.blur_min, face_cfg.max_yaw_ratio, face_cfg.max_roll_deg)

    def size(self, xyxy: NDArray[np.float32]) -> str | None:
        s = face_size(xyxy)
        return None if s >= self.min_face_px else f"too small ({s:.0f} px < {self.min_face_px:.0f} px)"

    def blur(self, aligned_bgr: NDArray[np.uint8]) -> str | None:
        b = blur_score(aligned_bgr)
        return None if b >= self.blur_min else f"blurry (sharpness {b:.0f} < {self.blur_min:.0f})"

    def pose(self, landmarks5: NDArray[np.float32]) -> str | None:
        yaw, roll = pose_ratios(landmarks5)
        if not abs(yaw) <= self.max_yaw_ratio:
            return f"pose: head turned (yaw ratio {yaw:+.2f}, limit {self.max_yaw_ratio:.2f})"
        if abs(roll) > self.max_roll_deg:
            return f"pose: head tilted ({roll:+.0f} deg, limit {self.max_roll_deg:.0f})"
        return None

    def check(self, xyxy: NDArray[np.float32], landmarks5: NDArray[np.float32],
              aligned_bgr: NDArray[np.uint8] | None = None) -> str | None:
        """All gates for one face, cheapest first: box (4,) xyxy and (5, 2) landmarks in source pixels,
        optional (112, 112, 3) uint8 BGR aligned crop for the blur gate. First failure's reason or None."""
        return (self.size(xyxy) or self.pose(landmarks5)
                or (self.blur(aligned_bgr) if aligned_bgr is not None else None))
