"""Zones and counting lines: supervision's PolygonZone / LineZone semantics, and enter / leave / cross events
over time (ZoneWatch), on hand-made tracks whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from vision_app.draw import LINE_COLOR, ZONE_COLOR, draw_zones
from vision_app.monitoring.config import LineConfig, SourceConfig, ZoneConfig
from vision_app.monitoring.events import EVENTS_EXTRAS_KEY
from vision_app.monitoring.report import SourceStep
from vision_app.monitoring.zones import LineZone, PolygonZone, anchor_points, to_pixels
from vision_app.monitoring.zonewatch import ZoneWatch
from vision_app.types import Detections, Frame, FrameResult

NAMES = ("person", "bicycle", "car")


def dets(*rows: tuple[float, float, float, float, int, int]) -> Detections:
    """rows of (x1, y1, x2, y2, class_id, track_id)."""
    a = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(a[:, :4].copy(), np.full(len(a), 0.9, np.float32), a[:, 4].astype(np.int32),
                      a[:, 5].astype(np.int32), NAMES)


def result(i: int, d: Detections | None, size: tuple[int, int] = (200, 100)) -> FrameResult:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    return FrameResult(Frame(img, i, i / 25, "test"), img, detections=d)


@pytest.mark.parametrize("anchor, expected", [
    ("center", (15.0, 30.0)), ("bottom_center", (15.0, 40.0)), ("top_left", (10.0, 20.0)),
    ("bottom_right", (20.0, 40.0)), ("center_left", (10.0, 30.0)),
])
def test_anchor_points(anchor: str, expected: tuple[float, float]) -> None:
    assert tuple(anchor_points(np.array([[10, 20, 20, 40]], np.float32), anchor)[0]) == expected


def test_fractions_are_scaled_and_pixels_kept() -> None:
    assert to_pixels([[0.5, 0.25], [1.0, 1.0]], 640, 272).tolist() == [[320.0, 68.0], [640.0, 272.0]]
    assert to_pixels([[0, 0], [640, 100]], 640, 272).tolist() == [[0.0, 0.0], [640.0, 100.0]]


@pytest.mark.parametrize("box, inside", [
    ((40, 10, 60, 50), True),     # bottom centre (50, 50) in the square 20..80
    ((40, 60, 60, 90), False),    # bottom centre (50, 90) below it
    ((10, 0, 90, 79), True),      # box larger than the zone: only its anchor matters
    ((0, 10, 15, 50), False),     # anchor (7.5, 50) left of it
    ((-50, -50, -10, -10), False),  # off-frame boxes are clipped, not an error
])
def test_polygon_zone_uses_the_bottom_centre(box: tuple[int, int, int, int], inside: bool) -> None:
    zone = PolygonZone(np.array([[20, 20], [80, 20], [80, 80], [20, 80]], np.float64), (100, 100))
    assert zone.trigger(dets((*box, 0, 1))).tolist() == [inside]


def test_polygon_zone_ignores_nan_boxes() -> None:
    zone = PolygonZone(np.array([[0, 0], [99, 0], [99, 99], [0, 99]], np.float64), (100, 100))
    assert zone.trigger(dets((np.nan, 10, 20, 30, 0, 1))).tolist() == [False]


def crossing(line: LineZone, boxes: list[tuple[float, float, float, float]], tid: int = 1) -> list[str]:
    out = []
    for b in boxes:
        cin, cout = line.trigger(dets((*b, 2, tid)))
        out.append("in" if cin[0] else "out" if cout[0] else "")
    return out


def test_line_counts_a_crossing_once_with_its_direction() -> None:
    # vertical line x = 100 from top to bottom: "in" is the left-hand side looking down = screen right
    line = LineZone(np.array([100.0, 0.0]), np.array([100.0, 200.0]))
    moving_right = [(40, 50, 60, 70), (70, 50, 90, 70), (95, 50, 115, 70), (120, 50, 140, 70), (150, 50, 170, 70)]
    assert crossing(line, moving_right) == ["", "", "", "in", ""]  # the straddling box does not count
    assert crossing(line, list(reversed(moving_right))) == ["", "", "", "out", ""]


def test_line_ignores_objects_beyond_its_ends_and_untracked_ones() -> None:
    line = LineZone(np.array([100.0, 0.0]), np.array([100.0, 100.0]))
    below = [(40, 150, 60, 170), (150, 150, 170, 170)]   # passes x = 100 below the segment's end
    assert crossing(line, below) == ["", ""]
    assert crossing(line, [(40, 10, 60, 30), (150, 10, 170, 30)], tid=-1) == ["", ""]


def test_min_crossing_frames_needs_the_new_side_that_long() -> None:
    line = LineZone(np.array([100.0, 0.0]), np.array([100.0, 200.0]), min_crossing_frames=2)
    left, right = (40, 50, 60, 70), (150, 50, 170, 70)
    assert crossing(line, [left, right, left, right, right]) == ["", "", "", "", "in"]


def watch(lost_frames: int = 3) -> ZoneWatch:
    cfg = SourceConfig(zones=[ZoneConfig("road", [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], ["car"])],
                       lines=[LineConfig("gate", [0.5, 0.0], [0.5, 1.0])])
    return ZoneWatch("cam", cfg, lost_frames)


def test_zone_watch_enter_leave_and_cross_events() -> None:
    w = watch()
    car_up, car_down = (10, 10, 30, 40, 2, 7), (10, 60, 30, 90, 2, 7)
    person_down = (50, 60, 70, 90, 0, 8)   # inside, but the zone watches cars only
    kinds = []
    for i, rows in enumerate([[car_up, person_down], [car_down, person_down], [car_down], [car_up],
                              [(150, 10, 170, 40, 2, 7)]]):
        events, _ = w.update(result(i, dets(*rows)))
        kinds.append([(e.kind, e.data["track_id"], e.data.get("direction")) for e in events])
    assert kinds == [[], [("object_entered", 7, None)], [], [("object_left", 7, None)],
                     [("object_crossed", 7, "in")]]
    s = w.summary()
    assert s["road"] == {"type": "polygon", "entered": 1, "left": 1, "inside": 0,
                         "by_class": {"car": {"entered": 1, "left": 1}}}
    assert s["gate"]["in"] == 1 and s["gate"]["out"] == 0 and s["gate"]["by_class"] == {"car": {"in": 1, "out": 0}}


def test_a_track_that_vanishes_inside_leaves_after_lost_frames() -> None:
    w = watch(lost_frames=3)
    events, view = w.update(result(0, dets((10, 60, 30, 90, 2, 5))))
    assert [e.kind for e in events] == ["object_entered"] and view.polygons[0][2] == 1
    assert w.occupancy() == {"car": 1}
    seen = []
    for i in range(1, 5):
        events, view = w.update(result(i, None))
        seen.append([e.kind for e in events])
    assert seen == [[], [], ["object_left"], []] and view.polygons[0][2] == 0
    assert w.occupancy() == {"car": 0}


def test_zones_follow_a_resolution_change() -> None:
    w = watch()
    w.update(result(0, dets((10, 60, 30, 90, 2, 5)), size=(200, 100)))
    _, view = w.update(result(1, dets((10, 120, 30, 180, 2, 5)), size=(400, 200)))
    assert view.polygons[0][1].max(axis=0).tolist() == [400, 200]
    assert view.lines[0][1].tolist() == [200.0, 0.0]


def test_the_step_puts_events_in_extras_draws_the_zones_and_is_timed() -> None:
    step = SourceStep(watch())
    r = result(0, dets((10, 60, 30, 90, 2, 5)))
    out = step(r)
    assert [e.kind for e in out.extras[EVENTS_EXTRAS_KEY]] == ["object_entered"]
    assert "zones" in out.timings and out.image is not r.image and not r.image.any()  # drawn on a copy
    assert (out.image == ZONE_COLOR).all(axis=2).any() and (out.image == LINE_COLOR).all(axis=2).any()


def test_draw_zones_marks_the_outline() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    poly = np.array([[20, 30], [180, 30], [180, 90], [20, 90]], np.int32)
    draw_zones(img, [("road", poly, 2)], [("gate", np.array([100.0, 0.0]), np.array([100.0, 99.0]), 1, 0)])

    def near(y: int, x: int, color: tuple[int, int, int]) -> bool:  # anti-aliased: within a pixel, roughly
        return bool((np.abs(img[y, x - 1:x + 2].astype(int) - color).max(axis=1) < 40).any())

    assert near(60, 20, ZONE_COLOR) and near(60, 180, ZONE_COLOR) and near(50, 100, LINE_COLOR)
    assert not near(60, 60, ZONE_COLOR)  # an outline, not a filled area
