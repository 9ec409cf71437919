"""`python main.py soak --minutes N`: long headless runs with resource sampling and a verdict."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from vision_app.cli.common import app_config, model_store
from vision_app.multirun import MultiRun
from vision_app.parallelism import plan_workers
from vision_app.runner import StatusCallback
from vision_app.soak import Sampler, verdict, write_samples_csv
from vision_app.sources import open_source
from vision_app.stages import StageContext, build_pipelines, parse_tasks

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("soak", help="long run sampling memory, threads, file descriptors, fps and latency")
    add_common(p)
    p.add_argument("--minutes", type=float, default=20.0, help="how long to run (default 20)")
    p.add_argument("--sources", nargs="+", default=None,
                   help="sources to run at once (default: test: and loop:<media>/video/carphone_face_176x144.mp4)")
    p.add_argument("--tasks", default="detect,face,segment", help="tasks per source (default detect,face,segment)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds excluded from growth figures")
    p.add_argument("--csv", help="write every sample here")
    p.add_argument("--json", help="write the summary here")
    p.set_defaults(func=cmd_soak)


def default_sources(models_root: Path) -> list[str]:
    clip = models_root.parent / "media/video/carphone_face_176x144.mp4"
    return ["test:640x480@15", f"loop:{clip}"] if clip.is_file() else ["test:640x480@15"]


def cmd_soak(args: argparse.Namespace) -> int:
    cfg = app_config(args)
    tasks = parse_tasks(args.tasks)
    store = model_store(args)
    ctx = StageContext(cfg, store)
    specs = args.sources or default_sources(store.root)
    sources = [open_source(spec) for spec in specs]
    plan = plan_workers(cfg.engine, sources=len(sources), live=any(s.live for s in sources),
                        offline=cfg.capture.video_mode == "offline", backend=ctx.backend)
    log.info("workers: %d — %s", plan.workers, plan.reason)
    pipelines = build_pipelines(tasks, ctx, plan.workers, plan.threads)

    def on_status(i: int) -> StatusCallback:
        return lambda kind, message: log.warning("%s: %s: %s", specs[i], kind, message)

    multi = MultiRun(sources, pipelines, on_status=on_status)
    runs = multi.runs

    def frames() -> tuple[int, list[float]]:
        total = sum(r.runner.stats.processed for r in runs)
        lat: list[float] = []
        for r in runs:
            lat.extend(r.runner.stats.latencies.last(200).tolist())
        return total, lat

    def show(s) -> None:  # noqa: ANN001
        print(f"t={s.t:7.1f}s rss={s.rss_mb:7.1f} MB threads={s.threads:3d} fds={s.fds:3d} "
              f"frames={s.frames:7d} fps={s.fps:6.1f} p95={s.latency_p95_ms or 0:7.1f} ms", flush=True)

    sampler = Sampler(args.interval, frames, show)
    multi.start()
    sampler.start()
    end = time.monotonic() + args.minutes * 60
    try:
        while time.monotonic() < end and any(r.runner.is_alive() for r in runs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("interrupted: summarising what ran")
    sampler.stop()
    sampler.join(args.interval + 1)
    sampler.take()
    multi.stop(2.0)
    multi.close()
    summary = verdict(sampler.samples, args.warmup)
    summary.update({"minutes": round(sampler.samples[-1].t / 60, 2), "tasks": tasks,
                    "sources": [r.source.source_id for r in runs], "backend": ctx.backend,
                    "workers": plan.workers,
                    "runs": [r.summary() for r in runs]})
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.csv:
        write_samples_csv(Path(args.csv), sampler.samples)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if summary["verdict"] != "FAIL" else 1
