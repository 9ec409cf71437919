"""IoU and non-maximum suppression, vectorised with numpy (no Python loop over boxes).

Boxes are (N, 4) float [x1, y1, x2, y2] in any one pixel frame. Degenerate boxes (zero or negative
width/height) have zero area and an IoU of 0 with everything, themselves included.

NMS is exact greedy NMS computed as Cluster-NMS (Zheng et al., 2021): with the candidates sorted by
score, box j is kept iff no *kept* higher-scored box overlaps it above the threshold. That fixed point
is reached by iterating ``keep = not any(keep[i] and iou[i, j] > t for i < j)`` over the whole
upper-triangular IoU matrix at once; each iteration is one vectorised pass and the number of passes is
the length of the longest suppression chain (typically 2-4), never the number of boxes.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def box_area(xyxy: NDArray[np.floating]) -> NDArray[np.floating]:
    """(N, 4) boxes -> (N,) areas; degenerate boxes have area 0."""
    w = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0)
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    return w * h


def box_iou(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M) float32 in [0, 1]. Empty inputs give an
    empty matrix; pairs whose union is empty (both degenerate) give 0."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(iw, 0, out=iw)
    np.maximum(ih, 0, out=ih)
    inter = iw * ih
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def nms(xyxy: NDArray[np.floating], scores: NDArray[np.floating], iou_threshold: float,
        class_id: NDArray[np.integer] | None = None, *, max_detections: int = 0,
        score_threshold: float | None = None) -> NDArray[np.intp]:
    """Greedy NMS; returns indices into the inputs of the kept boxes, highest score first.

    xyxy: (N, 4) boxes; scores: (N,); class_id: (N,) ints — given, suppression happens only between
    boxes of the same class (class-aware); None = class-agnostic. A box is suppressed when its IoU with a
    kept, higher-scored box is strictly greater than iou_threshold. Ties in score keep the lower input
    index first (stable). Non-finite scores are dropped; score_threshold drops scores below it first.
    max_detections > 0 caps the result.
    """
    scores = np.asarray(scores).reshape(-1)
    xyxy = np.asarray(xyxy).reshape(-1, 4)
    if xyxy.shape[0] != scores.shape[0]:
        raise ValueError(f"nms: expected as many scores as boxes, got {scores.shape[0]} scores for "
                         f"{xyxy.shape[0]} boxes")
    valid = np.isfinite(scores) & np.isfinite(xyxy).all(axis=1)
    if score_threshold is not None:
        valid &= scores >= score_threshold
    cand = np.flatnonzero(valid)
    if cand.size == 0:
        return np.zeros((0,), np.intp)
    order = cand[np.argsort(-scores[cand], kind="stable")]
    if order.size == 1:
        return order
    iou = box_iou(xyxy[order], xyxy[order])
    over = np.triu(iou > iou_threshold, k=1)  # over[i, j]: higher-ranked i would suppress j
    if class_id is not None:
        cls = np.asarray(class_id).reshape(-1)[order]
        over &= cls[:, None] == cls[None, :]
    keep = np.ones(order.size, bool)
    rows = np.flatnonzero(over.any(axis=1))  # only boxes that suppress something matter
    if rows.size:
        sub = over[rows]
        while True:
            new_keep = ~np.any(sub[keep[rows]], axis=0)
            if np.array_equal(new_keep, keep):
                break
            keep = new_keep
    kept = order[keep]
    if max_detections > 0:
        kept = kept[:max_detections]
    return kept
