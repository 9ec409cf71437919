"""How a gallery is stored: SQLite schema, format/version and key checks, template encryption (Fernet).

Tables: meta (format, schema, key id, key check), people (id, name unique, created) and templates
(person, model name + version, dim, encrypted embedding, optional encrypted JPEG thumbnail, source,
created, optional encrypted face crop — schema 2; a schema-1 gallery gets the column when opened, its
templates without crops). Embeddings and thumbnails are Fernet tokens made with the key file (keyfile.py), so the
database file alone reveals no template. The Gallery API (gallery.py) opens its file through
open_store() and never handles raw tokens itself.
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
from cryptography.fernet import Fernet, InvalidToken
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.gallery.db import Database
from vision_app.gallery.keyfile import key_id, load_or_create_key
from vision_app.gallery.records import now_iso

log = logging.getLogger(__name__)

FORMAT = "vision-app-gallery"
SCHEMA_VERSION = "2"
_UPGRADABLE = {"1"}
_KEY_CHECK = b"vision-app gallery key check"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    model_name TEXT NOT NULL, model_version TEXT NOT NULL, dim INTEGER NOT NULL,
    embedding BLOB NOT NULL, thumbnail BLOB, source TEXT NOT NULL DEFAULT '', created TEXT NOT NULL,
    crop BLOB);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
"""


class TemplateCipher:
    """Encrypts and decrypts one gallery's embeddings and thumbnails; errors name the gallery and key."""

    def __init__(self, fernet: Fernet, path: Path, key_path: Path) -> None:
        self.fernet, self.path, self.key_path = fernet, path, key_path

    def encrypt_embedding(self, row: NDArray[np.float32]) -> bytes:
        """(D,) float32 → token of its little-endian float32 bytes."""
        return self.fernet.encrypt(np.ascontiguousarray(row, "<f4").tobytes())

    def decrypt_embedding(self, token: bytes, dim: int, tid: int) -> NDArray[np.float32]:
        """Template `tid`'s token → (dim,) float32; GalleryError when damaged or of another key."""
        try:
            raw = self.fernet.decrypt(bytes(token))
        except InvalidToken:
            raise GalleryError(f"{self.path}: template {tid} cannot be decrypted with {self.key_path} "
                               f"(damaged or written with another key)") from None
        if len(raw) != 4 * dim:
            raise GalleryError(f"{self.path}: template {tid} has {len(raw)} bytes, expected {4 * dim}")
        return np.frombuffer(raw, "<f4").astype(np.float32)

    def encrypt_blob(self, data: bytes) -> bytes:
        return self.fernet.encrypt(bytes(data))

    def decrypt_blob(self, token: bytes | None) -> bytes | None:
        if token is None:
            return None
        try:
            return self.fernet.decrypt(bytes(token))
        except InvalidToken:
            raise GalleryError(f"{self.path}: a thumbnail cannot be decrypted with {self.key_path}") from None


def open_store(db: Database, path: Path, key_path: Path) -> TemplateCipher:
    """Check that `db` (the SQLite file at `path`) is a gallery of this schema and that `key_path` holds
    its key; an empty file gets the schema and a new key file (mode 0600). Returns the cipher for its
    templates; raises GalleryError for another database, another schema version, or a missing or wrong
    key file."""
    tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    meta = dict(db.query("SELECT key, value FROM meta")) if "meta" in tables else {}
    if tables and meta.get("format") != FORMAT:
        raise GalleryError(f"{path} is an SQLite database but not a face gallery (tables: "
                           f"{sorted(tables)}); choose another path")
    if meta and meta.get("schema") != SCHEMA_VERSION and meta.get("schema") not in _UPGRADABLE:
        raise GalleryError(f"{path}: gallery schema {meta.get('schema')!r} is not supported by this "
                           f"version (expects {SCHEMA_VERSION}); update the app")
    if not meta:
        key = load_or_create_key(key_path, create=True)
        fernet, kid = Fernet(key), key_id(key)

        def init(conn: sqlite3.Connection) -> None:
            for statement in _SCHEMA.split(";"):  # not executescript: it would commit mid-way
                if statement.strip():
                    conn.execute(statement)
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                ("format", FORMAT), ("schema", SCHEMA_VERSION), ("key_id", kid),
                ("key_check", fernet.encrypt(_KEY_CHECK).decode("ascii")), ("created", now_iso())])

        db.write(init)
        log.info("created face gallery %s (key %s)", path, key_path)
        return TemplateCipher(fernet, path, key_path)
    if not key_path.exists():
        raise GalleryError(f"the gallery {path} is encrypted with a key file that should be at "
                           f"{key_path}, but that file is missing. Restore it from your backup or "
                           f"point face.gallery_key to it; without it the templates cannot be read")
    fernet = Fernet(load_or_create_key(key_path, create=False))
    try:
        ok = fernet.decrypt(meta.get("key_check", "").encode("ascii")) == _KEY_CHECK
    except InvalidToken:
        ok = False
    if not ok:
        raise GalleryError(f"the key file {key_path} does not belong to the gallery {path} "
                           f"(it needs the key with id {meta.get('key_id')}); point face.gallery_key "
                           f"to the right key file")
    if meta.get("schema") in _UPGRADABLE:
        _upgrade(db, path, str(meta["schema"]))
    return TemplateCipher(fernet, path, key_path)


def _upgrade(db: Database, path: Path, old: str) -> None:
    """Schema 1 → 2 in one transaction: templates get the (empty) face-crop column."""
    def run(conn: sqlite3.Connection) -> None:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(templates)").fetchall()}
        if "crop" not in cols:
            conn.execute("ALTER TABLE templates ADD COLUMN crop BLOB")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))

    db.write(run)
    log.info("face gallery %s upgraded from schema %s to %s: templates can keep their face crop; the "
             "existing ones have none (gallery migrate names who must be enrolled again)", path, old,
             SCHEMA_VERSION)
