"""The `face` pipeline stage: per-frame face analysis (process) and per-track liveness evidence (finish).

process: detect, align, quality, embed, identify, passive liveness, mesh; finish: track and accumulate
blink / temporal / head-turn evidence per tracked face.

`process` is independent per frame (safe on parallel workers, each with its own instance); `finish` runs
in frame order on one instance and holds the tracker and the per-track liveness state. The result gets
`faces` (with identity, match_score, liveness = passive real-score, tracker_id) and
`extras["face"]`: a tuple of FaceObservation for the access controller. Faces failing the size gate are
reported but not analysed further; faces failing the other quality gates are not identified (a blurred
or turned face gives unreliable similarities) but still feed liveness.

Identification goes through the small Identifier protocol below; the gallery side implements it
(vision_app.gallery.identify), so this package never imports the gallery.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.detect.tracker import ByteTracker, TrackerParams
from vision_app.face.align import align_face, landmarks_usable
from vision_app.face.detector import FaceDetector
from vision_app.face.embedder import FaceEmbedder
from vision_app.face.liveness import LivenessParams, TrackLiveness
from vision_app.face.mesh import FaceMesh, MeshResult
from vision_app.face.observation import FACE_EXTRAS_KEY, FaceObservation
from vision_app.face.passive import PassiveLiveness
from vision_app.face.quality import QualityGates
from vision_app.types import Faces, FrameResult

log = logging.getLogger(__name__)


class IdentityMatch(Protocol):
    """One face's answer from an Identifier."""

    @property
    def identity(self) -> str | None: ...      # accepted name, None = unknown
    @property
    def best(self) -> str | None: ...          # best candidate even below the threshold, None = none
    @property
    def similarity(self) -> float: ...         # its cosine similarity
    @property
    def threshold(self) -> float: ...          # the threshold applied
    @property
    def candidates(self) -> tuple[tuple[str, float], ...]: ...  # best people and similarities, best first


class Identifier(Protocol):
    """Who are these faces? embeddings: (N, D) float32, L2-normalised (FaceEmbedder.embed output) →
    one IdentityMatch per row. close() releases what it holds (the stage's close() calls it)."""

    def identify(self, embeddings: NDArray[np.float32]) -> Sequence[IdentityMatch]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _FaceFrame:
    """process → finish hand-over for one frame (never leaves the stage: finish replaces it)."""

    faces: Faces
    quality: tuple[str | None, ...]
    names: tuple[str | None, ...]          # accepted identity per face
    best: tuple[str, ...]                  # best candidate per face ("" = none)
    similarity: NDArray[np.float32]        # (N,) nan = not matched
    passive_score: NDArray[np.float32]     # (N,) nan = not run (too small)
    passive_live: tuple[bool, ...]
    meshes: tuple[MeshResult | None, ...]
    embeddings: tuple[NDArray[np.float32] | None, ...]
    candidates: tuple[tuple[tuple[str, float], ...], ...]  # per face (empty = not identified)
    thresholds: NDArray[np.float32]        # (N,) matcher threshold per face, nan = not identified


class FaceStage:
    """Pipeline stage around the face components. identifier: who the good-quality faces are (an
    Identifier, e.g. the gallery's), or None for no identification."""

    name = "face"

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder, passive: PassiveLiveness,
                 mesh: FaceMesh | None, gates: QualityGates, liveness: LivenessParams,
                 tracker: TrackerParams, identifier: Identifier | None = None, owns_identifier: bool = True
                 ) -> None:
        self.detector, self.embedder, self.passive, self.mesh = detector, embedder, passive, mesh
        self.gates, self.liveness_params, self.identifier = gates, liveness, identifier
        self.owns_identifier = owns_identifier
        self.tracker = ByteTracker(tracker)
        self._tracks: dict[int, TrackLiveness] = {}
        self._last_seen: dict[int, int] = {}
        self._frame_no = 0

    # -- per frame (parallel-safe) -------------------------------------------------------------------
    def process(self, result: FrameResult) -> FrameResult:
        img = result.frame.image
        faces = self.detector.detect(img)
        n = len(faces)
        sized = [self.gates.size(faces.xyxy[i]) is None for i in range(n)]
        quality: list[str | None] = [None] * n
        aligned: dict[int, NDArray[np.uint8]] = {}
        for i in range(n):
            if not sized[i]:
                quality[i] = self.gates.size(faces.xyxy[i])
                continue
            if not landmarks_usable(faces.landmarks[i]):  # garbage from the detector: nothing to align
                quality[i] = "landmarks unusable"
                continue
            aligned[i] = align_face(img, faces.landmarks[i])
            quality[i] = self.gates.check(faces.xyxy[i], faces.landmarks[i], aligned[i])
        good = [i for i in range(n) if quality[i] is None]
        emb = self.embedder.embed([self._model_crop(img, faces.landmarks[i], aligned[i]) for i in good]) \
            if good else np.zeros((0, 0), np.float32)
        names: list[str | None] = [None] * n
        best = [""] * n
        sim = np.full(n, np.nan, np.float32)
        thr = np.full(n, np.nan, np.float32)
        cands: list[tuple[tuple[str, float], ...]] = [()] * n
        embeddings: list[NDArray[np.float32] | None] = [None] * n
        for k, i in enumerate(good):
            embeddings[i] = emb[k]
        if self.identifier is not None and good:
            for i, m in zip(good, self.identifier.identify(emb)):
                names[i], best[i], sim[i], thr[i], cands[i] = m.identity, m.best or "", m.similarity, \
                    m.threshold, m.candidates
        analysed = [i for i in range(n) if sized[i]]
        p_score = np.full(n, np.nan, np.float32)
        p_live = [False] * n
        for i, r in zip(analysed, self.passive.check(img, faces.xyxy[analysed])):
            p_score[i], p_live[i] = r.score, r.live
        meshes = [self.mesh.run(img, faces.xyxy[i]) if self.mesh is not None and sized[i] else None
                  for i in range(n)]
        data = _FaceFrame(faces, tuple(quality), tuple(names), tuple(best), sim, p_score, tuple(p_live),
                          tuple(meshes), tuple(embeddings), tuple(cands), thr)
        identifying = self.identifier is not None
        faces = replace(faces, identity=tuple(x or "" for x in names) if identifying else None,
                        match_score=sim if identifying else None, liveness=p_score)
        return replace(result, faces=faces, extras={**result.extras, FACE_EXTRAS_KEY: data})

    def _model_crop(self, img: NDArray[np.uint8], landmarks5: NDArray[np.float32],
                    arcface: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The recognizer's crop: the quality gates' ArcFace crop when the model uses that framing."""
        return arcface if self.embedder.spec.arcface112 else self.embedder.align(img, landmarks5)

    # -- in frame order (one instance) ---------------------------------------------------------------
    def finish(self, result: FrameResult) -> FrameResult:
        data = result.extras.get(FACE_EXTRAS_KEY)
        if not isinstance(data, _FaceFrame):
            return result
        self._frame_no += 1
        f, t = data.faces, result.frame.timestamp
        ids = self.tracker.update(f.xyxy, f.score, np.zeros(len(f), np.int32))
        obs = []
        for i in range(len(f)):
            tid = int(ids[i])
            state = None
            if tid >= 0:  # tentative tracks (first frame of a new face) carry no history yet
                track = self._tracks.get(tid)
                if track is None:
                    track = self._tracks[tid] = TrackLiveness(self.liveness_params)
                self._last_seen[tid] = self._frame_no
                state = track.update(t, f.landmarks[i], data.meshes[i])
            x1, y1, x2, y2 = (float(v) for v in f.xyxy[i])
            obs.append(FaceObservation(
                track_id=tid, xyxy=(x1, y1, x2, y2), identity=data.names[i], best_name=data.best[i],
                similarity=float(data.similarity[i]), passive_score=float(data.passive_score[i]),
                passive_live=data.passive_live[i],
                blink_seen=bool(state and state.blink_seen), blink_count=state.blink_count if state else 0,
                ear=state.ear if state else math.nan, motion=state.motion if state else 0.0,
                temporal_live=state.temporal_live if state else None,
                yaw_deg=state.yaw_deg if state else 0.0, head_turn_seen=bool(state and state.head_turn_seen),
                quality=data.quality[i], frames_tracked=self._tracks[tid].frames if state else 0,
                window_s=state.window_s if state else 0.0, frame_index=result.frame.index, timestamp=t,
                embedding=data.embeddings[i], candidates=data.candidates[i],
                match_threshold=float(data.thresholds[i])))
        self._forget_old_tracks()
        faces = replace(result.faces if result.faces is not None else f, tracker_id=ids.astype(np.int32))
        return replace(result, faces=faces, extras={**result.extras, FACE_EXTRAS_KEY: tuple(obs)})

    def _forget_old_tracks(self) -> None:
        horizon = self.tracker.params.buffer_frames + 1
        for tid in [k for k, seen in self._last_seen.items() if self._frame_no - seen > horizon]:
            del self._tracks[tid], self._last_seen[tid]

    def fork(self) -> "FaceStage":
        """This stage for another stream: the same models and identifier, its own tracker and liveness
        state. The fork does not own the identifier (closing it leaves the gallery open)."""
        return FaceStage(self.detector, self.embedder, self.passive, self.mesh, self.gates,
                         self.liveness_params, self.tracker.params, self.identifier, owns_identifier=False)

    def reset(self) -> None:
        """Forget all tracks (a new source or a scene cut)."""
        self.tracker.reset()
        self._tracks.clear()
        self._last_seen.clear()

    def close(self) -> None:
        if self.identifier is not None and self.owns_identifier:
            self.identifier.close()


def build_detector(ctx: Any) -> FaceDetector:
    cfg = ctx.config.face
    return FaceDetector(ctx.engine(cfg.detector), cfg.detect_score)


def build_embedder(ctx: Any, name: str | None = None) -> FaceEmbedder:
    """The recognizer `name` (default: config face.embedder) with its manifest name and version (stored
    with every gallery template) and its own crop and normalisation (EmbedSpec)."""
    from vision_app.errors import ConfigError
    from vision_app.face.embedder import EmbedSpec

    entry = ctx.models.entry(name or ctx.config.face.embedder)
    if entry.task != "face_embed":
        raise ConfigError(f"{'face.embedder' if name is None else '--model'} '{entry.name}' is a '{entry.task}' "
                          f"model; choose a recognizer: {', '.join(ctx.models.names('face_embed'))}")
    return FaceEmbedder(ctx.engine(entry.name), entry.name, entry.version, EmbedSpec.from_entry(entry))


def build_passive(ctx: Any) -> PassiveLiveness:
    """The MiniFASNet pair of config face.passive_models, each with its manifest crop_scale."""
    cfg = ctx.config.face
    v2, v1se = cfg.passive_models
    scales = [float(ctx.models.entry(m).preprocess.get("crop_scale", s)) for m, s in ((v2, 2.7), (v1se, 4.0))]
    return PassiveLiveness(ctx.engine(v2), ctx.engine(v1se), cfg.passive_threshold, scales)


def build_mesh(ctx: Any) -> FaceMesh | None:
    """The face mesh of config face.mesh_model, or None when it is "" (no blink / temporal checks)."""
    name = ctx.config.face.mesh_model
    if not name:
        return None
    return FaceMesh(ctx.engine(name), float(ctx.models.entry(name).preprocess.get("crop_scale", 1.5)))


def build_face_stage(ctx: Any, identify: Callable[[FaceEmbedder], Identifier | None] | None = None) -> FaceStage:
    """Stage for ctx.config.face on ctx's backend. identify: given the stage's embedder, the Identifier
    to use (or None: faces are not identified); the `face` task passes the gallery's
    (vision_app.gallery.identify.build_face_stage)."""
    from vision_app.errors import ConfigError

    if ctx.models is None:
        raise ConfigError("the face task needs a model folder (--models or VISION_APP_MODELS)")
    cfg = ctx.config.face
    detector, embedder = build_detector(ctx), build_embedder(ctx)
    passive, mesh = build_passive(ctx), build_mesh(ctx)
    identifier = identify(embedder) if identify is not None else None
    tracker = TrackerParams(high_score=cfg.detect_score, low_score=cfg.detect_score, new_score=cfg.detect_score,
                            match_iou=cfg.track_iou, low_match_iou=cfg.track_iou,
                            buffer_frames=cfg.track_buffer_frames)
    log.info("face stage: %s + %s, passive %s, mesh %s, gallery %s", cfg.detector, cfg.embedder,
             "+".join(cfg.passive_models), cfg.mesh_model or "off", "on" if identifier else "none")
    return FaceStage(detector, embedder, passive, mesh, QualityGates.from_config(cfg),
                     LivenessParams.from_config(cfg), tracker, identifier)
