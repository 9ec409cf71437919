"""Home Assistant MQTT discovery: config messages that make Home Assistant create entities by itself.

Per source: a binary sensor per watched class ("occupancy": ON while at least one tracked object of
that class is inside one of the source's zones) and an fps sensor. All become unavailable when the app
goes offline (the availability topic is `<prefix>/available`, whose last will is `offline`).
"""
from __future__ import annotations

import json
import re
from typing import Any


def node_id(prefix: str) -> str:
    """Home Assistant's node id: letters, digits, _ and - only."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix)


def occupancy_topic(prefix: str, source: str, label: str) -> str:
    return f"{prefix}/{source}/{node_id(label)}/occupancy"


def fps_topic(prefix: str, source: str) -> str:
    return f"{prefix}/{source}/fps"


def _common(prefix: str, source: str) -> dict[str, Any]:
    node = node_id(prefix)
    return {"availability_topic": f"{prefix}/available", "payload_available": "online",
            "payload_not_available": "offline",
            "device": {"identifiers": [f"{node}_{source}"], "name": f"{prefix} {source}",
                       "manufacturer": "vision-app", "model": "camera source"}}


def discovery_messages(ha_prefix: str, prefix: str, source: str, classes: list[str]) -> list[tuple[str, str]]:
    """(topic, JSON payload) of every config message for one source."""
    node = node_id(prefix)
    out = []
    for label in classes:
        uid = f"{node}_{source}_{node_id(label)}_occupancy"
        payload = {"name": f"{label} occupancy", "unique_id": uid, "device_class": "occupancy",
                   "state_topic": occupancy_topic(prefix, source, label), "payload_on": "ON",
                   "payload_off": "OFF", **_common(prefix, source)}
        out.append((f"{ha_prefix}/binary_sensor/{node}/{source}_{node_id(label)}/config", json.dumps(payload)))
    payload = {"name": "fps", "unique_id": f"{node}_{source}_fps", "state_topic": fps_topic(prefix, source),
               "unit_of_measurement": "fps", "state_class": "measurement", "icon": "mdi:speedometer",
               **_common(prefix, source)}
    out.append((f"{ha_prefix}/sensor/{node}/{source}_fps/config", json.dumps(payload)))
    return out
