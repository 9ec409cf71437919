"""The segmentation pipeline stage: frame → Mask (result.mask) → overlay (result.image).

The model always reads the original frame.image; the overlay is drawn on result.image, which is the
frame itself or an earlier stage's rendering (style). Detection and face stages run after this one on
frame.image and draw their annotations on top (draw.render_result), so the stages compose.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Any

from vision_app.config import SegmentConfig
from vision_app.scene import SceneChangeDetector
from vision_app.segment.masks import Segmenter
from vision_app.segment.overlay import OverlayRenderer, load_background
from vision_app.types import FrameResult

log = logging.getLogger(__name__)

_PROBS = "probabilities"  # model-resolution probabilities handed from process to finish


class SegmentStage:
    """Stage 'segment'. extras['segment'] = {model, overlay, legend: [{name, color_bgr, share}],
    new_scene}.

    process (per frame, may run on several workers at once): the model → low-resolution probabilities.
    finish (in frame order, one instance): scene-change check, temporal smoothing, the Mask at source
    resolution and the overlay; so throughput mode with several workers smooths over consecutive frames.
    """

    name = "segment"

    def __init__(self, segmenter: Segmenter, renderer: OverlayRenderer, scene: SceneChangeDetector,
                 owns_model: bool = True) -> None:
        self.segmenter = segmenter
        self.renderer = renderer
        self.scene = scene
        self.owns_model = owns_model

    def fork(self) -> "SegmentStage":
        """This stage for another stream: the same model, its own smoothing and scene state."""
        return SegmentStage(self.segmenter.fork(), self.renderer.fork(),
                            SceneChangeDetector(self.scene.threshold), owns_model=False)

    @property
    def info(self) -> dict[str, Any]:
        e = self.segmenter.entry
        return {"model": e.name, "license": e.license, "overlay": self.renderer.mode,
                "classes": list(self.segmenter.class_names)}

    def process(self, result: FrameResult) -> FrameResult:
        probs = self.segmenter.probabilities(result.frame.image)
        return replace(result, extras={**result.extras, self.name: {_PROBS: probs}})

    def finish(self, result: FrameResult) -> FrameResult:
        frame = result.frame
        pending = result.extras.get(self.name, {})
        probs = pending.get(_PROBS) if isinstance(pending, dict) else None
        if probs is None:  # process failed for this frame (the pipeline reported it)
            return result
        new_scene = self.scene.update(frame)
        mask = self.segmenter.to_mask(self.segmenter.smooth(probs, new_scene), frame.image.shape[:2])
        image, legend = self.renderer.render(result.image, mask)
        extras = {**result.extras, self.name: {
            "model": self.segmenter.entry.name, "overlay": self.renderer.mode, "new_scene": new_scene,
            "legend": [asdict(e) for e in legend]}}
        return replace(result, mask=mask, image=image, extras=extras)

    def close(self) -> None:
        if not self.owns_model:  # a fork: the stage it came from closes the model
            return
        close = getattr(self.segmenter.engine, "close", None)
        if close is not None:
            close()


def build_segment_stage(ctx: Any) -> SegmentStage:
    """Builder for TASKS['segment'] from ctx.config.segment (ctx: vision_app.stages.StageContext)."""
    cfg: SegmentConfig = ctx.config.segment
    entry = ctx.model_entry(cfg.model, "segment", "segment.model")
    engine = ctx.engine(cfg.model)
    segmenter = Segmenter(engine, entry, smoothing=cfg.smoothing, threshold=cfg.threshold,
                          foreground=cfg.foreground)
    renderer = OverlayRenderer(cfg.overlay, segmenter.class_names, opacity=cfg.opacity,
                               threshold=cfg.threshold, softness=cfg.edge_softness,
                               blur_sigma=cfg.blur_sigma, background=load_background(cfg.background)
                               if cfg.overlay == "replace" else None, legend=cfg.legend)
    log.info("segment: model %s (%s), overlay %s", entry.name, entry.license, cfg.overlay)
    return SegmentStage(segmenter, renderer, SceneChangeDetector(cfg.scene_threshold))
