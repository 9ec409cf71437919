"""Gallery: encrypted templates in SQLite, key-file permissions, transactions that survive SIGKILL,
locks that become GalleryError, export/import that validates everything."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.fernet import Fernet, InvalidToken

from vision_app.errors import GalleryError
from vision_app.gallery.gallery import Gallery
from vision_app.gallery.gallery_io import export_gallery, import_gallery

MODEL = ("mobilefacenet", "128d-1")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def real(identity_embeddings):
    """Real embeddings (M, 128) and labels of the identity photos."""
    labels, emb = identity_embeddings
    return labels, emb


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_new_gallery_key_is_0600_and_roundtrips(tmp_path, real):
    labels, emb = real
    with Gallery(tmp_path / "g.db") as g:
        assert g.enroll("id01", emb[labels == "id01"], *MODEL) == 3
        assert g.enroll("id02", emb[labels == "id02"][:1], *MODEL, thumbnails=[b"jpeg"]) == 1
    key = tmp_path / "g.db.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "g.db").stat().st_mode & 0o777 == 0o600  # names are personal data too
    with Gallery(tmp_path / "g.db") as g:  # reopened: same key, same data
        assert [(p.name, p.templates) for p in g.people()] == [("id01", 3), ("id02", 1)]
        rows = g.template_rows()
        got = g.embeddings([r.id for r in rows if r.name == "id01"])
        np.testing.assert_array_equal(np.stack(list(got.values())), emb[labels == "id01"])
        assert g.thumbnails("id02") == [b"jpeg"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_group_or_world_readable_key_is_refused(tmp_path, mode):
    Gallery(tmp_path / "g.db").close()
    key = tmp_path / "g.db.key"
    key.chmod(mode)
    with pytest.raises(GalleryError, match=f"chmod 600 {key}"):
        Gallery(tmp_path / "g.db")
    key.chmod(0o600)
    Gallery(tmp_path / "g.db").close()


def test_configured_key_path_missing_key_and_wrong_key(tmp_path):
    key = tmp_path / "keys" / "gallery.key"
    with Gallery(tmp_path / "g.db", key) as g:
        g.enroll("a", unit(1), *MODEL)
    assert key.is_file() and not (tmp_path / "g.db.key").exists()
    with pytest.raises(GalleryError, match="missing"):  # never silently makes a new key for old data
        Gallery(tmp_path / "g.db")
    other = tmp_path / "other.key"
    other.write_bytes(Fernet.generate_key())
    other.chmod(0o600)
    with pytest.raises(GalleryError, match="does not belong"):
        Gallery(tmp_path / "g.db", other)


def test_db_file_alone_does_not_reveal_templates(tmp_path, real):
    labels, emb = real
    faces = emb[:6]
    thumb = cv2.imencode(".jpg", np.full((112, 112, 3), 99, np.uint8))[1].tobytes()
    with Gallery(tmp_path / "g.db") as g:
        g.enroll("alice", faces, *MODEL, thumbnails=[thumb] * 6)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("g.db*") if not p.name.endswith(".key"))
    for row in faces:
        b = row.astype("<f4").tobytes()
        assert b[:16] not in raw and b[64:80] not in raw
    assert thumb[20:60] not in raw
    con = sqlite3.connect(tmp_path / "g.db")
    blobs = [bytes(b) for (b,) in con.execute("SELECT embedding FROM templates")]
    con.close()
    assert len(blobs) == 6
    for blob, row in zip(blobs, faces):
        assert len(blob) % 4 != 0 or not np.allclose(np.frombuffer(blob[:512], "<f4"), row[:128], atol=1e-3)
        with pytest.raises(InvalidToken):
            Fernet(Fernet.generate_key()).decrypt(blob)
        key = (tmp_path / "g.db.key").read_bytes().strip()  # with the key it is the embedding
        np.testing.assert_array_equal(np.frombuffer(Fernet(key).decrypt(blob), "<f4"), row)


def test_list_rename_remove(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.enroll("bob", unit(2), *MODEL)
        g.enroll("alice", unit(1, 1), *MODEL)
        with pytest.raises(GalleryError, match="already in the gallery"):
            g.enroll("bob", unit(1, 2), *MODEL)
        assert g.enroll("bob", unit(1, 2), *MODEL, add=True) == 1
        assert [(p.name, p.templates) for p in g.people()] == [("alice", 1), ("bob", 3)]
        with pytest.raises(GalleryError, match="already in the gallery"):
            g.rename("bob", "alice")
        g.rename("bob", "robert")
        assert [p.name for p in g.people()] == ["alice", "robert"]
        assert g.remove("robert") == 3
        assert [r.name for r in g.template_rows()] == ["alice"]
        with pytest.raises(GalleryError, match="not in the gallery"):
            g.remove("robert")


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 128), np.float32), "N >= 1"),
    (np.ones((2, 128), np.float32), "L2-normalised"),
    (np.full((1, 128), np.nan, np.float32), "NaN"),
    (np.ones((2, 3, 4), np.float32), "expected an"),
])
def test_bad_embeddings_are_refused(tmp_path, bad, match):
    with Gallery(tmp_path / "g.db") as g, pytest.raises(GalleryError, match=match):
        g.enroll("x", bad, *MODEL)


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 101])
def test_bad_names_are_refused(tmp_path, name):
    with Gallery(tmp_path / "g.db") as g, pytest.raises(GalleryError, match="bad name"):
        g.enroll(name, unit(1), *MODEL)


def test_other_model_templates_are_refused(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.enroll("a", unit(1), *MODEL)
        with pytest.raises(GalleryError, match="cannot be compared"):
            g.enroll("b", unit(1), "mobilefacenet", "128d-2")
        assert [p.name for p in g.people()] == ["a"]


def test_locked_database_becomes_gallery_error(tmp_path):
    Gallery(tmp_path / "g.db").close()
    holder = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Gallery(tmp_path / "g.db", busy_timeout_s=0.05) as g:
            with pytest.raises(GalleryError, match="locked by another process"):
                g.enroll("a", unit(1), *MODEL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Gallery(tmp_path / "g.db") as g:  # and works again once the lock is gone
        g.enroll("a", unit(1), *MODEL)


def test_not_a_gallery_file(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="not a valid SQLite database"):
        Gallery(tmp_path / "junk.db")
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(GalleryError, match="not a face gallery"):
        Gallery(tmp_path / "other.db")


_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from vision_app.gallery.gallery import Gallery
    path, pause_at = sys.argv[1], int(sys.argv[2])
    g = Gallery(path)
    seen = [0]
    def trace(sql):
        if sql.startswith("INSERT INTO templates"):
            seen[0] += 1
            if seen[0] == pause_at:  # templates 1..pause_at-1 are written, uncommitted
                print("PAUSED", flush=True)
                time.sleep(60)
    g.db.conn.set_trace_callback(trace)
    x = np.random.default_rng(1).standard_normal((8, 128)).astype(np.float32)
    g.enroll("victim", x / np.linalg.norm(x, axis=1, keepdims=True), "mobilefacenet", "128d-1")
    print("DONE", flush=True)
""")


def _child(db: Path, pause_at: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(db), str(pause_at)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("pause_at", [2, 8])
def test_sigkill_mid_enrolment_leaves_all_or_nothing(tmp_path, pause_at):
    db = tmp_path / "g.db"
    with Gallery(db) as g:
        g.enroll("before", unit(2), *MODEL)
    child = _child(db, pause_at)
    try:
        assert child.stdout.readline().strip() == "PAUSED"  # inside the enrolment transaction
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    with Gallery(db) as g:
        assert [(p.name, p.templates) for p in g.people()] == [("before", 2)]
        assert len(g.template_rows()) == 2
    done = _child(db, 99)  # the same enrolment, not interrupted, is fully there
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 0 and out.strip() == "DONE"
    with Gallery(db) as g:
        assert [(p.name, p.templates) for p in g.people()] == [("before", 2), ("victim", 8)]


def test_export_import_with_gallery_key_and_passphrase(tmp_path, real):
    labels, emb = real
    src = Gallery(tmp_path / "src.db")
    src.enroll("id01", emb[labels == "id01"], *MODEL, thumbnails=[b"t1", None, b"t3"])
    src.enroll("id02", emb[labels == "id02"], *MODEL)
    assert export_gallery(src, tmp_path / "plain.json") == 2
    assert export_gallery(src, tmp_path / "pass.json", passphrase="correct horse") == 2
    assert (tmp_path / "pass.json").stat().st_mode & 0o777 == 0o600
    text = (tmp_path / "pass.json").read_text()
    assert "id01" in text and emb[0].astype("<f4").tobytes().hex()[:16] not in text
    # same gallery key: a restored copy of the gallery (e.g. after a disk swap)
    dst = Gallery(tmp_path / "dst.db", tmp_path / "src.db.key")
    assert import_gallery(dst, tmp_path / "plain.json") == (2, 5)
    assert dst.thumbnails("id01") == [b"t1", b"t3"]
    # another gallery: needs the passphrase (or the source key)
    other = Gallery(tmp_path / "other.db")
    with pytest.raises(GalleryError, match="key of another gallery"):
        import_gallery(other, tmp_path / "plain.json")
    with pytest.raises(GalleryError, match="cannot be decrypted"):
        import_gallery(other, tmp_path / "pass.json", passphrase="wrong")
    assert import_gallery(other, tmp_path / "pass.json", passphrase="correct horse") == (2, 5)
    got = other.embeddings([r.id for r in other.template_rows() if r.name == "id02"])
    np.testing.assert_array_equal(np.stack(list(got.values())), emb[labels == "id02"])
    with pytest.raises(GalleryError, match="already in the gallery"):  # twice: clash, nothing added
        import_gallery(other, tmp_path / "pass.json", passphrase="correct horse")
    assert sum(p.templates for p in other.people()) == 5
    third = Gallery(tmp_path / "third.db")
    assert import_gallery(third, tmp_path / "plain.json", source_key=tmp_path / "src.db.key") == (2, 5)
    for g in (src, dst, other, third):
        g.close()


def _corrupt(doc: dict, how: str) -> dict:
    t = doc["people"][1]["templates"][0]
    if how == "token":
        t["embedding"] = t["embedding"][:-8] + "AAAAAAAA"
    elif how == "dim":
        t["dim"] = 64
    elif how == "type":
        t["model_name"] = 5
    elif how == "dup":
        doc["people"][1]["name"] = doc["people"][0]["name"]
    elif how == "empty":
        doc["people"][1]["templates"] = []
    elif how == "format":
        doc["format"] = "something-else"
    elif how == "model":
        t["model_version"] = "other"
    return doc


@pytest.mark.parametrize("how, match", [
    ("token", "cannot be decrypted"), ("dim", "bytes, expected"), ("type", "wrong type"),
    ("dup", "appears twice"), ("empty", "no templates"), ("format", "not a gallery export"),
    ("model", "cannot be compared")])
def test_bad_import_raises_and_adds_nothing(tmp_path, how, match):
    with Gallery(tmp_path / "src.db") as src:
        src.enroll("a", unit(2), *MODEL)
        src.enroll("b", unit(2, 1), *MODEL)
        export_gallery(src, tmp_path / "x.json", passphrase="pw")
    doc = _corrupt(json.loads((tmp_path / "x.json").read_text()), how)
    (tmp_path / "x.json").write_text(json.dumps(doc))
    with Gallery(tmp_path / "dst.db") as dst:
        with pytest.raises(GalleryError, match=match):
            import_gallery(dst, tmp_path / "x.json", passphrase="pw")
        assert dst.people() == [] and dst.template_rows() == []
