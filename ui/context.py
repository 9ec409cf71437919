"""What every window gets from the command line: config, model folder, settings store."""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from vision_app.cli.common import app_config, start_monitoring
from vision_app.config import AppConfig
from vision_app.errors import VisionAppError
from vision_app.models import ModelStore, user_data_dir
from vision_app.monitoring.hub import Monitoring

from ui.pin import admin_file

log = logging.getLogger(__name__)


def setting_list(settings: QSettings, key: str) -> list[str]:
    """A QSettings list (an INI file gives a lone str for a one-item list, and None when unset)."""
    value = settings.value(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def setting_number(settings: QSettings, key: str, default: float) -> float:
    """A number from QSettings (INI files store text); the default when unset or not a number."""
    try:
        return float(str(settings.value(key, default)))
    except ValueError:
        return default


@dataclass
class AppContext:
    config: AppConfig
    config_path: str | None
    settings: QSettings
    store: ModelStore | None = None
    store_error: str = ""
    base_overrides: dict[str, Any] = field(default_factory=dict)
    monitoring: Monitoring | None = None   # MQTT / metrics / zones of every feed (--mqtt, --metrics-port)

    def gallery_path(self) -> Path:
        """The face gallery database: --db / face.gallery, else <user data>/gallery.db."""
        g = self.config.face.gallery
        return Path(g).expanduser() if g else user_data_dir() / "gallery.db"

    def admin_file(self) -> Path:
        """The kiosk admin PIN file: ui.admin_file, else <user data>/kiosk_admin.json."""
        return admin_file(self.config)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> "AppContext":
        """Config with command-line overrides; a missing model folder is kept as a message for the
        window (the app still opens, and says what to do)."""
        if getattr(args, "db", None):
            overrides["face.gallery"] = args.db
        if getattr(args, "backend", None):
            overrides["engine.backend"] = args.backend
        if getattr(args, "triton_url", None):
            overrides["engine.triton_url"] = args.triton_url
        if getattr(args, "providers", None):  # kept in base_overrides: every session rebuilds its config
            overrides["engine.providers"] = [p.strip() for p in args.providers.split(",") if p.strip()]
        cfg = app_config(args, **overrides)
        store: ModelStore | None = None
        err = ""
        try:
            store = ModelStore.open(getattr(args, "models", None))
        except VisionAppError as exc:
            err = str(exc)
            log.warning("%s", err)
        ini = getattr(args, "settings", None)
        settings = QSettings(ini, QSettings.Format.IniFormat) if ini else QSettings("vision-app", "vision-app")
        return cls(cfg, getattr(args, "config", None), settings, store, err,
                   {k: v for k, v in overrides.items() if v is not None}, start_monitoring(args, cfg))
