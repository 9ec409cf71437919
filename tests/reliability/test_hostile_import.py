"""A gallery export file to import that is random bytes, a cut-off file, or a real export with its structure
damaged (hypothesis): always a GalleryError with a message and nothing half-imported; when a change happens
to leave a valid file, everyone in it is imported and nobody else. Never a hang: the scrypt cost an export
file asks for is bounded.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.fuzz import no_hang
from vision_app.errors import GalleryError
from vision_app.gallery.gallery import Gallery
from vision_app.gallery.gallery_io import export_gallery, import_gallery

MODEL = ("mobilefacenet", "128d-1")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
PASSPHRASE = "correct horse"


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class Target:
    """A gallery to import into (sharing the source's key, so both export kinds decrypt), holding one
    person of its own; `state()` is everything in it, to compare before and after."""

    def __init__(self, folder: Path, key: Path) -> None:
        self.gallery = Gallery(folder / "dst.db", key)
        self.gallery.enroll("resident", unit(1, 99), *MODEL)
        self.file = folder / "in.json"

    def state(self) -> list[tuple[str, int]]:
        return [(p.name, p.templates) for p in self.gallery.people()]

    def attempt(self, data: bytes, passphrase: str | None) -> tuple[int, int] | None:
        """Import `data`; None after a GalleryError (checked: nothing changed), else (people, templates)
        (checked: exactly the file's people were added; then removed again)."""
        before = self.state()
        self.file.write_bytes(data)
        with no_hang(30):
            try:
                got = import_gallery(self.gallery, self.file, passphrase=passphrase)
            except GalleryError as exc:
                assert len(str(exc)) > 15, repr(exc)
                assert self.state() == before, "a failed import changed the gallery"
                return None
        doc = json.loads(data)
        names = {p["name"].strip(): len(p["templates"]) for p in doc["people"]}
        assert dict(self.state()) == {**dict(before), **names}
        for name in names:
            self.gallery.remove(name)
        return got


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("exports")
    with Gallery(folder / "src.db") as src:
        src.enroll("alice", unit(2, 1), *MODEL, thumbnails=[b"\xff\xd8jpeg", None])
        src.enroll("bob", unit(1, 2), *MODEL)
        export_gallery(src, folder / "key.json")
        export_gallery(src, folder / "pass.json", passphrase=PASSPHRASE)
    target = Target(folder, folder / "src.db.key")
    docs = {kind: json.loads((folder / f"{kind}.json").read_text()) for kind in ("key", "pass")}
    assert target.attempt(json.dumps(docs["key"]).encode(), None) == (2, 3)  # the unharmed files import
    assert target.attempt(json.dumps(docs["pass"]).encode(), PASSPHRASE) == (2, 3)
    yield {"target": target, "docs": docs}
    target.gallery.close()


@FUZZ
@given(data=st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_random_bytes_as_an_export(fuzz_counts, exports, data: bytes) -> None:
    fuzz_counts["gallery import: random bytes"] += 1
    assert exports["target"].attempt(data, PASSPHRASE) is None


@FUZZ
@given(kind=st.sampled_from(["key", "pass"]), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_cut_off_export(fuzz_counts, exports, kind: str, cut: float) -> None:
    fuzz_counts["gallery import: cut-off file"] += 1
    text = json.dumps(exports["docs"][kind], indent=1).encode()
    assert exports["target"].attempt(text[:int(len(text) * cut)], PASSPHRASE) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every place in the document: dict keys and list indices, nested."""
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


@st.composite
def damaged(draw: st.DrawFn, doc: dict) -> dict:
    """The export with 1-3 changes at random places: a value replaced by any JSON value, a key deleted, a
    string cut short or a character changed (tokens, names, salt), a number nudged or made huge (dim,
    scrypt n/r/p, version), a list element duplicated or dropped (people, templates)."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key, value = path[-1], parent[path[-1]]
        how = draw(st.sampled_from(["replace", "delete", "edit", "edit", "duplicate"]))
        if how == "delete":
            del parent[key]
        elif how == "duplicate" and isinstance(value, list) and value:
            value.append(copy.deepcopy(value[draw(st.integers(0, len(value) - 1))]))
        elif how == "edit" and isinstance(value, str):
            i = draw(st.integers(0, len(value)))
            parent[key] = draw(st.sampled_from([value[:i], value[:i] + draw(st.characters()) + value[i + 1:]]))
        elif how == "edit" and isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = draw(st.sampled_from([value + 1, value - 1, -value, value * 2 ** 12, 2 ** 40, 0,
                                                math.nan, 1.5]))
        else:
            parent[key] = draw(JSON_VALUES)
    return doc


@pytest.mark.parametrize("kind", ["key", "pass"])
@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_damaged_export(fuzz_counts, exports, kind: str, data: st.DataObject) -> None:
    doc = data.draw(damaged(exports["docs"][kind]))
    fuzz_counts[f"gallery import: damaged {'gallery-key' if kind == 'key' else 'passphrase'} export"] += 1
    got = exports["target"].attempt(json.dumps(doc).encode(), PASSPHRASE)
    if got is not None:  # a harmless change (a created date, a source name): imported in full
        fuzz_counts["  (damaged exports that still imported)"] += 1


@pytest.mark.parametrize("field, value", [("n", 2 ** 24), ("r", 4096), ("p", 10 ** 6), ("n", 2 ** 40)])
def test_export_asking_for_a_huge_scrypt_cost_is_refused_at_once(exports, field: str, value: int) -> None:
    """A file that asks for 16 GiB of scrypt memory (or hours of work) must not hang the import."""
    doc = copy.deepcopy(exports["docs"]["pass"])
    doc["encryption"][field] = value
    target = exports["target"]
    target.file.write_text(json.dumps(doc))
    before = target.state()
    with no_hang(5), pytest.raises(GalleryError, match="scrypt cost"):
        import_gallery(target.gallery, target.file, passphrase=PASSPHRASE)
    assert target.state() == before


def test_deeply_nested_json_is_a_gallery_error(exports) -> None:
    assert exports["target"].attempt(b"[" * 100_000 + b"]" * 100_000, None) is None
