"""Segmentation: selfie (person probability) and DeepLabV3 (21 VOC classes) → Mask, with overlays.

Modules: masks (model output → smoothed probabilities → Mask at source resolution), overlay (colour
classes + legend, background blur, replacement, cut-out), stage (the pipeline stage and its builder).
"""
from vision_app.segment.stage import SegmentStage, build_segment_stage

__all__ = ["SegmentStage", "build_segment_stage"]
