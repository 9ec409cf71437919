"""The kiosk's link to the access package's AccessController (vision_app.access.controller).

`AccessSink` sits in the runner's sink list: the controller's update() runs on the runner thread for
every frame, its decisions are posted to the GUI as ("decision", Decision) events, and its guidance
goes with each frame as a Banner. Nothing here decides anything.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vision_app.models import user_data_dir
from vision_app.types import FrameResult

from ui.context import AppContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Banner:
    kind: str    # guide | granted | denied | error
    text: str


def access_log_path(ctx: AppContext) -> Path:
    from vision_app.access.accesslog import default_log_path

    return default_log_path(ctx.config.access.log_db)


def snapshot_dir(ctx: AppContext) -> Path:
    """access.snapshot_dir, else <user data>/access_snapshots: the kiosk's log review shows snapshots."""
    d = ctx.config.access.snapshot_dir
    return Path(d).expanduser() if d else user_data_dir() / "access_snapshots"


def build_controller(ctx: AppContext, door: Any = None) -> Any:
    """AccessController from the [access] config: policy, hash-chained access log, door (log-only or
    webhook unless `door` is given), snapshots."""
    from vision_app.access.accesslog import AccessLog
    from vision_app.access.controller import AccessController
    from vision_app.access.door import build_door
    from vision_app.access.policy import AccessPolicy

    acfg = ctx.config.access
    path = access_log_path(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    return AccessController(AccessPolicy.from_config(acfg), AccessLog(path),
                            door if door is not None else build_door(acfg), kiosk_id=acfg.kiosk_id,
                            snapshot_dir=snapshot_dir(ctx))


def decision_banner(decision: Any) -> Banner:
    """The banner for a controller Decision. The reason stays in the access log: a person at the door
    is not told which check they failed."""
    if decision.granted:
        return Banner("granted", f"ACCESS GRANTED — {decision.identity}")
    return Banner("denied", "ACCESS DENIED — alarm raised" if decision.alarm else "ACCESS DENIED")


def guidance_banner(controller: Any) -> Banner:
    state = getattr(controller.state, "value", str(controller.state))
    kind = state if state in ("granted", "denied") else "guide"
    return Banner(kind, controller.guidance)


class AccessSink:
    """Runner-thread sink around an AccessController made by `factory` (on the starter thread)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.controller: Any = None
        self.post: Callable[[Any], None] = lambda payload: None
        self.on_decision: Callable[[Any, FrameResult], None] = lambda decision, result: None
        self._banner = Banner("guide", "Look at the camera")
        self._lock = threading.Lock()

    def start(self, post: Callable[[Any], None]) -> "AccessSink":
        """Called by the session's starter thread for each run; a factory error is shown as the
        session's start error."""
        with self._lock:
            self.post = post
            if self.controller is None:
                self.controller = self.factory()
        return self

    def write(self, result: FrameResult) -> None:
        controller = self.controller
        if controller is None:
            return
        decisions = controller.update(result)
        self._banner = guidance_banner(controller)
        for d in decisions:
            self.post(("decision", d))
            self.on_decision(d, result)

    def prepare(self, result: FrameResult) -> tuple[FrameResult, Banner]:
        return result, self._banner

    def close(self) -> None:
        with self._lock:
            controller, self.controller = self.controller, None
        if controller is not None:
            controller.close()
            access_log = getattr(controller, "access_log", None)
            if access_log is not None:
                access_log.close()
