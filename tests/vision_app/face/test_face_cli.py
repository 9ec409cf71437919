"""`identify` and `liveness` commands end to end (in-process, real models, a temporary gallery)."""
from __future__ import annotations

import json

import pytest

from vision_app.cli import main


def _json(capsys, argv):
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


@pytest.mark.parametrize("rel,identity", [("faces/id01/2.jpg", "id01"), ("faces/id03/2.jpg", "id03"),
                                          ("faces/id11/1.jpg", None), ("faces/id12/2.jpg", None)])
def test_identify_json(capsys, models_dir, media_dir, gallery_path, rel, identity):
    got = _json(capsys, ["identify", str(media_dir / rel), "--db", str(gallery_path), "--json",
                         "--models", str(models_dir)])
    (face,) = got["faces"]
    assert set(face) >= {"xyxy", "identity", "similarity", "accepted"} and len(face["xyxy"]) == 4
    assert face["identity"] == identity and face["accepted"] is (identity is not None)
    assert isinstance(face["similarity"], float)


def test_identify_table_and_missing_gallery(capsys, models_dir, media_dir, gallery_path, tmp_path):
    assert main(["identify", str(media_dir / "scenes" / "group6.jpg"), "--db", str(gallery_path),
                 "--models", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "6 face(s)" in out and out.count("unknown") == 6
    rc = main(["identify", str(media_dir / "faces" / "id01" / "1.jpg"), "--db", str(tmp_path / "none.db"),
               "--models", str(models_dir)])
    assert rc == 2 and "no gallery" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("rel,live", [("spoof/spoof_1.jpg", False), ("spoof/spoof_2.jpg", False),
                                      ("spoof/live_1.jpg", True), ("scenes/astronaut.png", True)])
def test_liveness_json(capsys, models_dir, media_dir, rel, live):
    got = _json(capsys, ["liveness", str(media_dir / rel), "--json", "--models", str(models_dir)])
    (face,) = got["faces"]
    assert face["live"] is live and 0.0 <= face["score"] <= 1.0 and len(face["xyxy"]) == 4


def test_liveness_no_face(capsys, models_dir, media_dir):
    assert _json(capsys, ["liveness", str(media_dir / "scenes" / "coffee.png"), "--json",
                          "--models", str(models_dir)]) == {"faces": []}
