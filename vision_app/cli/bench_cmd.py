"""`python main.py bench --tasks detect`: print benchmark tables (registry: vision_app.benchmark.BENCHMARKS)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from vision_app.benchmark import BENCHMARKS, OPT_IN, BenchContext, BenchTable, parse_bench_tasks, run_benchmarks
from vision_app.cli.common import app_config, model_store

DEFAULT_VIDEO = "media/video/bikes_640x272.mp4"


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("bench", help="benchmarks: per-part timings and end-to-end fps")
    add_common(p)
    p.add_argument("--tasks", help=f"comma-separated benchmarks to run: {', '.join(BENCHMARKS)} (default all but "
                   f"{', '.join(sorted(OPT_IN))}, which start servers or take minutes)")
    p.add_argument("--video", help=f"video for end-to-end runs (default: <model folder>/../{DEFAULT_VIDEO}, "
                   "i.e. ../shared/media in development)")
    p.add_argument("--frames", type=int, default=0, help="use only the first N frames (0 = all; throughput: "
                   "the generated clip's length, default 1000)")
    p.add_argument("--repeat", type=int, default=200, help="timed calls per synthetic measurement")
    p.add_argument("--model", action="append", help="only this model (repeatable; default: every "
                   "present model of the task)")
    p.add_argument("--json", action="store_true", help="print the tables as JSON")
    p.set_defaults(func=cmd_bench)


def _video(args: argparse.Namespace, models_root: Path) -> Path | None:
    if args.video:
        return Path(args.video)
    guess = models_root.parent / DEFAULT_VIDEO
    return guess if guess.is_file() else None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def format_table(t: BenchTable) -> str:
    cells = [[_fmt(r.get(c, "")) for c in t.columns] for r in t.rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(t.columns)]
    left = {0}  # first column (names) left-aligned, numbers right-aligned

    def line(vals: list[str]) -> str:
        return "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    out = [t.title, line(t.columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out += [f"  note: {n}" for n in t.notes]
    return "\n".join(out)


def cmd_bench(args: argparse.Namespace) -> int:
    tasks = parse_bench_tasks(args.tasks)
    cfg = app_config(args)
    store = model_store(args)
    ctx = BenchContext(cfg, store, video=_video(args, store.root), frames=args.frames, repeat=args.repeat,
                       model_names=args.model or [],
                       on_progress=lambda msg: print(f"  … {msg}", file=sys.stderr, flush=True))
    results = run_benchmarks(tasks, ctx)
    header = {"cpu_count": os.cpu_count(), "engine_threads": cfg.engine.threads or "default",
              "video": str(ctx.video) if ctx.video else None}
    if args.json:
        print(json.dumps({"machine": header, "tasks": {k: [t.as_dict() for t in v] for k, v in results.items()}},
                         indent=2))
        return 0
    print(f"cpus: {header['cpu_count']}  ORT intra-op threads: {header['engine_threads']}  "
          f"video: {header['video']}")
    for task, tables in results.items():
        for t in tables:
            print(f"\n[{task}] " + format_table(t))
    return 0
