"""A real Mosquitto broker on 127.0.0.1 per test (tests/helpers/mosquitto.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers.mosquitto import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()
