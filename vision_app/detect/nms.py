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


def _intersections(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """(N, 4) and (M, 4) float32 boxes -> (N, M) intersection areas, with two (N, M) temporaries only
    (contiguous coordinate vectors and in-place ops: this is the hot loop of NMS). Small inputs (a
    tracker's tracks x detections, a frame's few candidates) take a path with fewer numpy calls."""
    if a.shape[0] * b.shape[0] <= 1024:
        wh = np.minimum(a[:, None, 2:], b[None, :, 2:])
        wh -= np.maximum(a[:, None, :2], b[None, :, :2])
        np.maximum(wh, 0, out=wh)
        return wh[..., 0] * wh[..., 1]
    ax1, ay1, ax2, ay2 = (np.ascontiguousarray(a[:, i]) for i in range(4))
    bx1, by1, bx2, by2 = (np.ascontiguousarray(b[:, i]) for i in range(4))
    iw = np.minimum(ax2[:, None], bx2[None, :])
    tmp = np.maximum(ax1[:, None], bx1[None, :])
    iw -= tmp
    np.maximum(iw, 0, out=iw)
    ih = np.minimum(ay2[:, None], by2[None, :], out=tmp)
    ih -= np.maximum(ay1[:, None], by1[None, :])
    np.maximum(ih, 0, out=ih)
    iw *= ih
    return iw


def box_iou(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M) float32 in [0, 1]. Empty inputs give an
    empty matrix; pairs whose union is empty (both degenerate) give 0."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    inter = _intersections(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _overlaps(boxes: NDArray[np.float32], threshold: float) -> NDArray[np.bool_]:
    """(K, K) bool: IoU(i, j) > threshold, without a division:
    inter / (ai + aj - inter) > t  <=>  inter * (1 + t) > t * (ai + aj)  (union > 0; degenerate pairs
    have inter = 0 and are never over the threshold)."""
    inter = _intersections(boxes, boxes)
    area = box_area(boxes)
    area_t = area * np.float32(threshold)
    sums = np.add(area_t[:, None], area_t[None, :])
    inter *= np.float32(1.0 + threshold)
    return inter > sums


_upper_cache: list[NDArray[np.bool_]] = [np.zeros((0, 0), bool)]


def _strict_upper(k: int) -> NDArray[np.bool_]:
    """(k, k) bool, True above the diagonal: a slice of one cached matrix, grown on demand (np.triu on
    every call costs more than the whole IoU matrix for a few hundred boxes)."""
    m = _upper_cache[0]
    if m.shape[0] < k:
        m = np.triu(np.ones((max(k, 256), max(k, 256)), bool), k=1)
        _upper_cache[0] = m
    return m[:k, :k]


def nms(xyxy: NDArray[np.floating], scores: NDArray[np.floating], iou_threshold: float,
        class_id: NDArray[np.integer] | None = None, *, max_detections: int = 0,
        score_threshold: float | None = None, max_candidates: int = 0) -> NDArray[np.intp]:
    """Greedy NMS; returns indices into the inputs of the kept boxes, highest score first.

    xyxy: (N, 4) boxes; scores: (N,); class_id: (N,) ints — given, suppression happens only between
    boxes of the same class (class-aware); None = class-agnostic. A box is suppressed when its IoU with a
    kept, higher-scored box is strictly greater than iou_threshold. Ties in score keep the lower input
    index first (stable). Non-finite scores are dropped; score_threshold drops scores below it first.
    max_detections > 0 caps the result. max_candidates > 0 keeps only that many best-scored boxes
    before NMS: the work and memory grow with its square (2,000 candidates: 4 M pairs, ~16 MB).
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
    if 0 < max_candidates < cand.size:
        top = np.argpartition(-scores[cand], max_candidates - 1)[:max_candidates]
        cand = np.sort(cand[top])  # back in input order, so that ties stay stable below
    order = cand[np.argsort(-scores[cand], kind="stable")]
    if order.size == 1:
        return order
    over = _overlaps(np.asarray(xyxy[order], np.float32), iou_threshold)
    over &= _strict_upper(order.size)  # over[i, j]: higher-ranked i would suppress j
    keep = np.ones(order.size, bool)
    rows = np.flatnonzero(over.any(axis=1))  # only boxes that may suppress something matter
    if rows.size:
        sub = over[rows]
        if class_id is not None:
            cls = np.asarray(class_id).reshape(-1)[order]
            sub &= cls[rows, None] == cls[None, :]
            hit = sub.any(axis=1)
            rows, sub = rows[hit], sub[hit]
        # fixed point: j is kept iff no kept i (ranked above j) overlaps it; one gemv per pass
        weights = sub.astype(np.float32)
        while rows.size:
            new_keep = keep[rows].astype(np.float32) @ weights == 0
            if np.array_equal(new_keep, keep):
                break
            keep = new_keep
    kept = order[keep]
    if max_detections > 0:
        kept = kept[:max_detections]
    return kept
