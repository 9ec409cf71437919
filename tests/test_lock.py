"""constraints.txt, the dependency lock: exact pins for Python 3.11 and 3.12 that cover every dependency
pyproject.toml declares (the extras CI installs) and satisfy its ranges."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.lock import LOCK, lock_requirements, pins_for

REPO = Path(__file__).resolve().parents[1]
SKIP_EXTRAS = {"tensorrt"}  # GPU-only (scripts/refresh_lock.py locks all other extras)


def declared() -> list[tuple[str, Requirement]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [("", Requirement(r)) for r in project["dependencies"]]
    for extra, items in project.get("optional-dependencies", {}).items():
        if extra not in SKIP_EXTRAS:
            reqs += [(extra, Requirement(r)) for r in items]
    return reqs


def test_every_line_is_an_exact_pin() -> None:
    reqs = lock_requirements()
    assert len(reqs) > 10
    for r in reqs:
        (spec,) = r.specifier
        assert spec.operator == "==" and "*" not in spec.version, str(r)


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_the_lock_pins_every_declared_dependency_within_its_range(python: str) -> None:
    pins = pins_for(python)
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    for extra, r in declared():
        if r.marker is not None and not r.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(r.name)
        assert name in pins, (f"{r.name} (pyproject{' extra ' + extra if extra else ''}) is not in {LOCK.name} "
                              f"for Python {python}: run python scripts/refresh_lock.py --test")
        assert r.specifier.contains(pins[name], prereleases=True), \
            f"{LOCK.name} pins {name}=={pins[name]} for Python {python}, outside pyproject's {r}"


def test_the_python_311_pins_avoid_the_broken_pyside6() -> None:
    assert not pins_for("3.11")["pyside6"].startswith("6.12.")


def test_a_difference_from_the_lock_is_reported(tmp_path: Path) -> None:
    from tests.helpers.lock import installed_mismatches

    text = LOCK.read_text(encoding="utf-8")
    edited = tmp_path / "c.txt"
    edited.write_text(text.replace("\npytest==", "\npytest==0.0.1\n# was: pytest=="), encoding="utf-8")
    assert any(m.startswith("pytest ") and m.endswith("(locked 0.0.1)") for m in installed_mismatches(edited))
