"""constraints.txt (the dependency lock) read with `packaging`: its pins for this interpreter, and how the
installed versions differ from them."""
from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# scripts/refresh_lock.py --test points this at the candidate lock it is about to write
LOCK = Path(os.environ.get("VISION_APP_LOCK") or Path(__file__).resolve().parents[2] / "constraints.txt")


def lock_requirements(path: Path = LOCK) -> list[Requirement]:
    reqs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            reqs.append(Requirement(line))
    return reqs


def pins_for(python_version: str, path: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} the lock pins under Python `python_version` ("3.11")."""
    env = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    pins = {}
    for r in lock_requirements(path):
        if r.marker is None or r.marker.evaluate(env):
            (spec,) = r.specifier
            pins[canonicalize_name(r.name)] = spec.version
    return pins


def installed_mismatches(path: Path = LOCK) -> list[str]:
    """'name installed X, locked Y' for every pin of this interpreter that the environment does not match."""
    import sys

    out = []
    for name, want in sorted(pins_for("%d.%d" % sys.version_info[:2], path).items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "not installed"
        if have != want:
            out.append(f"{name} {have} (locked {want})")
    return out
