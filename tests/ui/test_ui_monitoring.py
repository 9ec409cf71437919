"""The windows with monitoring on: zones drawn on the main window's view with the source's metrics served,
and the kiosk's decisions published over a real Mosquitto broker and counted."""
from __future__ import annotations

import json
import re
import urllib.request

import numpy as np

from tests.helpers.mjpeg_server import free_port
from tests.helpers.mosquitto import Mosquitto, Subscriber
from ui.kiosk_access import build_controller
from ui.main_window import MainWindow
from vision_app.config import load_config
from vision_app.draw import ZONE_COLOR
from vision_app.monitoring.hub import Monitoring

from test_ui_kiosk import FakeDoor, InjectedFace, _kiosk  # noqa: E402 (same folder)

ZONES = """
[[monitoring.sources]]
match = "bikes_640x272.mp4"
name = "street"
[[monitoring.sources.zones]]
name = "road"
points = [[0, 109], [639, 109], [639, 185], [0, 185]]
"""


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_main_window_shows_the_zones_and_serves_the_metrics(qtbot, ui_ctx, media_dir, tmp_path, as_array):
    (tmp_path / "z.toml").write_text(ZONES)
    port = free_port()
    ui_ctx.monitoring = Monitoring.start(load_config(tmp_path / "z.toml"), metrics_port=port)
    win = MainWindow(ui_ctx)
    qtbot.addWidget(win)
    win.show()
    try:
        win.source_box.setCurrentText(str(media_dir / "video/bikes_640x272.mp4"))
        win.start()
        qtbot.waitUntil(lambda: win.view.frames_shown >= 3, timeout=15000)
        shown = as_array(win.view.shown_image())
        column = shown[107:112, 400]  # the zone's top edge (y = 109), right of its label
        assert (np.abs(column.astype(int) - ZONE_COLOR).max(axis=1) < 60).any(), column
        assert not (np.abs(shown[150, 300:340].astype(int) - ZONE_COLOR).max(axis=1) < 10).all()  # an outline
        text = scrape(port)
        processed = re.search(r'^vision_app_frames_processed_total\{source="street"\} (\S+)$', text, re.M)
        assert processed is not None and float(processed.group(1)) >= 3
        assert 'vision_app_stage_latency_seconds_count{source="street",stage="zones"}' in text
    finally:
        win.close()
        ui_ctx.monitoring.close()


def test_kiosk_decisions_go_out_over_mqtt_and_into_the_metrics(qtbot, ui_ctx, tmp_path):
    broker = Mosquitto(tmp_path).start()
    port = free_port()
    try:
        sub = Subscriber(broker.port, "vision-app/#")
        ui_ctx.config.ui.decision_hold_s = 30.0
        ui_ctx.monitoring = Monitoring.start(load_config(), broker.url(), port)
        win = _kiosk(qtbot, ui_ctx, lambda: InjectedFace(build_controller(ui_ctx, FakeDoor()), live=True))
        qtbot.waitUntil(lambda: win.decision is not None, timeout=15000)
        sub.wait_for(lambda: sub.on("vision-app/test/events"), 10, "the decision event")
        assert 'vision_app_access_decisions_total{result="granted",source="test"} 1.0' in scrape(port)
        win.shutdown()
        ui_ctx.monitoring.close()
        (event,) = sub.events("vision-app/test/events")
        assert event["kind"] == "access_granted" and event["identity"] == "Alice"
        assert event["kiosk"] == ui_ctx.config.access.kiosk_id and event["reason"]
        assert json.dumps(event).count("Alice") == 1
        sub.close()
    finally:
        broker.stop()
