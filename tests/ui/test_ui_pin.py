"""Kiosk admin PIN: salted hash on disk, lockout after wrong PINs that survives a restart."""
from __future__ import annotations

import json
import stat

import pytest

from vision_app.errors import ConfigError
from ui.pin import PinStore


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_pin_is_stored_as_a_salted_hash_only(tmp_path):
    a, b = PinStore(tmp_path / "a.json", 3, 60), PinStore(tmp_path / "b.json", 3, 60)
    a.set_pin("2468")
    b.set_pin("2468")
    ra, rb = (json.loads(p.read_text()) for p in (a.path, b.path))
    assert "2468" not in a.path.read_text()
    assert ra["salt"] != rb["salt"] and ra["hash"] != rb["hash"]
    assert stat.S_IMODE(a.path.stat().st_mode) == 0o600
    assert a.check("2468").ok and not a.check("1357").ok


@pytest.mark.parametrize("pin", ["", "123", "12a4", "1234567890123", " 1234"])
def test_bad_pin_formats_are_refused(tmp_path, pin):
    with pytest.raises(ConfigError, match="digits"):
        PinStore(tmp_path / "a.json", 3, 60).set_pin(pin)


def test_wrong_pins_lock_the_panel_and_the_lock_survives_a_restart(tmp_path):
    clock = Clock()
    store = PinStore(tmp_path / "admin.json", 3, 300, clock)
    store.set_pin("2468")
    assert [store.check("0000").attempts_left for _ in range(2)] == [2, 1]
    locked = store.check("0000")
    assert not locked.ok and locked.locked_for_s == pytest.approx(300)
    assert not store.check("2468").ok  # even the right PIN while locked
    restarted = PinStore(tmp_path / "admin.json", 3, 300, clock)
    clock.t += 100
    assert restarted.check("2468").locked_for_s == pytest.approx(200)
    clock.t += 201
    assert restarted.check("2468").ok
    assert restarted.check("0000").attempts_left == 2  # a fresh set of attempts after the lockout


def test_a_clock_set_back_does_not_stretch_the_lockout(tmp_path):
    clock = Clock()
    store = PinStore(tmp_path / "admin.json", 1, 60, clock)
    store.set_pin("2468")
    store.check("0000")
    clock.t -= 10_000
    assert store.locked_for() == pytest.approx(60)


def test_a_damaged_admin_file_never_means_no_pin(tmp_path):
    path = tmp_path / "admin.json"
    path.write_text("{not json")
    store = PinStore(path, 3, 60)
    with pytest.raises(ConfigError, match="unreadable"):
        store.is_set()
    with pytest.raises(ConfigError):
        store.check("2468")
