"""The `detect` pipeline stage: Detections in source-frame pixels, with tracker ids when detect.track is on.

`process` (per frame, safe on parallel workers) runs preprocess -> model -> decode -> NMS. With tracking
on it keeps candidates down to the tracker's low score, because ByteTrack's second association needs
them. `finish` (in frame order, on one instance) updates the tracker and keeps the detections at or
above detect.confidence plus the low-score ones that continue a confirmed track. Part timings go to
result.extras["detect"] (seconds): preprocess, model, postprocess (decode + NMS + mapping), track.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any


from vision_app.config import DetectConfig
from vision_app.detect.detector import DetectParams, Detector
from vision_app.detect.tracker import ByteTracker, TrackerParams
from vision_app.types import FrameResult

log = logging.getLogger(__name__)


def detect_params(cfg: DetectConfig) -> DetectParams:
    return DetectParams(conf=cfg.confidence, iou=cfg.iou, max_detections=cfg.max_detections,
                        class_agnostic=cfg.class_agnostic, max_candidates=cfg.max_candidates)


def tracker_params(cfg: DetectConfig) -> TrackerParams:
    return TrackerParams(high_score=cfg.track_high_score, low_score=cfg.track_low_score,
                         new_score=cfg.track_new_score, match_iou=cfg.track_match_iou,
                         low_match_iou=cfg.track_low_match_iou, buffer_frames=cfg.track_buffer_frames)


class DetectStage:
    """Pipeline stage around one Detector and an optional ByteTracker."""

    name = "detect"

    def __init__(self, detector: Detector, tracker: ByteTracker | None = None, owns_detector: bool = True
                 ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.owns_detector = owns_detector
        self.conf = detector.params.conf
        # decode down to the tracker's low score so that its second association has boxes to use
        self._decode_conf = min(self.conf, tracker.params.low_score) if tracker else self.conf

    def process(self, result: FrameResult) -> FrameResult:
        dets = self.detector(result.frame.image, conf=self._decode_conf)
        t = self.detector.timings
        extras = dict(result.extras)
        extras[self.name] = {"preprocess": t.preprocess, "model": t.model, "postprocess": t.postprocess}
        return replace(result, detections=dets, extras=extras)

    def finish(self, result: FrameResult) -> FrameResult:
        dets = result.detections
        if self.tracker is None or dets is None:
            return result
        t0 = time.perf_counter()
        ids = self.tracker.update(dets.xyxy, dets.confidence, dets.class_id)
        keep = (dets.confidence >= self.conf) | (ids >= 0)
        tracked = dets.with_tracker_ids(ids)[keep]
        extras: dict[str, Any] = dict(result.extras)
        extras[self.name] = {**extras.get(self.name, {}), "track": time.perf_counter() - t0}
        return replace(result, detections=tracked, extras=extras)

    def fork(self) -> "DetectStage":
        """This stage for another stream: the same detector, a tracker of its own."""
        tracker = ByteTracker(self.tracker.params) if self.tracker is not None else None
        return DetectStage(self.detector, tracker, owns_detector=False)

    def close(self) -> None:
        if self.owns_detector:  # a fork leaves the shared detector to the stage it came from
            self.detector.close()


def build_detect_stage(ctx: Any) -> DetectStage:
    """Stage for ctx.config.detect (model, thresholds, tracking) on ctx's backend."""
    cfg: DetectConfig = ctx.config.detect
    entry = ctx.model_entry(cfg.model, "detect", "detect.model")
    detector = Detector(entry, ctx.engine(cfg.model), detect_params(cfg),
                        gpu_preprocess=ctx.backend == "tensorrt" and ctx.config.tensorrt.gpu_preprocess)
    tracker = ByteTracker(tracker_params(cfg)) if cfg.track else None
    log.info("detect stage: %s, conf %.2f, IoU %.2f, tracking %s", cfg.model, cfg.confidence, cfg.iou,
             "on" if tracker else "off")
    return DetectStage(detector, tracker)
