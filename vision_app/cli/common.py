"""Helpers shared by sub-commands: config with CLI overrides, model folder, progress output."""
from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from vision_app.config import AppConfig, load_config
from vision_app.models import ModelStore

if TYPE_CHECKING:
    from vision_app.monitoring.hub import Monitoring


def app_config(args: argparse.Namespace, **overrides: Any) -> AppConfig:
    """Config file (--config) then the given dotted overrides (None values are ignored)."""
    if getattr(args, "backend", None):
        overrides["engine.backend"] = args.backend
    if getattr(args, "triton_url", None):
        overrides["engine.triton_url"] = args.triton_url
    if getattr(args, "providers", None):  # ONNX Runtime execution providers, in order of preference
        overrides["engine.providers"] = [p.strip() for p in args.providers.split(",") if p.strip()]
    return load_config(getattr(args, "config", None), overrides)


def add_monitoring_options(p: argparse.ArgumentParser) -> None:
    """--mqtt and --metrics-port (run, verify and the windows)."""
    p.add_argument("--mqtt", metavar="URL", help="publish events to this MQTT broker: mqtt://[user:password@]"
                   "host[:port] or mqtts://... (default: config mqtt.url; README: topics and payloads)")
    p.add_argument("--metrics-port", type=int, metavar="N", help="serve Prometheus metrics on this port "
                   "(default: config metrics.port; 0 = off)")


def start_monitoring(args: argparse.Namespace, cfg: AppConfig) -> "Monitoring":
    """MQTT and metrics from --mqtt / --metrics-port or the config; connects now, so a bad URL, an
    unreachable broker, a refused login or a busy port is an error before anything else starts."""
    from vision_app.monitoring.hub import Monitoring

    return Monitoring.start(cfg, getattr(args, "mqtt", None), getattr(args, "metrics_port", None))


def model_store(args: argparse.Namespace) -> ModelStore:
    return ModelStore.open(getattr(args, "models", None))


class Progress:
    """A one-line progress bar on stderr for runs of known length (redrawn on a terminal, printed every
    10 % otherwise so CI logs stay short)."""

    def __init__(self, total: int | None, label: str = "frames", stream: Any = None, rate: bool = True) -> None:
        self.total = total
        self.rate = rate  # False: no "fps" figure (e.g. an engine build's percentage)
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self._last_pct = -10
        self._last_draw = 0.0

    def update(self, n: int) -> None:
        now = time.monotonic()
        fps = n / max(now - self.t0, 1e-9)
        unit = f" {fps:6.1f} fps" if self.rate else ""
        unit_log = f" {fps:.1f} fps" if self.rate else ""
        if self.total:
            pct = min(100, int(100 * n / self.total))
            if self.tty:
                if now - self._last_draw < 0.1 and n < self.total:
                    return
                bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
                self.stream.write(f"\r[{bar}] {n}/{self.total} {self.label}{unit}")
                self._last_draw = now
            elif pct >= self._last_pct + 10:
                self.stream.write(f"{pct:3d}% {n}/{self.total} {self.label}{unit_log}\n")
                self._last_pct = pct - pct % 10
        elif self.tty and now - self._last_draw >= 0.5:
            self.stream.write(f"\r{n} {self.label}{unit}")
            self._last_draw = now
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
