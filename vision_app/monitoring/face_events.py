"""Who appeared: person entered / unknown face, from one source's results in frame order.

`EventDetector` prefers the face stage's per-track observations (vision_app.face.observation), falls back
to identities on result.faces, and without a face pipeline announces tracked 'person' detections (the
monitor window's list; `faces_only` leaves those out). A track must be seen on `min_frames` frames before
it is announced (no events from one-frame flickers); the same person is announced again only after
`cooldown_s` seconds. `FaceEvents` turns its findings into face_recognised / face_unknown events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vision_app.face.observation import observations
from vision_app.monitoring.events import Event, face_event
from vision_app.types import FrameResult


@dataclass(frozen=True)
class Found:
    kind: str                                  # person_entered | unknown_face
    text: str
    box: tuple[float, float, float, float] | None
    identity: str | None = None                # the enrolled person (person_entered from a face)
    track_id: int = -1
    similarity: float = math.nan


class EventDetector:
    def __init__(self, cooldown_s: float, min_frames: int = 3, faces_only: bool = False) -> None:
        self.cooldown_s = cooldown_s
        self.min_frames = max(1, min_frames)
        self.faces_only = faces_only
        self._seen: dict[Any, int] = {}            # track key → frames seen
        self._last_seen: dict[Any, float] = {}     # track key → last frame time
        self._announced: dict[Any, str] = {}       # track key → what was announced for it
        self._last_named: dict[str, float] = {}    # name → when last announced

    def _track(self, key: Any, now: float) -> int:
        self._seen[key] = self._seen.get(key, 0) + 1
        self._last_seen[key] = now
        return self._seen[key]

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._last_seen.items() if now - t > max(self.cooldown_s, 2.0)]
        for k in stale:
            self._seen.pop(k, None)
            self._last_seen.pop(k, None)
            self._announced.pop(k, None)

    def _named(self, key: Any, name: str, box: Any, now: float, out: list[Found], tid: int, sim: float) -> None:
        if self._announced.get(key) == name:
            return
        self._announced[key] = name
        if now - self._last_named.get(name, -1e18) >= self.cooldown_s:
            self._last_named[name] = now
            out.append(Found("person_entered", f"person entered: {name}", box, name, tid, sim))

    def _once(self, key: Any, kind: str, text: str, box: Any, out: list[Found], tid: int) -> None:
        if key not in self._announced:
            self._announced[key] = ""
            out.append(Found(kind, text, box, None, tid))

    def update(self, result: FrameResult) -> list[Found]:
        now = result.frame.timestamp
        out: list[Found] = []
        obs = observations(result.extras)
        if obs:
            for o in obs:
                key: tuple[str, Any] = ("track", o.track_id)
                if self._track(key, now) < self.min_frames:
                    continue
                if o.identity:
                    self._named(key, o.identity, o.xyxy, now, out, o.track_id, o.similarity)
                else:
                    self._once(key, "unknown_face", "unknown face", o.xyxy, out, o.track_id)
        elif result.faces is not None and result.faces.identity is not None:
            faces, names, tids = result.faces, result.faces.identity, result.faces.tracker_id
            for i, name in enumerate(names):
                tid = None if tids is None else int(tids[i])
                key = ("face", tid if tid is not None else name or f"unknown{i}")
                if self._track(key, now) < self.min_frames:
                    continue
                box = tuple(float(v) for v in faces.xyxy[i])
                sim = float(faces.match_score[i]) if faces.match_score is not None else math.nan
                if name:
                    self._named(key, name, box, now, out, -1 if tid is None else tid, sim)
                else:
                    self._once(key, "unknown_face", "unknown face", box, out, -1 if tid is None else tid)
        elif not self.faces_only and result.detections is not None and result.detections.tracker_id is not None:
            dets, track_ids = result.detections, result.detections.tracker_id
            for i in range(len(dets)):
                tid = int(track_ids[i])
                if dets.label(i) != "person" or tid < 0:
                    continue
                key = ("person", tid)
                if self._track(key, now) >= self.min_frames:
                    self._once(key, "person_entered", f"person entered (track #{tid})",
                               tuple(float(v) for v in dets.xyxy[i]), out, tid)
        self._prune(now)
        return out


class FaceEvents:
    """result → face_recognised / face_unknown events of one source (the zone step calls it)."""

    def __init__(self, source: str, cooldown_s: float, min_frames: int) -> None:
        self.source = source
        self.detector = EventDetector(cooldown_s, min_frames, faces_only=True)

    def __call__(self, result: FrameResult) -> list[Event]:
        return [face_event(self.source, result.frame.index, identity=f.identity, similarity=f.similarity,
                           xyxy=f.box if f.box is not None else (math.nan,) * 4, track_id=f.track_id)
                for f in self.detector.update(result)]
