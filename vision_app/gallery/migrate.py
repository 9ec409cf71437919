"""`gallery migrate --model NAME`: re-embed a whole gallery with another recognizer, from its stored crops.

Every template keeps its canonical face crop (crops.py), so no photo and no person is needed. All or
nothing: every crop is decoded and re-embedded first (progress reported), then all templates get their
new embedding and model in one transaction (Gallery.replace_embeddings), which also refuses when the
gallery changed meanwhile. A gallery with templates enrolled before crops were kept cannot be migrated
whole: the error names the people to enrol again, and nothing changes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from vision_app.errors import GalleryError
from vision_app.gallery.crops import FaceCrop
from vision_app.gallery.gallery import Gallery

log = logging.getLogger(__name__)

BATCH = 32


@dataclass(frozen=True)
class MigrationResult:
    templates: int
    people: int
    old_models: tuple[tuple[str, str], ...]
    new_model: tuple[str, str]


def migrate_gallery(gallery: Gallery, embedder: Any, on_progress: Callable[[int, int], None] | None = None
                    ) -> MigrationResult:
    """Re-embed every template of `gallery` with `embedder` (FaceEmbedder: align, embed, model_name,
    model_version). on_progress(done, total) per template. Raises GalleryError (nothing changed) when a
    template has no crop (naming the people), a crop is damaged, or the gallery changed meanwhile."""
    rows = gallery.crops()
    new_model = (embedder.model_name, embedder.model_version)
    old = tuple(sorted({(r.model_name, r.model_version) for r in rows}))
    people = {r.name for r in rows}
    if not rows:
        raise GalleryError(f"{gallery.path} has no templates: nothing to migrate (enrol people with "
                           f"'python main.py gallery enroll' and the configured recognizer)")
    if old == (new_model,):
        log.info("%s: every template is already of %s %s", gallery.path, *new_model)
        return MigrationResult(0, len(people), old, new_model)
    missing = sorted({r.name for r in rows if r.crop is None})
    if missing:
        raise GalleryError(
            f"{gallery.path}: {len(missing)} of {len(people)} people have templates without a stored face "
            f"crop (enrolled before crops were kept), so they cannot be re-embedded: {', '.join(missing)}. "
            f"Nothing was changed. Remove them (python main.py gallery remove NAME), run migrate again, "
            f"then enrol them again with the new model")
    total = len(rows)
    parts = []
    for start in range(0, total, BATCH):
        chunk = rows[start:start + BATCH]
        crops = [FaceCrop.decode(r.crop or b"", f"{gallery.path}: template {r.id} of '{r.name}'").aligned_for(embedder)
                 for r in chunk]
        parts.append(embedder.embed(crops))
        if on_progress is not None:
            on_progress(min(start + BATCH, total), total)
    embeddings = np.concatenate(parts)
    count = gallery.replace_embeddings([r.id for r in rows], embeddings, *new_model)
    log.info("%s: %d templates of %d people migrated from %s to %s %s", gallery.path, count, len(people),
             ", ".join(f"{m} {v}" for m, v in old), *new_model)
    return MigrationResult(count, len(people), old, new_model)
