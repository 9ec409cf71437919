"""Magenta style vectors: a painting → 100 floats, computed once per painting and cached.

The predict network (Ghiasi et al.'s style-prediction MobileNet) turns a 256×256 RGB [0, 1] image
into a (1, 100, 1, 1) float32 vector. Paintings are keyed by the SHA-256 of their file bytes (or of
the decoded pixels for in-memory images) together with the predict model's SHA-256, so a changed
painting or model never reuses a stale vector. The cache lives in memory and, optionally, as .npy files
in a folder (by default <user data>/style_vectors), so a restart does not recompute them either.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import ConfigError, ModelError
from vision_app.models import ModelEntry
from vision_app.tensor_io import image_to_blob, model_input_size

if TYPE_CHECKING:
    from engines.base import Engine

log = logging.getLogger(__name__)

_PROCESS_MEMORY: dict[str, NDArray[np.float32]] = {}  # key → vector; 400 bytes each


def square_crop(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Central square crop (H, W, 3) → (S, S, 3), S = min(H, W): a painting's texture keeps its aspect."""
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return img[y:y + s, x:x + s]


class StyleVectorCache:
    """Painting → style vector (1, 100, 1, 1) float32, computed by the predict engine once per painting.

    engine: the loaded predict model; entry: its manifest entry; model_sha: the model file's SHA-256
    (part of the key); disk_dir: folder for .npy copies, or None for memory only; memory: the in-memory
    table (default: one shared by the whole process, so rebuilding the stage for a painting used before,
    e.g. when the GUI switches styles back, does not run the network again).
    `runs` counts predict-network calls (cached look-ups do not run it).
    """

    def __init__(self, engine: Engine, entry: ModelEntry, *, model_sha: str, disk_dir: Path | None,
                 memory: dict[str, NDArray[np.float32]] | None = None) -> None:
        self.engine = engine
        self.entry = entry
        self.size = model_input_size(entry.input, entry.name)
        self.input_name = str(entry.input.get("name") or next(iter(engine.inputs)))
        self.output_name = next(iter(engine.outputs))
        self.model_sha = model_sha
        self.disk_dir = disk_dir
        self._memory = _PROCESS_MEMORY if memory is None else memory
        self.runs = 0

    def predict(self, img: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Run the predict network on a BGR uint8 (H, W, 3) image (no caching) → (1, 100, 1, 1) float32."""
        blob = image_to_blob(square_crop(img), self.size, self.entry.preprocess)
        out = self.engine.infer({self.input_name: blob})[self.output_name]
        self.runs += 1
        if out.ndim != 4 or out.shape[0] != 1 or out.shape[2:] != (1, 1):
            raise ModelError(f"model '{self.entry.name}': expected a (1, N, 1, 1) style vector, got {out.shape}")
        return out.astype(np.float32, copy=False)

    def _key(self, digest: str) -> str:
        return hashlib.sha256(f"{digest}:{self.model_sha}".encode()).hexdigest()[:32]

    def _lookup(self, key: str) -> NDArray[np.float32] | None:
        vec = self._memory.get(key)
        if vec is not None:
            if self.disk_dir is not None and not (self.disk_dir / f"{key}.npy").is_file():
                self._store(key, vec)  # computed earlier by a stage without the disk cache
        elif self.disk_dir is not None:
            path = self.disk_dir / f"{key}.npy"
            if path.is_file():
                try:
                    vec = np.load(path).astype(np.float32)
                    log.debug("style vector %s read from %s", key, path)
                except (OSError, ValueError) as exc:
                    log.warning("ignoring unreadable cached style vector %s (%s); recomputing", path, exc)
                    vec = None
                if vec is not None:
                    self._memory[key] = vec
        return vec

    def _store(self, key: str, vec: NDArray[np.float32]) -> None:
        self._memory[key] = vec
        if self.disk_dir is not None:
            try:
                self.disk_dir.mkdir(parents=True, exist_ok=True)
                np.save(self.disk_dir / f"{key}.npy", vec)
            except OSError as exc:  # a read-only data folder costs a recomputation next run, nothing more
                log.warning("cannot save style vector to %s: %s", self.disk_dir, exc)

    def for_image(self, img: NDArray[np.uint8], digest: str | None = None) -> NDArray[np.float32]:
        """Style vector of a BGR uint8 (H, W, 3) painting; digest: its content hash if known."""
        key = self._key(digest or hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest())
        vec = self._lookup(key)
        if vec is None:
            vec = self.predict(img)
            self._store(key, vec)
        return vec

    def for_file(self, path: str | Path) -> NDArray[np.float32]:
        """Style vector of a painting file (any format OpenCV reads)."""
        p = Path(path).expanduser()
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"style painting {p} cannot be read ({exc}); pass an image path or a "
                              f"fixed-style model name (johnson_wave, johnson_udnie)") from exc
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        vec = self._lookup(key)
        if vec is not None:
            return vec
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ConfigError(f"style painting {p} is not an image OpenCV can decode; use a .jpg or .png")
        return self.for_image(img, digest)  # type: ignore[arg-type]
