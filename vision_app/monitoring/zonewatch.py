"""One source's zones and counting lines over time: tracked detections in, enter / leave / cross events out.

`ZoneWatch.update(result)` runs once per result in frame order (on the runner thread, after the pipeline).
A track inside a polygon (its anchor on the polygon) that was not inside before has entered; one that is
outside again, or unseen for `lost_frames` results, has left. Lines count crossings per track and class.
Zones given as fractions are placed on the first frame and again whenever the frame size changes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vision_app.monitoring.config import LineConfig, SourceConfig, ZoneConfig
from vision_app.monitoring.events import Event, object_event
from vision_app.monitoring.zones import LineZone, PolygonZone, to_pixels
from vision_app.types import Detections, FrameResult


@dataclass(frozen=True)
class ZoneView:
    """What is drawn: polygons as (name, (K, 2) int32 points, watched objects inside in this frame); lines
    as (name, start, end, crossings in, crossings out) in pixels of the frame they were placed on."""

    polygons: tuple[tuple[str, NDArray[np.int32], int], ...]
    lines: tuple[tuple[str, NDArray[np.float64], NDArray[np.float64], int, int], ...]


@dataclass
class _Sighting:
    seen: int            # result counter when last seen
    label: str
    score: float
    xyxy: NDArray[np.float32]


class _Polygon:
    def __init__(self, cfg: ZoneConfig) -> None:
        self.cfg = cfg
        self.zone: PolygonZone | None = None
        self.members: dict[int, str] = {}           # track id → label, inside (until it leaves or is lost)
        self.current = 0                            # watched detections inside in the latest frame
        self.entered: Counter[str] = Counter()
        self.left: Counter[str] = Counter()

    def place(self, w: int, h: int) -> None:
        self.zone = PolygonZone(to_pixels(self.cfg.points, w, h), (w, h), self.cfg.anchor)


class _Line:
    def __init__(self, cfg: LineConfig) -> None:
        self.cfg = cfg
        self.zone: LineZone | None = None
        self.crossed_in: Counter[str] = Counter()
        self.crossed_out: Counter[str] = Counter()

    def place(self, w: int, h: int) -> None:
        (start, end) = to_pixels([self.cfg.start, self.cfg.end], w, h)
        self.zone = LineZone(start, end, self.cfg.anchors, self.cfg.min_crossing_frames)


def _watched(dets: Detections, classes: list[str]) -> NDArray[np.bool_]:
    """(N,) tracked detections of the watched classes."""
    ok = np.ones(len(dets), bool) if dets.tracker_id is None else dets.tracker_id >= 0
    if classes:
        ok &= np.array([dets.label(i) in classes for i in range(len(dets))], bool)
    return ok


class ZoneWatch:
    def __init__(self, source: str, cfg: SourceConfig, lost_frames: int) -> None:
        self.source = source
        self.polygons = [_Polygon(z) for z in cfg.zones]
        self.lines = [_Line(ln) for ln in cfg.lines]
        self.lost_frames = lost_frames
        self._size: tuple[int, int] | None = None
        self._n = 0
        self._tracks: dict[int, _Sighting] = {}

    def watched_classes(self) -> list[str]:
        """Labels the polygon zones watch ("object" stands for a zone that watches every class)."""
        out: list[str] = []
        for p in self.polygons:
            for c in p.cfg.classes or ["object"]:
                if c not in out:
                    out.append(c)
        return out

    def occupancy(self) -> dict[str, int]:
        """Watched class → tracked objects inside at least one zone now ("object": of any class)."""
        inside: dict[int, str] = {}
        for p in self.polygons:
            inside.update(p.members)
        counts = Counter(inside.values())
        out = {c: counts.get(c, 0) for c in self.watched_classes()}
        if "object" in out:
            out["object"] = len(inside)
        return out

    def _place(self, w: int, h: int) -> None:
        for p in self.polygons:
            p.place(w, h)
        for ln in self.lines:
            ln.place(w, h)
        self._size = (w, h)

    def update(self, result: FrameResult) -> tuple[list[Event], ZoneView]:
        frame = result.frame
        if self._size != (frame.width, frame.height):
            self._place(frame.width, frame.height)
        self._n += 1
        events: list[Event] = []
        for p in self.polygons:
            p.current = 0
        dets = result.detections
        if dets is not None and dets.tracker_id is not None and len(dets):
            for i in np.flatnonzero(dets.tracker_id >= 0).tolist():
                self._tracks[int(dets.tracker_id[i])] = _Sighting(self._n, dets.label(i), float(dets.confidence[i]),
                                                                  dets.xyxy[i].copy())
            for p in self.polygons:
                self._polygon(p, dets, frame.index, events)
            for ln in self.lines:
                self._line(ln, dets, frame.index, events)
        self._expire(frame.index, events)
        return events, self.view()

    def _event(self, kind: str, zone: str, tid: int, frame: int, direction: str | None = None) -> Event:
        s = self._tracks[tid]
        return object_event(kind, self.source, frame, zone=zone, label=s.label, score=s.score, xyxy=s.xyxy,
                            track_id=tid, direction=direction)

    def _polygon(self, p: _Polygon, dets: Detections, frame: int, events: list[Event]) -> None:
        if p.zone is None or dets.tracker_id is None:
            return
        watched = _watched(dets, p.cfg.classes)
        inside = watched & p.zone.trigger(dets)
        p.current = int(inside.sum())
        for i in np.flatnonzero(watched).tolist():
            tid = int(dets.tracker_id[i])
            if inside[i] and tid not in p.members:
                p.members[tid] = dets.label(i)
                p.entered[dets.label(i)] += 1
                events.append(self._event("object_entered", p.cfg.name, tid, frame))
            elif not inside[i] and tid in p.members:
                p.left[p.members.pop(tid)] += 1
                events.append(self._event("object_left", p.cfg.name, tid, frame))

    def _line(self, ln: _Line, dets: Detections, frame: int, events: list[Event]) -> None:
        sub = dets[_watched(dets, ln.cfg.classes)]
        if ln.zone is None or sub.tracker_id is None:
            return
        crossed_in, crossed_out = ln.zone.trigger(sub)
        for i in np.flatnonzero(crossed_in | crossed_out).tolist():
            label, direction = sub.label(i), ("in" if crossed_in[i] else "out")
            (ln.crossed_in if direction == "in" else ln.crossed_out)[label] += 1
            events.append(self._event("object_crossed", ln.cfg.name, int(sub.tracker_id[i]), frame, direction))

    def _expire(self, frame: int, events: list[Event]) -> None:
        gone = [tid for tid, s in self._tracks.items() if self._n - s.seen >= self.lost_frames]
        for tid in gone:
            for p in self.polygons:
                if tid in p.members:
                    p.left[p.members.pop(tid)] += 1
                    events.append(self._event("object_left", p.cfg.name, tid, frame))
            for ln in self.lines:
                if ln.zone is not None:
                    ln.zone.forget([tid])
            del self._tracks[tid]

    def view(self) -> ZoneView:
        polys = tuple((p.cfg.name, p.zone.polygon, p.current) for p in self.polygons if p.zone is not None)
        lines = tuple((ln.cfg.name, ln.zone.start, ln.zone.end, sum(ln.crossed_in.values()),
                       sum(ln.crossed_out.values())) for ln in self.lines if ln.zone is not None)
        return ZoneView(polys, lines)

    def summary(self) -> dict[str, Any]:
        """Counts for the run stats: per zone entered / left / inside now, per line in / out, by class."""
        out: dict[str, Any] = {}
        for p in self.polygons:
            out[p.cfg.name] = {"type": "polygon", "entered": sum(p.entered.values()), "left": sum(p.left.values()),
                               "inside": len(p.members),
                               "by_class": {c: {"entered": p.entered[c], "left": p.left[c]}
                                            for c in sorted(set(p.entered) | set(p.left))}}
        for ln in self.lines:
            out[ln.cfg.name] = {"type": "line", "in": sum(ln.crossed_in.values()), "out": sum(ln.crossed_out.values()),
                                "by_class": {c: {"in": ln.crossed_in[c], "out": ln.crossed_out[c]}
                                             for c in sorted(set(ln.crossed_in) | set(ln.crossed_out))}}
        return out
