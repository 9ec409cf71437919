"""The Gallery API: enrol, list, rename and remove people, read their templates, in one SQLite file.

Every change is one transaction: an enrolment killed half-way leaves nothing behind. A gallery holds
templates of one embedding model; mixing models is refused, because cosine scores across models mean
nothing. How the file is laid out and encrypted is store.py; the records it hands out are records.py.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from cryptography.fernet import Fernet
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.gallery.db import Database
from vision_app.gallery.crops import check_crop
from vision_app.gallery.records import (PersonInfo, PersonRecord, StoredCrop, TemplateLayout, TemplateRecord,
                                        TemplateRow, check_embeddings, check_name, now_iso)
from vision_app.gallery.store import open_store

log = logging.getLogger(__name__)


def default_gallery_path(configured: str = "") -> Path:
    """face.gallery from config; "" = <per-user data folder>/gallery.db."""
    if configured:
        return Path(configured).expanduser()
    from vision_app.models import user_data_dir

    return user_data_dir() / "gallery.db"


class Gallery:
    """An open gallery file. Thread-safe; close() it (or use `with`).

    path: the SQLite file (created when missing). key_path: the Fernet key file (default: path + ".key");
    created with mode 0600 together with a new gallery, required for an existing one.
    """

    def __init__(self, path: str | os.PathLike[str], key_path: str | os.PathLike[str] | None = None,
                 *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path).expanduser()
        self.key_path = Path(key_path).expanduser() if key_path else Path(f"{self.path}.key")
        self.db = Database(self.path, "face gallery", busy_timeout_s=busy_timeout_s)
        self._writes = 0
        try:
            self._cipher = open_store(self.db, self.path, self.key_path)
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def from_config(cls, face_cfg: Any, path: str | None = None) -> "Gallery":
        """Open the gallery named by --db (path) or config face.gallery / face.gallery_key."""
        return cls(default_gallery_path(path or face_cfg.gallery), face_cfg.gallery_key or None,
                   busy_timeout_s=face_cfg.gallery_busy_timeout_s)

    # ---- reading ----------------------------------------------------------------------------------
    def people(self) -> list[PersonInfo]:
        """Everyone enrolled, by name: (name, template count, created)."""
        rows = self.db.query("SELECT p.name, COUNT(t.id), p.created FROM people p LEFT JOIN templates t "
                             "ON t.person_id = p.id GROUP BY p.id ORDER BY p.name COLLATE NOCASE")
        return [PersonInfo(n, int(c), cr) for n, c, cr in rows]

    def has(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM people WHERE name = ?", (check_name(name),)))

    def models(self) -> dict[tuple[str, str], int]:
        """(model name, model version) → number of templates."""
        rows = self.db.query("SELECT model_name, model_version, COUNT(*) FROM templates "
                             "GROUP BY model_name, model_version")
        return {(m, v): int(c) for m, v, c in rows}

    def template_rows(self) -> list[TemplateRow]:
        """Every template's id, owner and model, ordered by id (no decryption)."""
        rows = self.db.query("SELECT t.id, p.name, t.model_name, t.model_version FROM templates t "
                             "JOIN people p ON p.id = t.person_id ORDER BY t.id")
        return [TemplateRow(int(i), n, m, v) for i, n, m, v in rows]

    def layout(self) -> "TemplateLayout":
        """Template ids grouped by person, the names and the models, from one snapshot (no decryption;
        vectorised so a 100,000-template gallery answers in tens of milliseconds)."""
        def run(conn: sqlite3.Connection) -> TemplateLayout:
            rows = conn.execute("SELECT id, person_id FROM templates ORDER BY person_id, id").fetchall()
            names = dict(conn.execute("SELECT id, name FROM people").fetchall())
            models = set(conn.execute("SELECT DISTINCT model_name, model_version FROM templates").fetchall())
            arr = np.array(rows, np.int64).reshape(-1, 2)
            return TemplateLayout(arr[:, 0], arr[:, 1], {int(k): str(v) for k, v in names.items()}, models)

        return self.db.read(run)

    def embeddings(self, ids: Sequence[int]) -> dict[int, NDArray[np.float32]]:
        """Decrypted embeddings (D,) float32 of the given template ids."""
        out: dict[int, NDArray[np.float32]] = {}
        wanted = [int(i) for i in ids]
        for start in range(0, len(wanted), 500):  # SQLite limits the number of bound parameters
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for tid, dim, token in self.db.query(
                    f"SELECT id, dim, embedding FROM templates WHERE id IN ({marks})", tuple(chunk)):
                out[int(tid)] = self._cipher.decrypt_embedding(token, int(dim), int(tid))
        return out

    def thumbnails(self, name: str) -> list[bytes]:
        """The stored JPEG thumbnails of one person (decrypted), oldest first."""
        rows = self.db.query("SELECT t.thumbnail FROM templates t JOIN people p ON p.id = t.person_id "
                             "WHERE p.name = ? AND t.thumbnail IS NOT NULL ORDER BY t.id", (check_name(name),))
        return [b for (tok,) in rows if (b := self._cipher.decrypt_blob(tok)) is not None]

    def dump(self) -> list[PersonRecord]:
        """Everything, decrypted (for export)."""
        people: dict[int, PersonRecord] = {}
        for pid, name, created in self.db.query("SELECT id, name, created FROM people ORDER BY id"):
            people[int(pid)] = PersonRecord(name, created)
        for tid, pid, m, v, dim, emb, thumb, src, created, crop in self.db.query(
                "SELECT id, person_id, model_name, model_version, dim, embedding, thumbnail, source, "
                "created, crop FROM templates ORDER BY id"):
            people[int(pid)].templates.append(TemplateRecord(
                m, v, self._cipher.decrypt_embedding(emb, int(dim), int(tid)), self._cipher.decrypt_blob(thumb), src,
                created, self._cipher.decrypt_blob(crop)))
        return list(people.values())

    def crops(self) -> list[StoredCrop]:
        """Every template's face crop (decrypted FaceCrop bytes, None for templates enrolled before
        crops were kept), with its id, owner and model, ordered by id: what `gallery migrate` reads."""
        rows = self.db.query("SELECT t.id, p.name, t.model_name, t.model_version, t.crop FROM templates t "
                             "JOIN people p ON p.id = t.person_id ORDER BY t.id")
        return [StoredCrop(int(i), n, m, v, self._cipher.decrypt_blob(c)) for i, n, m, v, c in rows]

    def generation(self) -> tuple[int, int]:
        """Changes whenever the gallery changes (this connection's writes or another process's)."""
        (dv,) = self.db.query("PRAGMA data_version")[0]
        return self._writes, int(dv)

    # ---- writing ----------------------------------------------------------------------------------
    def _check_model(self, conn: sqlite3.Connection, models: set[tuple[str, str]]) -> None:
        """One transaction's templates must share one model, the one already in the gallery (if any).
        One scan of the templates per transaction (not per person: imports of many people stay linear)."""
        if not models:
            return
        if len(models) > 1 or not all(m and v for m, v in models):
            found = ", ".join(sorted(f"{m or '?'} {v or '?'}" for m, v in models))
            raise GalleryError(f"a gallery holds templates of one named model and version "
                               f"(FaceEmbedder.model_name/model_version), found {found}: embeddings of "
                               f"different models cannot be compared")
        ((model_name, model_version),) = models
        other = conn.execute("SELECT model_name, model_version FROM templates WHERE NOT (model_name = ? AND "
                             "model_version = ?) LIMIT 1", (model_name, model_version)).fetchone()
        if other:
            raise GalleryError(f"{self.path} holds templates of model {other[0]} {other[1]}; these come from "
                               f"{model_name} {model_version}. Embeddings of different models cannot be "
                               f"compared: re-embed the gallery first (python main.py gallery migrate --model "
                               f"{model_name}), or use another gallery (--db)")

    def _encrypt_rows(self, templates: Sequence[TemplateRecord]) -> list[tuple]:
        """Encrypt before the transaction, so the write lock is held only for the inserts."""
        return [(t.model_name, t.model_version, int(t.embedding.shape[0]), self._cipher.encrypt_embedding(t.embedding),
                 None if t.thumbnail is None else self._cipher.encrypt_blob(t.thumbnail), t.source,
                 t.created or now_iso(), None if t.crop is None else self._cipher.encrypt_blob(t.crop))
                for t in templates]

    @staticmethod
    def _insert(conn: sqlite3.Connection, name: str, created: str, merge: bool, rows: Sequence[tuple]) -> int:
        row = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is not None and not merge:
            raise GalleryError(f"'{name}' is already in the gallery; add templates to them with "
                               f"merge/--add, or remove them first")
        pid = row[0] if row else conn.execute("INSERT INTO people (name, created) VALUES (?, ?)",
                                              (name, created or now_iso())).lastrowid
        for r in rows:
            conn.execute("INSERT INTO templates (person_id, model_name, model_version, dim, embedding, "
                         "thumbnail, source, created, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (pid, *r))
        return len(rows)

    def _written(self) -> None:
        self._writes += 1

    def enroll(self, name: str, embeddings: Any, model_name: str, model_version: str, *,
               thumbnails: Sequence[bytes | None] | None = None, sources: Sequence[str] | None = None,
               crops: Sequence[bytes | None] | None = None, add: bool = False) -> int:
        """Add a person with one template per row of `embeddings` ((N, D) float32, L2-normalised) in one
        transaction. thumbnails: optional JPEG bytes per row; sources: e.g. file names per row; crops:
        FaceCrop.encode() bytes per row (what `gallery migrate` re-embeds; None = not kept).
        add=True adds templates to an existing person. Returns the number of templates stored."""
        clean = check_name(name)
        emb = check_embeddings(embeddings)
        n = len(emb)
        thumbs = list(thumbnails) if thumbnails is not None else [None] * n
        srcs = [str(s) for s in sources] if sources is not None else [""] * n
        kept = [check_crop(c, f"enrol '{clean}'") for c in crops] if crops is not None else [None] * n
        if len(thumbs) != n or len(srcs) != n or len(kept) != n:
            raise GalleryError(f"enrol '{clean}': {n} embeddings but {len(thumbs)} thumbnails, "
                               f"{len(srcs)} sources and {len(kept)} crops")
        model = (str(model_name), str(model_version))
        rows = self._encrypt_rows([TemplateRecord(*model, e, t, s, "", c)
                                   for e, t, s, c in zip(emb, thumbs, srcs, kept)])

        def run(conn: sqlite3.Connection) -> int:
            self._check_model(conn, {model})
            return self._insert(conn, clean, "", add, rows)

        count = self.db.write(run)
        self._written()
        log.info("enrolled %s: %d template(s) of %s %s", clean, count, model_name, model_version)
        return count

    def load_records(self, people: Sequence[PersonRecord], merge: bool = False) -> int:
        """Insert decrypted records (from an import) in one transaction. Returns templates added."""
        checked = [(check_name(p.name), p.created, self._encrypt_rows(p.templates)) for p in people]
        models = {(t.model_name, t.model_version) for p in people for t in p.templates}

        def run(conn: sqlite3.Connection) -> int:
            self._check_model(conn, models)
            return sum(self._insert(conn, n, created, merge, rows) for n, created, rows in checked)

        count = self.db.write(run)
        self._written()
        return count

    def replace_embeddings(self, ids: Sequence[int], embeddings: Any, model_name: str,
                           model_version: str) -> int:
        """Re-embedding (gallery migrate): template ids[i] gets row i of `embeddings` ((N, D) float32,
        L2-normalised) and the new model, all in ONE transaction that must cover every template of the
        gallery (so no two models are ever mixed): if a template was added or removed meanwhile, nothing
        changes and GalleryError says so. Returns the number of templates re-embedded."""
        emb = check_embeddings(embeddings, "re-embedded templates")
        tids = [int(i) for i in ids]
        if len(tids) != len(emb) or len(set(tids)) != len(tids):
            raise GalleryError(f"re-embedding: {len(tids)} template ids (unique: {len(set(tids))}) for "
                               f"{len(emb)} embeddings")
        model = (str(model_name), str(model_version))
        tokens = [self._cipher.encrypt_embedding(e) for e in emb]

        def run(conn: sqlite3.Connection) -> int:
            have = {int(r[0]) for r in conn.execute("SELECT id FROM templates").fetchall()}
            if have != set(tids):
                raise GalleryError(f"{self.path} changed while it was being re-embedded ({len(have)} templates "
                                   f"now, {len(tids)} re-embedded); nothing was changed: run migrate again")
            conn.executemany("UPDATE templates SET model_name = ?, model_version = ?, dim = ?, embedding = ? "
                             "WHERE id = ?", [(*model, int(emb.shape[1]), tok, tid) for tid, tok in zip(tids, tokens)])
            return len(tids)

        count = self.db.write(run)
        self._written()
        log.info("re-embedded %d templates of %s with %s %s", count, self.path, *model)
        return count

    def rename(self, old: str, new: str) -> None:
        o, n = check_name(old), check_name(new)

        def run(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM people WHERE name = ?", (n,)).fetchone() and n != o:
                raise GalleryError(f"cannot rename '{o}' to '{n}': '{n}' is already in the gallery")
            if conn.execute("UPDATE people SET name = ? WHERE name = ?", (n, o)).rowcount == 0:
                raise GalleryError(f"'{o}' is not in the gallery ({self.path})")

        self.db.write(run)
        self._written()

    def remove(self, name: str) -> int:
        """Delete a person and all their templates. Returns how many templates were deleted."""
        clean = check_name(name)

        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT id FROM people WHERE name = ?", (clean,)).fetchone()
            if row is None:
                raise GalleryError(f"'{clean}' is not in the gallery ({self.path})")
            n = conn.execute("DELETE FROM templates WHERE person_id = ?", (row[0],)).rowcount
            conn.execute("DELETE FROM people WHERE id = ?", (row[0],))
            return int(n)

        n = self.db.write(run)
        self._written()
        return n

    @property
    def key_id(self) -> str:
        return dict(self.db.query("SELECT key, value FROM meta"))["key_id"]

    @property
    def fernet(self) -> Fernet:
        return self._cipher.fernet

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
