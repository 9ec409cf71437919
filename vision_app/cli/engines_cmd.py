"""`python main.py engines build|list|clear`: the TensorRT engine cache (<user data>/engines by default).

`build` needs tensorrt, pycuda and a GPU; `list` and `clear` only read and remove files, so they work on
any machine (e.g. to see what a copied cache folder holds).
"""
from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from vision_app.cli.common import Progress, app_config, model_store
from vision_app.errors import ConfigError, EngineError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("engines", help="build, list or clear cached TensorRT engines")
    esub = p.add_subparsers(dest="engines_command", metavar="ACTION", required=True)
    b = esub.add_parser("build", help="build (or load from the cache) TensorRT engines ahead of a run")
    add_common(b)
    b.add_argument("--model", action="append", help="model name (repeatable; python main.py models list)")
    b.add_argument("--all", action="store_true", help="every model present in the model folder")
    b.add_argument("--precision", choices=["fp32", "fp16"], help="override tensorrt.precision")
    b.add_argument("--force", action="store_true", help="rebuild even when a cached engine matches")
    b.set_defaults(func=cmd_build)
    ls = esub.add_parser("list", help="show cached engines: model, precision, TensorRT version, GPU, profile")
    add_common(ls)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_list)
    c = esub.add_parser("clear", help="remove cached engines (all, or one model's)")
    add_common(c)
    c.add_argument("--model", help="only this model's engines")
    c.add_argument("--timing", action="store_true", help="also remove the timing caches")
    c.set_defaults(func=cmd_clear)


def _settings(args: argparse.Namespace, multiple_of: int = 1) -> Any:
    from engines.trt_settings import TrtSettings

    cfg = app_config(args, **{"tensorrt.precision": getattr(args, "precision", None)})
    return TrtSettings.from_config(cfg.tensorrt, multiple_of)


def cmd_build(args: argparse.Namespace) -> int:
    from engines.registry import probe
    from engines.tensorrt import TensorRTEngine

    status = probe("tensorrt")
    if status != "ok":
        raise EngineError(f"cannot build TensorRT engines here: {status}")
    store = model_store(args)
    names = store.names() if args.all else (args.model or [])
    if not names:
        raise ConfigError("say which engines to build: --model NAME (repeatable) or --all")
    if args.all:
        names = [n for n in names if store.status(n) == "present"]
    print(TensorRTEngine.environment(_settings(args).device))
    for name in names:
        entry = store.entry(name)
        settings = _settings(args, entry.input.get("multiple_of", 1))
        bar = Progress(100, label=f"% {name}", rate=False)

        def on_progress(_msg: str, frac: float, bar: Progress = bar) -> None:
            bar.update(int(100 * frac))

        with TensorRTEngine(store.path(name), name=name, settings=settings, rebuild=args.force,
                            on_progress=on_progress) as eng:
            bar.done()
            print(f"{name}: {eng.describe()}")
    print(f"engine cache: {_settings(args).cache_dir}")
    return 0


def _rows(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    from engines.trt_cache import EngineCache

    cache = EngineCache(_settings(args).cache_dir)
    rows = []
    for e in cache.entries():
        key = (e.header or {}).get("key", {})
        rows.append({"file": e.path.name, "size_mib": round(e.size / 2**20, 2), "model": key.get("model"),
                     "precision": key.get("precision"), "tensorrt": key.get("trt_version"),
                     "gpu": key.get("gpu_name"), "compute": key.get("compute_capability"),
                     "profiles": key.get("profiles"), "created": (e.header or {}).get("created"),
                     "build_seconds": (e.header or {}).get("build_seconds"), "problem": e.problem})
    return str(cache.root), rows


def cmd_list(args: argparse.Namespace) -> int:
    root, rows = _rows(args)
    if args.json:
        print(json.dumps({"cache_dir": root, "engines": rows}, indent=2))
        return 0
    print(f"engine cache: {root}")
    if not rows:
        print("  (empty: engines are built on first use, or with 'python main.py engines build --model NAME')")
    for r in rows:
        if r["problem"]:
            print(f"  {r['file']}: UNUSABLE ({r['problem']}); it is rebuilt when needed")
            continue
        prof = "; ".join(f"{p[0]} {p[1]}..{p[3]}" for p in r["profiles"] or []) or "static shapes"
        print(f"  {r['model']:<22} {r['precision']:<5} TensorRT {r['tensorrt']:<9} {r['gpu']} "
              f"(sm {r['compute']})  {r['size_mib']} MiB  {prof}  built {r['created']}")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    from engines.trt_cache import EngineCache

    cache = EngineCache(_settings(args).cache_dir)
    removed = cache.clear(model=args.model, timing=args.timing)
    print(f"removed {len(removed)} file(s) from {cache.root}")
    return 0
