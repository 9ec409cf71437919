"""Detector: preprocess -> engine -> decode -> NMS -> source-frame Detections, for one manifest model.

Used by the pipeline stage, the `detect` CLI command and the benchmark. The engine's output shapes are
checked against the manifest's decode table when the detector is built, so a wrong manifest entry fails
at load time with what was expected and what the model has.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vision_app.detect.decoders import Candidates, Decoder, build_decoder
from vision_app.detect.nms import nms
from vision_app.detect.preprocess import BoxMap, Preprocessor
from vision_app.errors import ModelError
from vision_app.models import ModelEntry
from vision_app.types import Detections

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DetectParams:
    """Post-processing thresholds (from config.detect): conf = minimum score, iou = NMS IoU threshold,
    max_detections = cap after NMS (0 = none), class_agnostic = NMS across classes, max_candidates =
    best-scored boxes kept before NMS (0 = all; NMS work grows with its square)."""

    conf: float = 0.25
    iou: float = 0.45
    max_detections: int = 300
    class_agnostic: bool = False
    max_candidates: int = 2000


@dataclass
class DetectTimings:
    """Seconds spent in each part of the last call (preprocess, model call, decode + NMS + mapping)."""

    preprocess: float = 0.0
    model: float = 0.0
    postprocess: float = 0.0


class Detector:
    """One detection model. Not thread-safe (it owns one engine): make one per worker thread."""

    def __init__(self, entry: ModelEntry, engine: Any, params: DetectParams, gpu_preprocess: bool = False
                 ) -> None:
        """gpu_preprocess: on a TensorRT engine, resize/normalise the frame with a CUDA kernel straight
        into the engine's input buffer (only the raw frame crosses the bus); ignored on other backends."""
        if entry.task != "detect":
            raise ModelError(f"model '{entry.name}' is a '{entry.task}' model, not a detector; choose one of "
                             f"the detect models (python main.py models list --task detect)")
        self.entry = entry
        self.engine = engine
        self.params = params
        self.class_names = tuple(entry.classes)
        self.preprocess = Preprocessor.from_entry(entry)
        self.preprocess.reuse_buffers = True  # one Detector per worker thread; the blob is used at once
        self.decoder: Decoder = build_decoder(entry)
        self.input_name = str(entry.input.get("name") or next(iter(engine.inputs)))
        if self.input_name not in engine.inputs:
            raise ModelError(f"model '{entry.name}': manifest input name '{self.input_name}' is not an input "
                             f"of the model (it has {sorted(engine.inputs)})")
        self.decoder.check_outputs({n: s.shape for n, s in engine.outputs.items()})
        self._wanted = set(self.decoder.output_names)
        self.timings = DetectTimings()
        self._gpu: Any = None
        if gpu_preprocess and getattr(engine, "backend", "") == "tensorrt":
            from engines.cuda_preprocess import GpuPreprocessor

            self._gpu = GpuPreprocessor(engine, entry, self.input_name)
            log.info("%s: preprocessing on the GPU (CUDA kernel into the TensorRT input buffer)", entry.name)

    def infer(self, blob: NDArray[np.float32]) -> dict[str, np.ndarray]:
        """(1, 3, h, w) float32 model input -> the raw outputs the decoder reads."""
        return self.engine.infer({self.input_name: blob})

    def postprocess(self, outputs: dict[str, np.ndarray], box_map: BoxMap, conf: float | None = None
                    ) -> Detections:
        """Raw outputs -> decoded, NMS-filtered Detections in source pixels (scores >= conf, default
        params.conf), highest score first."""
        p = self.params
        cand: Candidates = self.decoder(outputs, p.conf if conf is None else conf)
        keep = nms(cand.xyxy, cand.scores, p.iou, None if p.class_agnostic else cand.class_id,
                   max_detections=p.max_detections, max_candidates=p.max_candidates)
        return Detections(box_map.to_source(cand.xyxy[keep]), cand.scores[keep], cand.class_id[keep],
                          None, self.class_names)

    def __call__(self, image: NDArray[np.uint8], conf: float | None = None) -> Detections:
        """BGR uint8 (H, W, 3) frame -> Detections in its pixels. Part timings land in self.timings."""
        t0 = time.perf_counter()
        if self._gpu is not None:  # preprocess + model in one GPU call: counted as model time
            t1 = t0
            outputs, box_map = self._gpu(image)
        else:
            blob, box_map = self.preprocess(image)
            t1 = time.perf_counter()
            outputs = self.infer(blob)
        t2 = time.perf_counter()
        dets = self.postprocess(outputs, box_map, conf)
        t3 = time.perf_counter()
        self.timings = DetectTimings(t1 - t0, t2 - t1, t3 - t2)
        return dets

    def close(self) -> None:
        if self._gpu is not None:
            self._gpu.close()
        self.engine.close()
