"""IoU and NMS: table-driven geometry, plus exactness against a plain greedy reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_app.detect.nms import box_iou, nms

IOU_CASES = [
    # a, b, expected IoU
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),                    # identical
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),                   # touching edges
    ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),                  # disjoint
    ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),               # half overlap
    ([0, 0, 10, 10], [2, 2, 8, 8], 36 / 100),                 # contained
    ([0, 0, 10, 10], [5, 5, 15, 15], 25 / 175),               # corner overlap
    ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),                        # both degenerate: no 0/0
    ([5, 5, 5, 15], [0, 0, 10, 10], 0.0),                     # zero-width line inside a box
    ([10, 10, 0, 0], [0, 0, 10, 10], 0.0),                    # inverted box has no area
    ([0.5, 0.5, 1.5, 1.5], [1.0, 1.0, 2.0, 2.0], 0.25 / 1.75),  # sub-pixel
]


@pytest.mark.parametrize("a, b, expected", IOU_CASES)
def test_box_iou_table(a: list[float], b: list[float], expected: float) -> None:
    got = box_iou(np.array([a], np.float32), np.array([b], np.float32))
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(expected, abs=1e-6)
    assert box_iou(np.array([b]), np.array([a]))[0, 0] == pytest.approx(expected, abs=1e-6)  # symmetric


def test_box_iou_shapes_and_empty() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 5, 5], [20, 20, 30, 30]], np.float32)
    assert box_iou(a, a[:2]).shape == (3, 2)
    assert box_iou(a, np.zeros((0, 4))).shape == (3, 0)
    assert box_iou(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 0)


B = [0, 0, 10, 10]
NMS_CASES = [
    # name, boxes, scores, classes (None = agnostic), iou thr, max_det, expected kept indices in order
    ("empty", [], [], None, 0.5, 0, []),
    ("single", [B], [0.9], None, 0.5, 0, [0]),
    ("duplicate suppressed", [B, B], [0.8, 0.9], None, 0.5, 0, [1]),
    ("disjoint both kept, by score", [B, [20, 20, 30, 30]], [0.3, 0.9], None, 0.5, 0, [1, 0]),
    ("iou exactly at threshold is kept", [B, [5, 0, 15, 10]], [0.9, 0.8], None, 50 / 150, 0, [0, 1]),
    ("iou just above threshold suppressed", [B, [5, 0, 15, 10]], [0.9, 0.8], None, 0.33, 0, [0]),
    ("class-aware keeps other class", [B, B], [0.9, 0.8], [0, 1], 0.5, 0, [0, 1]),
    ("agnostic suppresses other class", [B, B], [0.9, 0.8], None, 0.5, 0, [0]),
    ("tie keeps lower index", [B, B, B], [0.7, 0.7, 0.7], None, 0.5, 0, [0]),
    ("tie order is stable", [B, [20, 0, 30, 10], [40, 0, 50, 10]], [0.5, 0.5, 0.5], None, 0.5, 0, [0, 1, 2]),
    # chain: 0 suppresses 1, so 1 must not suppress 2 (Fast-NMS would wrongly drop 2)
    ("chain: suppressed box suppresses nothing", [[0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10]],
     [0.9, 0.8, 0.7], None, 0.2, 0, [0, 2]),
    ("degenerate boxes never suppress", [[5, 5, 5, 5], [5, 5, 5, 5], B], [0.9, 0.8, 0.7], None, 0.5, 0,
     [0, 1, 2]),
    ("max detections caps", [B, [20, 0, 30, 10], [40, 0, 50, 10]], [0.5, 0.9, 0.7], None, 0.5, 2, [1, 2]),
    ("nan score dropped", [B, [20, 0, 30, 10]], [float("nan"), 0.5], None, 0.5, 0, [1]),
]


@pytest.mark.parametrize("name, boxes, scores, classes, thr, max_det, expected", NMS_CASES,
                         ids=[c[0] for c in NMS_CASES])
def test_nms_table(name: str, boxes: list, scores: list, classes: list | None, thr: float, max_det: int,
                   expected: list[int]) -> None:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    cls = None if classes is None else np.array(classes, np.int32)
    keep = nms(xyxy, np.array(scores, np.float32), thr, cls, max_detections=max_det)
    assert keep.tolist() == expected


def test_nms_max_candidates_keeps_the_best_scores_before_nms() -> None:
    xyxy = np.array([[20 * i, 0, 20 * i + 10, 10] for i in range(6)], np.float32)  # all disjoint
    scores = np.array([0.3, 0.9, 0.5, 0.9, 0.1, 0.7], np.float32)
    assert nms(xyxy, scores, 0.5, max_candidates=3).tolist() == [1, 3, 5]
    assert nms(xyxy, scores, 0.5, max_candidates=0).tolist() == [1, 3, 5, 2, 0, 4]


def test_nms_score_threshold_and_length_mismatch() -> None:
    xyxy = np.array([B, [20, 0, 30, 10]], np.float32)
    assert nms(xyxy, np.array([0.2, 0.6]), 0.5, score_threshold=0.25).tolist() == [1]
    with pytest.raises(ValueError, match="as many scores as boxes"):
        nms(xyxy, np.array([0.2]), 0.5)


def greedy_reference(xyxy: np.ndarray, scores: np.ndarray, thr: float, cls: np.ndarray | None) -> list[int]:
    """The textbook loop: take the best remaining box, drop the ones overlapping it."""
    order = list(np.argsort(-scores, kind="stable"))
    kept: list[int] = []
    while order:
        i = order.pop(0)
        kept.append(int(i))
        order = [j for j in order if (cls is not None and cls[j] != cls[i])
                 or box_iou(xyxy[i:i + 1], xyxy[j:j + 1])[0, 0] <= thr]
    return kept


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 60), thr=st.floats(0.1, 0.9),
       aware=st.booleans())
def test_nms_equals_greedy_reference(seed: int, n: int, thr: float, aware: bool) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0, 40, (n, 2))  # includes near-degenerate boxes
    xyxy = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = np.round(rng.uniform(0, 1, n), 1).astype(np.float32)  # rounding makes ties common
    cls = rng.integers(0, 3, n).astype(np.int32) if aware else None
    assert nms(xyxy, scores, thr, cls).tolist() == greedy_reference(xyxy, scores, thr, cls)
