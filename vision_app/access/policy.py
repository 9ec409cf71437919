"""The kiosk's access policy: which evidence, over how many frames, lets someone in.

Pure functions over the face stage's per-frame FaceObservation of ONE tracked face; the state machine
(controller.py) decides when to call them. Each check answers pass, fail or pending (not enough evidence
yet), with a reason and the numbers behind it.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from vision_app.face.observation import FaceObservation

PASS, FAIL, PENDING = "pass", "fail", "pending"


@dataclass(frozen=True)
class AccessPolicy:
    """check_frames: good frames judged together; min_match_ratio: share of them matching one person;
    min_live_ratio: share the passive check calls real; blink_challenge: ask for a blink before granting;
    blink_timeout_s: time to blink once asked; check_timeout_s: a check not concluded by then is denied;
    result_s / cooldown_s: how long the verdict shows, then how long no new check starts;
    recognition_interval_s: the same track is not checked again within this time; lost_frames: frames
    without the face before a check is abandoned; max_failed_attempts within alarm_window_s raise the
    alarm; grant_requires_log: a grant that cannot be written to the access log does not open the door."""

    check_frames: int = 8
    min_match_ratio: float = 0.75
    min_live_ratio: float = 0.75
    blink_challenge: bool = True
    blink_timeout_s: float = 5.0
    check_timeout_s: float = 10.0
    result_s: float = 2.0
    cooldown_s: float = 1.0
    recognition_interval_s: float = 10.0
    lost_frames: int = 5
    max_failed_attempts: int = 3
    alarm_window_s: float = 120.0
    grant_requires_log: bool = True

    @classmethod
    def from_config(cls, access_cfg: Any, blink_challenge: bool | None = None) -> "AccessPolicy":
        """From the [access] config section; blink_challenge overrides the config's value."""
        names = cls.__dataclass_fields__
        values = {n: getattr(access_cfg, n) for n in names}
        if blink_challenge is not None:
            values["blink_challenge"] = blink_challenge
        return cls(**values)


@dataclass(frozen=True)
class Verdict:
    """Outcome of the window checks. status: pass | fail | pending; identity: the person matched in at
    least min_match_ratio of the frames (None otherwise), also when a liveness check fails; reasons: why
    it fails / is pending; liveness: "live" | "not live" | "undecided"; scores: the numbers for the log."""

    status: str
    identity: str | None
    reasons: tuple[str, ...]
    liveness: str
    scores: dict[str, float]


def _mean(xs: Sequence[float]) -> float:
    vals = [x for x in xs if not math.isnan(x)]
    return sum(vals) / len(vals) if vals else math.nan


def check_identity(window: Sequence[FaceObservation], p: AccessPolicy) -> tuple[str, str | None, str, dict]:
    counts = Counter(o.identity for o in window if o.identity is not None)
    sims = [o.similarity for o in window]
    name, n = counts.most_common(1)[0] if counts else (None, 0)
    ratio = n / len(window)
    named = [o.similarity for o in window if name is not None and o.identity == name]
    scores = {"match_ratio": ratio, "similarity": _mean(named) if named else _mean(sims),
              "similarity_max": max((s for s in sims if not math.isnan(s)), default=math.nan)}
    if name is not None and ratio >= p.min_match_ratio:
        return PASS, name, "", scores
    if name is None:
        best = max((o.best_name for o in window if o.best_name), key=lambda b: sum(
            o.best_name == b for o in window), default="")
        why = f"unknown face (best similarity {scores['similarity_max']:.2f}" + (
            f", closest {best})" if best else ")")
        return FAIL, None, why, scores
    return PENDING, None, f"identity not consistent ({name} in {n} of {len(window)} frames)", scores


def check_passive(window: Sequence[FaceObservation], p: AccessPolicy) -> tuple[str, str, dict]:
    live = sum(bool(o.passive_live) for o in window) / len(window)
    scores = {"passive_live_ratio": live, "passive_score": _mean([o.passive_score for o in window])}
    if live >= p.min_live_ratio:
        return PASS, "", scores
    if live <= 1.0 - p.min_live_ratio:
        return FAIL, f"presentation attack suspected (passive check: real in {live:.0%} of frames, " \
                     f"score {scores['passive_score']:.2f})", scores
    return PENDING, f"passive check undecided (real in {live:.0%} of frames)", scores


def check_temporal(latest: FaceObservation) -> tuple[str, str, dict]:
    scores = {"motion": latest.motion, "blinks": float(latest.blink_count)}
    if latest.temporal_live is True:
        return PASS, "", scores
    if latest.temporal_live is False:
        return FAIL, (f"no movement and no blink in {latest.window_s:.1f} s (motion {latest.motion:.3f}): "
                      f"a photo or a screen?"), scores
    return PENDING, "temporal check still collecting frames", scores


def judge(window: Sequence[FaceObservation], p: AccessPolicy) -> Verdict:
    """All window checks over the last check_frames good observations of one track (oldest first).
    Any fail → fail (every failing reason listed, liveness first); all pass → pass; else pending."""
    id_status, identity, id_why, id_scores = check_identity(window, p)
    pa_status, pa_why, pa_scores = check_passive(window, p)
    te_status, te_why, te_scores = check_temporal(window[-1])
    scores = {**id_scores, **pa_scores, **te_scores}
    checks = [(pa_status, pa_why), (te_status, te_why), (id_status, id_why)]
    if PASS == pa_status == te_status:
        liveness = "live"
    elif FAIL in (pa_status, te_status):
        liveness = "not live"
    else:
        liveness = "undecided"
    # identity is kept on a denial too (the log shows whose face a photo attack used)
    if any(s == FAIL for s, _ in checks):
        return Verdict(FAIL, identity, tuple(w for s, w in checks if s == FAIL), liveness, scores)
    if all(s == PASS for s, _ in checks):
        return Verdict(PASS, identity, (), liveness, scores)
    return Verdict(PENDING, identity, tuple(w for s, w in checks if s == PENDING), liveness, scores)


def guidance_for_quality(reason: str) -> str:
    """A short instruction for the banner from a quality-gate reason (quality.py's wording)."""
    r = reason.lower()
    if r.startswith("too small"):
        return "Step closer"
    if r.startswith("blurry"):
        return "Hold still"
    return "Look at the camera"
