"""The gallery behind the face stage: its Matcher as the stage's Identifier, and the `face` task's builder.

The face package defines what it needs (vision_app.face.stage.Identifier) and never imports the
gallery; this module supplies it. Without a gallery file the stage runs unidentified: it never creates
an empty gallery as a side effect.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vision_app.face.embedder import FaceEmbedder
from vision_app.face.stage import FaceStage
from vision_app.face.stage import build_face_stage as build_unidentified_face_stage
from vision_app.gallery.gallery import Gallery, default_gallery_path
from vision_app.gallery.matcher import Match, Matcher
from vision_app.gallery.threshold import ThresholdRule

log = logging.getLogger(__name__)


class GalleryIdentifier:
    """A Gallery and its Matcher as the face stage's Identifier; close() closes the gallery."""

    def __init__(self, gallery: Gallery, matcher: Matcher) -> None:
        self.gallery, self.matcher = gallery, matcher

    def identify(self, embeddings: NDArray[np.float32]) -> list[Match]:
        """(N, D) float32 L2-normalised → one Match per row (1:N against the gallery)."""
        return self.matcher.identify(embeddings)

    def close(self) -> None:
        self.gallery.close()


def open_matcher(ctx: Any, embedder: FaceEmbedder,
                 db_path: str | None = None) -> tuple[Gallery, Matcher] | tuple[None, None]:
    """(Gallery, Matcher) for config face.gallery (or db_path), or (None, None) when no gallery file
    exists there — the stage never creates an empty gallery as a side effect."""
    cfg = ctx.config.face
    path = default_gallery_path(db_path or cfg.gallery)
    if not path.is_file():
        return None, None
    gallery = Gallery.from_config(cfg, str(path))
    entry = ctx.models.entry(embedder.model_name) if ctx.models is not None else None
    rule = ThresholdRule.from_config(cfg, entry)
    return gallery, Matcher.for_embedder(gallery, embedder, cfg.match_threshold, rule)


def open_identifier(ctx: Any, embedder: FaceEmbedder) -> GalleryIdentifier | None:
    """The configured gallery as an Identifier, or None (logged) when there is no gallery file."""
    gallery, matcher = open_matcher(ctx, embedder)
    if gallery is None or matcher is None:
        log.info("face: no gallery at %s; faces are detected and checked for liveness but not identified "
                 "(enrol people with 'python main.py gallery enroll')",
                 ctx.config.face.gallery or "<user data>/gallery.db")
        return None
    return GalleryIdentifier(gallery, matcher)


def build_face_stage(ctx: Any) -> FaceStage:
    """The `face` task: the face stage for ctx.config.face, identifying against the configured gallery
    if one exists."""
    return build_unidentified_face_stage(ctx, lambda embedder: open_identifier(ctx, embedder))
