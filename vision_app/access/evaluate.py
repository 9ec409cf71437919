"""`face-eval-liveness`: the kiosk's liveness and grant figures in ISO/IEC 30107-3 terms, on real media.

Stills (`spoof/*/{live,spoof}/*.jpg|png`): the passive check on the largest face. Clips
(`spoof/*/{live,spoof}/*.mp4`, `video/live/*.mp4`): the whole kiosk loop (face stage + AccessController),
once without and once with the blink challenge, from one pass of the face stage per clip. Every live
clip's person is enrolled first, from its first frame that passes the enrolment checks, so an attack
clip claims an enrolled identity (NUAA subject n's prints claim subject n; the monitor replay claims the
man of the live clip): the identity check passes and only liveness can stop the attack.

APCER (attack presentation classification error rate) = attacks accepted / attack presentations, per
attack type; BPCER (bona fide ...) = live presentations refused / live presentations. For the kiosk a
clip's presentation is its first decision (no decision by the end of the clip counts as not accepted).
"""
from __future__ import annotations

import logging
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from vision_app.access.accesslog import AccessLog
from vision_app.access.controller import AccessController, Decision
from vision_app.access.policy import AccessPolicy
from vision_app.face.observation import observations
from vision_app.types import Frame, FrameResult

log = logging.getLogger(__name__)

STILL_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
ATTACK_TYPES = {"nuaa": "printed photo (NUAA)", "silent_face": "poster print / tablet (Silent-Face)",
                "hyperfas": "tablet screen (HyperFAS)", "tranvanluyt_replay": "monitor replay (video)"}
EAR_TRACE_HZ = 5.0


@dataclass
class StillResult:
    path: Path
    attack: bool
    kind: str
    live: bool
    score: float          # passive real-score (nan: no face)


@dataclass
class ClipResult:
    """One clip under one policy: first decision, when (s from the clip's start), the reason, frames."""

    path: Path
    kind: str             # "bona fide" | the attack type
    attack: bool
    claimed: str
    blink: bool
    decision: str         # "granted" | "denied" | "none" (no decision by the end)
    at_s: float
    reason: str
    duration_s: float
    blinks: int = 0
    ear_trace: list[float] = field(default_factory=list)


def attack_type(path: Path, media: Path) -> str:
    """The attack type of a file under media/spoof/DATASET/spoof/ (the dataset's description)."""
    rel = path.relative_to(media / "spoof").parts
    base = ATTACK_TYPES.get(rel[0], rel[0])
    return f"{base}, clip" if path.suffix == ".mp4" and "clip" not in base and "video" not in base else base


def _files(folder: Path, suffixes: set[str]) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.is_file() and p.suffix.lower() in suffixes)


def still_sets(media: Path) -> list[tuple[Path, bool, str]]:
    """(path, attack, kind) for the stills of media/spoof/*/{live,spoof}."""
    out = []
    for d in sorted((media / "spoof").glob("*")):
        for sub, attack in (("live", False), ("spoof", True)):
            for p in _files(d / sub, STILL_SUFFIXES):
                out.append((p, attack, attack_type(p, media) if attack else "bona fide"))
    return out


def clip_sets(media: Path) -> list[tuple[Path, bool, str, str]]:
    """(clip, attack, kind, claimed identity) for spoof/*/{live,spoof}/*.mp4 and video/live/*.mp4."""
    out = []
    for d in sorted((media / "spoof").glob("*")):
        for sub, attack in (("live", False), ("spoof", True)):
            for p in _files(d / sub, {".mp4"}):
                out.append((p, attack, attack_type(p, media) if attack else "bona fide", subject(p, d.name)))
    out += [(p, False, "bona fide", subject(p, "")) for p in _files(media / "video" / "live", {".mp4"})]
    return out


def subject(clip: Path, dataset: str) -> str:
    """Who a clip shows (its enrolled name): NUAA seq_SSSS_* → nuaa-SSSS, a dataset of one person → the
    dataset, video/live clips → the clip's name."""
    m = re.match(r"seq_(\d{4})_", clip.name)
    if dataset == "nuaa" and m:
        return f"nuaa-{m.group(1)}"
    return dataset or clip.stem


def read_clip(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames, fps


def passive_stills(detector: Any, passive: Any, items: list[tuple[Path, bool, str]]) -> list[StillResult]:
    out = []
    for path, attack, kind in items:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        faces = detector.detect(img) if img is not None else None
        if faces is None or len(faces) == 0:
            out.append(StillResult(path, attack, kind, False, math.nan))
            continue
        wh = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
        i = int(np.argmax(wh[:, 0] * wh[:, 1]))
        r = passive.check(img, faces.xyxy[i:i + 1])[0]
        out.append(StillResult(path, attack, kind, r.live, r.score))
    return out


def enrol_clip(gallery: Any, analyzer: Any, name: str, frames: list[np.ndarray]) -> int | None:
    """Enrol `name` from the first frame whose largest face passes the enrolment checks; its index."""
    from vision_app.gallery.enroll import store_samples

    for k, img in enumerate(frames):
        sample = analyzer.sample(img, single=False)
        if not isinstance(sample, str):
            store_samples(gallery, name, [sample], [f"frame {k}"], analyzer.model, add=gallery.has(name))
            return k
    return None


def run_kiosk(stage: Any, frames: list[np.ndarray], fps: float, policies: list[AccessPolicy],
              log_dir: Path) -> tuple[list[list[Decision]], list[float], int]:
    """One pass of the face stage over a clip, every result fed to one controller per policy (each with
    its own access log). Returns the decisions per policy, the followed (largest) face's EAR per frame
    and the most blinks its track counted."""
    stage.reset()
    ctls = [AccessController(p, AccessLog(log_dir / f"log{i}.db"), kiosk_id=f"eval-{i}")
            for i, p in enumerate(policies)]
    decisions: list[list[Decision]] = [[] for _ in policies]
    ears, blinks = [], 0
    try:
        for k, img in enumerate(frames):
            res = stage.finish(stage.process(FrameResult(Frame(img, k, k / fps, "eval"), img)))
            obs = observations(res.extras)
            face = max(obs, key=lambda o: o.face_size) if obs else None
            ears.append(face.ear if face is not None else math.nan)
            blinks = max(blinks, face.blink_count if face is not None else 0)
            for ctl, out in zip(ctls, decisions):
                out += ctl.update(res)
    finally:
        for ctl in ctls:
            ctl.close()
    return decisions, ears, blinks


def ear_trace(ears: list[float], fps: float) -> list[float]:
    step = max(1, int(round(fps / EAR_TRACE_HZ)))
    return [round(float(np.nanmin(ears[i:i + step])), 3) if np.isfinite(ears[i:i + step]).any() else math.nan
            for i in range(0, len(ears), step)]


def evaluate_clips(stage: Any, analyzer: Any, gallery: Any, cfg: Any, clips: list[tuple[Path, bool, str, str]],
                   on_clip: Callable[[str], None] = lambda _m: None) -> list[ClipResult]:
    """Enrol every live clip's person, then the kiosk loop over every clip, without and with the blink
    challenge (the policy of config [access] otherwise)."""
    # Clips are read again for the kiosk loop rather than kept: decoding is cheap next to the models, and
    # all 14 live clips' frames together would take gigabytes.
    for path, attack, _kind, who in clips:
        if not attack and not gallery.has(who):
            frames, _fps = read_clip(path)
            if enrol_clip(gallery, analyzer, who, frames) is None:
                log.warning("%s: no frame passes the enrolment checks; %s not enrolled", path, who)
    policies = [AccessPolicy.from_config(cfg.access, blink, cfg.face.passive_threshold) for blink in (False, True)]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (path, attack, kind, who) in enumerate(clips):
            on_clip(f"{path.name} ({n + 1}/{len(clips)})")
            frames, fps = read_clip(path)
            log_dir = Path(tmp) / str(n)
            log_dir.mkdir()
            decisions, ears, blinks = run_kiosk(stage, frames, fps, policies, log_dir)
            for p, ds in zip(policies, decisions):
                first = ds[0] if ds else None
                r = ClipResult(path, kind, attack, who, p.blink_challenge, first.decision if first else "none",
                               first.time if first else math.nan, first.reason if first else "no decision",
                               len(frames) / fps, blinks)
                if p.blink_challenge and not attack:
                    r.ear_trace = ear_trace(ears, fps)
                out.append(r)
    return out
