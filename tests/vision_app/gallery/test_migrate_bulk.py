"""Stored face crops and `gallery migrate` (all or nothing), a schema-1 gallery upgraded in place, and the
bulk commands: `gallery enroll-folder`, `identify` / `liveness` on folders — real models, real photos."""
from __future__ import annotations

import json
import shutil
import sqlite3

import cv2
import numpy as np
import pytest

from vision_app.cli import main
from vision_app.errors import GalleryError
from vision_app.face.quality import QualityGates
from vision_app.face.stage import build_embedder
from vision_app.gallery.crops import FaceCrop
from vision_app.gallery.enroll import FaceAnalyzer, enroll_images
from vision_app.gallery.gallery import Gallery
from vision_app.gallery.matcher import Matcher
from vision_app.gallery.migrate import migrate_gallery

REID = ("face-reid-0095", "256d-1")


@pytest.fixture(scope="module")
def analyzer(face_detector, face_embedder, app_config):
    return FaceAnalyzer(face_detector, face_embedder, QualityGates.from_config(app_config.face))


@pytest.fixture(scope="module")
def reid(stage_context):
    return build_embedder(stage_context, "face-reid-0095")


@pytest.fixture
def run(capsys, models_dir):
    def _run(*argv: str) -> tuple[int, str, str]:
        at = 2 if argv[0] == "gallery" else 1
        code = main([*argv[:at], "--models", str(models_dir), *argv[at:]])
        out, err = capsys.readouterr()
        return code, out, err
    return _run


def _people(tmp_path, analyzer, media_dir, names=("id01", "id02", "id06")):
    g = Gallery(tmp_path / "g.db")
    for p in names:
        enroll_images(g, p, [media_dir / "faces" / p / "1.jpg"], analyzer)
    return g


def test_crops_are_kept_encrypted_and_give_the_photo_s_embedding(tmp_path, analyzer, media_dir):
    with _people(tmp_path, analyzer, media_dir, ("id01",)) as g:
        (row,) = g.crops()
        crop = FaceCrop.decode(row.crop or b"")
        stored = g.embeddings([row.id])[row.id]
    again = analyzer.embedder.embed([crop.aligned_for(analyzer.embedder)])[0]
    assert float(again @ stored) > 0.995  # re-embedding from the crop ≈ embedding the photo
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("g.db*") if not p.name.endswith(".key"))
    jpeg = (row.crop or b"")[45:]
    assert jpeg[:2] == b"\xff\xd8" and jpeg[200:240] not in raw and b"VAFC1" not in raw


def test_migrate_is_all_or_nothing(tmp_path, analyzer, reid, media_dir, app_config):
    g = _people(tmp_path, analyzer, media_dir)
    x = analyzer.sample(cv2.imread(str(media_dir / "faces" / "id03" / "1.jpg"))).embedding[None]
    g.enroll("Old Timer", x, *analyzer.model)  # enrolled before crops were kept: no crop
    with pytest.raises(GalleryError, match="Old Timer") as err:
        migrate_gallery(g, reid)
    assert "1 of 4 people" in str(err.value) and "Nothing was changed" in str(err.value)
    assert g.models() == {analyzer.model: 4}
    g.remove("Old Timer")
    before = g.dump()
    # a damaged crop (written by another program, or bit rot) stops everything before any write
    con = sqlite3.connect(tmp_path / "g.db")
    tid = con.execute("SELECT id FROM templates ORDER BY id LIMIT 1").fetchone()[0]
    good = con.execute("SELECT crop FROM templates WHERE id = ?", (tid,)).fetchone()[0]
    con.execute("UPDATE templates SET crop = ? WHERE id = ?", (g.fernet.encrypt(b"VAFC1" + b"\0" * 60), tid))
    con.commit()
    with pytest.raises(GalleryError, match="cannot be decoded"):
        migrate_gallery(g, reid)
    assert g.models() == {analyzer.model: 3}
    con.execute("UPDATE templates SET crop = ? WHERE id = ?", (good, tid))
    con.commit()
    con.close()
    # someone enrols while the migration runs: the transaction sees it and changes nothing
    ids = [r.id for r in g.crops()]
    with pytest.raises(GalleryError, match="changed while"):
        g.replace_embeddings(ids[:-1], np.eye(2, 256, dtype=np.float32), *REID)
    assert g.models() == {analyzer.model: 3}
    steps = []
    result = migrate_gallery(g, reid, lambda n, total: steps.append((n, total)))
    assert (result.templates, result.people, result.new_model) == (3, 3, REID) and steps[-1] == (3, 3)
    assert g.models() == {REID: 3}
    assert [p.name for p in g.dump()] == [p.name for p in before]
    probe = cv2.imread(str(media_dir / "faces" / "id06" / "3.jpg"))
    face = analyzer.face(probe)
    m = Matcher(g, REID, 0.46).identify(reid.embed([reid.align(probe, face.landmarks)]))[0]
    assert m.identity == "id06"
    g.close()


def test_schema_1_gallery_is_upgraded_and_names_who_to_enrol_again(tmp_path, run, analyzer, media_dir):
    _people(tmp_path, analyzer, media_dir, ("id01",)).close()
    con = sqlite3.connect(tmp_path / "g.db")
    con.execute("ALTER TABLE templates DROP COLUMN crop")  # what a gallery of the previous version holds
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    con.commit()
    con.close()
    with Gallery(tmp_path / "g.db") as g:
        assert [r.crop for r in g.crops()] == [None] and g.people()[0].name == "id01"
    schema = sqlite3.connect(tmp_path / "g.db").execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    assert schema == ("2",)
    code, _, err = run("gallery", "migrate", "--model", "face-reid-0095", "--db", str(tmp_path / "g.db"))
    assert code == 2 and "id01" in err and "enrol them again" in err


def test_enroll_folder_skips_bad_photos_and_people(tmp_path, run, media_dir):
    faces = media_dir / "faces"
    office = tmp_path / "office"
    (office / "Ann Lee").mkdir(parents=True)
    for k in (1, 2, 3):
        shutil.copy(faces / "id01" / f"{k}.jpg", office / "Ann Lee" / f"{k}.jpg")
    shutil.copy(faces / "id09" / "1.jpg", office / "Ann Lee" / "0_group.jpg")  # two faces
    (office / "Ann Lee" / "1b.jpg").write_bytes(b"not a JPEG at all")
    (office / "Bob").mkdir()
    shutil.copy(media_dir / "scenes" / "coffee.png", office / "Bob" / "cup.png")  # no face at all
    (office / "Cy").mkdir()
    shutil.copy(faces / "id02" / "1.jpg", office / "Cy" / "1.jpg")
    db = str(tmp_path / "g.db")
    code, out, _ = run("gallery", "enroll-folder", str(office), "--db", db, "--max-photos", "2")
    assert code == 1, out  # Bob could not be enrolled
    assert "[1/3] Ann Lee: 2 template(s)" in out and "0_group.jpg: 2 faces found" in out
    assert "1b.jpg: cannot read the image" in out, out and "NOT enrolled: no usable photo" in out
    assert "cup.png: no face found" in out and "enrolled 2 of 3 people (3 templates, 3 photos skipped)" in out
    with Gallery(db) as g:
        assert [(p.name, p.templates) for p in g.people()] == [("Ann Lee", 2), ("Cy", 1)]
        assert all(r.crop is not None for r in g.crops())
    code, out, _ = run("gallery", "enroll-folder", str(office), "--db", db)  # again: nobody doubled
    assert code == 1 and out.count("NOT enrolled: already in the gallery") == 2


def test_identify_and_liveness_on_folders_go_on_after_a_bad_file(tmp_path, run, media_dir, gallery_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(media_dir / "faces" / "id01" / "2.jpg", batch / "1.jpg")
    shutil.copy(media_dir / "faces" / "id11" / "1.jpg", batch / "2.jpg")
    (batch / "10.jpg").write_bytes(b"\x89PNG garbage")
    code, out, _ = run("identify", str(batch), "--db", str(gallery_path), "--json")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 1 and [x["image"].rsplit("/", 1)[1] for x in lines] == ["1.jpg", "2.jpg", "10.jpg"]
    assert lines[0]["faces"][0]["identity"] == "id01" and lines[1]["faces"][0]["identity"] is None
    assert "faces" not in lines[2] and "not an image" in lines[2]["error"]
    spoof = media_dir / "spoof" / "silent_face"
    code, out, _ = run("liveness", str(spoof / "live"), str(spoof / "spoof"), "--json")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [x["faces"][0]["live"] for x in lines] == [True, False, False]
    code, out, err = run("liveness", str(batch / "10.jpg"), str(spoof / "live"))
    assert code == 1 and "ERROR" in out and "LIVE" in out and "1 of 2 images could not be analysed" in err
