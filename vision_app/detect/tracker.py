"""ByteTrack-style multi-object tracker: stable ids for detections across frames.

Per frame (Zhang et al., "ByteTrack", 2022):
1. every track's box is predicted one frame ahead with a constant-velocity Kalman filter (kalman.py);
2. high-score detections are matched to confirmed tracks (active and lost) by IoU;
3. low-score detections (low <= score < high) are matched to the still-unmatched *active* tracks — this
   keeps ids through occlusion and motion blur, when the detector's score drops;
4. the remaining high detections are matched to tentative tracks (born last frame), which confirms them;
5. unmatched active tracks become lost and are kept ``buffer_frames`` frames for re-identification;
   unmatched tentative tracks die; unmatched high detections scoring >= new_score start tentative tracks
   (confirmed at once on the first frame). Ids are given at confirmation, counting up from 1.
Matching is class-aware (a box never continues a track of another class) and greedy by IoU.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vision_app.detect import kalman
from vision_app.detect.nms import box_iou

TENTATIVE, ACTIVE, LOST = 0, 1, 2


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Thresholds (from config.detect): high_score splits high/low detections; low_score is the least
    score considered at all; new_score starts a track; match_iou / low_match_iou are the least IoU for
    the first and second association; buffer_frames is how long a lost track may come back."""

    high_score: float = 0.5
    low_score: float = 0.1
    new_score: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    buffer_frames: int = 30


def greedy_match(iou: NDArray[np.float32], min_iou: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Pairs (rows, cols) of an (R, C) IoU matrix, best IoU first, each row and column used once, every
    pair >= min_iou. The loop runs once per match (at most min(R, C) times), not per box pair."""
    rows: list[int] = []
    cols: list[int] = []
    if iou.size:
        work = np.where(iou >= min_iou, iou, -1.0)
        for _ in range(min(work.shape)):
            flat = int(np.argmax(work))
            r, c = divmod(flat, work.shape[1])
            if work[r, c] < 0:
                break
            rows.append(r)
            cols.append(c)
            work[r, :] = -1.0
            work[:, c] = -1.0
    return np.asarray(rows, np.intp), np.asarray(cols, np.intp)


class ByteTracker:
    """Keeps tracks between calls of :meth:`update` (one call per frame, in frame order)."""

    def __init__(self, params: TrackerParams) -> None:
        self.params = params
        self.frame = 0
        self._next_id = 1
        self.ids = np.zeros((0,), np.int32)       # (T,) track id, -1 while tentative
        self.state = np.zeros((0,), np.int8)      # (T,) TENTATIVE / ACTIVE / LOST
        self.cls = np.zeros((0,), np.int32)       # (T,) class of the track
        self.last_seen = np.zeros((0,), np.int64)  # (T,) frame number of the last match
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))

    def reset(self) -> None:
        self.__init__(self.params)  # type: ignore[misc]

    def predicted_xyxy(self) -> NDArray[np.float32]:
        """(T, 4) float32 current box estimate of every track, source pixels."""
        return kalman.cxcywh_to_xyxy(self.mean) if len(self.mean) else np.zeros((0, 4), np.float32)

    def _associate(self, pred: NDArray[np.float32], tracks: NDArray[np.intp], dets: NDArray[np.intp],
                   boxes: NDArray[np.float32], cls: NDArray[np.int32], min_iou: float
                   ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Match track indices to detection indices by IoU of the predicted boxes pred (T, 4);
        returns the matched (tracks, dets) pairs."""
        if tracks.size == 0 or dets.size == 0:
            return np.zeros((0,), np.intp), np.zeros((0,), np.intp)
        iou = box_iou(pred[tracks], boxes[dets])
        iou[self.cls[tracks][:, None] != cls[dets][None, :]] = 0.0
        r, c = greedy_match(iou, min_iou)
        return tracks[r], dets[c]

    def update(self, xyxy: NDArray[np.float32], scores: NDArray[np.float32], class_id: NDArray[np.int32]
               ) -> NDArray[np.int32]:
        """One frame's detections (N, 4) xyxy source pixels, (N,) scores, (N,) classes -> (N,) int32 track
        ids (-1 = not part of a confirmed track: below low_score, unmatched, or a tentative track)."""
        p = self.params
        self.frame += 1
        out = np.full(len(scores), -1, np.int32)
        self.mean, self.cov = kalman.predict(self.mean, self.cov)
        pred = self.predicted_xyxy()
        high = scores >= p.high_score
        det_used = np.zeros(len(scores), bool)
        trk_used = np.zeros(len(self.state), bool)
        # 1. high detections <-> confirmed tracks (active and lost)
        t1, d1 = self._associate(pred, np.flatnonzero(self.state != TENTATIVE), np.flatnonzero(high),
                                 xyxy, class_id, p.match_iou)
        det_used[d1], trk_used[t1] = True, True
        # 2. low detections <-> active tracks still unmatched
        low = (scores >= p.low_score) & ~high
        t2, d2 = self._associate(pred, np.flatnonzero((self.state == ACTIVE) & ~trk_used), np.flatnonzero(low),
                                 xyxy, class_id, p.low_match_iou)
        det_used[d2], trk_used[t2] = True, True
        # 3. remaining high detections <-> tentative tracks (a second sighting confirms them)
        t3, d3 = self._associate(pred, np.flatnonzero(self.state == TENTATIVE), np.flatnonzero(high & ~det_used),
                                 xyxy, class_id, p.match_iou)
        det_used[d3], trk_used[t3] = True, True
        self.ids[t3] = np.arange(self._next_id, self._next_id + t3.size, dtype=np.int32)
        self._next_id += t3.size
        matched_t = np.concatenate([t1, t2, t3])
        matched_d = np.concatenate([d1, d2, d3])
        if matched_t.size:
            self.mean[matched_t], self.cov[matched_t] = kalman.update(
                self.mean[matched_t], self.cov[matched_t], xyxy[matched_d])
            self.state[matched_t] = ACTIVE
            self.last_seen[matched_t] = self.frame
            out[matched_d] = self.ids[matched_t]
        self.state[~trk_used & (self.state == ACTIVE)] = LOST
        alive = ~(~trk_used & (self.state == TENTATIVE))
        alive &= ~((self.state == LOST) & (self.frame - self.last_seen > p.buffer_frames))
        self._keep(alive)
        self._birth(np.flatnonzero(high & ~det_used & (scores >= p.new_score)), xyxy, class_id, out)
        return out

    def _keep(self, alive: NDArray[np.bool_]) -> None:
        self.ids, self.state, self.cls = self.ids[alive], self.state[alive], self.cls[alive]
        self.last_seen, self.mean, self.cov = self.last_seen[alive], self.mean[alive], self.cov[alive]

    def _birth(self, dets: NDArray[np.intp], xyxy: NDArray[np.float32], class_id: NDArray[np.int32],
               out: NDArray[np.int32]) -> None:
        if dets.size == 0:
            return
        first = self.frame == 1  # nothing to confirm against on the first frame: trust the detector
        ids = (np.arange(self._next_id, self._next_id + dets.size, dtype=np.int32) if first
               else np.full(dets.size, -1, np.int32))
        if first:
            self._next_id += dets.size
            out[dets] = ids
        mean, cov = kalman.initiate(xyxy[dets])
        self.ids = np.concatenate([self.ids, ids])
        self.state = np.concatenate([self.state, np.full(dets.size, ACTIVE if first else TENTATIVE, np.int8)])
        self.cls = np.concatenate([self.cls, class_id[dets].astype(np.int32)])
        self.last_seen = np.concatenate([self.last_seen, np.full(dets.size, self.frame, np.int64)])
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
