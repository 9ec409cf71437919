"""sha256 of model files, remembered across runs.

A model file is hashed the first time it is used and again only when it changes: the digest is kept in
``<user data>/model_checksums.json`` keyed by the file's absolute path, size and modification time
(nanoseconds). A missing, unreadable or foreign cache file only means hashing again; a cache that cannot
be written (read-only home, full disk) is logged and the digests are kept in memory for this run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_NAME = "model_checksums.json"
_FORMAT = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class ChecksumCache:
    """Digests keyed by (absolute path, size, mtime_ns); `path` None keeps them in memory only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] | None = None
        self.hashed = 0  # files actually read this run (the rest came from the cache)

    def _read_disk(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.info("model checksum cache %s unreadable (%s); hashing again", self.path, exc)
            return {}
        if not (isinstance(raw, dict) and raw.get("format") == _FORMAT and isinstance(raw.get("files"), dict)):
            return {}
        return {k: v for k, v in raw["files"].items() if isinstance(v, dict)}

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._data is None:
            self._data = self._read_disk()
        return self._data

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        if self.path is None:
            return
        merged = dict(self._read_disk())  # keep what other processes added meanwhile; ours win
        merged.update(data)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"format": _FORMAT, "files": merged}, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)  # another process's write is replaced whole, never interleaved
        except OSError as exc:
            log.info("cannot write the model checksum cache %s (%s); checksums are kept for this run only",
                     self.path, exc)
            tmp.unlink(missing_ok=True)

    def digest(self, path: Path) -> str:
        """sha256 of `path` (hex); raises OSError when it cannot be read."""
        p = Path(path).resolve()
        st = p.stat()
        key = str(p)
        with self._lock:
            rec = self._load().get(key)
            if rec and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns \
                    and isinstance(rec.get("sha256"), str):
                return str(rec["sha256"])
        digest = sha256_file(p)
        with self._lock:
            data = self._load()
            data[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            self.hashed += 1
            self._save(data)
        return digest
