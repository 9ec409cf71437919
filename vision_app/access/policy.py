"""The kiosk's access policy: which evidence, over how many frames, lets someone in.

Pure functions over the face stage's FaceObservations of ONE tracked face during one check; the state
machine (controller.py) decides when to call them. Each check answers pass, fail or pending.

- identity, judged once on the first `check_frames` good frames: each frame's candidates (the best
  people and their similarities, best template each, so every enrolled template counts) are averaged
  over the window; the best mean must reach the matcher's threshold and that person must be the frame's
  best candidate in at least min_match_ratio of the frames. One window, one verdict: a stranger does not
  get a new try with every frame.
- passive liveness: the mean MiniFASNet real-score over every good frame of the check must reach
  passive_threshold (a photo or screen scores ~0 on every frame; a live face dips only briefly).
- temporal liveness: non-rigid movement or a blink seen at any time since the check started; a calm
  person is watched until the deadline (check_timeout_s), not refused after the first quiet window.
- blink challenge (optional): a blink after the check started (the banner asks for it from the start),
  within blink_timeout_s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from vision_app.face.observation import FaceObservation

PASS, FAIL, PENDING = "pass", "fail", "pending"


@dataclass(frozen=True)
class AccessPolicy:
    """check_frames: good frames the identity is judged on; min_match_ratio: share of them in which the
    person is the best candidate; passive_threshold: least mean passive real-score (config
    face.passive_threshold); blink_challenge: ask for a blink before granting; blink_timeout_s: time to
    blink once asked (asked when the check starts); check_timeout_s: the deadline, a check not passed by
    then is denied; result_s / cooldown_s: how long the verdict shows, then how long no new check starts;
    recognition_interval_s: the same track is not checked again within this time; lost_frames: frames
    without the face before a check is abandoned; max_failed_attempts within alarm_window_s raise the
    alarm; grant_requires_log: a grant that cannot be written to the access log does not open the door."""

    check_frames: int = 8
    min_match_ratio: float = 0.75
    passive_threshold: float = 0.5
    blink_challenge: bool = True
    blink_timeout_s: float = 8.0
    check_timeout_s: float = 8.0
    result_s: float = 2.0
    cooldown_s: float = 1.0
    recognition_interval_s: float = 10.0
    lost_frames: int = 5
    max_failed_attempts: int = 3
    alarm_window_s: float = 120.0
    grant_requires_log: bool = True

    @classmethod
    def from_config(cls, access_cfg: Any, blink_challenge: bool | None = None,
                    passive_threshold: float | None = None) -> "AccessPolicy":
        """From the [access] config section; blink_challenge overrides the config's value;
        passive_threshold: config face.passive_threshold (default 0.5)."""
        names = [n for n in cls.__dataclass_fields__ if n != "passive_threshold"]
        values: dict[str, Any] = {n: getattr(access_cfg, n) for n in names}
        if blink_challenge is not None:
            values["blink_challenge"] = blink_challenge
        if passive_threshold is not None:
            values["passive_threshold"] = float(passive_threshold)
        return cls(**values)


@dataclass(frozen=True)
class Verdict:
    """Outcome of the checks. status: pass | fail | pending; identity: the person the window matched
    (None otherwise), also when a liveness check fails; reasons: why it fails / is pending; liveness:
    "live" | "not live" | "undecided"; scores: the numbers for the log."""

    status: str
    identity: str | None
    reasons: tuple[str, ...]
    liveness: str
    scores: dict[str, float]


@dataclass(frozen=True)
class Evidence:
    """What one check has seen so far. window: the first check_frames good observations (identity);
    passive: real-scores of every good frame; moved: movement or a blink seen since the check started;
    blinked: a blink since the check started; elapsed_s: time since it started; latest: this frame."""

    window: Sequence[FaceObservation]
    passive: Sequence[float]
    moved: bool
    blinked: bool
    elapsed_s: float
    latest: FaceObservation


def _mean(xs: Sequence[float]) -> float:
    vals = [x for x in xs if not math.isnan(x)]
    return sum(vals) / len(vals) if vals else math.nan


def check_identity(window: Sequence[FaceObservation], p: AccessPolicy) -> tuple[str, str | None, str, dict]:
    """The window's identity: best mean similarity over the frames (a person missing from a frame's
    candidates counts 0 there), against the frames' matcher threshold."""
    frames = [o for o in window if o.candidates]
    thresholds = [o.match_threshold for o in frames if not math.isnan(o.match_threshold)]
    if not frames or not thresholds:
        return FAIL, None, "unknown face (not identified: no gallery or no match)", \
            {"similarity": math.nan, "match_ratio": 0.0}
    names = {name for o in frames for name, _ in o.candidates}
    means = {n: sum(dict(o.candidates).get(n, 0.0) for o in frames) / len(frames) for n in names}
    best = max(sorted(names), key=lambda n: means[n])
    top = sum(o.candidates[0][0] == best for o in frames) / len(frames)
    threshold = max(thresholds)
    sims = [dict(o.candidates).get(best, 0.0) for o in frames]
    scores = {"similarity": means[best], "similarity_min": min(sims), "match_ratio": top,
              "threshold": threshold, "frames": float(len(frames))}
    if means[best] < threshold:
        return FAIL, None, (f"unknown face (mean similarity {means[best]:.2f} over {len(frames)} frames < "
                            f"{threshold:.2f}, closest {best})"), scores
    if top < p.min_match_ratio:
        return FAIL, None, (f"identity not consistent ({best} best in {round(top * len(frames))} of "
                            f"{len(frames)} frames)"), scores
    return PASS, best, "", scores


def check_passive(scores_seen: Sequence[float], p: AccessPolicy) -> tuple[str, str, dict]:
    mean = _mean(scores_seen)
    live = [s >= p.passive_threshold for s in scores_seen if not math.isnan(s)]
    scores = {"passive_score": mean, "passive_live_ratio": sum(live) / len(live) if live else 0.0}
    if not math.isnan(mean) and mean >= p.passive_threshold:
        return PASS, "", scores
    return FAIL, (f"presentation attack suspected (passive score {mean:.2f} over {len(live)} frames, needs "
                  f"{p.passive_threshold:.2f})"), scores


def check_temporal(e: Evidence, p: AccessPolicy) -> tuple[str, str, dict]:
    scores = {"motion": e.latest.motion, "blinks": float(e.latest.blink_count)}
    if e.moved:
        return PASS, "", scores
    if e.elapsed_s >= p.check_timeout_s:
        return FAIL, (f"no movement and no blink in {e.elapsed_s:.1f} s (motion {e.latest.motion:.3f}): "
                      f"a photo or a screen?"), scores
    return PENDING, "waiting for movement or a blink", scores


def check_blink(e: Evidence, p: AccessPolicy) -> tuple[str, str]:
    if not p.blink_challenge or e.blinked:
        return PASS, ""
    if e.elapsed_s >= p.blink_timeout_s:
        return FAIL, f"no blink within {p.blink_timeout_s:g} s of being asked"
    return PENDING, "waiting for a blink"


def judge(e: Evidence, identity: tuple[str, str | None, str, dict], p: AccessPolicy) -> Verdict:
    """All checks for one track's evidence; identity: check_identity's answer on the check's window.
    Any fail → fail (every failing reason listed, liveness first); all pass → pass; else pending."""
    id_status, who, id_why, id_scores = identity
    pa_status, pa_why, pa_scores = check_passive(e.passive, p)
    te_status, te_why, te_scores = check_temporal(e, p)
    bl_status, bl_why = check_blink(e, p)
    scores = {**id_scores, **pa_scores, **te_scores}
    if PASS == pa_status == te_status:
        liveness = "live"
    elif FAIL in (pa_status, te_status):
        liveness = "not live"
    else:
        liveness = "undecided"
    checks = [(pa_status, pa_why), (te_status, te_why), (id_status, id_why), (bl_status, bl_why)]
    # identity is kept on a denial too (the log shows whose face a photo attack used)
    if any(s == FAIL for s, _ in checks):
        return Verdict(FAIL, who, tuple(w for s, w in checks if s == FAIL), liveness, scores)
    if all(s == PASS for s, _ in checks):
        return Verdict(PASS, who, (), liveness, scores)
    return Verdict(PENDING, who, tuple(w for s, w in checks if s == PENDING), liveness, scores)


def guidance_for_quality(reason: str) -> str:
    """A short instruction for the banner from a quality-gate reason (quality.py's wording)."""
    r = reason.lower()
    if r.startswith("too small"):
        return "Step closer"
    if r.startswith("blurry"):
        return "Hold still"
    return "Look at the camera"
