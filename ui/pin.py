"""Kiosk administrator PIN: a salted scrypt hash and a lockout that survives a restart.

The file (JSON, mode 0600, replaced atomically) holds the salt, the hash, the scrypt parameters, the
number of wrong PINs in a row and the wall-clock time until which the admin panel is locked. The PIN
itself is never stored. Plain Python (no Qt): the kiosk calls it from a BackgroundTasks worker because
scrypt takes tens of milliseconds on purpose.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from vision_app.errors import ConfigError

if TYPE_CHECKING:
    from vision_app.config import AppConfig

log = logging.getLogger(__name__)

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1   # ~16 MiB, tens of ms per guess
MIN_LEN, MAX_LEN = 4, 12


@dataclass
class PinRecord:
    salt: str
    hash: str
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P
    failures: int = 0
    locked_until: float = 0.0   # time.time() seconds


def _validate(rec: PinRecord) -> None:
    """Field types and ranges of a loaded record: a tampered file must fail closed, never weaken the
    lockout (negative failure counts, NaN lock times) or reach the hash with absurd scrypt costs."""
    for name in ("salt", "hash"):
        value = getattr(rec, name)
        if not isinstance(value, str) or not value or len(value) % 2:
            raise ValueError(f"'{name}' must be a hex string")
        bytes.fromhex(value)
    for name, lo, hi in (("n", 2, 1 << 20), ("r", 1, 64), ("p", 1, 16), ("failures", 0, 1 << 20)):
        value = getattr(rec, name)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"'{name}' must be an integer in {lo}..{hi}, got {value!r}")
    if not isinstance(rec.locked_until, (int, float)) or isinstance(rec.locked_until, bool) \
            or not math.isfinite(rec.locked_until) or rec.locked_until < 0:
        raise ValueError(f"'locked_until' must be a finite time, got {rec.locked_until!r}")


@dataclass(frozen=True)
class PinCheck:
    ok: bool
    locked_for_s: float = 0.0   # > 0: locked, try again after this many seconds
    attempts_left: int = 0      # wrong PINs left before the lockout


def _hash(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def check_pin_format(pin: str) -> str:
    """The PIN if it is MIN_LEN..MAX_LEN digits; ConfigError otherwise."""
    if not (pin.isdigit() and MIN_LEN <= len(pin) <= MAX_LEN):
        raise ConfigError(f"the admin PIN must be {MIN_LEN} to {MAX_LEN} digits")
    return pin


class PinStore:
    def __init__(self, path: str | os.PathLike[str], max_attempts: int, lockout_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.lockout_s = lockout_s
        self.clock = clock

    def _load(self) -> PinRecord | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            rec = PinRecord(**data)
            _validate(rec)
            return rec
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            # never fall back to "no PIN set": that would hand the panel to whoever finds the kiosk
            raise ConfigError(f"kiosk admin file {self.path} is unreadable ({exc}); restore it, or delete "
                              f"it deliberately to set a new PIN") from exc

    def _save(self, rec: PinRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(rec), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def is_set(self) -> bool:
        return self._load() is not None

    def set_pin(self, pin: str) -> None:
        """Set (or replace) the PIN; clears the failure count and any lockout."""
        salt = secrets.token_bytes(16)
        digest = _hash(check_pin_format(pin), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        self._save(PinRecord(salt.hex(), digest.hex()))
        log.info("kiosk admin PIN set (%s)", self.path)

    def locked_for(self, rec: PinRecord | None = None) -> float:
        rec = rec if rec is not None else self._load()
        if rec is None:
            return 0.0
        # a wall clock set back must not stretch the lockout beyond its configured length
        return max(0.0, min(rec.locked_until - self.clock(), self.lockout_s))

    def check(self, pin: str) -> PinCheck:
        """Verify pin; counts wrong ones and locks after max_attempts in a row (persisted)."""
        rec = self._load()
        if rec is None:
            raise ConfigError("no admin PIN is set yet; set one first")
        left = self.locked_for(rec)
        if left > 0:
            return PinCheck(False, left, 0)
        if rec.locked_until:
            rec.locked_until, rec.failures = 0.0, 0  # the lockout ran out: a fresh set of attempts
        ok = hmac.compare_digest(_hash(pin, bytes.fromhex(rec.salt), rec.n, rec.r, rec.p),
                                 bytes.fromhex(rec.hash))
        if ok:
            rec.failures = 0
            self._save(rec)
            return PinCheck(True, 0.0, self.max_attempts)
        rec.failures += 1
        if rec.failures >= self.max_attempts:
            rec.locked_until = self.clock() + self.lockout_s
            log.warning("kiosk admin panel locked for %.0f s after %d wrong PINs", self.lockout_s, rec.failures)
            self._save(rec)
            return PinCheck(False, self.lockout_s, 0)
        self._save(rec)
        return PinCheck(False, 0.0, self.max_attempts - rec.failures)


def admin_file(config: "AppConfig") -> Path:
    """The kiosk admin PIN file: ui.admin_file, else <user data>/kiosk_admin.json."""
    from vision_app.models import user_data_dir

    f = config.ui.admin_file
    return Path(f).expanduser() if f else user_data_dir() / "kiosk_admin.json"


def set_pin_interactive(config: "AppConfig") -> int:
    """`kiosk --set-pin`: read the new admin PIN (twice on a terminal, once from a pipe). No Qt: an admin
    sets it up over SSH on a kiosk that has no display yet."""
    import getpass

    store = PinStore(admin_file(config), config.ui.pin_max_attempts, config.ui.pin_lockout_s)
    if sys.stdin.isatty():
        pin = getpass.getpass("new admin PIN (4-12 digits): ")
        if getpass.getpass("again: ") != pin:
            print("the two PINs differ; nothing changed", file=sys.stderr)
            return 1
    else:
        pin = sys.stdin.readline().strip()
    store.set_pin(pin)
    print(f"admin PIN set in {store.path}")
    return 0
