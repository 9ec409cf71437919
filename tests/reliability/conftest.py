"""Counts how many cases each hostile-input target ran and prints them at the end of the run."""
from __future__ import annotations

from collections import Counter

import pytest

FUZZ_COUNTS: Counter[str] = Counter()


@pytest.fixture(scope="session")
def fuzz_counts() -> Counter[str]:
    return FUZZ_COUNTS


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest hook
    if FUZZ_COUNTS:
        terminalreporter.write_sep("-", "hostile-input cases run per target")
        for target, n in sorted(FUZZ_COUNTS.items()):
            terminalreporter.write_line(f"{target:40s} {n}")
