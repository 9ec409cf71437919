"""`verify --mqtt` on the real carphone clip: face and access events reach a real broker; a recognised person
is named (with a snapshot when asked for), an unknown one never is (no name, no score, no picture)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.mosquitto import Mosquitto, Subscriber
from vision_app.cli import main
from vision_app.face.quality import QualityGates
from vision_app.gallery.enroll import FaceAnalyzer, enroll_images
from vision_app.gallery.gallery import Gallery


@pytest.fixture(scope="module")
def analyzer(face_detector, face_embedder, app_config):
    return FaceAnalyzer(face_detector, face_embedder, QualityGates.from_config(app_config.face))


def verify_over_mqtt(broker: Mosquitto, tmp_path: Path, models_dir: Path, media_dir: Path, frames: int) -> Subscriber:
    (tmp_path / "c.toml").write_text("[mqtt]\nsnapshots = true\n[access]\nkiosk_id = 'front-door'\n")
    sub = Subscriber(broker.port, "vision-app/#")
    code = main(["verify", "--models", str(models_dir), "--source", str(media_dir / "video/carphone_face_176x144.mp4"),
                 "--db", str(tmp_path / "g.db"), "--log-db", str(tmp_path / "log.db"), "--config",
                 str(tmp_path / "c.toml"), "--mqtt", broker.url(), "--max-frames", str(frames)])
    assert code == 0
    sub.wait_for(lambda: sub.on("vision-app/available")[-1:] == [b"offline"], 10, "the end of the run")
    sub.close()
    return sub


def test_an_enrolled_person_is_named_and_granted(broker, tmp_path, models_dir, media_dir, carphone_frames, analyzer):
    with Gallery(tmp_path / "g.db") as g:
        enroll_images(g, "driver", [carphone_frames[0]], analyzer)
    sub = verify_over_mqtt(broker, tmp_path, models_dir, media_dir, 50)  # the grant comes at ~1.5 s
    events = sub.events("vision-app/carphone_face_176x144/events")
    assert [e["kind"] for e in events] == ["face_recognised", "access_granted"], events
    face, grant = events
    assert face["identity"] == "driver" and face["similarity"] > 0.4 and len(face["box"]) == 4
    assert grant["identity"] == "driver" and grant["kiosk"] == "front-door" and "blink seen" in grant["reason"]
    assert grant["decision"] == "granted" and grant["track_id"] >= 0 and grant["frame"] > face["frame"]
    snaps = sub.on("vision-app/carphone_face_176x144/snapshot")
    assert len(snaps) == 2 and all(s[:3] == b"\xff\xd8\xff" for s in snaps)  # one JPEG per event


def test_an_unknown_person_is_never_named_nor_pictured(broker, tmp_path, models_dir, media_dir, identity_photos,
                                                       analyzer):
    with Gallery(tmp_path / "g.db") as g:  # somebody else is enrolled
        enroll_images(g, "id06", [identity_photos["id06"][1]], analyzer)
    sub = verify_over_mqtt(broker, tmp_path, models_dir, media_dir, 30)  # denied after 8 good frames
    events = sub.events("vision-app/carphone_face_176x144/events")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "face_unknown" and "access_denied" in kinds and "face_recognised" not in kinds, events
    assert set(events[0]) == {"kind", "source", "time", "frame", "box", "track_id"}
    denied = events[kinds.index("access_denied")]
    assert denied["identity"] is None and denied["kiosk"] == "front-door" and denied["reason"]
    raw = b"".join(sub.on("vision-app/carphone_face_176x144/events"))
    assert b"id06" not in raw and b"embedding" not in raw
    assert sub.on("vision-app/carphone_face_176x144/snapshot") == []
