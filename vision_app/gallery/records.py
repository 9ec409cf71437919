"""The gallery's records and input checks: names, embeddings, and the rows the Gallery API hands out.

PersonInfo / TemplateRow / TemplateLayout are what the Gallery reads return (no decryption);
PersonRecord / TemplateRecord are decrypted people and templates for export and import. check_name and
check_embeddings validate what callers pass in, with a GalleryError that says what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError

MAX_NAME = 100


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_name(name: str) -> str:
    """A person's name, stripped; raises GalleryError when empty, too long or with control characters."""
    if not isinstance(name, str):
        raise GalleryError(f"a person's name must be text, got {type(name).__name__}")
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in clean):
        raise GalleryError(f"bad name {name!r}: expected 1..{MAX_NAME} printable characters")
    return clean


def check_embeddings(embeddings: Any, what: str = "embeddings") -> NDArray[np.float32]:
    """(N, D) finite, L2-normalised float rows → float32 array; anything else raises GalleryError."""
    arr = np.asarray(embeddings)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0 or arr.dtype.kind != "f":
        raise GalleryError(f"{what}: expected an (N, D) float array with N >= 1, got "
                           f"{arr.dtype} {arr.shape}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise GalleryError(f"{what}: contains NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1)
    if np.abs(norms - 1.0).max() > 1e-3:
        raise GalleryError(f"{what}: rows must be L2-normalised (FaceEmbedder.embed output), found norms "
                           f"{norms.min():.4f}..{norms.max():.4f}")
    return arr


@dataclass(frozen=True)
class PersonInfo:
    name: str
    templates: int
    created: str  # ISO 8601 UTC


@dataclass(frozen=True)
class TemplateRow:
    """A template's public columns (no embedding): what the matcher needs to rebuild incrementally."""

    id: int
    name: str
    model_name: str
    model_version: str


@dataclass(frozen=True)
class StoredCrop:
    """One template's face crop for re-embedding: template id, owner, model, crop bytes (None = none)."""

    id: int
    name: str
    model_name: str
    model_version: str
    crop: bytes | None


@dataclass(frozen=True)
class TemplateLayout:
    """ids (T,) int64 template ids and person_ids (T,) int64, grouped by person; names: person id →
    name; models: the (model name, version) pairs present."""

    ids: NDArray[np.int64]
    person_ids: NDArray[np.int64]
    names: dict[int, str]
    models: set[tuple[str, str]]


@dataclass
class TemplateRecord:
    """A decrypted template, for export/import. embedding: (D,) float32 L2-normalised."""

    model_name: str
    model_version: str
    embedding: NDArray[np.float32]
    thumbnail: bytes | None = None  # JPEG bytes
    source: str = ""
    created: str = ""
    crop: bytes | None = None       # FaceCrop.encode() bytes (None: enrolled before crops were kept)


@dataclass
class PersonRecord:
    name: str
    created: str = ""
    templates: list[TemplateRecord] = field(default_factory=list)
