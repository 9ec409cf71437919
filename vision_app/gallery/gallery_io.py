"""Gallery export / import: one JSON file with the templates still encrypted.

The file holds every person (name, created) and their templates (model name + version, dim, created,
source) with the embedding, thumbnail and face crop (when kept) as Fernet tokens (base64 text). Tokens are made either with the
gallery's own key (the file records the key's id; importing needs that key file) or with a key derived
from a passphrase by scrypt (a portable file: the salt and cost are in the file). Import checks every
field, decrypts and validates every template before writing anything, then adds everyone in one
transaction: a bad file raises GalleryError and leaves the gallery untouched.
"""
from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.fernet import Fernet, InvalidToken

from vision_app.errors import GalleryError
from vision_app.gallery.crops import check_crop
from vision_app.gallery.gallery import Gallery
from vision_app.gallery.keyfile import SCRYPT_N, SCRYPT_P, SCRYPT_R, key_id, load_key, passphrase_key
from vision_app.gallery.records import PersonRecord, TemplateRecord, check_embeddings, check_name, now_iso

log = logging.getLogger(__name__)

EXPORT_FORMAT = "vision-app-gallery-export"
EXPORT_VERSION = 1
_CHECK = b"vision-app export key check"
MAX_DIM = 4096


def export_gallery(gallery: Gallery, path: str | os.PathLike[str], passphrase: str | None = None) -> int:
    """Write the whole gallery to `path` (created with mode 0600). Returns the number of people.

    passphrase: None keeps the tokens under the gallery's key; a passphrase re-encrypts them with a
    scrypt-derived key so the file can be imported into any gallery."""
    enc: dict[str, str | int]
    if passphrase is None:
        fernet, enc = gallery.fernet, {"kind": "gallery-key", "key_id": gallery.key_id}
    else:
        salt = os.urandom(16)
        fernet = Fernet(passphrase_key(passphrase, salt))
        enc = {"kind": "passphrase", "kdf": "scrypt", "salt": base64.b64encode(salt).decode("ascii"),
               "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}

    def tok(data: bytes | None) -> str | None:
        return None if data is None else fernet.encrypt(data).decode("ascii")

    people = gallery.dump()
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported": now_iso(), "encryption": enc,
           "key_check": tok(_CHECK),
           "people": [{"name": p.name, "created": p.created, "templates": [
               {"model_name": t.model_name, "model_version": t.model_version,
                "dim": int(t.embedding.shape[0]), "created": t.created, "source": t.source,
                "embedding": tok(np.ascontiguousarray(t.embedding, "<f4").tobytes()),
                "thumbnail": tok(t.thumbnail), "crop": tok(t.crop)} for t in p.templates]} for p in people]}
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        raise GalleryError(f"cannot write the export file {out}: {exc}") from exc
    log.info("exported %d people to %s (%s)", len(people), out, enc["kind"])
    return len(people)


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise GalleryError(f"bad gallery export: {where} has no '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise GalleryError(f"bad gallery export: {where}.{key} has the wrong type "
                           f"({type(value).__name__})")
    return value


def _fernet_for(doc: dict, gallery: Gallery, passphrase: str | None,
                source_key: str | os.PathLike[str] | None) -> Fernet:
    enc = _field(doc, "encryption", dict, "file")
    kind = _field(enc, "kind", str, "encryption")
    if kind == "passphrase":
        if passphrase is None:
            raise GalleryError("this export is protected by a passphrase; give it (--passphrase-env or "
                               "--ask-passphrase)")
        try:
            salt = base64.b64decode(_field(enc, "salt", str, "encryption"), validate=True)
        except ValueError:
            raise GalleryError("bad gallery export: the salt is not base64") from None
        cost = [_field(enc, k, int, "encryption") for k in ("n", "r", "p")]
        return Fernet(passphrase_key(passphrase, salt, *cost))
    if kind == "gallery-key":
        want = _field(enc, "key_id", str, "encryption")
        if source_key is not None:
            key = load_key(Path(source_key))
        elif want == gallery.key_id:
            return gallery.fernet
        else:
            raise GalleryError(f"this export is encrypted with the key of another gallery (key id {want}, "
                               f"this gallery's is {gallery.key_id}); pass that gallery's key file "
                               f"(--source-key) or export again with a passphrase")
        if key_id(key) != want:
            raise GalleryError(f"the key file {source_key} is not the one this export needs (key id {want})")
        return Fernet(key)
    raise GalleryError(f"bad gallery export: unknown encryption kind {kind!r}")


def _decrypt(fernet: Fernet, token: Any, where: str) -> bytes:
    if not isinstance(token, str):
        raise GalleryError(f"bad gallery export: {where} is not a token string")
    try:
        return fernet.decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise GalleryError(f"bad gallery export: {where} cannot be decrypted (damaged, or the wrong "
                           f"key/passphrase)") from None


def read_export(path: str | os.PathLike[str], gallery: Gallery, passphrase: str | None = None,
                source_key: str | os.PathLike[str] | None = None) -> list[PersonRecord]:
    """Parse and fully validate an export file; returns decrypted records (nothing is written)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GalleryError(f"cannot read the export file {p}: {exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise GalleryError(f"{p} is not a gallery export (not valid JSON: {exc})") from exc
    except RecursionError:  # "[[[[…": nested deeper than the parser goes; no export looks like that
        raise GalleryError(f"{p} is not a gallery export (JSON nested too deeply)") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise GalleryError(f"{p} is not a gallery export (expected format '{EXPORT_FORMAT}')")
    if doc.get("version") != EXPORT_VERSION:
        raise GalleryError(f"{p}: export version {doc.get('version')!r} is not supported (expects "
                           f"{EXPORT_VERSION})")
    fernet = _fernet_for(doc, gallery, passphrase, source_key)
    if _decrypt(fernet, doc.get("key_check"), "key_check") != _CHECK:
        raise GalleryError("bad gallery export: the key check does not match")
    people, seen = [], set()
    for i, person in enumerate(_field(doc, "people", list, "file")):
        where = f"people[{i}]"
        name = check_name(_field(person, "name", str, where))
        if name in seen:
            raise GalleryError(f"bad gallery export: '{name}' appears twice")
        seen.add(name)
        rec = PersonRecord(name, _field(person, "created", str, where))
        templates = _field(person, "templates", list, where)
        if not templates:
            raise GalleryError(f"bad gallery export: '{name}' has no templates")
        for j, t in enumerate(templates):
            w = f"{where}.templates[{j}]"
            dim = _field(t, "dim", int, w)
            if not 0 < dim <= MAX_DIM:
                raise GalleryError(f"bad gallery export: {w}.dim = {dim} is out of range")
            raw = _decrypt(fernet, t.get("embedding"), f"{w}.embedding")
            if len(raw) != 4 * dim:
                raise GalleryError(f"bad gallery export: {w}.embedding has {len(raw)} bytes, expected "
                                   f"{4 * dim}")
            emb = check_embeddings(np.frombuffer(raw, "<f4"), f"{w}.embedding")[0]
            thumb, crop = t.get("thumbnail"), t.get("crop")  # crop: absent in exports before schema 2
            rec.templates.append(TemplateRecord(
                _field(t, "model_name", str, w), _field(t, "model_version", str, w), emb,
                None if thumb is None else _decrypt(fernet, thumb, f"{w}.thumbnail"),
                _field(t, "source", str, w), _field(t, "created", str, w),
                None if crop is None else check_crop(_decrypt(fernet, crop, f"{w}.crop"), f"bad gallery export: {w}.crop")))
        people.append(rec)
    return people


def import_gallery(gallery: Gallery, path: str | os.PathLike[str], passphrase: str | None = None,
                   source_key: str | os.PathLike[str] | None = None, merge: bool = False) -> tuple[int, int]:
    """Validate the whole file, then add everyone in one transaction. merge=True adds templates to
    people already in the gallery (else a name clash is an error). Returns (people, templates)."""
    people = read_export(path, gallery, passphrase, source_key)
    added = gallery.load_records(people, merge=merge)
    log.info("imported %d people, %d templates from %s", len(people), added, path)
    return len(people), added
