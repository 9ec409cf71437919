"""On-disk cache of serialized TensorRT engines (plan files): pure Python, no tensorrt import.

A plan only works with the TensorRT version and GPU it was built for, and only means something for the
ONNX bytes, precision and shape profile it was built from. All of those form the EngineKey; its digest
names the file, and the file starts with a header holding the full key and the plan's sha256:

    b"VAPPTRT1" | u32 little-endian header length | header JSON (utf-8) | plan bytes

A file that is truncated, has another magic (a plan written by trtexec or another app), a key other than
the one asked for, or a plan whose checksum does not match is reported, removed and rebuilt: a bad cache
never crashes the app. Writes are atomic (temp file + os.replace), so a crash mid-write leaves no half file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engines.trt_settings import ProfileRange

log = logging.getLogger(__name__)

MAGIC = b"VAPPTRT1"
FORMAT = 1
# bump when the build recipe changes (flags, FP16 conversion) so old plans are rebuilt
RECIPE = 1
_MAX_HEADER = 1 << 20
PLAN_SUFFIX = ".engine"


@dataclass(frozen=True)
class EngineKey:
    """What a plan depends on. profiles: ProfileRange.as_list() entries (name, min, opt, max)."""

    model: str
    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profiles: tuple[tuple[Any, ...], ...] = ()
    workspace_mb: int = 0
    recipe: int = RECIPE

    @classmethod
    def create(cls, *, model: str, onnx_sha256: str, trt_version: str, gpu_name: str,
               compute_capability: str, precision: str, profiles: tuple[ProfileRange, ...] = (),
               workspace_mb: int = 0) -> "EngineKey":
        return cls(model=model, onnx_sha256=onnx_sha256, trt_version=trt_version, gpu_name=gpu_name,
                   compute_capability=compute_capability, precision=precision,
                   profiles=tuple(tuple(json.loads(json.dumps(p.as_list()))) for p in profiles),
                   workspace_mb=workspace_mb)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["profiles"] = [list(p) for p in self.profiles]
        return json.loads(json.dumps(d))  # tuples -> lists, the form the header stores

    def digest(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def filename(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model)[:60] or "model"
        return f"{safe}-{self.precision}-{self.digest()[:16]}{PLAN_SUFFIX}"


class CacheMiss(Exception):
    """Why a cached plan could not be used (message for the log); never leaves this module's callers."""


@dataclass(frozen=True)
class CacheEntry:
    """One plan file as `engines list` shows it. header is None when the file is unreadable."""

    path: Path
    size: int
    header: dict[str, Any] | None
    problem: str = ""


def pack(key: EngineKey, plan: bytes, **info: Any) -> bytes:
    """Header + plan bytes. info: extra facts for `engines list` (build seconds, driver, onnx path)."""
    header = {"format": FORMAT, "key": key.to_json(), "key_digest": key.digest(),
              "plan_sha256": hashlib.sha256(plan).hexdigest(), "plan_size": len(plan),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
    hb = json.dumps(header, sort_keys=True).encode("utf-8")
    return MAGIC + struct.pack("<I", len(hb)) + hb + plan


def read_header(blob: bytes) -> tuple[dict[str, Any], int]:
    """(header, offset of the plan) or CacheMiss naming what is wrong with the file."""
    if len(blob) < len(MAGIC) + 4:
        raise CacheMiss(f"file too short ({len(blob)} bytes) to be a cached engine")
    if blob[:len(MAGIC)] != MAGIC:
        raise CacheMiss("not written by this app (foreign or raw TensorRT plan: no vision-app header)")
    (hlen,) = struct.unpack_from("<I", blob, len(MAGIC))
    start = len(MAGIC) + 4
    if hlen > _MAX_HEADER or start + hlen > len(blob):
        raise CacheMiss(f"header length {hlen} does not fit the file ({len(blob)} bytes): truncated or corrupt")
    try:
        header = json.loads(blob[start:start + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheMiss(f"header is not valid JSON ({exc}): corrupt file") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CacheMiss(f"header format {header.get('format') if isinstance(header, dict) else '?'} is not "
                        f"{FORMAT}")
    return header, start + hlen


def unpack(blob: bytes, key: EngineKey) -> bytes:
    """The plan inside `blob` if it was built for exactly `key` and is intact; else CacheMiss."""
    header, off = read_header(blob)
    if header.get("key") != key.to_json():
        theirs = header.get("key") or {}
        diff = sorted(k for k in set(theirs) | set(key.to_json()) if theirs.get(k) != key.to_json().get(k))
        raise CacheMiss(f"built for a different key (differs in: {', '.join(diff)})")
    plan = blob[off:]
    if len(plan) != header.get("plan_size"):
        raise CacheMiss(f"plan is {len(plan)} bytes, header says {header.get('plan_size')}: truncated")
    if hashlib.sha256(plan).hexdigest() != header.get("plan_sha256"):
        raise CacheMiss("plan checksum mismatch: the file is corrupt")
    return plan


class EngineCache:
    """Plan files under `root` (default <user data>/engines), plus the shared timing-cache files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, key: EngineKey) -> Path:
        return self.root / key.filename()

    def load(self, key: EngineKey) -> bytes | None:
        """The cached plan for key, or None (missing, or bad: then it is logged and removed)."""
        path = self.path_for(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read cached engine %s (%s); rebuilding it", path, exc)
            return None
        try:
            return unpack(blob, key)
        except CacheMiss as exc:
            log.warning("cached engine %s is unusable: %s; removing it and rebuilding", path, exc)
            self.discard(path)
            return None

    def discard(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s: %s (it will be overwritten)", path, exc)

    def store(self, key: EngineKey, plan: bytes, **info: Any) -> Path:
        """Write atomically; returns the file's path."""
        path = self.path_for(key)
        atomic_write(path, pack(key, plan, **info))
        log.info("cached TensorRT engine for %s at %s (%.1f MiB)", key.model, path, len(plan) / 2**20)
        return path

    def entries(self) -> list[CacheEntry]:
        """Every plan file in the folder with its header (or the reason it is unreadable)."""
        out: list[CacheEntry] = []
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.glob(f"*{PLAN_SUFFIX}")):
            try:
                blob = p.read_bytes()
                header, _ = read_header(blob)
                out.append(CacheEntry(p, len(blob), header))
            except CacheMiss as exc:
                out.append(CacheEntry(p, p.stat().st_size, None, str(exc)))
            except OSError as exc:
                out.append(CacheEntry(p, 0, None, f"unreadable: {exc}"))
        return out

    def clear(self, model: str | None = None, timing: bool = False) -> list[Path]:
        """Remove plan files (of one model, or all) and, with timing=True, the timing caches."""
        removed = []
        for e in self.entries():
            if model is None or (e.header and e.header.get("key", {}).get("model") == model):
                self.discard(e.path)
                removed.append(e.path)
        if timing and self.root.is_dir():
            for p in sorted(self.root.glob("timing-*.cache")):
                self.discard(p)
                removed.append(p)
        return removed

    def timing_cache_path(self, trt_version: str, gpu_name: str, compute_capability: str) -> Path:
        """One timing cache per TensorRT version and GPU model, shared by every model's builds."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()[:40] or "gpu"
        return self.root / f"timing-trt{trt_version}-{slug}-sm{compute_capability.replace('.', '')}.cache"


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and os.replace, so readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
