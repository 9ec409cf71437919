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
from vision_app.detect.counts import DetectionCounter
from vision_app.errors import SourceError
from vision_app.models import ModelStore
from vision_app.monitoring.hub import Monitoring, detector_classes
from vision_app.multirun import MultiRun
from vision_app.parallelism import plan_workers
from vision_app.runner import Sink, VideoWriterSink
from vision_app.sink_thread import BackgroundSink
from vision_app.sources import SAMPLE_CLIP, SAMPLE_SPEC, FrameSource, open_source
from vision_app.stages import StageContext, build_pipelines, parse_tasks

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "camera:0"


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("run", help="run a pipeline on a source without any window")
    add_common(p)
    p.add_argument("--source", action="append", help="camera:0 | video file | rtsp://… | image folder/glob | "
                   f"test: | {SAMPLE_SPEC} (default {DEFAULT_SOURCE}, falling back to the {SAMPLE_SPEC} clip shipped "
                   "with the package when there is no camera); repeat "
                   "it for several sources, which then share one pool of workers")
    p.add_argument("--tasks", action="append", help="comma-separated: detect, face, segment, style, "
                   "passthrough (default passthrough)")
    p.add_argument("--output", "-o", help="write the annotated video here (.mp4); with several sources "
                   "NAME_1.mp4, NAME_2.mp4, ... in source order")
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
    p.add_argument("--workers", type=workers_arg, help="whole-frame workers, each with its own model "
                   "sessions, output order kept: 'auto' (one per core for files processed offline, one for a "
                   "live source, a shared pool for several sources) or a number. Default: engine.workers")
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
        note = (f"no camera found ({exc}); using the sample clip shipped with vision-app instead "
                f"({SAMPLE_CLIP.name}: 250 frames of a street with cyclists, --source {SAMPLE_SPEC}). "
                f"Pass --source with a camera index, video file, stream URL or image folder.")
        return open_spec(SAMPLE_SPEC), note


def workers_arg(text: str) -> int | str:
    """--workers: "auto" or a whole number 1..16."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of workers, got {text!r}") from None


def output_paths(output: str, sources: list[FrameSource]) -> list[Path]:
    """One output video per source: the path itself for one source, else NAME_1.mp4, NAME_2.mp4, ..."""
    path = Path(output)
    if len(sources) == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(1, len(sources) + 1)]


def open_sources(specs: list[str] | None, cfg_capture: CaptureConfig) -> list[FrameSource]:
    """Every --source opened (all closed again if one fails), or the default with its fallback."""
    if not specs:
        source, note = open_with_fallback(None, cfg_capture)
        if note:
            log.warning("%s", note)
        return [source]
    opened: list[FrameSource] = []
    try:
        for spec in specs:
            opened.append(open_with_fallback(spec, cfg_capture)[0])
    except BaseException:
        for src in opened:
            src.close()
        raise
    return opened


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
    sources = open_sources(args.source, cfg.capture)
    if any(s.live for s in sources) and not args.max_frames:
        log.info("live source: runs until Ctrl+C (or pass --max-frames)")
    ctx = StageContext(cfg, store) if store is not None else StageContext(cfg, None, backend="none")
    plan = plan_workers(cfg.engine, sources=len(sources), live=any(s.live for s in sources),
                        offline=cfg.capture.video_mode == "offline", backend=ctx.backend)
    log.info("workers: %d — %s", plan.workers, plan.reason)
    try:
        reports = [monitoring.attach(s.source_id, detector_classes(ctx, tasks)) for s in sources]
        pipelines = build_pipelines(tasks, ctx, plan.workers, plan.threads)
    except BaseException:
        for src in sources:
            src.close()
        raise
    outputs = output_paths(args.output, sources) if args.output else []
    sinks: list[list[Sink]] = []
    counters = [DetectionCounter(detector_classes(ctx, tasks) or ()) for _ in sources]
    for report, counter in zip(reports, counters):
        report.set_engine(ctx.backend, ctx.providers())
        sinks.append([counter, *report.sinks])
    for i, path in enumerate(outputs):  # encoding on a thread of its own, off the in-order steps
        fps = cfg.runner.output_fps or sources[i].fps or 25.0
        sinks[i].append(BackgroundSink(VideoWriterSink(path, fps, cfg.runner.output_codec), name=f"video{i}"))
    reconnect = (cfg.capture.reconnect_initial_s, cfg.capture.reconnect_max_s, cfg.capture.reconnect_attempts)
    run = MultiRun(sources, pipelines, sinks, mode=cfg.capture.video_mode, max_frames=args.max_frames,
                   reconnect=reconnect, posts=[r.step for r in reports])
    for report, live_run in zip(reports, run.runs):
        report.track(live_run.counters)
    totals = [s.frame_count for s in sources]
    total = sum(t or 0 for t in totals) if all(totals) else None
    if args.max_frames:
        total = min(total, args.max_frames * len(sources)) if total else args.max_frames * len(sources)
    progress = None if args.quiet else Progress(total)
    run.start()
    try:
        while not run.wait(0.1):
            if progress:
                progress.update(run.processed)
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
    finally:
        run.stop(timeout=2.0)
        if progress:
            progress.update(run.processed)
            progress.done()
        run.close()
    summaries = run.summaries()
    monitoring.close()  # sends what is still queued first, so the figures below are final
    for i, summary in enumerate(summaries):
        summary.update({"tasks": tasks, "backend": ctx.backend, "workers": plan.workers,
                        "workers_reason": plan.reason})
        if "detect" in tasks:
            summary["detections"] = counters[i].summary()
        if outputs:
            summary["output"] = str(outputs[i])
        summary.update({k: v for k, v in reports[i].summary().items() if v})
        if len(summaries) == 1:
            summary.update(monitoring.summary())
        print_summary(summary)
    if len(summaries) > 1 and monitoring_lines(monitoring.summary()):
        print("\n".join(monitoring_lines(monitoring.summary())))
    if args.stats:
        saved = summaries[0] if len(summaries) == 1 else {"workers": plan.workers, "sources": summaries,
                                                           **monitoring.summary()}
        Path(args.stats).write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    failed = [s for s in summaries if s.get("source_error")]
    for s in failed:
        print(f"error: {s['source']}: {s['source_error']}", file=sys.stderr)
    return 1 if failed or any(r.runner.error for r in run.runs) else 0


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
    det = s.get("detections")
    if det is not None:
        top = ", ".join(f"{k} {v}" for k, v in list(det["per_class"].items())[:6]) or "nothing"
        lines.append(f"detections {det['total']} in {det['frames_with_detections']} frames ({top}); "
                     f"tracks {det['tracks']}")
    print("\n".join(lines + monitoring_lines(s)))


def monitoring_lines(s: dict) -> list[str]:
    """The MQTT publisher's figures from a summary, if it has them."""
    if "mqtt" not in s:
        return []
    m = s["mqtt"]
    return [f"mqtt {m['broker']}: published {m['published']}, dropped {m['dropped']}, still queued "
            f"{m['queued']}, reconnects {m['reconnects']}"]
