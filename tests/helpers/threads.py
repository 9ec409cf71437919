"""Run workers in threads and report what really went wrong in them."""
from __future__ import annotations

import threading
import traceback
from typing import Callable


def run_in_threads(*targets: Callable[[], None], timeout: float = 120.0) -> None:
    """Run each target in its own thread; AssertionError with every worker's traceback if one raised or
    did not finish in time (instead of a KeyError or a missing result later)."""
    errors: list[str] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException:  # reported to the main thread below
                errors.append(f"in {threading.current_thread().name}:\n{traceback.format_exc()}")
        return run

    threads = [threading.Thread(target=wrap(t), name=f"worker-{i}") for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive and not errors, (f"still running after {timeout:.0f} s: {alive}; " if alive else "") + \
        "\n".join(errors)
