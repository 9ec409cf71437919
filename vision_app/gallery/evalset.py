"""A labelled evaluation folder (one sub-folder of photos per person) turned into embeddings, at scale.

Models are loaded once (the FaceAnalyzer); each photo is read and its largest face detected, aligned
and checked by the quality gates, and the crops go through the recognizer in batches. Photos are taken
in natural order (2.jpg before 10.jpg): "photo 1" of a person is their first. Photos that fail are
listed with the reason. Two kinds of duplicates are found by the decoded pixels: the same photo under
two people (a labelling error: it cannot show both) is left out of every figure, and a repeated photo
of one person keeps only its first copy (a copy would be a free genuine match).
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.gallery.enroll import FaceAnalyzer, read_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
BATCH = 32


def natural_key(path: Path) -> tuple[Any, ...]:
    """Sort key that puts 2.jpg before 10.jpg."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name))


def person_photos(folder: Path) -> list[Path]:
    """The image files directly in one person's folder, in natural order."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=natural_key)


def labelled_images(folder: Path) -> list[tuple[str, Path]]:
    """(identity, image path) for every image in each sub-folder of `folder`, people sorted by name."""
    if not folder.is_dir():
        raise GalleryError(f"{folder} is not a folder; expected one sub-folder of photos per identity")
    items = [(d.name, p) for d in sorted(folder.iterdir()) if d.is_dir() for p in person_photos(d)]
    if len({lab for lab, _ in items}) < 2:
        raise GalleryError(f"{folder}: found {len(items)} images in fewer than 2 identity sub-folders; "
                           f"calibration needs at least 2 people with photos")
    return items


@dataclass
class Embedded:
    """labels (M,) identity per embedding; paths (M,); embeddings (M, D) float32; skipped (path, why)
    for photos without a usable face; conflicts: photos found under two or more people (left out);
    duplicates: repeated copies of one person's photo (left out)."""

    labels: list[str]
    paths: list[Path]
    embeddings: NDArray[np.float32]
    model: tuple[str, str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    conflicts: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)
    photos: int = 0


def embed_folder(analyzer: FaceAnalyzer, items: Sequence[tuple[str, Path]], batch: int = BATCH,
                 on_progress: Callable[[int, int], None] | None = None) -> Embedded:
    """Embed the largest usable face of every (label, path) item, `batch` crops per recognizer call;
    on_progress(done, total) after each photo."""
    total = len(items)
    digests: dict[str, set[str]] = {}
    kept: list[tuple[str, Path, str]] = []
    skipped: list[tuple[Path, str]] = []
    crops: list[NDArray[np.uint8]] = []
    parts: list[NDArray[np.float32]] = []
    for n, (label, path) in enumerate(items, 1):
        try:
            image = read_image(path)
        except GalleryError as exc:
            skipped.append((path, str(exc)))
        else:
            result = analyzer.face(image, single=False)
            if isinstance(result, str):
                skipped.append((path, result))
            else:
                digest = hashlib.sha1(image.tobytes()).hexdigest()
                digests.setdefault(digest, set()).add(label)
                kept.append((label, path, digest))
                crops.append(analyzer.model_crop(image, result))
        if len(crops) >= batch or (crops and n == total):
            parts.append(analyzer.embedder.embed(crops))
            crops = []
        if on_progress is not None:
            on_progress(n, total)
    dim = analyzer.embedder.dim or 0
    all_emb = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    seen: set[tuple[str, str]] = set()
    conflicts, duplicates, rows = [], [], []
    for k, (lab, p, d) in enumerate(kept):
        if len(digests[d]) > 1:
            conflicts.append(p)
        elif (lab, d) in seen:
            duplicates.append(p)
        else:
            seen.add((lab, d))
            rows.append(k)
    if conflicts:
        log.warning("%d photos appear under two or more people (a labelling error); left out", len(conflicts))
    return Embedded([kept[k][0] for k in rows], [kept[k][1] for k in rows], all_emb[rows], analyzer.model,
                    skipped, conflicts, duplicates, total)
