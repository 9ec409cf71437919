"""Imports run down the layers access → gallery → face: face never imports gallery or access, and gallery
never imports access (checked on the source with ast, function-level imports included)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"face": ("vision_app.gallery", "vision_app.access"), "gallery": ("vision_app.access",)}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # `from vision_app import gallery`
    return out


def test_the_scan_sees_imports_in_both_directions_it_allows() -> None:
    """The checker finds real imports (so an empty scan cannot pass the test below)."""
    gallery = set().union(*(imported_modules(p) for p in (REPO / "vision_app/gallery").rglob("*.py")))
    access = set().union(*(imported_modules(p) for p in (REPO / "vision_app/access").rglob("*.py")))
    assert "vision_app.face.stage" in gallery and "vision_app.gallery.db" in access


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_up_the_layers(package: str) -> None:
    files = sorted((REPO / "vision_app" / package).rglob("*.py"))
    assert len(files) > 5
    bad = [f"{f.relative_to(REPO)} imports {m}" for f in files for m in sorted(imported_modules(f))
           if any(m == up or m.startswith(up + ".") for up in FORBIDDEN[package])]
    assert not bad, "imports must run access → gallery → face:\n" + "\n".join(bad)
