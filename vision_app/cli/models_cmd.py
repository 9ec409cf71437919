"""`python main.py models list|verify`: what the model folder holds, with checksums and licenses."""
from __future__ import annotations

import argparse
import json

from vision_app.cli.common import model_store


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("models", help="list, verify or import models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for name, helptext, fn in (("list", "show each model as present / missing / checksum mismatch",
                                cmd_list),
                               ("verify", "exit non-zero if any model is missing or has a wrong checksum",
                                cmd_verify)):
        q = msub.add_parser(name, help=helptext)
        add_common(q)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.add_argument("--task", help="only models of this task (detect, face_detect, segment, style, ...)")
        q.set_defaults(func=fn)
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


def _rows(args: argparse.Namespace) -> tuple[str, list[dict]]:
    store = model_store(args)
    rows = []
    for name in store.names(args.task):
        e = store.entry(name)
        rows.append({"name": name, "task": e.task, "file": e.file, "status": store.status(name),
                     "license": e.license, "noncommercial": e.noncommercial})
    return str(store.root), rows


def _print(root: str, rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"model_dir": root, "models": rows}, indent=2))
        return
    print(f"model folder: {root}")
    w = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        flag = "  [NON-COMMERCIAL]" if r["noncommercial"] else ""
        print(f"  {r['name']:<{w}}  {r['task']:<13} {r['status']:<17} {r['license']}{flag}")


def cmd_list(args: argparse.Namespace) -> int:
    root, rows = _rows(args)
    _print(root, rows, args.json)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    root, rows = _rows(args)
    _print(root, rows, args.json)
    bad = [r for r in rows if r["status"] != "present"]
    if bad and not args.json:
        print(f"{len(bad)} model(s) not usable: " + ", ".join(f"{r['name']} ({r['status']})" for r in bad))
    return 1 if bad else 0
