"""Monitoring config ([[monitoring.sources]], [mqtt], [metrics]), broker URLs, source names and event payloads:
bad input is an error that names the key and says what is expected; payloads never leak unknown people."""
from __future__ import annotations

import json
import math
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from vision_app.config import load_config
from vision_app.errors import ConfigError, MonitoringError
from vision_app.monitoring.events import access_event, face_event, object_event
from vision_app.monitoring.hub import Monitoring, derived_name
from vision_app.monitoring.mqtt import parse_url

SOURCES = """
[[monitoring.sources]]
match = "*bikes*"
name = "street"
[[monitoring.sources.zones]]
name = "road"
points = [[0.0, 0.4], [1.0, 0.4], [1.0, 0.68], [0.0, 0.68]]
classes = ["car"]
[[monitoring.sources.lines]]
name = "middle"
start = [96, 80]
end = [96, 200]
"""


def test_sources_zones_and_lines_load_as_tables(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(SOURCES)
    cfg = load_config(p)
    (src,) = cfg.monitoring.sources
    assert src.name == "street" and src.zones[0].classes == ["car"] and src.zones[0].anchor == "bottom_center"
    assert src.lines[0].start == [96, 80] and src.lines[0].anchors[0] == "top_left"
    mon = Monitoring(cfg)
    assert mon.source_config("../shared/media/video/bikes_640x272.mp4") is src
    assert mon.source_config("camera:0") is None


@pytest.mark.parametrize("extra, match", [
    ("points = [[0, 0], [1, 1]]", r"monitoring.sources\[0\].zones\[1\].points' has a bad value .* at least 3"),
    ("points = [[0, 0], [1, 1], [1, 0]]\nanchor = 'feet'", r"zones\[1\].anchor' has a bad value 'feet'"),
    ("points = [[0, 0], [1, 1], [1, 0]]\ncolour = 'red'", r"unknown config key 'monitoring.sources\[0\].zones\[1\].colour'"),
    ("name = 'road'\npoints = [[0, 0], [1, 1], [1, 0]]", "a unique name per zone and line"),
])
def test_bad_zone_names_the_key(tmp_path: Path, extra: str, match: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(SOURCES + "[[monitoring.sources.zones]]\n" + ("name = 'z2'\n" if "name" not in extra else "")
                 + extra + "\n")
    with pytest.raises(ConfigError, match=match):
        load_config(p)


@pytest.mark.parametrize("text, match", [
    ("[monitoring]\nsources = 3\n", "'monitoring.sources' must be a list of tables"),
    ("[[monitoring.sources]]\nname = 'front door'\n", r"sources\[0\].name' has a bad value 'front door'"),
    ("[[monitoring.sources]]\n[[monitoring.sources.lines]]\nname = 'l'\nstart = [1, 1]\nend = [1, 1]\n",
     "two different"),
    ("[mqtt]\nqos = 3\n", "'mqtt.qos' has a bad value 3"),
    ("[mqtt]\nprefix = 'a/#'\n", "'mqtt.prefix' has a bad value"),
    ("[metrics]\nport = 70000\n", "'metrics.port' has a bad value 70000"),
])
def test_bad_monitoring_values(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


@pytest.mark.parametrize("url, host, port, tls, user, password", [
    ("mqtt://broker.lan", "broker.lan", 1883, False, "", ""),
    ("mqtts://broker.lan", "broker.lan", 8883, True, "", ""),
    ("mqtt://ann:s%40cret@10.0.0.2:1884", "10.0.0.2", 1884, False, "ann", "s@cret"),
    ("mqtt://ann@h/", "h", 1883, False, "ann", "cfgpw"),
])
def test_broker_urls(url: str, host: str, port: int, tls: bool, user: str, password: str) -> None:
    a = parse_url(url, "cfguser", "cfgpw")
    assert (a.host, a.port, a.tls) == (host, port, tls)
    assert (a.username, a.password) == ((user, password) if user else ("cfguser", "cfgpw"))
    assert "s@cret" not in str(a) and "cfgpw" not in str(a)


@pytest.mark.parametrize("url, match", [
    ("http://broker", "the scheme must be mqtt or mqtts, got 'http'"),
    ("broker.lan:1883", "the scheme must be mqtt or mqtts"),
    ("mqtt://", "no host"),
    ("mqtt://h:port", "bad MQTT URL"),
    ("mqtt://h/topic", "a path or query is not used"),
])
def test_bad_broker_urls(url: str, match: str) -> None:
    with pytest.raises(MonitoringError, match=match):
        parse_url(url)


@pytest.mark.parametrize("source, name", [
    ("../shared/media/video/bikes_640x272.mp4", "bikes_640x272"), ("camera:0", "camera0"), ("2", "camera2"),
    ("rtsp://user:pw@cam2.lan:554/stream1", "cam2_lan_stream1"), ("test:640x480@30", "test"),
    ("loop:clips/door cam.mp4", "door_cam"), ("door/frames/*.jpg", "frames"),
])
def test_source_names_are_topic_safe(source: str, name: str) -> None:
    assert derived_name(source) == name


def test_two_sources_with_one_name_get_distinct_names() -> None:
    mon = Monitoring(load_config())
    assert mon.source_name("a/cam.mp4") == "cam" and mon.source_name("b/cam.mp4") == "cam-2"
    assert mon.source_name("a/cam.mp4") == "cam"  # stable for the same source


def test_payloads_never_name_unknown_people() -> None:
    known = face_event("door", 3, identity="Ann Lee", similarity=0.61, xyxy=(1, 2, 3, 4), track_id=2)
    unknown = face_event("door", 4, identity=None, similarity=0.39, xyxy=(1, 2, 3, 4), track_id=3)
    assert known.to_json()["identity"] == "Ann Lee" and known.snapshot_ok
    body = unknown.to_json()
    assert unknown.kind == "face_unknown" and not unknown.snapshot_ok
    assert set(body) == {"kind", "source", "time", "frame", "box", "track_id"}
    decision = SimpleNamespace(decision="denied", reason="unknown face (best similarity 0.31, closest Ann Lee); "
                               "check timed out: identity not consistent (Bo in 2 of 8 frames)", kiosk="kiosk-1",
                               identity=None, track_id=3, liveness="live", alarm=False)
    ev = access_event("door", decision)
    assert ev.kind == "access_denied" and ev.to_json()["identity"] is None and not ev.snapshot_ok
    assert ev.to_json()["reason"] == "unknown face; check timed out: identity not consistent"
    named = SimpleNamespace(**{**vars(decision), "identity": "Ann Lee", "reason": "no blink (within 5 s)"})
    assert access_event("door", named).to_json()["reason"] == "no blink (within 5 s)"
    obj = object_event("object_crossed", "street", 9, zone="middle", label="car", score=0.5, xyxy=(1, 2, 3, math.nan),
                       track_id=4, direction="in")
    assert json.loads(json.dumps(obj.to_json()))["box"] == [1.0, 2.0, 3.0, None]


def test_the_commands_refuse_a_bad_url_or_a_busy_port_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    from vision_app.cli import main

    assert main(["run", "--source", "test:", "--max-frames", "1", "--mqtt", "http://broker.lan"]) == 2
    assert "error: bad MQTT URL 'http://broker.lan': the scheme must be mqtt or mqtts" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["run", "--source", "test:", "--max-frames", "1", "--metrics-port", str(port)]) == 2
        err = capsys.readouterr().err
    assert f"cannot serve metrics on 127.0.0.1:{port}" in err and "choose a free port with --metrics-port" in err
