"""Reading darknet files: the ``.cfg`` network description and the ``.weights`` float blob.

The cfg is an INI-like list of ``[section]`` blocks of ``key=value`` lines (``#`` and ``;`` start
comments). The first block is ``[net]``; every later block is one layer, numbered from 0 — the
numbers ``route``/``shortcut`` refer to and the ``l<N>`` tensor names of the ONNX graph use.

The weights file is a header (major, minor, revision as int32, then ``seen`` as int64 for format
0.2 and later, int32 before) followed by little-endian float32 values consumed layer by layer.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import ModelError

log = logging.getLogger(__name__)

# darknet accepts a few short spellings of the section names (parser.c string_to_layer_type)
_ALIASES = {"conv": "convolutional", "max": "maxpool", "network": "net"}


@dataclass
class Section:
    """One ``[kind]`` block of a cfg; ``index`` is the layer number (-1 for ``[net]``)."""

    kind: str
    line: int
    index: int
    path: str
    options: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (raw value, line)

    def where(self, key: str | None = None) -> str:
        line = self.options[key][1] if key in self.options else self.line
        return f"{self.path}:{line}: [{self.kind}] (layer {self.index})"

    def has(self, key: str) -> bool:
        return key in self.options

    def _raw(self, key: str, default: object) -> str | None:
        if key in self.options:
            return self.options[key][0]
        if default is None:
            raise ModelError(f"{self.where()}: missing required option '{key}'")
        return None

    def _typed(self, key: str, default: object, kind: type, what: str) -> Any:
        raw = self._raw(key, default)
        if raw is None:
            return kind(default)
        try:
            return kind(raw)
        except ValueError:
            raise ModelError(f"{self.where(key)}: {key}={raw!r}: expected {what}") from None

    def get_int(self, key: str, default: int | None = None) -> int:
        return int(self._typed(key, default, int, "an integer"))

    def get_float(self, key: str, default: float | None = None) -> float:
        return float(self._typed(key, default, float, "a number"))

    def get_str(self, key: str, default: str | None = None) -> str:
        raw = self._raw(key, default)
        return str(default) if raw is None else raw.strip()

    def get_numbers(self, key: str, kind: type = int) -> list:
        """A comma-separated list (``layers=-1,61``, ``anchors=10,14, 23,27``); empty items skipped."""
        raw = self._raw(key, None)
        try:
            return [kind(v) for v in (s.strip() for s in str(raw).split(",")) if v]
        except ValueError:
            what = "integers" if kind is int else "numbers"
            raise ModelError(f"{self.where(key)}: {key}={raw!r}: expected comma-separated {what}") from None

    def reject(self, key: str, allowed: object, why: str) -> None:
        """Raise if ``key`` is set to anything but ``allowed`` (an option the importer cannot express)."""
        if key in self.options and self.options[key][0].strip() != str(allowed):
            raise ModelError(f"{self.where(key)}: {key}={self.options[key][0]!r} is not supported ({why}); "
                             f"only {key}={allowed} can be converted")


def parse_cfg(path: str | Path) -> tuple[Section, list[Section]]:
    """Parse a darknet cfg into its ``[net]`` section and the list of layer sections."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ModelError(f"cannot read darknet cfg {path}: {exc}") from exc
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ModelError(f"{path}:{lineno}: malformed section header {raw.strip()!r}; expected [name]")
            kind = line[1:-1].strip().lower()
            kind = _ALIASES.get(kind, kind)
            sections.append(Section(kind, lineno, len(sections) - 1, str(path)))
            continue
        if not sections:
            raise ModelError(f"{path}:{lineno}: {raw.strip()!r} comes before the first [section]; "
                             f"a darknet cfg starts with [net]")
        key, sep, value = line.partition("=")
        if not sep:
            raise ModelError(f"{path}:{lineno}: expected key=value inside [{sections[-1].kind}], "
                             f"found {raw.strip()!r}")
        sections[-1].options[key.strip().lower()] = (value.strip(), lineno)
    if not sections or sections[0].kind != "net":
        found = f"[{sections[0].kind}] at line {sections[0].line}" if sections else "no section at all"
        raise ModelError(f"{path}: a darknet cfg must start with [net]; found {found}")
    if len(sections) == 1:
        raise ModelError(f"{path}: the cfg has a [net] section but no layers")
    return sections[0], sections[1:]


class WeightsReader:
    """Hands out consecutive float32 runs of a ``.weights`` file.

    Asking for more than the file holds does not raise at once: zeros are returned and the shortfall
    is recorded, so that :meth:`finish` can report how many floats the whole cfg needs.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read darknet weights {self.path}: {exc}") from exc
        if len(data) < 12:
            raise ModelError(f"{self.path} is not a darknet weights file: {len(data)} bytes, shorter than "
                             f"the 12-byte version header")
        major, minor, revision = (int(v) for v in np.frombuffer(data[:12], "<i4"))
        if major < 0 or minor < 0 or major > 1000 or minor > 1000:
            raise ModelError(f"{self.path} is not a darknet weights file: header version "
                             f"{major}.{minor}.{revision} is implausible")
        # darknet's load_weights: `seen` became 64-bit in format 0.2
        seen_bytes = 8 if major * 10 + minor >= 2 else 4
        self.header_bytes = 12 + seen_bytes
        if len(data) < self.header_bytes:
            raise ModelError(f"{self.path} is truncated inside its {self.header_bytes}-byte header")
        self.version = (major, minor, revision)
        self.seen = int(np.frombuffer(data[12:self.header_bytes], "<i8" if seen_bytes == 8 else "<i4")[0])
        body = data[self.header_bytes:]
        self.trailing_bytes = len(body) % 4
        self.floats: NDArray[np.float32] = np.frombuffer(body[:len(body) - self.trailing_bytes], "<f4")
        self.used = 0

    def take(self, n: int) -> NDArray[np.float32]:
        """The next ``n`` floats as a float32 copy (zeros past the end of the file)."""
        start, self.used = self.used, self.used + n
        if self.used <= self.floats.size:
            return self.floats[start:self.used].astype(np.float32)
        out = np.zeros(n, np.float32)
        if start < self.floats.size:
            out[:self.floats.size - start] = self.floats[start:]
        return out

    def finish(self, cfg_path: str | Path) -> None:
        """Raise if the cfg needed more floats than the file holds; log if the file holds more."""
        have = self.floats.size
        if self.used > have:
            raise ModelError(f"weights file {self.path} is too short for {cfg_path}: expected {self.used} "
                             f"floats after the {self.header_bytes}-byte header, found {have}"
                             + (f" and {self.trailing_bytes} stray bytes" if self.trailing_bytes else "")
                             + "; the download is truncated or the weights belong to another cfg")
        if self.used < have or self.trailing_bytes:
            log.warning("%s holds %d floats (+%d bytes) but %s uses only %d; are these the weights of "
                        "this cfg?", self.path, have, self.trailing_bytes, cfg_path, self.used)
