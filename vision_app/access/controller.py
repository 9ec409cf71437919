"""The kiosk's access controller: the per-kiosk state machine, fed by the face stage, that decides who gets in.

    idle ──face──▶ face_present ──good quality──▶ checking ──all checks pass (+ blink)──▶ granted ─┐
      ▲                 ▲ (face lost / another face)      └─any check fails / timeout──▶ denied ─┤
      └───────────────── cooldown ◀──────────── result_s later ───────────────────────────────┘

Every frame, `update(result)` reads the FaceObservations in result.extras["face"] and follows the largest
face's track. A check starts at its first good frame: the identity is judged once, on the first
`check_frames` good frames (mean similarity over them); the passive score is averaged over every good
frame; movement or a blink, and with the blink challenge a blink (asked for from the start), are
watched until the deadline (policy.py). The first frame on which everything passes grants; a failed
identity or passive check denies at once; missing movement / blink denies at the deadline.
Each decision is written to the access log (hash-chained) and a grant fires the door actuator. If the log
cannot be written the decision is still returned (with log_error); a grant then does not open the door
unless grant_requires_log is off. The GUI only shows `state`, `guidance` and the decisions.
"""
from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import cv2

from vision_app.access.accesslog import AccessLog
from vision_app.access.door import DoorActuator, LogOnlyDoor
from vision_app.access.policy import (FAIL, PASS, AccessPolicy, Evidence, Verdict, check_identity,
                                     guidance_for_quality, judge)
from vision_app.errors import GalleryError
from vision_app.face.observation import FaceObservation, observations
from vision_app.types import FrameResult

log = logging.getLogger(__name__)


class KioskState(str, Enum):
    IDLE = "idle"
    FACE_PRESENT = "face_present"
    CHECKING = "checking"
    GRANTED = "granted"
    DENIED = "denied"
    COOLDOWN = "cooldown"


@dataclass(frozen=True)
class Decision:
    """One access decision. decision: "granted" | "denied"; identity: the person the face matched (on a
    denial too, e.g. a photo of an enrolled person; None if unknown);
    reason: why (for a grant: the checks passed); scores: the numbers behind it; liveness: "live" |
    "not live" | "undecided"; alarm: this denial reached max_failed_attempts; logged / log_seq /
    log_error: the access-log outcome; time: the controller clock (frame timestamp, s)."""

    decision: str
    identity: str | None
    reason: str
    scores: dict[str, float]
    liveness: str
    track_id: int
    kiosk: str
    time: float
    wall_time: str
    alarm: bool = False
    snapshot: str = ""
    logged: bool = False
    log_seq: int | None = None
    log_error: str = ""

    @property
    def granted(self) -> bool:
        return self.decision == "granted"

    def to_json(self) -> dict[str, Any]:
        """{"decision", "identity", "reason", ...} with NaN scores as null."""
        return {"decision": self.decision, "identity": self.identity, "reason": self.reason,
                "liveness": self.liveness, "alarm": self.alarm, "track_id": self.track_id,
                "kiosk": self.kiosk, "time": self.wall_time, "at_s": round(self.time, 3),
                "logged": self.logged,
                "log_error": self.log_error or None, "snapshot": self.snapshot or None,
                "scores": {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4))
                           for k, v in self.scores.items()}}


@dataclass(frozen=True)
class KioskStatus:
    """What the GUI shows: state, banner text, the followed track, progress 0..1 of the current check."""

    state: KioskState
    guidance: str
    track_id: int | None
    progress: float
    failed_attempts: int
    alarm: bool
    last_decision: Decision | None


@dataclass
class _Check:
    track_id: int
    started: float
    blink_base: int
    window: list[FaceObservation] = field(default_factory=list)   # the first check_frames good frames
    passive: list[float] = field(default_factory=list)            # every good frame's real-score
    moved: bool = False
    identity: tuple[str, str | None, str, dict] | None = None     # judged once, on the full window
    verdict: Verdict | None = None


class AccessController:
    """policy: AccessPolicy; access_log: AccessLog or None (no log: every decision has log_error and,
    with grant_requires_log, nothing is granted); door: DoorActuator (default log-only); kiosk_id: written
    with every decision; snapshot_dir: save each decision's frame there (None = off);
    on_decision / on_alarm: optional callbacks (called on the decision thread)."""

    def __init__(self, policy: AccessPolicy, access_log: AccessLog | None, door: DoorActuator | None = None,
                 *, kiosk_id: str = "kiosk-1", snapshot_dir: str | Path | None = None,
                 on_decision: Callable[[Decision], None] | None = None,
                 on_alarm: Callable[[Decision], None] | None = None) -> None:
        self.policy = policy
        self.access_log = access_log
        self.door = door or LogOnlyDoor()
        self.kiosk_id = kiosk_id
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else None
        self.on_decision = on_decision
        self.on_alarm = on_alarm
        self._lock = threading.Lock()
        self._state = KioskState.IDLE
        self._guidance = "Look at the camera"
        self._check: _Check | None = None
        self._present_track: int | None = None
        self._missing = 0
        self._state_since = 0.0
        self._decided: dict[int, float] = {}       # track id → time of its last decision
        self._failures: deque[float] = deque()     # times of recent denials
        self._alarm = False
        self._last: Decision | None = None

    # ---- what the GUI reads -------------------------------------------------------------------------
    @property
    def state(self) -> KioskState:
        return self._state

    @property
    def guidance(self) -> str:
        return self._guidance

    def status(self) -> KioskStatus:
        with self._lock:
            c = self._check
            progress = 0.0
            if self._state == KioskState.CHECKING and c is not None:
                progress = min(1.0, len(c.window) / self.policy.check_frames)
            elif self._state in (KioskState.GRANTED, KioskState.DENIED):
                progress = 1.0
            return KioskStatus(self._state, self._guidance, c.track_id if c else self._present_track,
                               progress, len(self._failures), self._alarm, self._last)

    # ---- the decision loop --------------------------------------------------------------------------
    def update(self, result: FrameResult) -> list[Decision]:
        """Consume one frame's observations; returns the decisions made on this frame (0 or 1)."""
        with self._lock:
            t = float(result.frame.timestamp)
            decision = self._step(t, observations(result.extras), result)
        if decision is not None:
            self._notify(decision)
            return [decision]
        return []

    def _set(self, state: KioskState, t: float, guidance: str) -> None:
        if state != self._state:
            log.debug("kiosk %s: %s -> %s", self.kiosk_id, self._state.value, state.value)
            self._state_since = t
        self._state = state
        self._guidance = guidance

    def _step(self, t: float, faces: tuple[FaceObservation, ...], result: FrameResult) -> Decision | None:
        p = self.policy
        if self._state in (KioskState.GRANTED, KioskState.DENIED):
            if t - self._state_since < p.result_s:
                return None
            self._set(KioskState.COOLDOWN, t, "Please wait")
        if self._state == KioskState.COOLDOWN:
            if t - self._state_since < p.cooldown_s:
                return None
            self._set(KioskState.IDLE, t, "Look at the camera")
        face = self._follow(faces)
        if face is None:
            self._missing += 1
            if self._state != KioskState.IDLE and self._missing > p.lost_frames:
                if self._check is not None:
                    log.info("kiosk %s: track %d left before a decision", self.kiosk_id, self._check.track_id)
                self._check, self._present_track = None, None
                self._set(KioskState.IDLE, t, "Look at the camera")
            return None
        self._missing = 0
        if self._check is not None and face.track_id != self._check.track_id:
            self._check = None  # someone else: start over
        self._present_track = face.track_id
        last = self._decided.get(face.track_id)
        if self._check is None and last is not None and t - last < p.recognition_interval_s:
            self._set(KioskState.FACE_PRESENT, t, "Next person, please")
            return None
        if self._check is None:
            if face.quality is not None:
                self._set(KioskState.FACE_PRESENT, t, guidance_for_quality(face.quality))
                return None
            self._check = _Check(face.track_id, t, face.blink_count)
        return self._checking(t, face, result, self._check)

    def _follow(self, faces: tuple[FaceObservation, ...]) -> FaceObservation | None:
        """The face being checked if it is still there, else the largest face."""
        if not faces:
            return None
        if self._check is not None:
            same = [f for f in faces if f.track_id == self._check.track_id]
            if same:
                return same[0]
        return max(faces, key=lambda f: f.face_size)

    def _checking(self, t: float, face: FaceObservation, result: FrameResult, c: _Check) -> Decision | None:
        p = self.policy
        if face.quality is None:
            if len(c.window) < p.check_frames:
                c.window.append(face)
            c.passive.append(face.passive_score)
        c.moved = c.moved or face.temporal_live is True
        if len(c.window) >= p.check_frames and c.identity is None:
            c.identity = check_identity(c.window, p)
        if c.identity is not None:
            e = Evidence(c.window, c.passive, c.moved, face.blink_count > c.blink_base, t - c.started, face)
            c.verdict = verdict = judge(e, c.identity, p)
            if verdict.status == FAIL:
                return self._decide(t, "denied", verdict, "; ".join(verdict.reasons), result, c)
            if verdict.status == PASS:
                why = "all checks passed, blink seen" if p.blink_challenge else "all checks passed"
                return self._decide(t, "granted", verdict, why, result, c)
        if face.quality is not None:
            guidance = guidance_for_quality(face.quality)
        elif p.blink_challenge and not face.blink_count > c.blink_base:
            guidance = "Blink now"
        else:
            guidance = "Checking… hold still"
        self._set(KioskState.CHECKING, t, guidance)
        if t - c.started >= p.check_timeout_s:
            why = "; ".join(c.verdict.reasons) if c.verdict else (
                f"only {len(c.window)} good frames of {p.check_frames} (" + (face.quality or "face unclear") + ")")
            return self._decide(t, "denied", c.verdict, f"checks not completed within "
                                f"{p.check_timeout_s:g} s: {why}", result, c)
        return None

    def _decide(self, t: float, what: str, verdict: Verdict | None, reason: str, result: FrameResult,
                c: _Check, extra_scores: dict[str, float] | None = None) -> Decision:
        p = self.policy
        identity = verdict.identity if verdict is not None else None
        scores = {**(verdict.scores if verdict is not None else {}), **(extra_scores or {})}
        liveness = verdict.liveness if verdict is not None else "undecided"
        wall = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        alarm = False
        if what == "denied":
            self._failures.append(t)
            while self._failures and t - self._failures[0] > p.alarm_window_s:
                self._failures.popleft()
            if len(self._failures) >= p.max_failed_attempts:
                alarm = True
                reason += f"; ALARM: {len(self._failures)} failed attempts within {p.alarm_window_s:g} s"
                self._failures.clear()
        snapshot = self._snapshot(result, what, c.track_id, wall)
        entry_error, seq = "", None
        if self.access_log is None:
            entry_error = "no access log configured"
        else:
            try:
                entry = self.access_log.append(kiosk=self.kiosk_id, decision=what, identity=identity,
                                               reason=reason, scores=scores, liveness=liveness, alarm=alarm,
                                               snapshot=snapshot)
                seq = entry.seq
            except GalleryError as exc:
                entry_error = str(exc)
                log.error("kiosk %s: decision NOT logged: %s", self.kiosk_id, exc)
        if what == "granted" and entry_error and p.grant_requires_log:
            what = "denied"
            reason = f"access log unavailable ({entry_error}); the door stays closed. {reason}"
        d = Decision(what, identity, reason, scores, liveness, c.track_id, self.kiosk_id, t, wall, alarm,
                     snapshot, not entry_error, seq, entry_error)
        if d.granted:
            self._failures.clear()
            self._alarm = False
            try:
                self.door.open({"identity": identity, "kiosk": self.kiosk_id, "time": wall,
                                "log_seq": seq})
            except Exception as exc:  # a broken actuator must not stop the kiosk; the grant is logged
                log.error("kiosk %s: door actuator %s failed: %s", self.kiosk_id, self.door.name, exc)
        self._alarm = self._alarm or alarm
        self._decided = {k: v for k, v in self._decided.items() if t - v < p.recognition_interval_s}
        self._decided[c.track_id] = t
        self._check = None
        self._last = d
        banner = f"ACCESS GRANTED — {identity}" if d.granted else (
            "ACCESS DENIED — alarm raised" if alarm else "ACCESS DENIED")
        self._set(KioskState.GRANTED if d.granted else KioskState.DENIED, t, banner)
        log.info("kiosk %s: %s %s (%s)", self.kiosk_id, d.decision.upper(), identity or "-", reason)
        return d

    def _snapshot(self, result: FrameResult, what: str, track: int, wall: str) -> str:
        if self.snapshot_dir is None:
            return ""
        try:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.snapshot_dir / f"{wall.replace(':', '').replace('.', '_')}_{what}_t{track}.jpg"
            if not cv2.imwrite(str(path), result.frame.image):
                raise OSError("OpenCV could not write the JPEG")
            return str(path)
        except OSError as exc:
            log.warning("kiosk %s: snapshot not saved in %s: %s", self.kiosk_id, self.snapshot_dir, exc)
            return ""

    def _notify(self, d: Decision) -> None:
        for fn in ([self.on_decision] if self.on_decision else []) + (
                [self.on_alarm] if d.alarm and self.on_alarm else []):
            try:
                fn(d)
            except Exception:
                log.exception("kiosk %s: decision callback failed", self.kiosk_id)

    @classmethod
    def from_config(cls, cfg: Any, *, log_path: str | None = None, blink_challenge: bool | None = None,
                    **kwargs: Any) -> "AccessController":
        """From an AppConfig: [access] policy, access log (log_path or access.log_db), door, snapshots."""
        from vision_app.access.accesslog import default_log_path
        from vision_app.access.door import build_door

        a = cfg.access
        access_log = AccessLog(default_log_path(log_path or a.log_db))
        try:
            door = build_door(a)
        except Exception:
            access_log.close()
            raise
        policy = AccessPolicy.from_config(a, blink_challenge, cfg.face.passive_threshold)
        return cls(policy, access_log, door, kiosk_id=a.kiosk_id,
                   snapshot_dir=a.snapshot_dir or None, **kwargs)

    def close(self) -> None:
        """Stop the door's worker and close the access log."""
        self.door.close()
        if self.access_log is not None:
            self.access_log.close()
