"""Monitoring events: what happened, on which source, with what. One JSON object per event on MQTT.

Kinds: object_entered / object_left (a polygon zone), object_crossed (a counting line, direction in /
out), face_recognised / face_unknown, access_granted / access_denied. Payloads never carry embeddings,
and an unknown face carries no name (not even the best candidate below the threshold).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

EVENTS_EXTRAS_KEY = "events"  # result.extras[...]: tuple[Event, ...] of this frame
ZONES_EXTRAS_KEY = "zones"    # result.extras[...]: ZoneView of this frame (what is drawn)

OBJECT_KINDS = ("object_entered", "object_left", "object_crossed")
FACE_KINDS = ("face_recognised", "face_unknown")
ACCESS_KINDS = ("access_granted", "access_denied")


def utc_now() -> str:
    """Wall-clock time as ISO 8601 UTC with milliseconds: 2024-05-01T12:00:00.123Z."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 4)
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Event:
    """kind: one of the kinds above; source: the source's name (as in the topics); frame: the frame
    index it happened on (-1 when not tied to a frame); time: wall clock (utc_now()); data: the
    kind's fields (label, score, box, track_id, zone, direction, identity, reason, kiosk ...)."""

    kind: str
    source: str
    frame: int
    data: Mapping[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=utc_now)
    snapshot_ok: bool = True  # False: never send a picture with it (unknown people)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "time": self.time, "frame": self.frame,
                **_clean(dict(self.data))}


def box(xyxy: Any) -> list[float]:
    return [round(float(v), 1) for v in xyxy]


def object_event(kind: str, source: str, frame: int, *, zone: str, label: str, score: float,
                 xyxy: Any, track_id: int, direction: str | None = None) -> Event:
    data: dict[str, Any] = {"zone": zone, "label": label, "score": round(float(score), 3), "box": box(xyxy),
                            "track_id": int(track_id)}
    if direction is not None:
        data["direction"] = direction
    return Event(kind, source, frame, data)


def face_event(source: str, frame: int, *, identity: str | None, similarity: float, xyxy: Any,
               track_id: int) -> Event:
    """face_recognised (identity and similarity) or face_unknown (box and track only: no name, no score
    that could hint at one, never a picture)."""
    if identity:
        return Event("face_recognised", source, frame, {"identity": identity, "similarity": float(similarity),
                                                        "box": box(xyxy), "track_id": int(track_id)})
    return Event("face_unknown", source, frame, {"box": box(xyxy), "track_id": int(track_id)},
                 snapshot_ok=False)


def public_reason(reason: str, identity: str | None) -> str:
    """The reason as published: for a face that matched nobody, without its parenthesised details, which
    may name the closest enrolled person ("unknown face (best similarity .31, closest Ann)" → "unknown
    face"); the access log keeps the full text."""
    return reason if identity else re.sub(r"\s*\([^()]*\)", "", reason)


def access_event(source: str, decision: Any, frame: int = -1) -> Event:
    """An AccessController Decision: granted / denied with the reason and kiosk id; the identity only when
    the face matched an enrolled person; a picture only then."""
    identity = getattr(decision, "identity", None) or None
    data = {"decision": decision.decision, "reason": public_reason(decision.reason, identity),
            "kiosk": decision.kiosk,
            "identity": identity, "track_id": int(decision.track_id), "liveness": decision.liveness,
            "alarm": bool(decision.alarm)}
    return Event(f"access_{decision.decision}", source, frame, data, snapshot_ok=identity is not None)
