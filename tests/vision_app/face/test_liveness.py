"""Liveness: passive MiniFASNet pair on the spoof photos, blink/EAR, non-rigid motion, temporal check."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers.face_media import read_image
from vision_app.face.blink import BlinkDetector, BlinkParams
from vision_app.face.liveness import HeadTurnChallenge, LivenessParams, TrackLiveness
from vision_app.face.mesh import RIGHT_EYE, eye_aspect_ratio, mean_ear
from vision_app.face.passive import spoof_crop_box
from vision_app.face.temporal import TemporalCheck, TemporalParams, nonrigid_motion

FPS = 30.0


@pytest.mark.parametrize("box,scale,hw,exp", [
    ((40, 40, 60, 60), 2.0, (100, 100), (30, 30, 71, 71)),       # inside: scaled about the centre
    ((0, 0, 20, 20), 2.0, (100, 100), (0, 0, 41, 41)),            # at the top-left: shifted, not cut
    ((80, 80, 100, 100), 2.0, (100, 100), (59, 59, 100, 100)),    # at the bottom-right: shifted back in
    ((10, 10, 90, 90), 4.0, (100, 100), (0, 0, 100, 100)),        # too big: scale capped to fit
])
def test_spoof_crop_box(box, scale, hw, exp):
    x1, y1, x2, y2 = spoof_crop_box(np.array(box, np.float32), scale, hw)
    assert (x1, y1, x2, y2) == pytest.approx(exp, abs=1)
    assert 0 <= x1 < x2 <= hw[1] and 0 <= y1 < y2 <= hw[0]


@pytest.mark.parametrize("rel,live", [("spoof/spoof_1.jpg", False), ("spoof/spoof_2.jpg", False),
                                      ("spoof/live_1.jpg", True), ("scenes/astronaut.png", True)])
def test_passive_verdicts(passive, face_detector, media_dir, rel, live):
    img = read_image(media_dir / rel)
    faces = face_detector.detect(img)
    assert len(faces) == 1
    (res,) = passive.check(img, faces.xyxy)
    assert res.live is live, res
    assert sum(res.probs) == pytest.approx(1.0, abs=1e-3)
    assert (res.score > 0.8) if live else (res.score < 0.3)


def test_passive_batch_equals_single(passive, face_detector, media_dir):
    img = read_image(media_dir / "scenes" / "group6.jpg")
    faces = face_detector.detect(img)
    batch = passive.probabilities(img, faces.xyxy)
    single = np.concatenate([passive.probabilities(img, faces.xyxy[i:i + 1]) for i in range(len(faces))])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert passive.probabilities(img, np.zeros((0, 4), np.float32)).shape == (0, 3)


def test_mesh_on_a_photo(face_mesh, face_detector, media_dir):
    img = read_image(media_dir / "scenes" / "astronaut.png")
    faces = face_detector.detect(img)
    res = face_mesh.run(img, faces.xyxy[0])
    assert res.points.shape == (468, 3) and res.presence > 0.9
    x1, y1, x2, y2 = faces.xyxy[0]
    inside = ((res.points[:, 0] > x1 - 10) & (res.points[:, 0] < x2 + 10)
              & (res.points[:, 1] > y1 - 10) & (res.points[:, 1] < y2 + 10))
    assert inside.mean() > 0.95
    # the mesh's outer right-eye corner lies near YuNet's right-eye landmark (within a third of the eye gap)
    iod = np.linalg.norm(faces.landmarks[0, 1] - faces.landmarks[0, 0])
    assert np.linalg.norm(res.points[RIGHT_EYE[0], :2] - faces.landmarks[0, 0]) < iod / 3
    assert 0.25 < mean_ear(res.points) < 0.4


@pytest.mark.parametrize("lid_gap,exp", [(3.0, 0.3), (1.0, 0.1), (0.0, 0.0)])
def test_eye_aspect_ratio(lid_gap, exp):
    pts = np.zeros((468, 2))
    p1, p2, p3, p4, p5, p6 = RIGHT_EYE
    pts[p1], pts[p4] = (0, 0), (10, 0)
    pts[p2], pts[p3] = (3, -lid_gap / 2), (7, -lid_gap / 2)
    pts[p6], pts[p5] = (3, lid_gap / 2), (7, lid_gap / 2)
    assert eye_aspect_ratio(pts, RIGHT_EYE) == pytest.approx(exp)


BLINK = BlinkParams(close_ratio=0.8, open_ratio=0.9, max_closed_s=0.5, baseline_frames=5)


@pytest.mark.parametrize("ears,events", [
    ([0.3] * 10 + [0.2, 0.15, 0.2] + [0.3] * 5, 1),                 # one blink
    ([0.3] * 10 + [0.2] + [0.3] * 3 + [0.22, 0.2] + [0.3] * 3, 2),  # two blinks
    ([0.3] * 10 + [0.26, 0.255, 0.26] + [0.3] * 5, 0),               # a dip within noise
    ([0.3] * 10 + [0.1] * 30 + [0.3] * 5, 0),                        # eyes held shut 1 s: not a blink
    ([0.3] * 10 + [0.1] * 30 + [0.3] * 5 + [0.2] + [0.3] * 2, 1),    # ... then a real blink counts
    ([0.1, 0.3, 0.3, 0.3, 0.3, 0.3], 0),                             # before the baseline exists
    ([0.3] * 10 + [0.2, math.nan, 0.3], 1),                          # a frame without a mesh is skipped
])
def test_blink_detector(ears, events):
    det = BlinkDetector(BLINK)
    for i, e in enumerate(ears):
        det.update(e, i / FPS)
    assert len(det.events) == events


def test_blink_baseline_is_per_person():
    # a person whose open eyes sit at EAR .2 blinks to .14: a fixed .2 threshold would miss it
    det = BlinkDetector(BLINK)
    for i, e in enumerate([0.2] * 10 + [0.14] + [0.2] * 3):
        det.update(e, i / FPS)
    assert len(det.events) == 1 and det.events[0].baseline == pytest.approx(0.2)


def _face_shape(rng, k=40):
    return rng.uniform(0, 100, (k, 2))


def test_nonrigid_motion_ignores_affine_motion():
    rng = np.random.default_rng(1)
    shape = _face_shape(rng)
    frames = []
    for i in range(30):
        a = np.array([[1 + 0.1 * np.sin(i), 0.2 * np.cos(i)], [-0.1 * np.sin(i / 2), 0.9]])
        frames.append(shape @ a.T + [5 * i, -3 * i])
    assert nonrigid_motion(np.stack(frames), (0, 1)) < 1e-6
    wobble = np.stack([f + rng.normal(0, 2, f.shape) for f in frames])
    assert nonrigid_motion(wobble, (0, 1)) > 0.01


def test_temporal_check_verdicts():
    rng = np.random.default_rng(2)
    shape = _face_shape(rng)
    params = TemporalParams(window_s=1.0, motion_min=0.01)
    still, moving = TemporalCheck(params, (0, 1)), TemporalCheck(params, (0, 1))
    v_still = [still.update(i / FPS, shape, False) for i in range(45)]
    v_move = [moving.update(i / FPS, shape + rng.normal(0, 3, shape.shape), False) for i in range(45)]
    assert v_still[10].live is None and v_still[-1].live is False
    assert v_move[-1].live is True
    blinked = TemporalCheck(params, (0, 1)).update(0.0, shape, True)
    assert blinked.live is True


def test_head_turn_challenge():
    left = HeadTurnChallenge(15, "left")
    right = HeadTurnChallenge(15, "right")
    for yaw in [2, 1, 3, 2, 2, 8, 12, 19, 10]:
        left.update(yaw)
        right.update(yaw)
    assert left.seen and not right.seen
    with pytest.raises(ValueError, match="direction"):
        HeadTurnChallenge(15, "up")


def _run_track(frames, face_detector, face_mesh, app_config):
    track = TrackLiveness(LivenessParams.from_config(app_config.face))
    states = []
    for i, frame in enumerate(frames):
        faces = face_detector.detect(frame)
        if len(faces) == 0:
            continue
        states.append(track.update(i / FPS, faces.landmarks[0], face_mesh.run(frame, faces.xyxy[0])))
    return track, states


def test_still_photo_video_fails_temporal(still_video_frames, face_detector, face_mesh, app_config):
    track, states = _run_track(still_video_frames, face_detector, face_mesh, app_config)
    assert len(states) == len(still_video_frames)
    assert not any(s.blink_seen for s in states)
    assert all(s.temporal_live is not True for s in states)
    assert states[-1].temporal_live is False
    assert max(s.motion for s in states) < app_config.face.motion_min / 2


def test_carphone_passes_temporal_and_blinks(carphone_frames, face_detector, face_mesh, app_config):
    track, states = _run_track(carphone_frames, face_detector, face_mesh, app_config)
    window = int(app_config.face.liveness_window_s * FPS)
    assert all(s.temporal_live is True for s in states[window:])
    assert min(s.motion for s in states[window:]) > app_config.face.motion_min
    # the man blinks once, around frame 42 (eyes visibly shut in that frame)
    assert len(track.blink.events) >= 1
    assert any(abs(e.closed_at * FPS - 42) <= 2 for e in track.blink.events)
