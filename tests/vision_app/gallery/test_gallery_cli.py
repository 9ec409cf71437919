"""`python main.py gallery ...` and `face-eval` end to end on real photos (in-process main())."""
from __future__ import annotations

import json
import shutil

import pytest

from vision_app.cli import main


@pytest.fixture
def run(capsys, models_dir):
    def _run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv[:2], "--models", str(models_dir), *argv[2:]] if argv[0] == "gallery"
                    else [argv[0], "--models", str(models_dir), *argv[1:]])
        out, err = capsys.readouterr()
        return code, out, err
    return _run


def test_gallery_commands(run, tmp_path, media_dir, monkeypatch):
    db = str(tmp_path / "g.db")
    faces = media_dir / "faces"
    code, _, err = run("gallery", "list", "--db", db)
    assert code == 2 and "no gallery at" in err and not (tmp_path / "g.db").exists()  # no side effect
    code, out, _ = run("gallery", "enroll", "Ann", str(faces / "id01" / "1.jpg"), str(faces / "id01" / "2.jpg"),
                       "--db", db)
    assert code == 0 and "2 template(s)" in out
    code, _, err = run("gallery", "enroll", "Bob", str(faces / "id09" / "1.jpg"), "--db", db)
    assert code == 2 and "2 faces found" in err and "nothing stored" in err
    code, _, err = run("gallery", "enroll", "Bob", str(tmp_path / "nope.jpg"), "--db", db)
    assert code == 2 and "cannot read the image" in err
    assert run("gallery", "enroll", "Bob", str(faces / "id02" / "1.jpg"), "--db", db)[0] == 0
    code, out, _ = run("gallery", "list", "--db", db, "--json")
    listing = json.loads(out)
    assert [(p["name"], p["templates"]) for p in listing["people"]] == [("Ann", 2), ("Bob", 1)]
    assert listing["models"] == [{"model": "edgeface-xs", "version": "512d-1", "templates": 3}]
    assert run("gallery", "rename", "Bob", "Robert", "--db", db)[0] == 0
    monkeypatch.setenv("GALLERY_PW", "s3cret")
    assert run("gallery", "export", str(tmp_path / "x.json"), "--passphrase-env", "GALLERY_PW", "--db", db)[0] == 0
    code, out, _ = run("gallery", "remove", "Robert", "--db", db)
    assert code == 0 and "1 template" in out
    code, out, _ = run("gallery", "list", "--db", db)
    assert "Ann" in out and "Robert" not in out
    other = str(tmp_path / "other.db")
    code, out, _ = run("gallery", "import", str(tmp_path / "x.json"), "--passphrase-env", "GALLERY_PW",
                       "--db", other)
    assert code == 0 and "imported 2 people, 3 template(s)" in out
    code, _, err = run("gallery", "import", str(tmp_path / "x.json"), "--db", str(tmp_path / "third.db"))
    assert code == 2 and "passphrase" in err


def test_face_eval_on_a_small_folder(run, tmp_path, media_dir):
    folder = tmp_path / "faces"
    for person in ("id01", "id02", "id06"):
        shutil.copytree(media_dir / "faces" / person, folder / person)
    code, out, _ = run("face-eval", str(folder), "--target-far", "0.01", "--json", str(tmp_path / "cal.json"))
    assert code == 0
    assert "genuine" in out and "impostor" in out and "recommended face.match_threshold" in out
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert cal["genuine"]["count"] == 3 + 1 + 28 and cal["impostor"]["count"] == 3 * 2 + 3 * 8 + 2 * 8
    assert cal["genuine"]["min"] > cal["impostor"]["max"]  # these three people separate cleanly
    assert cal["recommended_threshold"] >= cal["impostor"]["max"]
