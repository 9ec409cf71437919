"""ByteTrack-style tracker on synthetic box sequences (the real video is in test_detect_models.py)."""
from __future__ import annotations

import numpy as np
import pytest

from vision_app.detect import kalman
from vision_app.detect.tracker import ByteTracker, TrackerParams, greedy_match

PARAMS = TrackerParams(high_score=0.5, low_score=0.1, new_score=0.6, match_iou=0.2, low_match_iou=0.5,
                       buffer_frames=30)


def box(x: float, y: float, w: float = 40, h: float = 80) -> list[float]:
    return [x, y, x + w, y + h]


def step(tr: ByteTracker, boxes: list[list[float]], scores: list[float], classes: list[int] | None = None
         ) -> list[int]:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    cls = np.array(classes if classes is not None else [0] * len(boxes), np.int32)
    return tr.update(xyxy, np.array(scores, np.float32), cls).tolist()


def test_two_walkers_keep_their_ids() -> None:
    tr = ByteTracker(PARAMS)
    seen = [step(tr, [box(10 + 6 * t, 20), box(600 - 6 * t, 200)], [0.9, 0.8]) for t in range(60)]
    assert seen[0] == [1, 2]  # first frame: confirmed at once
    assert all(ids == [1, 2] for ids in seen)


def test_new_object_is_tentative_for_one_frame_then_confirmed() -> None:
    tr = ByteTracker(PARAMS)
    step(tr, [box(0, 0)], [0.9])
    assert step(tr, [box(2, 0), box(300, 300)], [0.9, 0.9]) == [1, -1]
    assert step(tr, [box(4, 0), box(302, 300)], [0.9, 0.9]) == [1, 2]


def test_occlusion_within_the_buffer_keeps_the_id_with_motion_prediction() -> None:
    tr = ByteTracker(PARAMS)
    for t in range(20):
        assert step(tr, [box(10 + 8 * t, 50)], [0.9]) == [1]
    for t in range(20, 35):  # hidden 15 frames while it keeps moving 8 px/frame
        assert step(tr, [], []) == []
    # reappears where constant velocity puts it (120 px further), not where it was last seen
    assert step(tr, [box(10 + 8 * 35, 50)], [0.9]) == [1]


def test_lost_longer_than_the_buffer_gets_a_new_id() -> None:
    tr = ByteTracker(TrackerParams(buffer_frames=5))
    step(tr, [box(100, 100)], [0.9])
    step(tr, [box(100, 100)], [0.9])
    for _ in range(7):
        step(tr, [], [])
    assert step(tr, [box(100, 100)], [0.9]) == [-1]
    assert step(tr, [box(100, 100)], [0.9]) == [2]


def test_low_scores_continue_a_track_but_never_start_one() -> None:
    tr = ByteTracker(PARAMS)
    step(tr, [box(0, 0)], [0.9])
    for t in range(1, 10):  # score collapses (occlusion/blur): the second association keeps the id
        assert step(tr, [box(3 * t, 0), box(400, 400)], [0.2, 0.3]) == [1, -1]
    assert step(tr, [box(30, 0)], [0.9]) == [1]
    assert len(tr.ids) == 1  # the low-score stranger never became a track


def test_high_but_below_new_score_does_not_start_a_track() -> None:
    tr = ByteTracker(PARAMS)
    for _ in range(3):
        assert step(tr, [box(0, 0)], [0.55]) == [-1]


def test_matching_is_class_aware() -> None:
    tr = ByteTracker(PARAMS)
    step(tr, [box(0, 0)], [0.9], [0])
    assert step(tr, [box(0, 0)], [0.9], [2]) == [-1]  # same place, other class: not the same object
    assert step(tr, [box(0, 0), box(0, 0)], [0.9, 0.9], [0, 2]) == [1, 2]


def test_empty_frames_and_reset() -> None:
    tr = ByteTracker(PARAMS)
    assert step(tr, [], []) == []
    step(tr, [box(0, 0)], [0.9])
    tr.reset()
    assert tr.frame == 0 and len(tr.ids) == 0


GREEDY = [
    # IoU matrix, min IoU, expected (rows, cols)
    ([[0.9, 0.1], [0.8, 0.7]], 0.2, ([0, 1], [0, 1])),
    ([[0.5, 0.9], [0.4, 0.6]], 0.2, ([0, 1], [1, 0])),  # best pair first, then what is left
    ([[0.1, 0.1]], 0.2, ([], [])),
    ([[0.3], [0.9], [0.5]], 0.2, ([1], [0])),
    (np.zeros((0, 3)), 0.2, ([], [])),
    (np.zeros((3, 0)), 0.2, ([], [])),
]


@pytest.mark.parametrize("iou, thr, expected", GREEDY)
def test_greedy_match_table(iou: list | np.ndarray, thr: float, expected: tuple) -> None:
    r, c = greedy_match(np.asarray(iou, np.float32), thr)
    assert (r.tolist(), c.tolist()) == (expected[0], expected[1])


def test_kalman_learns_constant_velocity() -> None:
    mean, cov = kalman.initiate(np.array([[0, 0, 10, 20]], np.float32))
    for t in range(1, 15):
        mean, cov = kalman.predict(mean, cov)
        mean, cov = kalman.update(mean, cov, np.array([[5 * t, 2 * t, 5 * t + 10, 2 * t + 20]], np.float32))
    mean, _ = kalman.predict(mean, cov)
    np.testing.assert_allclose(kalman.cxcywh_to_xyxy(mean)[0], [75, 30, 85, 50], atol=1.0)
    np.testing.assert_allclose(mean[0, 4:6], [5, 2], atol=0.2)
