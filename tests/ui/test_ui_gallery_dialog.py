"""Gallery manager dialog on the real face models and photos."""
from __future__ import annotations

import pytest

pytest.importorskip("vision_app.gallery.enroll", reason="face gallery not in this build yet")
pytest.importorskip("vision_app.gallery.gallery", reason="face gallery not in this build yet")

from ui.gallery_dialog import GalleryDialog  # noqa: E402
from ui.gallery_service import hint_for  # noqa: E402


@pytest.fixture
def dialog(qtbot, ui_ctx):
    dlg = GalleryDialog(ui_ctx)
    qtbot.addWidget(dlg)
    yield dlg
    dlg.done(0)


def test_enrol_from_files_then_rename_and_delete(qtbot, dialog, media_dir):
    photos = [str(media_dir / "faces" / "id01" / f"{i}.jpg") for i in (1, 2)]
    dialog.name.setText("Alice")
    dialog.enrol_from_files(photos)
    qtbot.waitUntil(lambda: dialog.names() == ["Alice"], timeout=30000)
    assert dialog.rows[0].templates == 2 and dialog.rows[0].thumbnail is not None
    assert not dialog.people.item(0).icon().isNull() and "2 template" in dialog.people.item(0).text()

    dialog.people.setCurrentRow(0)
    dialog.rename_selected("Alice B")
    qtbot.waitUntil(lambda: dialog.names() == ["Alice B"], timeout=5000)
    dialog.people.setCurrentRow(0)
    dialog.delete_selected(confirmed=True)
    qtbot.waitUntil(lambda: dialog.names() == [], timeout=5000)
    assert "deleted Alice B" in dialog.status.text()


def test_a_photo_with_several_faces_is_refused_with_the_reason(qtbot, dialog, media_dir):
    dialog.name.setText("Group")
    dialog.enrol_from_files([str(media_dir / "scenes" / "group6.jpg")])
    qtbot.waitUntil(lambda: "refused" in dialog.status.text(), timeout=30000)
    assert "faces found" in dialog.status.text() and dialog.names() == []


@pytest.mark.parametrize("reason, expected", [
    ("no face found", "Look at the camera"),
    ("3 faces found; enrolment needs exactly one (crop the photo to one person)", "More than one face"),
    ("too small (30 px < 40 px)", "Step closer"),
    ("blurry (sharpness 12 < 40)", "Hold still"),
    ("pose: head turned (yaw ratio +0.60, limit 0.40)", "Turn your head"),
    ("something new", "something new"),
])
def test_quality_reasons_become_instructions(reason, expected):
    assert hint_for(reason).startswith(expected)


def test_live_enrolment_shows_a_quality_hint_and_enrols_the_captured_samples(qtbot, dialog, media_dir):
    dialog.camera.setCurrentText(str(media_dir / "video" / "carphone_face_176x144.mp4"))
    dialog.btn_camera.setChecked(True)
    qtbot.waitUntil(lambda: dialog.hint.text() != "", timeout=15000)
    dialog.capture()
    qtbot.waitUntil(lambda: dialog.btn_enrol_live.isEnabled(), timeout=15000)
    assert dialog.count.text().startswith(f"{dialog.sampler.want} /")
    dialog.name.setText("Driver")
    dialog.enrol_from_camera()
    qtbot.waitUntil(lambda: dialog.names() == ["Driver"], timeout=30000)
    assert dialog.rows[0].templates == dialog.sampler.want
