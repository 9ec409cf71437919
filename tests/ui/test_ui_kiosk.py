"""Kiosk mode: the AccessController's decisions on the banner and the door, the PIN-protected panel."""
from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("vision_app.access.controller", reason="access controller not in this build yet")

from vision_app.face.observation import FACE_EXTRAS_KEY, FaceObservation  # noqa: E402
from ui.kiosk import KioskWindow  # noqa: E402
from ui.kiosk_access import access_log_path, build_controller  # noqa: E402
from ui.pin import PinStore  # noqa: E402


class FakeDoor:
    name = "fake"

    def __init__(self) -> None:
        self.opened: list[dict] = []

    def open(self, event) -> None:
        self.opened.append(dict(event))

    def close(self) -> None:
        pass


class InjectedFace:
    """Wraps the REAL AccessController and writes a synthetic FaceObservation into each frame's extras
    (the face stage's job), so the controller — not the test — makes the decision. `live` picks a real
    person (moves, blinks after a few frames) or a still photo (no motion, no blink)."""

    def __init__(self, controller, live: bool, name: str = "Alice") -> None:
        self.controller = controller
        self.live = live
        self.name = name
        self.n = 0

    def __getattr__(self, attr):
        return getattr(self.controller, attr)

    def update(self, result):
        self.n += 1
        live = self.live
        obs = FaceObservation(
            track_id=1, xyxy=(100.0, 80.0, 220.0, 230.0), identity=self.name, best_name=self.name,
            similarity=0.8, passive_score=0.9 if live else 0.2, passive_live=live, blink_seen=live and self.n > 12,
            blink_count=int(live and self.n > 12), ear=0.3, motion=0.05 if live else 0.0,
            temporal_live=True if live else (False if self.n > 4 else None), yaw_deg=0.0, head_turn_seen=False,
            quality=None, frames_tracked=self.n, window_s=self.n / 30, frame_index=result.frame.index,
            timestamp=result.frame.timestamp, candidates=((self.name, 0.8),), match_threshold=0.41)
        extras = {**result.extras, FACE_EXTRAS_KEY: (obs,)}
        return self.controller.update(dataclasses.replace(result, extras=extras))


@pytest.fixture
def pin_ctx(ui_ctx):
    ui_ctx.config.ui.pin_max_attempts = 3
    ui_ctx.config.ui.decision_hold_s = 30.0
    PinStore(ui_ctx.admin_file(), 3, 600).set_pin("2468")
    return ui_ctx


def _kiosk(qtbot, ctx, factory, source="test:320x240@30", tasks=("passthrough",)) -> KioskWindow:
    win = KioskWindow(ctx, source, factory, windowed=True, tasks=tasks)
    qtbot.addWidget(win)
    win.start()
    return win


@pytest.mark.parametrize("live, banner, opened", [(True, "ACCESS GRANTED — Alice", 1),
                                                  (False, "ACCESS DENIED", 0)])
def test_injected_observations_the_controller_decides_banner_and_door(qtbot, pin_ctx, live, banner, opened):
    door = FakeDoor()
    win = _kiosk(qtbot, pin_ctx, lambda: InjectedFace(build_controller(pin_ctx, door), live))
    qtbot.waitUntil(lambda: win.decision is not None, timeout=15000)
    assert win.banner.text() == banner and win.current_banner.kind == ("granted" if live else "denied")
    assert len(door.opened) == opened
    if live:
        assert door.opened[0]["identity"] == "Alice"
    win.shutdown()
    from vision_app.access.accesslog import AccessLog

    with AccessLog(access_log_path(pin_ctx)) as alog:  # the controller logged it, with a snapshot
        rows = alog.entries()
    assert [r.decision for r in rows] == ["granted" if live else "denied"] and rows[0].snapshot


def test_guidance_comes_from_the_controller_before_a_decision(qtbot, pin_ctx):
    win = _kiosk(qtbot, pin_ctx, lambda: build_controller(pin_ctx, FakeDoor()))
    qtbot.waitUntil(lambda: win.view.frames_shown >= 3, timeout=10000)
    assert win.banner.text() == "Look at the camera"  # no face observations: the controller's idle text
    win.shutdown()


def test_wrong_pins_lock_the_panel_and_the_lock_survives_a_restart(qtbot, pin_ctx):
    win = _kiosk(qtbot, pin_ctx, lambda: build_controller(pin_ctx, FakeDoor()))
    win.admin_button.click()
    assert win.pages.currentWidget() is win.pinpad
    for attempt in range(3):
        win.pinpad.entry.setText("0000")
        win.pinpad.submit()
        qtbot.waitUntil(lambda: not win.pinpad.busy, timeout=5000)
    assert win.pinpad.locked() and "locked" in win.pinpad.message.text()
    win.pinpad.entry.setText("2468")  # the right PIN does not help while locked
    win.pinpad.submit()
    qtbot.waitUntil(lambda: not win.pinpad.busy, timeout=5000)
    assert win.pages.currentWidget() is win.pinpad
    win.shutdown()

    again = _kiosk(qtbot, pin_ctx, lambda: build_controller(pin_ctx, FakeDoor()))  # a restart
    again.admin_button.click()
    again.pinpad.entry.setText("2468")
    again.pinpad.submit()
    qtbot.waitUntil(lambda: again.pinpad.locked(), timeout=5000)
    assert again.pages.currentWidget() is again.pinpad
    again.shutdown()


def test_right_pin_opens_the_admin_panel_with_the_access_log(qtbot, pin_ctx):
    door = FakeDoor()
    win = _kiosk(qtbot, pin_ctx, lambda: InjectedFace(build_controller(pin_ctx, door), True))
    qtbot.waitUntil(lambda: win.decision is not None, timeout=15000)
    win.admin_button.click()
    win.pinpad.entry.setText("2468")
    win.pinpad.submit()
    qtbot.waitUntil(lambda: win.pages.currentWidget() is win.admin, timeout=5000)
    qtbot.waitUntil(lambda: win.admin.table.rowCount() == 1, timeout=5000)
    assert win.admin.table.item(0, 1).text() == "GRANTED" and win.admin.rows[0].image is not None
    win.admin.table.selectRow(0)
    assert win.admin.snapshot.pixmap() is not None and not win.admin.snapshot.pixmap().isNull()
    win.close()  # a plain close request is ignored in kiosk mode
    assert win.isVisible()
    win.admin.exit_kiosk.emit()
    assert not win.isVisible() and not any(t.is_alive() for t in win.feed.session.threads())


def test_first_run_asks_for_a_new_pin(qtbot, ui_ctx):
    win = _kiosk(qtbot, ui_ctx, lambda: build_controller(ui_ctx, FakeDoor()))
    qtbot.waitUntil(lambda: win.pages.currentWidget() is win.pinpad, timeout=5000)
    assert win.pinpad.mode == "set" and not win.pinpad.cancel.isVisible()
    for pin in ("13579", "13579"):
        win.pinpad.entry.setText(pin)
        win.pinpad.submit()
    qtbot.waitUntil(lambda: win.pages.currentWidget() is win.admin, timeout=5000)
    assert PinStore(ui_ctx.admin_file(), 3, 60).check("13579").ok
    win.shutdown()


@pytest.fixture(scope="module")
def carphone_frames(media_dir):
    import cv2

    cap = cv2.VideoCapture(str(media_dir / "video" / "carphone_face_176x144.mp4"))
    frames = [cap.read()[1] for _ in range(120)]
    cap.release()
    return frames


@pytest.fixture
def enrolled_ctx(pin_ctx, carphone_frames):
    from ui.gallery_service import GalleryService

    service = GalleryService(pin_ctx)
    assert service.enroll("Driver", [carphone_frames[i] for i in (10, 40, 70, 100)]) == 4
    service.close()
    # every frame reaches the face stage, stamped with its time in the video: blink and motion windows
    # see the clip as recorded even when other work on this 2-core machine slows the pipeline down
    pin_ctx.base_overrides["ui.file_mode"] = "offline"
    return pin_ctx


needs_face_stage = pytest.mark.skipif(not __import__("ui.controls").controls.task_available("face"),
                                      reason="face stage not in this build yet")


@needs_face_stage
def test_real_video_with_liveness_is_granted_and_opens_the_door(qtbot, enrolled_ctx, media_dir):
    door = FakeDoor()
    win = _kiosk(qtbot, enrolled_ctx, lambda: build_controller(enrolled_ctx, door),
                 source=str(media_dir / "video" / "carphone_face_176x144.mp4"), tasks=("face",))
    qtbot.waitUntil(lambda: win.decision is not None, timeout=40000)
    win.shutdown()
    from vision_app.access.accesslog import AccessLog

    with AccessLog(access_log_path(enrolled_ctx)) as alog:
        why = alog.entries()[-1].reason
    assert win.banner.text() == "ACCESS GRANTED — Driver" and win.current_banner.kind == "granted", why
    assert [d["identity"] for d in door.opened] == ["Driver"]


@needs_face_stage
def test_still_photo_replay_of_the_enrolled_person_is_denied(qtbot, enrolled_ctx, carphone_frames, tmp_path):
    import cv2

    still = carphone_frames[40]
    path = tmp_path / "still.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (still.shape[1], still.shape[0]))
    for _ in range(30 * 6):
        out.write(still)
    out.release()
    door = FakeDoor()
    win = _kiosk(qtbot, enrolled_ctx, lambda: build_controller(enrolled_ctx, door), source=str(path),
                 tasks=("face",))
    qtbot.waitUntil(lambda: win.decision is not None, timeout=40000)
    assert win.banner.text() == "ACCESS DENIED" and door.opened == []
    win.shutdown()
    from vision_app.access.accesslog import AccessLog

    with AccessLog(access_log_path(enrolled_ctx)) as alog:
        row = alog.entries()[-1]
    assert row.decision == "denied" and row.liveness == "not live"
