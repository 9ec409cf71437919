"""The gallery's encryption key: a Fernet key in a file only its owner can read (mode 0600).

Face templates and thumbnails are biometric data, so the gallery encrypts them at rest; whoever copies
the database file alone learns nothing about anyone's face. The key lives in a separate file (next to
the database by default, or at a configured path, e.g. on another volume) and the gallery refuses to use
a key file that other users could read.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vision_app.errors import GalleryError

log = logging.getLogger(__name__)

# scrypt cost for passphrase-protected exports (RFC 7914's interactive-login figures, ~50 ms)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1
MAX_SCRYPT_BYTES = 256 * 2 ** 20  # 128·n·r·p accepted from an export file: 8x our own cost, ~1 s


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key (tells which key a file needs without revealing it)."""
    return hashlib.sha256(b"vision-app key id\0" + key).hexdigest()[:16]


def check_permissions(path: Path) -> None:
    """Raise GalleryError when group or others may read or write the key file (POSIX only)."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise GalleryError(f"cannot read the gallery key file {path}: {exc}") from exc
    if mode & 0o077:
        raise GalleryError(f"the gallery key file {path} has permissions {mode:04o}: other users could "
                           f"read the key that protects the face templates. Fix it with: chmod 600 {path}")


def _write_new(path: Path, key: bytes) -> None:
    """Write `key` to a new file at `path` (O_EXCL: FileExistsError if it exists), 0600 from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # the umask can only remove bits; make the mode exact anyway
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path) -> bytes:
    """A new key at `path`, or the key another process created there first.

    The key is written to a private temporary file and hard-linked into place, so the key file appears
    complete or not at all: a second process opening the gallery at the same moment never reads a
    half-written key, and a crash mid-write never leaves an empty key file behind. Where hard links are
    not supported, the file is created in place with O_EXCL (never overwriting someone else's key)."""
    key = Fernet.generate_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        _write_new(tmp, key)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return load_key(path)
        except OSError as exc:  # no hard links on this file system
            log.debug("hard link %s -> %s failed (%s); creating the key file in place", tmp, path, exc)
            try:
                _write_new(path, key)
            except FileExistsError:
                return load_key(path)
    except OSError as exc:
        raise GalleryError(f"cannot create the gallery key file {path}: {exc}; choose another path "
                           f"(face.gallery_key) or fix the folder's permissions") from exc
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove the temporary key file %s: %s", tmp, exc)
    log.info("created gallery key file %s (mode 0600); back it up: without it the templates are lost",
             path)
    return key


def load_key(path: Path) -> bytes:
    """Read and check a key file (permissions, Fernet format). Returns the key bytes."""
    if not path.is_file():
        raise GalleryError(f"gallery key file {path} not found")
    check_permissions(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise GalleryError(f"cannot read the gallery key file {path}: {exc}") from exc
    try:
        Fernet(key)
    except ValueError:
        raise GalleryError(f"{path} is not a gallery key file (expected 32 url-safe base64-encoded bytes, "
                           f"found {len(key)} bytes); point face.gallery_key to the right file") from None
    return key


def load_or_create_key(path: Path, create: bool) -> bytes:
    """The key at `path`; with create=True a missing file is created (mode 0600)."""
    if path.exists() or not create:
        return load_key(path)
    return _create(path)


def passphrase_key(passphrase: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R,
                   p: int = SCRYPT_P) -> bytes:
    """A Fernet key derived from a passphrase with scrypt (for portable exports).

    n, r, p come from the export file when importing, so their cost is bounded: scrypt needs 128·n·r·p
    bytes and time to match, and a damaged or hostile file asking for n = 2^24 would take 16 GiB and
    minutes (the import would hang, then run out of memory)."""
    if not passphrase:
        raise GalleryError("the export passphrase is empty; give a non-empty passphrase")
    if not all(isinstance(v, int) and v >= 1 for v in (n, r, p)) or 128 * n * r * p > MAX_SCRYPT_BYTES:
        raise GalleryError(f"the export asks for a scrypt cost of n={n} r={r} p={p}, more than this app "
                           f"allows ({MAX_SCRYPT_BYTES // 2 ** 20} MiB of work; its own exports use n={SCRYPT_N} "
                           f"r={SCRYPT_R} p={SCRYPT_P}): the file is damaged or was not made by this app")
    try:
        raw = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    except (ValueError, MemoryError) as exc:
        raise GalleryError(f"bad key-derivation parameters n={n} r={r} p={p}: {exc}") from exc
    return base64.urlsafe_b64encode(raw)
