"""`python main.py run`: headless capture → pipeline → outputs, with a progress bar and stats."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from vision_app.cli.common import Progress, add_monitoring_options, app_config, model_store, start_monitoring
from vision_app.config import AppConfig, CaptureConfig
from vision_app.errors import SourceError
from vision_app.models import ModelStore
from vision_app.monitoring.hub import Monitoring, detector_classes
from vision_app.pipeline import Pipeline
from vision_app.runner import LiveRun, Sink, VideoWriterSink
from vision_app.sources import FrameSource, open_source
from vision_app.stages import StageContext, build_pipeline, parse_tasks

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "camera:0"


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("run", help="run a pipeline on a source without any window")
    add_common(p)
    p.add_argument("--source", default=None, help="camera:0 | video file | rtsp://… | image folder/glob | "
                   f"test: (default {DEFAULT_SOURCE}, falling back to test: when there is no camera)")
    p.add_argument("--tasks", action="append", help="comma-separated: detect, face, segment, style, "
                   "passthrough (default passthrough)")
    p.add_argument("--output", "-o", help="write the annotated video here (.mp4)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = until the end)")
    p.add_argument("--stats", help="save the run's stats as JSON here")
    p.add_argument("--video-mode", choices=["offline", "paced"], default=None,
                   help="files: every frame in order (offline) or at the file's fps like a camera (paced)")
    p.add_argument("--model", help="detector model name (python main.py models list)")
    p.add_argument("--conf", type=float, help="detection confidence threshold")
    p.add_argument("--iou", type=float, help="NMS IoU threshold")
    p.add_argument("--seg-model", help="segmentation model: selfie | deeplab")
    p.add_argument("--overlay", choices=["color", "blur", "replace", "cutout"], help="segmentation overlay")
    p.add_argument("--style", help="style painting (image path) or fixed-style model (johnson_wave)")
    p.add_argument("--strength", type=float, help="style strength 0..1")
    p.add_argument("--workers", type=int, help="whole-frame workers, each with its own model sessions "
                   "(throughput mode; output order is kept). Default from config engine.workers")
    add_monitoring_options(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)


def open_with_fallback(spec: str | None, cfg_capture: CaptureConfig) -> tuple[FrameSource, str | None]:
    """Open the source; the default camera falls back to the test pattern (and says so)."""
    cap = cfg_capture

    def open_spec(text: str) -> FrameSource:
        return open_source(text, camera_size=(cap.camera_width, cap.camera_height),
                           test_size=(cap.test_size[0], cap.test_size[1]), test_fps=cap.test_fps)

    if spec is not None:
        return open_spec(spec), None
    try:
        return open_spec(DEFAULT_SOURCE), None
    except SourceError as exc:
        note = (f"no camera found ({exc}); using the generated test: source instead. "
                f"Pass --source with a camera index, video file, stream URL or image folder.")
        return open_spec("test:"), note


def cmd_run(args: argparse.Namespace) -> int:
    cfg = app_config(args, **{
        "capture.video_mode": args.video_mode, "detect.model": args.model, "detect.confidence": args.conf,
        "detect.iou": args.iou, "segment.model": args.seg_model, "segment.overlay": args.overlay,
        "style.style": args.style, "style.strength": args.strength, "engine.workers": args.workers})
    tasks = parse_tasks(args.tasks)
    needs_models = any(t != "passthrough" for t in tasks)
    store = model_store(args) if needs_models else None
    monitoring = start_monitoring(args, cfg)
    try:
        return _run(args, cfg, tasks, store, monitoring)
    finally:
        monitoring.close()


def _run(args: argparse.Namespace, cfg: AppConfig, tasks: list[str], store: ModelStore | None,
         monitoring: Monitoring) -> int:
    source, note = open_with_fallback(args.source, cfg.capture)
    if note:
        log.warning("%s", note)
    if source.live and not args.max_frames:
        log.info("live source: runs until Ctrl+C (or pass --max-frames)")
    ctx = StageContext(cfg, store) if store is not None else StageContext(cfg, None, backend="none")
    report = monitoring.attach(source.source_id, detector_classes(ctx, tasks))
    pipeline, extra = build_pipelines(tasks, ctx)
    report.set_engine(ctx.backend, ctx.providers())
    sinks: list[Sink] = [*report.sinks]
    if args.output:
        fps = cfg.runner.output_fps or source.fps or 25.0
        sinks.append(VideoWriterSink(args.output, fps, cfg.runner.output_codec))
    total = source.frame_count
    if args.max_frames:
        total = min(total, args.max_frames) if total else args.max_frames
    progress = None if args.quiet else Progress(total)
    run = LiveRun(source, pipeline, sinks, mode=cfg.capture.video_mode,
                  max_frames=args.max_frames,
                  reconnect=(cfg.capture.reconnect_initial_s, cfg.capture.reconnect_max_s,
                             cfg.capture.reconnect_attempts),
                  extra_pipelines=extra, post=report.step)
    report.track(run.counters)
    run.start()
    try:
        while not run.wait(0.1):
            if progress:
                progress.update(run.runner.stats.processed)
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
    finally:
        run.stop(timeout=2.0)
        if progress:
            progress.update(run.runner.stats.processed)
            progress.done()
        for p in (pipeline, *extra):
            p.close()
    summary = run.summary()
    summary["tasks"] = tasks
    summary["backend"] = ctx.backend
    summary["workers"] = 1 + len(extra)
    if args.output:
        summary["output"] = str(Path(args.output))
    monitoring.close()  # sends what is still queued first, so the figures below are final
    summary.update({k: v for k, v in report.summary().items() if v})
    summary.update(monitoring.summary())
    print_summary(summary)
    if args.stats:
        Path(args.stats).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if summary.get("source_error"):
        print(f"error: {summary['source_error']}", file=sys.stderr)
        return 1
    return 1 if run.runner.error else 0


def build_pipelines(tasks: list[str], ctx: StageContext) -> tuple[Pipeline, list[Pipeline]]:
    """The main pipeline plus workers-1 independent copies (own engines) for throughput mode. With
    several workers each ONNX Runtime session gets one thread unless engine.threads says otherwise."""
    workers = ctx.config.engine.workers
    if workers > 1 and ctx.config.engine.threads == 0:
        ctx.config.engine.threads = 1
    main = build_pipeline(tasks, ctx)
    return main, [build_pipeline(tasks, ctx) for _ in range(workers - 1)]


def print_summary(s: dict) -> None:
    def ms(d: dict) -> str:
        return "-" if d.get("p50") is None else f"p50 {d['p50']:.2f} ms, p95 {d['p95']:.2f} ms"

    lines = [f"source: {s['source']}  tasks: {', '.join(s.get('tasks', []))}  backend: {s.get('backend')}"
             f"  workers: {s.get('workers', 1)}",
             f"frames read {s['frames_read']}, processed {s['frames_processed']}, dropped "
             f"{s['frames_dropped']}, stage errors {s['stage_errors']}",
             f"throughput {s['throughput_fps']:.1f} fps; capture→result {ms(s['capture_to_result_ms'])}"]
    for name, d in s["stage_latency_ms"].items():
        lines.append(f"  stage {name:12s} {ms(d)}")
    for name, z in s.get("zones", {}).items():
        if z["type"] == "line":
            lines.append(f"  line {name}: in {z['in']}, out {z['out']}")
        else:
            lines.append(f"  zone {name}: entered {z['entered']}, left {z['left']}, inside now {z['inside']}")
    if s.get("events"):
        lines.append("events: " + ", ".join(f"{k} {v}" for k, v in s["events"].items()))
    if "mqtt" in s:
        m = s["mqtt"]
        lines.append(f"mqtt {m['broker']}: published {m['published']}, dropped {m['dropped']}, still queued "
                     f"{m['queued']}, reconnects {m['reconnects']}")
    print("\n".join(lines))
