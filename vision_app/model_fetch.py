"""`models fetch`: add models from a model pack (a folder or an http(s):// URL) to a model folder.

A pack is a manifest plus files, in one of two layouts:

- ``manifest.toml``: ``[models.NAME]`` tables as in vision_app/manifest.toml, each with ``file`` and
  ``sha256``. Entries the built-in manifest does not already have word for word are appended to the
  target folder's own manifest.toml, so new models become known.
- ``SHA256SUMS`` (``sha256sum`` output, like ../shared/models): the files of models the manifest
  already knows; each line must agree with the manifest's sha256.

Each file is copied or downloaded to ``<target>/.partial/<file>.part``, its sha256 checked against the
manifest, flushed to disk and only then moved into place (``os.replace``, same folder tree). A checksum
mismatch deletes the partial file; a cut connection keeps it, and the next fetch resumes it with an HTTP
Range request. The model folder itself never holds a half-written model.
"""
from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Mapping

from vision_app.errors import ModelError
from vision_app.model_checksums import sha256_file
from vision_app.models import (MANIFEST_PATH, ModelEntry, ModelStore, append_manifest_entry, manifest_entry_text,
                               manifest_tables)

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
CHUNK = 1 << 16
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

ProgressFn = Callable[[str, int, "int | None"], None]  # (file, bytes so far, total bytes or None)


@dataclass(frozen=True)
class PackItem:
    """One model of a pack: its name, file (relative, posix), expected sha256, and the manifest table to
    add to the target folder (None when the manifest already has this entry)."""

    name: str
    file: str
    sha256: str
    table: Mapping[str, Any] | None = None


@dataclass
class FetchResult:
    name: str
    file: str
    outcome: str  # "fetched" | "already present" | "failed"
    detail: str = ""
    size: int = 0


def _safe_relpath(file: str, origin: str) -> str:
    """A pack's file path must stay inside the model folder: relative, no '..', no drive letters."""
    p = PurePosixPath(file.replace("\\", "/"))
    if not file or p.is_absolute() or ".." in p.parts or ":" in file or p.parts[:1] == (PARTIAL_DIR,):
        raise ModelError(f"{origin}: file path {file!r} must be relative to the pack and stay inside it")
    return p.as_posix()


class PackSource:
    """Reads a pack's files from a local folder or an http(s) base URL."""

    def __init__(self, source: str, timeout_s: float = 30.0) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.is_url = source.startswith(("http://", "https://"))
        if self.is_url:
            base = source
            if base.endswith((".toml", "SHA256SUMS")):
                base = base.rsplit("/", 1)[0]
            self.base = base if base.endswith("/") else base + "/"
            self.manifest_name = source.rsplit("/", 1)[1] if source.endswith((".toml", "SHA256SUMS")) else ""
        else:
            p = Path(source).expanduser()
            if p.is_file():
                self.folder, self.manifest_name = p.parent, p.name
            elif p.is_dir():
                self.folder, self.manifest_name = p, ""
            else:
                raise ModelError(f"model pack {source} not found: give a folder with manifest.toml or "
                                 f"SHA256SUMS, such a file, or an http(s):// URL of one")
            self.base = str(self.folder)

    def url(self, rel: str) -> str:
        return urllib.parse.urljoin(self.base, urllib.parse.quote(rel))

    def read_text(self, rel: str) -> str | None:
        """The text of a small pack file, or None when the pack has no such file."""
        if not self.is_url:
            p = self.folder / rel
            try:
                return p.read_text(encoding="utf-8") if p.is_file() else None
            except (OSError, UnicodeDecodeError) as exc:
                raise ModelError(f"cannot read {p}: {exc}") from exc
        try:
            with urllib.request.urlopen(self.url(rel), timeout=self.timeout_s) as resp:
                return bytes(resp.read()).decode("utf-8")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise ModelError(f"{self.url(rel)}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException, UnicodeDecodeError) as exc:
            raise ModelError(f"cannot read {self.url(rel)}: {exc}; check the URL and the connection") from exc

    def open_at(self, rel: str, offset: int) -> tuple[IO[bytes], int, int | None]:
        """(stream, start offset, total size or None). The start is `offset` when the source could resume
        there, else 0 (the caller then starts the partial file over)."""
        if not self.is_url:
            p = self.folder / rel
            try:
                fh = p.open("rb")
            except OSError as exc:
                raise ModelError(f"cannot read {p}: {exc}") from exc
            total = os.fstat(fh.fileno()).st_size
            start = offset if offset <= total else 0
            fh.seek(start)
            return fh, start, total
        req = urllib.request.Request(self.url(rel), headers={"Range": f"bytes={offset}-"} if offset else {})
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # the partial file is not a prefix any more: start over
                return self.open_at(rel, 0)
            raise ModelError(f"{self.url(rel)}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise ModelError(f"cannot download {self.url(rel)}: {exc}") from exc
        length = resp.headers.get("Content-Length")
        if offset and resp.status == 206:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                resp.close()
                raise ModelError(f"{self.url(rel)}: asked for bytes from {offset}, the server answered "
                                 f"Content-Range {resp.headers.get('Content-Range')!r}")
            size: int | None = int(m.group(2)) if m.group(2) != "*" else None
            if size is None and length:
                size = offset + int(length)
            return resp, offset, size
        return resp, 0, int(length) if length else None


def read_pack(src: PackSource, store: ModelStore) -> tuple[str, list[PackItem]]:
    """(manifest file name, items) of the pack; ModelError when it has neither manifest."""
    names = [src.manifest_name] if src.manifest_name else ["manifest.toml", "SHA256SUMS"]
    for name in names:
        text = src.read_text(name)
        if text is None:
            continue
        if name.endswith(".toml"):
            return name, _items_from_manifest(text, f"{src.source} {name}")
        return name, _items_from_sums(text, f"{src.source} {name}", store)
    raise ModelError(f"{src.source} has no {' or '.join(names)}: a model pack is a folder (or URL) with a "
                     f"manifest.toml listing each model's file and sha256, or a SHA256SUMS file")


def _items_from_manifest(text: str, origin: str) -> list[PackItem]:
    try:
        models = tomllib.loads(text).get("models", {})
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{origin} is not valid TOML: {exc}") from exc
    if not isinstance(models, dict) or not models:
        raise ModelError(f"{origin}: expected [models.NAME] tables, found none")
    with MANIFEST_PATH.open("rb") as fh:
        builtin = tomllib.load(fh).get("models", {})
    items = []
    for name, table in models.items():
        entry = ModelEntry.from_table(name, table, origin)
        if not entry.sha256 or not _HEX64.match(entry.sha256):
            raise ModelError(f"{origin}: model '{name}' needs sha256 = \"<64 hex digits>\" to be fetched, "
                             f"got {entry.sha256!r}")
        file = _safe_relpath(entry.file, origin)
        items.append(PackItem(name, file, entry.sha256, None if builtin.get(name) == table else table))
    return items


def _items_from_sums(text: str, origin: str, store: ModelStore) -> list[PackItem]:
    sums: dict[str, str] = {}
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line.strip())
        if not m:
            raise ModelError(f"{origin} line {k}: expected '<sha256>  <file>', got {line!r}")
        sums[_safe_relpath(m.group(2).removeprefix("./"), origin)] = m.group(1).lower()
    items = []
    for name in store.names():
        e = store.entry(name)
        if e.file not in sums:
            continue
        if e.sha256 and e.sha256 != sums[e.file]:
            raise ModelError(f"{origin}: {e.file} has sha256 {sums[e.file]} but the manifest's model '{name}' "
                             f"expects {e.sha256}; this pack holds another version of it")
        items.append(PackItem(name, e.file, sums[e.file]))
    if not items:
        raise ModelError(f"{origin} lists no file of a model the manifest knows "
                         f"(python main.py models list shows each model's file)")
    return items


def _copy_to_partial(src: PackSource, item: PackItem, part: Path, progress: ProgressFn | None) -> int:
    """Append the rest of the file to `part` (resuming from its size); returns its final size."""
    have = part.stat().st_size if part.is_file() else 0
    stream, start, total = src.open_at(item.file, have)
    with stream, part.open("ab" if start else "wb") as out:
        done = start
        if progress:
            progress(item.file, done, total)
        try:
            while block := stream.read(CHUNK):
                out.write(block)
                done += len(block)
                if progress:
                    progress(item.file, done, total)
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionError(f"connection lost after {done} of {total or '?'} bytes ({exc})") from exc
        out.flush()
        os.fsync(out.fileno())
    if total is not None and done != total:
        raise ConnectionError(f"connection cut after {done} of {total} bytes")
    return done


def fetch_item(src: PackSource, item: PackItem, target: Path, progress: ProgressFn | None = None,
               retries: int = 2) -> int:
    """Fetch one file into `target` (resumable, verified, moved into place); returns its size.

    Raises ModelError on a checksum mismatch (partial file deleted) or when the connection keeps failing
    (partial file kept for the next fetch to resume)."""
    final = target / item.file
    part = target / PARTIAL_DIR / (item.file + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    resumed = part.is_file() and part.stat().st_size > 0
    attempt = 0
    while True:
        try:
            size = _copy_to_partial(src, item, part, progress)
        except ConnectionError as exc:
            if attempt >= retries:
                raise ModelError(f"{item.file}: {exc}; the partial download is kept in {part}, run the same "
                                 f"command again to resume it") from exc
            attempt += 1
            log.warning("%s: %s; resuming (%d/%d)", item.file, exc, attempt, retries)
            time.sleep(0.5 * attempt)
            continue
        digest = sha256_file(part)
        if digest == item.sha256:
            break
        part.unlink(missing_ok=True)
        if resumed:  # an earlier run's partial file may belong to another version of the file
            log.warning("%s: resumed download has the wrong sha256; downloading it whole", item.file)
            resumed = False
            continue
        raise ModelError(f"{item.file}: sha256 {digest} does not match the manifest's {item.sha256}; the "
                         f"download was discarded and nothing was changed. Check the pack, then fetch again")
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, final)
    return size


def fetch_pack(source: str, target: Path, store: ModelStore, only: list[str] | None = None,
               progress: ProgressFn | None = None, retries: int = 2,
               timeout_s: float = 30.0) -> tuple[str, list[FetchResult]]:
    """Fetch a pack's models into `target` (created if needed); returns (manifest name, per-model results).

    A model is skipped when `target` already has its file with the right sha256, or when the store finds
    it present elsewhere (e.g. bundled) under the same entry. A failed model does not stop the others."""
    src = PackSource(source, timeout_s)
    manifest_name, items = read_pack(src, store)
    if only:
        unknown = sorted(set(only) - {i.name for i in items})
        if unknown:
            raise ModelError(f"{source} has no model(s) {unknown}; it has {sorted(i.name for i in items)}")
        items = [i for i in items if i.name in only]
    own = manifest_tables(target / "manifest.toml")
    clash = [i.name for i in items if i.table is not None and i.name in own and own[i.name] != i.table]
    if clash:  # checked before any file moves, so a refused fetch changes nothing
        raise ModelError(f"{target / 'manifest.toml'} already has different entries for {clash}; remove them "
                         f"(and their files) first, or fetch into another folder with --models DIR")
    target.mkdir(parents=True, exist_ok=True)
    results = []
    for item in items:
        final = target / item.file
        if final.is_file() and sha256_file(final) == item.sha256:
            results.append(FetchResult(item.name, item.file, "already present", str(target)))
        elif item.table is None and item.name in store.entries and store.status(item.name) == "present":
            results.append(FetchResult(item.name, item.file, "already present", store.origin(item.name) or ""))
        else:
            try:
                size = fetch_item(src, item, target, progress, retries)
            except ModelError as exc:
                results.append(FetchResult(item.name, item.file, "failed", str(exc)))
                continue
            results.append(FetchResult(item.name, item.file, "fetched", str(final), size))
        if item.table is not None:
            append_manifest_entry(target / "manifest.toml", item.name, manifest_entry_text(item.name, item.table),
                                  replace_same=True)
    partial = target / PARTIAL_DIR
    if partial.is_dir() and not any(p.is_file() for p in partial.rglob("*")):  # no download to resume
        shutil.rmtree(partial, ignore_errors=True)
    return manifest_name, results
