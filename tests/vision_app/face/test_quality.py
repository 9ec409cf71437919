"""Quality gates: table-driven geometry plus real photos (sharp, blurred, profile, group)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.helpers.face_media import read_image
from vision_app.face.align import ARCFACE_TEMPLATE, align_face
from vision_app.face.quality import QualityGates, blur_score, check_enrollment, pose_ratios, yaw_degrees
from vision_app.types import Faces

GATES = QualityGates(min_face_px=40, blur_min=40, max_yaw_ratio=0.45, max_roll_deg=30)
FRONTAL = ARCFACE_TEMPLATE.astype(np.float32)


def _rotate(pts, deg, centre=(56, 56)):
    a = np.deg2rad(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ((pts - centre) @ r.T + centre).astype(np.float32)


def _nose_shift(dx):
    pts = FRONTAL.copy()
    pts[2, 0] += dx
    return pts


@pytest.mark.parametrize("pts,yaw,roll", [
    (FRONTAL, 0.0, 0.0),
    (_nose_shift(35.2372 * 0.3), 0.3, 0.0),
    (_nose_shift(-35.2372 * 0.5), -0.5, 0.0),
    (_rotate(FRONTAL, 20), 0.0, 20.0),        # roll does not leak into yaw
    (_rotate(_nose_shift(35.2372 * 0.3), -40), 0.3, -40.0),
])
def test_pose_ratios(pts, yaw, roll):
    y, r = pose_ratios(pts)
    assert y == pytest.approx(yaw, abs=0.01)
    assert r == pytest.approx(roll - 0.317, abs=0.05)  # the template's eye line itself tilts -0.32 deg


@pytest.mark.parametrize("pts,reason", [
    (FRONTAL, None), (_nose_shift(20), "head turned"), (_nose_shift(-20), "head turned"),
    (_rotate(FRONTAL, 45), "tilted"), (_rotate(FRONTAL, -29), None),
])
def test_pose_gate(pts, reason):
    got = GATES.pose(pts)
    assert (got is None) if reason is None else (reason in got)


def test_yaw_degrees_sign_and_scale():
    assert yaw_degrees(FRONTAL) == pytest.approx(0.0, abs=1.0)
    assert 20 < yaw_degrees(_nose_shift(12)) < 40 and -40 < yaw_degrees(_nose_shift(-12)) < -20


@pytest.mark.parametrize("box,ok", [((0, 0, 39, 100), False), ((10, 10, 50, 60), True),
                                    ((0, 0, 200, 20), False)])
def test_size_gate(box, ok):
    assert (GATES.size(np.array(box, np.float32)) is None) == ok


@pytest.mark.parametrize("n,ok", [(0, False), (1, True), (2, False)])
def test_check_enrollment(n, ok):
    faces = Faces(np.tile([[0, 0, 50, 50]], (n, 1)).astype(np.float32), np.ones(n, np.float32),
                  np.zeros((n, 5, 2), np.float32))
    reason = check_enrollment(faces)
    assert (reason is None) == ok
    if n == 2:
        assert "2 faces" in reason


def test_blur_gate_on_real_photo(face_detector, media_dir):
    img = read_image(media_dir / "scenes" / "astronaut.png")
    lm = face_detector.detect(img).landmarks[0]
    sharp = align_face(img, lm)
    blurred = align_face(cv2.GaussianBlur(img, (0, 0), 2.0), lm)
    assert blur_score(sharp) > 4 * blur_score(blurred)
    assert GATES.blur(sharp) is None and "blurry" in GATES.blur(blurred)


def test_real_photos_pass_and_profile_fails(face_detector, media_dir, identity_photos):
    for paths in identity_photos.values():
        img = read_image(paths[0])
        faces = face_detector.detect(img)
        i = int(np.argmax(faces.score))
        assert GATES.check(faces.xyxy[i], faces.landmarks[i], align_face(img, faces.landmarks[i])) is None
    zidane = read_image(media_dir / "scenes" / "zidane.jpg")
    faces = face_detector.detect(zidane)
    reasons = [GATES.check(b, lm, align_face(zidane, lm)) for b, lm in zip(faces.xyxy, faces.landmarks)]
    assert any(r and "head turned" in r for r in reasons), reasons  # the man in profile


def test_from_config(app_config):
    g = QualityGates.from_config(app_config.face)
    assert g.min_face_px == app_config.face.min_face_px and g.blur_min == app_config.face.blur_min
