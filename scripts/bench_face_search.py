"""1:N face search benchmark without the bench command: `python scripts/bench_face_search.py`.

Prints the same numbers as `python main.py bench --tasks face_search` (vision_app/face/bench_search.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vision_app.face.bench_search import build_rows, search_rows  # noqa: E402


def main() -> None:
    for title, rows in (("1:N search (TemplateIndex.search)", search_rows()),
                        ("Matcher build from an encrypted gallery", build_rows())):
        print(title)
        cols = list(rows[0])
        print("  ".join(f"{c:>12}" for c in cols))
        for r in rows:
            print("  ".join(f"{r[c]!s:>12}" for c in cols))
        print()


if __name__ == "__main__":
    main()
