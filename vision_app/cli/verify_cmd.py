"""`python main.py verify --source X [--db PATH] [--json]`: the door kiosk's decision loop, headless.

The face pipeline (task `face`, identifying against the gallery) feeds the AccessController; every
decision is printed (with --json: one JSON object per line), written to the access log and, on a grant,
sent to the configured door. Video files and image folders are processed frame by frame on video time
(frame index / fps), so a run is repeatable whatever the CPU load; cameras and streams run live.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from vision_app.cli.common import add_monitoring_options, app_config, model_store, start_monitoring
from vision_app.errors import GalleryError
from vision_app.types import Frame, FrameResult

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("verify", help="run the door kiosk's access decisions on a source, without a window")
    add_common(p)
    p.add_argument("--source", required=True, help="camera:0 | video file | rtsp://… | image folder")
    p.add_argument("--db", metavar="PATH", help="gallery file (default: config face.gallery)")
    p.add_argument("--key", metavar="PATH", help="gallery key file (default: config face.gallery_key)")
    p.add_argument("--log-db", metavar="PATH", help="access log file (default: config access.log_db)")
    p.add_argument("--json", action="store_true", help="one JSON line per decision: "
                   '{"decision": "granted" | "denied", "identity": ..., "reason": ...}')
    blink = p.add_mutually_exclusive_group()
    blink.add_argument("--no-blink", action="store_true", help="no blink challenge (passive and temporal "
                       "checks only)")
    blink.add_argument("--blink", action="store_true", help="ask for a blink (the kiosk default)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = until the end)")
    add_monitoring_options(p)
    p.set_defaults(func=cmd_verify)


def _print(decision: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(decision.to_json()), flush=True)
    else:
        who = decision.identity or "-"
        print(f"{decision.wall_time}  {decision.decision.upper():7s}  {who}  ({decision.reason})", flush=True)


def _decider(controller: Any, report: Any, as_json: bool) -> Callable[[FrameResult], None]:
    """result → the controller's decisions, printed and handed to monitoring (MQTT / metrics)."""
    def on_result(result: FrameResult) -> None:
        for d in controller.update(result):
            _print(d, as_json)
            report.decision(d, result)
    return on_result


def _offline(source: Any, pipeline: Any, on_result: Callable[[FrameResult], None], max_frames: int,
             report: Any) -> int:
    """Every frame in order, stamped with its video time."""
    fps = float(getattr(source, "fps", 0.0) or 25.0)
    n = 0
    report.track(lambda: {"read": n, "processed": n, "dropped": 0})
    while not max_frames or n < max_frames:
        img = source.read()
        if img is None:
            break
        result = pipeline.run(Frame(img, n, n / fps, source.source_id))
        if report.step is not None:
            result = report.step(result)
        for sink in report.sinks:
            sink.write(result)
        on_result(result)
        n += 1
    return n


def _live(source: Any, pipeline: Any, on_result: Callable[[FrameResult], None], max_frames: int, cfg: Any,
          report: Any) -> int:
    from vision_app.runner import CallbackSink, LiveRun

    run = LiveRun(source, pipeline, [*report.sinks, CallbackSink(on_result)], mode="paced", max_frames=max_frames,
                  reconnect=(cfg.capture.reconnect_initial_s, cfg.capture.reconnect_max_s,
                             cfg.capture.reconnect_attempts), post=report.step)
    report.track(run.counters)
    run.start()
    try:
        while not run.wait(0.2):
            pass
    except KeyboardInterrupt:
        print("stopping…", file=sys.stderr)
    finally:
        run.stop(timeout=2.0)
    return int(run.runner.stats.processed)


def cmd_verify(args: argparse.Namespace) -> int:
    from vision_app.access.controller import AccessController
    from vision_app.gallery.gallery import default_gallery_path
    from vision_app.sources import open_source
    from vision_app.stages import StageContext, build_pipeline

    cfg = app_config(args, **{"face.gallery": args.db, "face.gallery_key": args.key,
                              "access.log_db": args.log_db})
    gallery = default_gallery_path(cfg.face.gallery)
    if not gallery.is_file():
        raise GalleryError(f"no gallery at {gallery}: enrol people first (python main.py gallery enroll "
                           f"NAME IMG... --db {gallery}) or pass --db")
    blink = False if args.no_blink else (True if args.blink else None)
    monitoring = start_monitoring(args, cfg)
    try:
        ctx = StageContext(cfg, model_store(args))
        pipeline = build_pipeline(["face"], ctx)
        controller = AccessController.from_config(cfg, blink_challenge=blink)
        try:
            source = open_source(args.source, camera_size=(cfg.capture.camera_width, cfg.capture.camera_height))
            report = monitoring.attach(source.source_id, None)
            report.set_engine(ctx.backend, ctx.providers())
            on_result = _decider(controller, report, args.json)
            try:
                if source.live:
                    frames = _live(source, pipeline, on_result, args.max_frames, cfg, report)
                else:
                    frames = _offline(source, pipeline, on_result, args.max_frames, report)
            finally:
                source.close()
        finally:
            controller.close()
            pipeline.close()
    finally:
        monitoring.close()
    last = controller.status()
    log_path = controller.access_log.path if controller.access_log is not None else "(none)"
    print(f"{frames} frames; kiosk state {last.state.value}; access log {log_path}", file=sys.stderr)
    return 0
