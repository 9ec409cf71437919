#!/usr/bin/env python3
"""Refresh constraints.txt: the exact dependency versions the test suite was last run with.

    python scripts/refresh_lock.py [--test] [--python PY ...]

For each Python (default: 3.11 and 3.12, found on PATH or under ~/.pyenv/versions) it makes a fresh
virtual environment, installs the project with every optional extra the tests may use (all of
pyproject's extras except those in SKIP_EXTRAS: tensorrt needs an NVIDIA GPU and driver) and records
what pip installed: the newest versions within pyproject's ranges for the oldest Python, and the same
versions for the others wherever they install (a newer Python may admit newer releases, e.g. PySide6
6.12, excluded under 3.11, or a numpy whose stubs differ: one set for all keeps CI's view the same).
Versions that still differ get a `python_version` marker. With --test the suite runs in each environment before the lock is written
(nothing is written if it fails). The pyproject ranges stay as they are: they are for people installing
the package into their own environment; the lock is for the README's install line and CI.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "constraints.txt"
PYTHONS = ("3.11", "3.12")
SKIP_EXTRAS = {"tensorrt"}  # GPU-only: never installed by CI or the README
NOT_LOCKED = {"pip", "setuptools", "wheel", "vision-app"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_python(version: str) -> str:
    """python{version} from PATH, else the newest ~/.pyenv/versions/{version}.*; one that really runs (a
    pyenv shim for a version not selected exits 127)."""
    pyenv = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parents[1].name)], reverse=True)
    for candidate in [shutil.which(f"python{version}"), *pyenv]:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    sys.exit(f"python{version} not found on PATH or in ~/.pyenv/versions; pass --python /path/to/python{version}")


def extras() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return sorted(set(data["project"].get("optional-dependencies", {})) - SKIP_EXTRAS)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def version_of(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], check=True,
                          capture_output=True, text=True).stdout.strip()


def resolve(python: str, work: Path, prefer: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """(X.Y, {canonical name: version}) installed for the project under `python` (venv: work/pyX.Y).

    `prefer`: another Python's pins, tried first as constraints, so that all Pythons run the same versions
    (same type stubs, same behaviour) wherever those install; only if they do not is this one resolved
    on its own."""
    ver = version_of(python)
    venv = work / f"py{ver}"
    run([python, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    target = f"{REPO}[{','.join(extras())}]"
    installed = False
    if prefer:
        same = work / f"prefer-{ver}.txt"
        same.write_text("".join(f"{n}=={v}\n" for n, v in sorted(prefer.items())), encoding="utf-8")
        try:
            run([py, "-m", "pip", "install", "-q", "-c", str(same), target])
            installed = True
        except subprocess.CalledProcessError:
            print(f"Python {ver}: the other Python's versions do not all install here; resolving on its own")
    if not installed:
        run([py, "-m", "pip", "install", "-q", target])
    listed = json.loads(run([py, "-m", "pip", "list", "--format=json"], capture_output=True, text=True).stdout)
    pins = {canonical(p["name"]): p["version"] for p in listed if canonical(p["name"]) not in NOT_LOCKED}
    return ver, pins


def test(work: Path, ver: str, candidate: Path) -> None:
    """The suite in the new environment, checked against the candidate lock (tests/helpers/lock.py reads
    VISION_APP_LOCK), so the typing test runs with exactly these versions."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "VISION_APP_LOCK": str(candidate)}
    run([str(work / f"py{ver}" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, env=env)


def render(found: dict[str, dict[str, str]]) -> str:
    """The lock text: one pin per package, with a python_version marker where the Pythons differ."""
    names = sorted({n for pins in found.values() for n in pins})
    lines = []
    for n in names:
        versions = {ver: pins.get(n) for ver, pins in found.items()}
        if len(set(versions.values())) == 1:
            lines.append(f"{n}=={next(iter(versions.values()))}")
        else:
            lines += [f'{n}=={v}; python_version == "{ver}"' for ver, v in versions.items() if v]
    header = [
        "# The exact dependency versions the test suite was last run with (x86-64 Linux, Python "
        + " and ".join(found) + ").",
        "# Used by the README's install line and .ci/run:  python -m pip install -c constraints.txt -e \".[dev]\"",
        "# Refresh (new releases, a new dependency in pyproject.toml):  python scripts/refresh_lock.py --test",
        f"# Extras locked: {', '.join(extras())} (not: {', '.join(sorted(SKIP_EXTRAS))}). Generated; do not edit.",
    ]
    return "\n".join(header + lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", action="append", help="interpreter to resolve for (repeatable; default "
                    + " and ".join(f"python{v}" for v in PYTHONS) + ")")
    ap.add_argument("--test", action="store_true", help="run the test suite in each new environment first")
    ap.add_argument("--output", type=Path, default=LOCK, help=f"lock file to write (default {LOCK.name})")
    args = ap.parse_args()
    pythons = list(args.python or [find_python(v) for v in PYTHONS])
    with tempfile.TemporaryDirectory(prefix="vision-app-lock-") as tmp:
        work = Path(tmp)
        pythons.sort(key=lambda py: [int(x) for x in version_of(py).split(".")])
        first = resolve(pythons[0], work)  # the oldest Python decides; the others follow where they can
        found = dict([first] + [resolve(py, work, first[1]) for py in pythons[1:]])
        text = render(found)
        candidate = work / "constraints.txt"
        candidate.write_text(text, encoding="utf-8")
        if args.test:
            for ver in found:
                test(work, ver, candidate)  # a failure stops here: the old lock stays
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({sum(1 for ln in text.splitlines() if not ln.startswith('#'))} pins "
          f"for Python {', '.join(found)})")
    if not args.test:
        print("now reinstall with the README's install line, run the tests, and commit the lock when they pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
