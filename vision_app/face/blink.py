"""Blink detection from the eye aspect ratio with a per-session (per-track) baseline.

People's open-eye EAR differs (.25 to .35 on the shared media) and the mesh underestimates lid closure
on small faces (a real blink on the 176×144 carphone video only reaches EAR .20 from a baseline of .27),
so a fixed EAR threshold fails; a drop relative to the person's own running median does not.
A blink = EAR falls below baseline × close_ratio, then rises back above baseline × open_ratio within
max_closed_s. Eyes kept closed longer are not a blink.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlinkParams:
    """close_ratio / open_ratio: fractions of the baseline EAR that mean closing / reopened (hysteresis);
    max_closed_s: the longest closure counted as a blink; baseline_frames: EAR samples needed before
    the baseline is trusted; history: samples kept for the running median baseline."""

    close_ratio: float
    open_ratio: float
    max_closed_s: float
    baseline_frames: int
    history: int = 90


@dataclass(frozen=True, slots=True)
class BlinkEvent:
    """A completed blink: when the eyes closed and reopened (seconds, the caller's clock), the lowest EAR
    and the baseline at that time."""

    closed_at: float
    opened_at: float
    min_ear: float
    baseline: float


class BlinkDetector:
    """Feed one EAR per frame of one tracked face with update(); it returns a BlinkEvent on reopening."""

    def __init__(self, params: BlinkParams) -> None:
        self.p = params
        self._history: deque[float] = deque(maxlen=params.history)
        self._closed_at: float | None = None
        self._held = False  # eyes stayed shut past max_closed_s: wait for them to open before re-arming
        self._min_ear = math.inf
        self.events: list[BlinkEvent] = []
        self.min_seen = math.inf
        self.max_seen = -math.inf

    @property
    def baseline(self) -> float:
        """Running median of the open-eye EAR samples (nan until baseline_frames samples)."""
        if len(self._history) < self.p.baseline_frames:
            return float("nan")
        return float(np.median(np.fromiter(self._history, float)))

    @property
    def closed(self) -> bool:
        return self._closed_at is not None

    def update(self, ear: float, t: float) -> BlinkEvent | None:
        """ear: this frame's eye aspect ratio (nan = unknown, ignored); t: its time in seconds."""
        if not math.isfinite(ear):
            return None
        self.min_seen, self.max_seen = min(self.min_seen, ear), max(self.max_seen, ear)
        base = self.baseline
        event = None
        if math.isfinite(base):
            if self._held:
                self._held = ear <= base * self.p.open_ratio
            elif self._closed_at is None:
                if ear < base * self.p.close_ratio:
                    self._closed_at, self._min_ear = t, ear
            else:
                self._min_ear = min(self._min_ear, ear)
                if ear > base * self.p.open_ratio:
                    if t - self._closed_at <= self.p.max_closed_s:
                        event = BlinkEvent(self._closed_at, t, self._min_ear, base)
                        self.events.append(event)
                    self._closed_at = None
                elif t - self._closed_at > self.p.max_closed_s:
                    self._closed_at, self._held = None, True  # eyes held shut: not a blink
        if self._closed_at is None and not self._held:
            self._history.append(ear)  # closed-eye samples would drag the baseline down
        return event

    def blinked_since(self, t: float) -> bool:
        """True when a blink ended at or after time t."""
        return any(e.opened_at >= t for e in self.events)
