"""The face gallery: people and their encrypted face templates in one SQLite file.

Tables: people (id, name unique, created) and templates (person, model name + version, dim, encrypted
embedding, optional encrypted JPEG thumbnail, source, created). Embeddings and thumbnails are Fernet
tokens made with the key file (keyfile.py), so the database file alone reveals no template. Every change
is one transaction: an enrolment killed half-way leaves nothing behind. A gallery holds templates of one
embedding model; mixing models is refused, because cosine scores across models mean nothing.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from cryptography.fernet import Fernet, InvalidToken
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.gallery.db import Database
from vision_app.gallery.keyfile import key_id, load_or_create_key

log = logging.getLogger(__name__)

FORMAT = "vision-app-gallery"
SCHEMA_VERSION = "1"
_KEY_CHECK = b"vision-app gallery key check"
MAX_NAME = 100
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    model_name TEXT NOT NULL, model_version TEXT NOT NULL, dim INTEGER NOT NULL,
    embedding BLOB NOT NULL, thumbnail BLOB, source TEXT NOT NULL DEFAULT '', created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
"""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def default_gallery_path(configured: str = "") -> Path:
    """face.gallery from config; "" = <per-user data folder>/gallery.db."""
    if configured:
        return Path(configured).expanduser()
    from vision_app.models import user_data_dir

    return user_data_dir() / "gallery.db"


def check_name(name: str) -> str:
    """A person's name, stripped; raises GalleryError when empty, too long or with control characters."""
    if not isinstance(name, str):
        raise GalleryError(f"a person's name must be text, got {type(name).__name__}")
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in clean):
        raise GalleryError(f"bad name {name!r}: expected 1..{MAX_NAME} printable characters")
    return clean


def check_embeddings(embeddings: Any, what: str = "embeddings") -> NDArray[np.float32]:
    """(N, D) finite, L2-normalised float rows → float32 array; anything else raises GalleryError."""
    arr = np.asarray(embeddings)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0 or arr.dtype.kind != "f":
        raise GalleryError(f"{what}: expected an (N, D) float array with N >= 1, got "
                           f"{arr.dtype} {arr.shape}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise GalleryError(f"{what}: contains NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1)
    if np.abs(norms - 1.0).max() > 1e-3:
        raise GalleryError(f"{what}: rows must be L2-normalised (FaceEmbedder.embed output), found norms "
                           f"{norms.min():.4f}..{norms.max():.4f}")
    return arr


@dataclass(frozen=True)
class PersonInfo:
    name: str
    templates: int
    created: str  # ISO 8601 UTC


@dataclass(frozen=True)
class TemplateRow:
    """A template's public columns (no embedding): what the matcher needs to rebuild incrementally."""

    id: int
    name: str
    model_name: str
    model_version: str


@dataclass(frozen=True)
class TemplateLayout:
    """ids (T,) int64 template ids and person_ids (T,) int64, grouped by person; names: person id →
    name; models: the (model name, version) pairs present."""

    ids: NDArray[np.int64]
    person_ids: NDArray[np.int64]
    names: dict[int, str]
    models: set[tuple[str, str]]


@dataclass
class TemplateRecord:
    """A decrypted template, for export/import. embedding: (D,) float32 L2-normalised."""

    model_name: str
    model_version: str
    embedding: NDArray[np.float32]
    thumbnail: bytes | None = None  # JPEG bytes
    source: str = ""
    created: str = ""


@dataclass
class PersonRecord:
    name: str
    created: str = ""
    templates: list[TemplateRecord] = field(default_factory=list)


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
            self._fernet = self._open()
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def from_config(cls, face_cfg: Any, path: str | None = None) -> "Gallery":
        """Open the gallery named by --db (path) or config face.gallery / face.gallery_key."""
        return cls(default_gallery_path(path or face_cfg.gallery), face_cfg.gallery_key or None,
                   busy_timeout_s=face_cfg.gallery_busy_timeout_s)

    def _open(self) -> Fernet:
        tables = {r[0] for r in self.db.query("SELECT name FROM sqlite_master WHERE type='table'")}
        meta = dict(self.db.query("SELECT key, value FROM meta")) if "meta" in tables else {}
        if tables and meta.get("format") != FORMAT:
            raise GalleryError(f"{self.path} is an SQLite database but not a face gallery (tables: "
                               f"{sorted(tables)}); choose another path")
        if meta and meta.get("schema") != SCHEMA_VERSION:
            raise GalleryError(f"{self.path}: gallery schema {meta.get('schema')!r} is not supported by this "
                               f"version (expects {SCHEMA_VERSION}); update the app")
        if not meta:
            key = load_or_create_key(self.key_path, create=True)
            fernet, kid = Fernet(key), key_id(key)

            def init(conn: sqlite3.Connection) -> None:
                for statement in _SCHEMA.split(";"):  # not executescript: it would commit mid-way
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                    ("format", FORMAT), ("schema", SCHEMA_VERSION), ("key_id", kid),
                    ("key_check", fernet.encrypt(_KEY_CHECK).decode("ascii")), ("created", now_iso())])

            self.db.write(init)
            log.info("created face gallery %s (key %s)", self.path, self.key_path)
            return fernet
        if not self.key_path.exists():
            raise GalleryError(f"the gallery {self.path} is encrypted with a key file that should be at "
                               f"{self.key_path}, but that file is missing. Restore it from your backup or "
                               f"point face.gallery_key to it; without it the templates cannot be read")
        fernet = Fernet(load_or_create_key(self.key_path, create=False))
        try:
            ok = fernet.decrypt(meta.get("key_check", "").encode("ascii")) == _KEY_CHECK
        except InvalidToken:
            ok = False
        if not ok:
            raise GalleryError(f"the key file {self.key_path} does not belong to the gallery {self.path} "
                               f"(it needs the key with id {meta.get('key_id')}); point face.gallery_key "
                               f"to the right key file")
        return fernet

    # ---- encryption -------------------------------------------------------------------------------
    def _encrypt_embedding(self, row: NDArray[np.float32]) -> bytes:
        return self._fernet.encrypt(np.ascontiguousarray(row, "<f4").tobytes())

    def _decrypt_embedding(self, token: bytes, dim: int, tid: int) -> NDArray[np.float32]:
        try:
            raw = self._fernet.decrypt(bytes(token))
        except InvalidToken:
            raise GalleryError(f"{self.path}: template {tid} cannot be decrypted with {self.key_path} "
                               f"(damaged or written with another key)") from None
        if len(raw) != 4 * dim:
            raise GalleryError(f"{self.path}: template {tid} has {len(raw)} bytes, expected {4 * dim}")
        return np.frombuffer(raw, "<f4").astype(np.float32)

    def _decrypt_blob(self, token: bytes | None) -> bytes | None:
        if token is None:
            return None
        try:
            return self._fernet.decrypt(bytes(token))
        except InvalidToken:
            raise GalleryError(f"{self.path}: a thumbnail cannot be decrypted with {self.key_path}") from None

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
                out[int(tid)] = self._decrypt_embedding(token, int(dim), int(tid))
        return out

    def thumbnails(self, name: str) -> list[bytes]:
        """The stored JPEG thumbnails of one person (decrypted), oldest first."""
        rows = self.db.query("SELECT t.thumbnail FROM templates t JOIN people p ON p.id = t.person_id "
                             "WHERE p.name = ? AND t.thumbnail IS NOT NULL ORDER BY t.id", (check_name(name),))
        return [b for (tok,) in rows if (b := self._decrypt_blob(tok)) is not None]

    def dump(self) -> list[PersonRecord]:
        """Everything, decrypted (for export)."""
        people: dict[int, PersonRecord] = {}
        for pid, name, created in self.db.query("SELECT id, name, created FROM people ORDER BY id"):
            people[int(pid)] = PersonRecord(name, created)
        for tid, pid, m, v, dim, emb, thumb, src, created in self.db.query(
                "SELECT id, person_id, model_name, model_version, dim, embedding, thumbnail, source, "
                "created FROM templates ORDER BY id"):
            people[int(pid)].templates.append(TemplateRecord(
                m, v, self._decrypt_embedding(emb, int(dim), int(tid)), self._decrypt_blob(thumb), src,
                created))
        return list(people.values())

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
                               f"compared: re-enrol everyone with one model, or use another gallery (--db)")

    def _encrypt_rows(self, templates: Sequence[TemplateRecord]) -> list[tuple]:
        """Encrypt before the transaction, so the write lock is held only for the inserts."""
        return [(t.model_name, t.model_version, int(t.embedding.shape[0]), self._encrypt_embedding(t.embedding),
                 None if t.thumbnail is None else self._fernet.encrypt(bytes(t.thumbnail)), t.source,
                 t.created or now_iso()) for t in templates]

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
                         "thumbnail, source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (pid, *r))
        return len(rows)

    def _written(self) -> None:
        self._writes += 1

    def enroll(self, name: str, embeddings: Any, model_name: str, model_version: str, *,
               thumbnails: Sequence[bytes | None] | None = None, sources: Sequence[str] | None = None,
               add: bool = False) -> int:
        """Add a person with one template per row of `embeddings` ((N, D) float32, L2-normalised) in one
        transaction. thumbnails: optional JPEG bytes per row; sources: e.g. file names per row.
        add=True adds templates to an existing person. Returns the number of templates stored."""
        clean = check_name(name)
        emb = check_embeddings(embeddings)
        n = len(emb)
        thumbs = list(thumbnails) if thumbnails is not None else [None] * n
        srcs = [str(s) for s in sources] if sources is not None else [""] * n
        if len(thumbs) != n or len(srcs) != n:
            raise GalleryError(f"enrol '{clean}': {n} embeddings but {len(thumbs)} thumbnails and "
                               f"{len(srcs)} sources")
        model = (str(model_name), str(model_version))
        rows = self._encrypt_rows([TemplateRecord(*model, e, t, s) for e, t, s in zip(emb, thumbs, srcs)])

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
        return self._fernet

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
