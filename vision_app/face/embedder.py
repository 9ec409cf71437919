"""Identity embeddings with MobileFaceNet: aligned 112x112 crops → L2-normalised 128-d vectors."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import EngineError

log = logging.getLogger(__name__)

_SIZE = 112


def preprocess_aligned(aligned_bgr: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(N, 112, 112, 3) uint8 BGR → (N, 3, 112, 112) float32 RGB, (x − 127.5) / 128."""
    x = aligned_bgr[..., ::-1].astype(np.float32)
    x = (x - 127.5) / 128.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _as_batch(aligned_bgr: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> NDArray[np.uint8]:
    if not isinstance(aligned_bgr, np.ndarray):
        crops = list(aligned_bgr)
        if not crops:
            return np.zeros((0, _SIZE, _SIZE, 3), np.uint8)
        shapes = {getattr(c, "shape", None) for c in crops}
        if len(shapes) != 1:
            raise ValueError(f"FaceEmbedder.embed: expected aligned crops of shape (112, 112, 3), got "
                             f"{sorted(map(str, shapes))}")
        aligned_bgr = np.stack(crops)
    batch = aligned_bgr
    if batch.ndim == 3:
        batch = batch[None]
    if batch.dtype != np.uint8 or batch.shape[1:] != (_SIZE, _SIZE, 3):
        raise ValueError(f"FaceEmbedder.embed: expected aligned uint8 BGR crops of shape (N, 112, 112, 3) "
                         f"(use align_face), got {batch.dtype} {batch.shape}")
    return batch


class FaceEmbedder:
    """MobileFaceNet on any Engine.

    engine: the loaded model (input 1x3x112x112 or Nx3x112x112). model_name / model_version identify the
    embedding space: the gallery stores them with every template and refuses to compare across models.
    """

    def __init__(self, engine: Any, model_name: str, model_version: str) -> None:
        self.engine = engine
        self.model_name = str(model_name)
        self.model_version = str(model_version)
        if len(engine.inputs) != 1 or len(engine.outputs) != 1:
            raise EngineError(f"{engine.name}: an embedding model has one input and one output, this one "
                              f"has inputs {list(engine.inputs)} and outputs {list(engine.outputs)}")
        spec = next(iter(engine.inputs.values()))
        self._input = spec.name
        self._output = next(iter(engine.outputs))
        # a fixed batch dimension of 1 (this MobileFaceNet export) means one call per face
        self._batch = spec.shape[0] if spec.shape and spec.shape[0] is not None else None
        self.dim = int(next(iter(engine.outputs.values())).shape[-1] or 0)

    def _rows(self, out: Any, n: int) -> NDArray[np.float32]:
        """A model output as (n, D) float32; EngineError when it does not hold n embeddings."""
        feats = np.asarray(out)
        dim = self.dim or feats.size // max(n, 1)  # a dynamic output width: whatever the model gives
        if dim == 0 or feats.size != n * dim:
            raise EngineError(f"{self.engine.name}: expected {self.dim or 'D'} embedding values for each of "
                              f"{n} faces, got shape {list(feats.shape)}; check the face.embedder model")
        return feats.reshape(n, dim).astype(np.float32)

    def embed(self, aligned_bgr: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> NDArray[np.float32]:
        """aligned_bgr: a list of (112, 112, 3) uint8 BGR crops or an (N, 112, 112, 3) array (align_face
        output). Returns (N, D) float32, each row L2-normalised (D = 128 for MobileFaceNet)."""
        batch = _as_batch(aligned_bgr)
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = preprocess_aligned(batch)
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
