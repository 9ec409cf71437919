"""Identity embeddings: a face recognizer on any Engine, with its own alignment and normalisation.

Each recognizer of the manifest (task "face_embed") says how it wants its input: the crop size and the
5-point template the landmarks are aligned to (`input.size`, `preprocess.template`; ArcFace 112x112
when absent), the colour order and the normalisation `(x * scale - mean) / std` (`preprocess`). EmbedSpec
holds that; FaceEmbedder.align makes the model's crop and FaceEmbedder.embed turns crops into
L2-normalised vectors. MobileFaceNet and EdgeFace-XS share the ArcFace crop (RGB, (x - 127.5) / 128 and
/ 127.5); face-reidentification-retail-0095 has its own 128x128 template and takes raw BGR 0..255.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import EngineError, ModelError
from vision_app.face.align import ALIGNED_SIZE, ARCFACE_TEMPLATE, warp_to_template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedSpec:
    """How one recognizer wants its input. size: crop side in pixels; template: (5, 2) landmark targets in
    crop pixels (YuNet order); rgb: swap BGR to RGB; scale, mean, std: x * scale, then (x - mean) / std
    per channel (in the model's colour order)."""

    size: int = ALIGNED_SIZE
    template: tuple[tuple[float, float], ...] = tuple((float(x), float(y)) for x, y in ARCFACE_TEMPLATE.tolist())
    rgb: bool = True
    scale: float = 1.0
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)

    @classmethod
    def from_entry(cls, entry: Any) -> "EmbedSpec":
        """From a manifest entry (vision_app.models.ModelEntry) of task face_embed; ModelError names the
        key that is wrong."""
        where = f"manifest model '{entry.name}'"
        size = entry.input.get("size", [ALIGNED_SIZE, ALIGNED_SIZE])
        if not (isinstance(size, list) and len(size) == 2 and size[0] == size[1] and int(size[0]) >= 16):
            raise ModelError(f"{where}: input.size must be a square [S, S] crop (S >= 16), got {size!r}")
        pre = entry.preprocess
        template = pre.get("template")
        if template is None:
            if int(size[0]) != ALIGNED_SIZE:
                raise ModelError(f"{where}: a {size[0]}x{size[0]} recognizer needs preprocess.template (the "
                                 f"5 landmark positions in its crop); only 112x112 defaults to ArcFace's")
            tpl = ARCFACE_TEMPLATE.astype(np.float64)
        else:
            tpl = np.asarray(template, np.float64)
            if tpl.shape != (5, 2) or not np.isfinite(tpl).all():
                raise ModelError(f"{where}: preprocess.template must be 5 [x, y] points, got {template!r}")
        color = str(pre.get("color", "rgb"))
        if color not in ("rgb", "bgr"):
            raise ModelError(f"{where}: preprocess.color must be 'rgb' or 'bgr', got {color!r}")
        mean, std = pre.get("mean", [0.0, 0.0, 0.0]), pre.get("std", [1.0, 1.0, 1.0])
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ModelError(f"{where}: preprocess.mean and .std must be 3 numbers each (std > 0), got "
                             f"{mean!r} and {std!r}")
        return cls(int(size[0]), tuple((float(x), float(y)) for x, y in tpl), color == "rgb",
                   float(pre.get("scale", 1.0)), tuple(float(v) for v in mean),  # type: ignore[arg-type]
                   tuple(float(v) for v in std))  # type: ignore[arg-type]

    @property
    def template_array(self) -> NDArray[np.float32]:
        return np.asarray(self.template, np.float32)

    @property
    def arcface112(self) -> bool:
        """True when this is the ArcFace 112x112 crop (the quality gates' crop can be reused)."""
        return self.size == ALIGNED_SIZE and bool(np.allclose(self.template_array, ARCFACE_TEMPLATE, atol=1e-4))

    def preprocess(self, crops_bgr: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(N, S, S, 3) uint8 BGR → (N, 3, S, S) float32 in the model's colour order and normalisation."""
        ordered = crops_bgr[..., ::-1] if self.rgb else crops_bgr
        x = ordered.astype(np.float32) * np.float32(self.scale)
        y = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2), dtype=np.float32)


class FaceEmbedder:
    """A recognizer on any Engine.

    engine: the loaded model (input 1x3xSxS or Nx3xSxS). model_name / model_version identify the
    embedding space: the gallery stores them with every template and refuses to compare across models.
    spec: the model's crop and normalisation (EmbedSpec.from_entry of its manifest entry; default:
    MobileFaceNet's).
    """

    def __init__(self, engine: Any, model_name: str, model_version: str, spec: EmbedSpec | None = None) -> None:
        self.engine = engine
        self.model_name = str(model_name)
        self.model_version = str(model_version)
        self.spec = spec or EmbedSpec()
        if len(engine.inputs) != 1 or len(engine.outputs) != 1:
            raise EngineError(f"{engine.name}: an embedding model has one input and one output, this one "
                              f"has inputs {list(engine.inputs)} and outputs {list(engine.outputs)}")
        in_spec = next(iter(engine.inputs.values()))
        self._input = in_spec.name
        self._output = next(iter(engine.outputs))
        hw = tuple(in_spec.shape[2:4]) if in_spec.shape and len(in_spec.shape) == 4 else ()
        if hw and None not in hw and hw != (self.spec.size, self.spec.size):
            raise EngineError(f"{engine.name}: the model takes {hw[1]}x{hw[0]} crops but its manifest entry "
                              f"says {self.spec.size}x{self.spec.size}; fix input.size in the manifest")
        # a fixed batch dimension of 1 (the MobileFaceNet export) means one call per face
        self._batch = in_spec.shape[0] if in_spec.shape and in_spec.shape[0] is not None else None
        self.dim = int(next(iter(engine.outputs.values())).shape[-1] or 0)

    @property
    def model(self) -> tuple[str, str]:
        return self.model_name, self.model_version

    def align(self, image_bgr: NDArray[np.uint8], landmarks5: NDArray[np.float32]) -> NDArray[np.uint8]:
        """This model's crop of one face: (H, W, 3) uint8 BGR image and its (5, 2) YuNet landmarks in
        source pixels → (S, S, 3) uint8 BGR, the landmarks on the model's template."""
        return warp_to_template(image_bgr, landmarks5, self.spec.template_array, self.spec.size)

    def _as_batch(self, aligned_bgr: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> NDArray[np.uint8]:
        s = self.spec.size
        if not isinstance(aligned_bgr, np.ndarray):
            crops = list(aligned_bgr)
            if not crops:
                return np.zeros((0, s, s, 3), np.uint8)
            shapes = {getattr(c, "shape", None) for c in crops}
            if len(shapes) != 1:
                raise ValueError(f"FaceEmbedder.embed: expected aligned crops of shape ({s}, {s}, 3), got "
                                 f"{sorted(map(str, shapes))}")
            aligned_bgr = np.stack(crops)
        batch = aligned_bgr
        if batch.ndim == 3:
            batch = batch[None]
        if batch.dtype != np.uint8 or batch.shape[1:] != (s, s, 3):
            raise ValueError(f"FaceEmbedder.embed: expected aligned uint8 BGR crops of shape (N, {s}, {s}, 3) "
                             f"for {self.model_name} (use FaceEmbedder.align), got {batch.dtype} {batch.shape}")
        return batch

    def _rows(self, out: Any, n: int) -> NDArray[np.float32]:
        """A model output as (n, D) float32; EngineError when it does not hold n embeddings."""
        feats = np.asarray(out)
        dim = self.dim or feats.size // max(n, 1)  # a dynamic output width: whatever the model gives
        if dim == 0 or feats.size != n * dim:
            raise EngineError(f"{self.engine.name}: expected {self.dim or 'D'} embedding values for each of "
                              f"{n} faces, got shape {list(feats.shape)}; check the face.embedder model")
        return feats.reshape(n, dim).astype(np.float32)

    def embed(self, aligned_bgr: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> NDArray[np.float32]:
        """aligned_bgr: a list of (S, S, 3) uint8 BGR crops or an (N, S, S, 3) array (FaceEmbedder.align
        output; S = spec.size). Returns (N, D) float32, each row L2-normalised."""
        batch = self._as_batch(aligned_bgr)
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = self.spec.preprocess(batch)
        if self._batch is None:
            feats = self._rows(self.engine.infer({self._input: x})[self._output], len(batch))
        else:
            step, parts = self._batch, []
            for i in range(0, len(x), step):
                chunk = x[i:i + step]
                n = len(chunk)
                if n < step:  # pad a short last chunk to the fixed batch size, keep its rows only
                    chunk = np.concatenate([chunk, np.zeros((step - n, *chunk.shape[1:]), np.float32)])
                parts.append(self._rows(self.engine.infer({self._input: chunk})[self._output], step)[:n])
            feats = np.concatenate(parts)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)
