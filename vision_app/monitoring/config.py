"""Config sections for monitoring: per-source zones and lines ([monitoring]), MQTT ([mqtt]), metrics ([metrics]).

Loaded by vision_app.config like every other section (default_config.toml documents each key).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ANCHORS = ("center", "top_left", "top_center", "top_right", "center_left", "center_right", "bottom_left",
           "bottom_center", "bottom_right")
CORNERS = ["top_left", "top_right", "bottom_left", "bottom_right"]
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # usable as one MQTT topic level and a Prometheus label


@dataclass
class ZoneConfig:
    """A polygon: a tracked object is inside while its anchor point is (supervision's PolygonZone)."""

    name: str = ""
    points: list[list[float]] = field(default_factory=list)  # [[x, y], ...]: pixels, or fractions when all <= 1
    classes: list[str] = field(default_factory=list)        # labels watched; [] = every class
    anchor: str = "bottom_center"                           # the box point that must lie inside


@dataclass
class LineConfig:
    """A counting line: a tracked object crosses it when its anchors move from one side to the other
    (supervision's LineZone). "in" = onto the left-hand side looking from start to end on screen."""

    name: str = ""
    start: list[float] = field(default_factory=list)        # [x, y]: pixels, or fractions when both <= 1
    end: list[float] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)        # [] = every class
    anchors: list[str] = field(default_factory=lambda: list(CORNERS))  # all must be on the new side
    min_crossing_frames: int = 1                            # frames on the new side before it counts


@dataclass
class SourceConfig:
    """Settings for the sources whose id (as given) or file name matches `match` (fnmatch)."""

    match: str = "*"
    name: str = ""                                          # topic / metrics name; "" = from the source
    zones: list[ZoneConfig] = field(default_factory=list)
    lines: list[LineConfig] = field(default_factory=list)


@dataclass
class MonitoringConfig:
    lost_frames: int = 30             # a track unseen this many frames has left its zones
    sources: list[SourceConfig] = field(default_factory=list)  # [[monitoring.sources]] tables


@dataclass
class MqttConfig:
    url: str = ""                     # mqtt://[user:password@]host[:port] | mqtts://...; "" = off (--mqtt)
    username: str = ""                # used when the URL has none
    password: str = ""
    prefix: str = "vision-app"        # topics: <prefix>/available, <prefix>/<source>/events, .../snapshot
    client_id: str = ""               # "" = vision-app-<host>-<pid>
    qos: int = 1
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0   # at start: no answer from the broker within this is an error
    reconnect_min_s: int = 1          # backoff after the broker is lost: first wait ...
    reconnect_max_s: int = 30         # ... doubling up to this
    queue_size: int = 1000            # events waiting for the broker; beyond it the oldest are dropped
    snapshots: bool = False           # JPEG of the frame on <prefix>/<source>/snapshot with each event
    snapshot_quality: int = 80
    ca_file: str = ""                 # mqtts: CA certificate(s) to trust; "" = the system's
    ha_discovery: bool = False        # Home Assistant discovery configs under ha_prefix
    ha_prefix: str = "homeassistant"
    fps_interval_s: float = 10.0      # ha_discovery: how often <prefix>/<source>/fps is published


@dataclass
class MetricsConfig:
    port: int = 0                     # Prometheus endpoint port; 0 = off (--metrics-port)
    host: str = "127.0.0.1"           # address to listen on ("0.0.0.0": every interface)


def _pair(v: list[Any]) -> bool:
    return len(v) == 2


def monitoring_checks(mon: MonitoringConfig, mqtt: MqttConfig, metrics: MetricsConfig) -> list[tuple[str, Any, bool, str]]:
    """(key, value, ok, expected) for every range check of these sections."""
    checks: list[tuple[str, Any, bool, str]] = [
        ("monitoring.lost_frames", mon.lost_frames, mon.lost_frames >= 1, ">= 1"),
        ("mqtt.qos", mqtt.qos, mqtt.qos in (0, 1, 2), "0, 1 or 2"),
        ("mqtt.prefix", mqtt.prefix, bool(mqtt.prefix) and not set(mqtt.prefix) & set("+#")
         and not mqtt.prefix.startswith("/") and not mqtt.prefix.endswith("/"),
         "a topic prefix without + # or a leading / trailing /"),
        ("mqtt.keepalive_s", mqtt.keepalive_s, 5 <= mqtt.keepalive_s <= 3600, "5..3600"),
        ("mqtt.connect_timeout_s", mqtt.connect_timeout_s, mqtt.connect_timeout_s > 0, "> 0"),
        ("mqtt.reconnect_min_s", mqtt.reconnect_min_s,
         0 < mqtt.reconnect_min_s <= mqtt.reconnect_max_s, "0 < reconnect_min_s <= reconnect_max_s"),
        ("mqtt.queue_size", mqtt.queue_size, mqtt.queue_size >= 1, ">= 1"),
        ("mqtt.snapshot_quality", mqtt.snapshot_quality, 1 <= mqtt.snapshot_quality <= 100, "1..100"),
        ("mqtt.fps_interval_s", mqtt.fps_interval_s, mqtt.fps_interval_s > 0, "> 0"),
        ("metrics.port", metrics.port, 0 <= metrics.port <= 65535, "0..65535 (0 = off)"),
    ]
    for i, src in enumerate(mon.sources):
        where = f"monitoring.sources[{i}]"
        checks.append((f"{where}.name", src.name, not src.name or bool(NAME_RE.match(src.name)),
                       "letters, digits, _ and - only (it becomes an MQTT topic level)"))
        names = [z.name for z in src.zones] + [ln.name for ln in src.lines]
        checks.append((f"{where} zone/line names", names, len(set(names)) == len(names)
                       and all(NAME_RE.match(n) for n in names),
                       "a unique name per zone and line: letters, digits, _ and - only"))
        for j, z in enumerate(src.zones):
            pts_ok = len(z.points) >= 3 and all(_pair(p) for p in z.points)
            checks.append((f"{where}.zones[{j}].points", z.points, pts_ok, "at least 3 [x, y] points"))
            checks.append((f"{where}.zones[{j}].anchor", z.anchor, z.anchor in ANCHORS, " | ".join(ANCHORS)))
        for j, ln in enumerate(src.lines):
            ends_ok = _pair(ln.start) and _pair(ln.end) and ln.start != ln.end
            checks.append((f"{where}.lines[{j}].start/end", [ln.start, ln.end], ends_ok,
                           "two different [x, y] points"))
            checks.append((f"{where}.lines[{j}].anchors", ln.anchors,
                           bool(ln.anchors) and all(a in ANCHORS for a in ln.anchors),
                           "one or more of " + " | ".join(ANCHORS)))
            checks.append((f"{where}.lines[{j}].min_crossing_frames", ln.min_crossing_frames,
                           ln.min_crossing_frames >= 1, ">= 1"))
    return checks
