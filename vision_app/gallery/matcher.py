"""Face matching: 1:1 verify and 1:N identify with an open-set "unknown" answer.

All templates live in one (T, D) float32 matrix, grouped by person. A query batch (N, D) is one matrix
product (N, T) of cosine similarities (rows are L2-normalised), then the best template per person
(np.maximum.reduceat over each person's contiguous columns) and the best person per query. A best score
below the threshold is "unknown": config face.match_threshold, raised with the gallery's size by the
gallery-size rule (vision_app.gallery.threshold), calibrated with `python main.py face-eval`. The Matcher keeps the matrix in memory and rebuilds it when the gallery changes, decrypting
only templates it has not seen yet.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.gallery.gallery import Gallery

log = logging.getLogger(__name__)

TOP_K = 5  # candidates reported per query face


@dataclass(frozen=True, slots=True)
class Match:
    """The answer for one query face.

    identity: the accepted person's name, or None (unknown). best: the best-scoring person even when
    below the threshold (None for an empty gallery). similarity: cosine of the best template of `best`
    (-1.0 for an empty gallery). accepted: similarity >= threshold; threshold: the one applied.
    candidates: the TOP_K best people and their similarities, best first (the kiosk averages them over
    the frames of a tracked face).
    """

    identity: str | None
    best: str | None
    similarity: float
    accepted: bool
    threshold: float = float("nan")
    candidates: tuple[tuple[str, float], ...] = ()


def _as_queries(embeddings: Any, dim: int) -> NDArray[np.float32]:
    q = np.asarray(embeddings, np.float32)
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2 or (dim and q.shape[1] != dim):
        raise GalleryError(f"query embeddings: expected (N, {dim or 'D'}) float32, got {q.shape}")
    return q


class TemplateIndex:
    """An immutable in-memory index of templates.

    embeddings: (T, D) float32 L2-normalised rows; owner: (T,) int index into names; names: person names;
    model: (model name, model version) of the embedding space.
    """

    def __init__(self, embeddings: NDArray[np.float32], owner: NDArray[np.integer], names: Sequence[str],
                 model: tuple[str, str]) -> None:
        emb = np.asarray(embeddings, np.float32)
        own = np.asarray(owner, np.int64).reshape(-1)
        if emb.ndim != 2 or own.shape[0] != emb.shape[0]:
            raise GalleryError(f"TemplateIndex: expected (T, D) embeddings and (T,) owners, got "
                               f"{emb.shape} and {own.shape}")
        if len(own) and (own.min() < 0 or own.max() >= len(names)):
            raise GalleryError(f"TemplateIndex: owner indices must be in 0..{len(names) - 1}")
        if len(own) > 1 and (np.diff(own) < 0).any():  # group each person's templates (no copy if grouped)
            order = np.argsort(own, kind="stable")
            own, emb = own[order], emb[order]
        self.matrix = np.ascontiguousarray(emb)
        present = np.unique(own)
        self.names: tuple[str, ...] = tuple(names[i] for i in present)
        self.starts = np.searchsorted(own, present).astype(np.int64)
        self.counts = np.diff(np.append(self.starts, len(own)))
        self.model = model
        self.dim = int(emb.shape[1]) if emb.ndim == 2 else 0
        self._row = {n: i for i, n in enumerate(self.names)}

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def check_model(self, model: tuple[str, str] | None) -> None:
        if model is not None and tuple(model) != tuple(self.model):
            raise GalleryError(f"cannot compare embeddings of model {model[0]} {model[1]} with gallery "
                               f"templates of model {self.model[0]} {self.model[1]}: different models give "
                               f"unrelated scores. Use the gallery's model or re-enrol everyone")

    def person_scores(self, queries: Any) -> NDArray[np.float32]:
        """queries (N, D) float32 L2-normalised → (N, P) best cosine per person (P = len(names))."""
        q = _as_queries(queries, self.dim)
        if len(self.matrix) == 0:
            return np.zeros((len(q), 0), np.float32)
        sims = q @ self.matrix.T  # (N, T): the one matrix product
        if len(self.starts) == len(self.matrix):  # one template each: nothing to reduce
            return sims
        return np.maximum.reduceat(sims, self.starts, axis=1)

    def search(self, queries: Any, threshold: float) -> list[Match]:
        """1:N: the best person per query; below `threshold` the identity is None (unknown)."""
        scores = self.person_scores(queries)
        if scores.shape[1] == 0:
            return [Match(None, None, -1.0, False) for _ in range(len(scores))]
        k = min(TOP_K, scores.shape[1])
        top = np.argpartition(scores, -k, axis=1)[:, -k:] if k < scores.shape[1] else \
            np.broadcast_to(np.arange(k), (len(scores), k))
        top_scores = np.take_along_axis(scores, top, axis=1)
        rank = np.argsort(-top_scores, axis=1, kind="stable")
        top, top_scores = np.take_along_axis(top, rank, axis=1), np.take_along_axis(top_scores, rank, axis=1)
        out = []
        for row, vals in zip(top.tolist(), top_scores.tolist()):
            s, name = vals[0], self.names[row[0]]
            ok = s >= threshold
            cands = tuple((self.names[c], v) for c, v in zip(row, vals))
            out.append(Match(name if ok else None, name, s, ok, float(threshold), cands))
        return out

    def verify(self, name: str, query: Any, threshold: float) -> Match:
        """1:1: is `query` ((D,) or (1, D)) the person `name`? Best cosine over their templates."""
        if name not in self._row:
            raise GalleryError(f"'{name}' is not in the gallery; enrol them first (python main.py gallery "
                               f"enroll)")
        r = self._row[name]
        s0, n = int(self.starts[r]), int(self.counts[r])
        q = _as_queries(query, self.dim)
        if len(q) != 1:
            raise GalleryError(f"verify takes one query embedding, got {len(q)}")
        s = float((self.matrix[s0:s0 + n] @ q[0]).max())
        ok = s >= threshold
        return Match(name if ok else None, name, s, ok)


class Matcher:
    """1:1 / 1:N matching against a Gallery for one embedding model.

    model: (model name, model version) of the embedder that makes the queries (FaceEmbedder's
    model_name/model_version). A gallery holding templates of another model raises GalleryError.
    """

    def __init__(self, gallery: Gallery, model: tuple[str, str], threshold: float,
                 rule: Any | None = None) -> None:
        self.gallery = gallery
        self.model = (str(model[0]), str(model[1]))
        self.threshold = float(threshold)
        self.rule = rule  # ThresholdRule: the threshold follows the gallery's size (set on every rebuild)
        self.operating_point: Any | None = None
        self._generation: tuple[int, int] | None = None
        # decrypted templates seen so far, sorted by template id: (K,) int64 and (K, D) float32
        self._ids = np.zeros(0, np.int64)
        self._emb = np.zeros((0, 0), np.float32)
        self._index = TemplateIndex(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), (), self.model)

    @classmethod
    def for_embedder(cls, gallery: Gallery, embedder: Any, threshold: float, rule: Any | None = None) -> "Matcher":
        return cls(gallery, (embedder.model_name, embedder.model_version), threshold, rule)

    def index(self) -> TemplateIndex:
        """The current index, rebuilt first if the gallery changed since the last call."""
        gen = self.gallery.generation()
        if gen != self._generation:
            self._index = self._rebuild()
            self._generation = gen
            self._apply_rule()
        return self._index

    def _apply_rule(self) -> None:
        """The threshold for the gallery's current size (ThresholdRule), logged when it changes."""
        if self.rule is None:
            return
        op = self.rule.at(len(self._index), len(self._index.names))
        if self.operating_point is None or op != self.operating_point:
            log.info("%s: %s", self.gallery.path, op.describe())
        self.operating_point, self.threshold = op, op.threshold

    def _rebuild(self) -> TemplateIndex:
        lay = self.gallery.layout()
        other = sorted(lay.models - {self.model})
        if other:
            found = ", ".join(f"{m} {v}" for m, v in other)
            raise GalleryError(f"the gallery {self.gallery.path} holds templates of model {found}, but the "
                               f"embedder is {self.model[0]} {self.model[1]}: embeddings of different "
                               f"models cannot be compared. Re-embed the gallery (python main.py gallery "
                               f"migrate --model {self.model[0]}) or set face.embedder to the gallery's model")
        ids = lay.ids
        if len(ids) == 0:
            self._ids, self._emb = np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
            return TemplateIndex(self._emb, np.zeros(0, np.int64), (), self.model)
        pos = np.searchsorted(self._ids, ids).clip(0, max(len(self._ids) - 1, 0))
        known = (self._ids[pos] == ids) if len(self._ids) else np.zeros(len(ids), bool)
        missing = ids[~known]
        parts_ids, parts_emb = [ids[known]], [self._emb[pos[known]]] if known.any() else []
        if len(missing):  # only templates not seen before are decrypted
            dec = self.gallery.embeddings(missing.tolist())
            parts_ids.append(missing)
            parts_emb.append(np.stack([dec[int(i)] for i in missing]))
        all_ids, all_emb = np.concatenate(parts_ids), np.concatenate(parts_emb)
        order = np.argsort(all_ids)
        self._ids, self._emb = all_ids[order], all_emb[order]
        matrix = self._emb[np.searchsorted(self._ids, ids)]
        people, owner = np.unique(lay.person_ids, return_inverse=True)
        log.debug("matcher: %d templates of %d people (%d decrypted)", len(ids), len(people), len(missing))
        return TemplateIndex(matrix, owner, [lay.names[int(p)] for p in people], self.model)

    def identify(self, embeddings: Any, model: tuple[str, str] | None = None) -> list[Match]:
        """1:N for a batch (N, D) float32 of L2-normalised embeddings; `model` (if given) is checked."""
        idx = self.index()
        idx.check_model(model or self.model)
        return idx.search(embeddings, self.threshold)

    def verify(self, name: str, embedding: Any, model: tuple[str, str] | None = None) -> Match:
        """1:1: is this embedding the enrolled person `name`?"""
        idx = self.index()
        idx.check_model(model or self.model)
        return idx.verify(name, embedding, self.threshold)
