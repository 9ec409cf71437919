"""`python main.py models list|verify|fetch`: which models are usable and where each comes from, with
checksums and licenses; adding models from a model pack."""
from __future__ import annotations

import argparse
import json
import sys

from vision_app.cli.common import Progress, model_store
from vision_app.errors import ModelError
from vision_app.models import ModelStore, fetch_target_dir, model_folders


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("models", help="list, verify, fetch or import models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for name, helptext, fn in (("list", "show each model: present / missing / checksum mismatch, where it "
                                "comes from (--models, VISION_APP_MODELS, user folder, bundled), license",
                                cmd_list),
                               ("verify", "exit non-zero if a model has a wrong checksum or a bundled one is "
                                "missing (--all: if any model is missing)", cmd_verify)):
        q = msub.add_parser(name, help=helptext)
        add_common(q)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.add_argument("--task", help="only models of this task (detect, face_detect, segment, style, ...)")
        if fn is cmd_verify:
            q.add_argument("--all", action="store_true", help="every model of the manifest must be present")
        q.set_defaults(func=fn)
    q = msub.add_parser("fetch", help="add models from a model pack: a folder or http(s):// URL with a "
                        "manifest.toml (or SHA256SUMS) and the files; checked, resumable")
    add_common(q)
    q.add_argument("source", metavar="SOURCE", help="model pack folder, its manifest file, or an http(s):// URL")
    q.add_argument("--only", metavar="NAMES", help="comma-separated model names to fetch (default: all)")
    q.add_argument("--retries", type=int, default=2, help="resume a cut download this many times (default 2)")
    q.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_fetch)
    register_models_actions(msub)


def register_models_actions(msub: argparse._SubParsersAction) -> None:
    """Further `models` actions (import-darknet, export-triton) registered by their own modules."""
    try:
        from vision_app.detect import darknet_cli
    except ImportError:
        pass
    else:
        darknet_cli.register(msub)
    from vision_app.cli import triton_cmd

    triton_cmd.register(msub)


def _rows(store: ModelStore, task: str | None) -> list[dict]:
    rows = []
    for name in store.names(task):
        e = store.entry(name)
        found = store.locate(name)
        rows.append({"name": name, "task": e.task, "file": e.file, "status": store.status(name),
                     "origin": found[1].origin if found else None, "path": str(found[0]) if found else None,
                     "bundled": e.bundled, "license": e.license, "noncommercial": e.noncommercial})
    return rows


def _print(store: ModelStore, rows: list[dict], as_json: bool) -> None:
    folders = [{"path": str(f.path), "origin": f.origin} for f in store.folders]
    if as_json:
        print(json.dumps({"model_dir": str(store.root), "model_dirs": folders, "models": rows}, indent=2))
        return
    print("model folders, first match wins:")
    for f in folders:
        print(f"  {f['origin']:<17} {f['path']}")
    w = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        flag = "  [NON-COMMERCIAL]" if r["noncommercial"] else ""
        print(f"  {r['name']:<{w}}  {r['task']:<13} {r['status']:<17} {r['origin'] or '-':<17} "
              f"{r['license']}{flag}")


def cmd_list(args: argparse.Namespace) -> int:
    store = model_store(args)
    _print(store, _rows(store, args.task), args.json)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = model_store(args)
    rows = _rows(store, args.task)
    _print(store, rows, args.json)
    bad = [r for r in rows if r["status"] == "checksum mismatch"
           or (r["status"] == "missing" and (args.all or r["bundled"]))]
    if bad and not args.json:
        print(f"{len(bad)} model(s) not usable: " + ", ".join(f"{r['name']} ({r['status']})" for r in bad))
        if any(r["bundled"] and r["status"] == "missing" for r in bad):
            print("a bundled model is missing: the installed package is incomplete; reinstall it")
    return 1 if bad else 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from vision_app.model_fetch import fetch_pack

    target = fetch_target_dir(args.models)
    if target.exists() and not target.is_dir():
        raise ModelError(f"--models {target} is a file; give a folder to put the models in")
    store = ModelStore(model_folders(args.models, must_exist=False))
    bars: dict[str, Progress] = {}

    def progress(file: str, done: int, total: int | None) -> None:
        if args.quiet:
            return
        bar = bars.get(file)
        if bar is None:
            bar = bars[file] = Progress(total // 1024 if total else None, label=f"KiB {file}", rate=False)
        bar.update(done // 1024)

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    manifest, results = fetch_pack(args.source, target, store, only, progress, retries=max(0, args.retries))
    for bar in bars.values():
        bar.done()
    print(f"pack: {args.source} ({manifest}); into {target}")
    w = max((len(r.name) for r in results), default=4)
    for r in results:
        size = f" {r.size / 2**20:.1f} MiB" if r.size else ""
        print(f"  {r.name:<{w}}  {r.outcome}{size}  {r.detail if r.outcome != 'fetched' else r.file}")
    counts = {o: sum(r.outcome == o for r in results) for o in ("fetched", "already present", "failed")}
    print(", ".join(f"{k} {v}" for k, v in counts.items()))
    if counts["failed"]:
        print("some models were not fetched (see above); nothing half-written was left in the model folder",
              file=sys.stderr)
    return 1 if counts["failed"] else 0
