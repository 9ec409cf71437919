"""Command line: `python main.py SUBCOMMAND ...`. Each sub-command lives in its own module with
`register(subparsers)`; modules are listed here in help order."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from vision_app.errors import VisionAppError

log = logging.getLogger("vision_app")

DEFAULT_COMMAND = "gui"  # what `python main.py` with no sub-command runs, when registered

COMMAND_MODULES = [
    "vision_app.cli.run",
    "vision_app.cli.models_cmd",
    "vision_app.cli.detect_cmd",
    "vision_app.cli.bench_cmd",
    "vision_app.cli.engines_cmd",
    "vision_app.cli.seg_style_cmd",
    "vision_app.cli.soak_cmd",
    "vision_app.cli.ui_cmd",
    "vision_app.cli.gallery_cmd",
    "vision_app.cli.face_cmd",
    "vision_app.cli.face_eval_cmd",
    "vision_app.cli.verify_cmd",
]


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every sub-command takes."""
    p.add_argument("--models", metavar="DIR", help="model folder searched first; then $VISION_APP_MODELS, the "
                   "per-user data folder and the models bundled with the package (python main.py models list)")
    p.add_argument("--config", metavar="FILE", help="TOML config file (see vision_app/default_config.toml)")
    p.add_argument("--backend", choices=["auto", "onnxruntime", "tensorrt", "triton"], default=None,
                   help="inference backend (default from config: auto; triton needs --triton-url)")
    p.add_argument("--triton-url", metavar="URL", help="Triton Inference Server for --backend triton: "
                   "http://HOST:8000 or grpc://HOST:8001 (default from config engine.triton_url)")
    p.add_argument("--providers", metavar="LIST", help="ONNX Runtime execution providers in order, e.g. "
                   "TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider (needs onnxruntime-gpu; "
                   "default from config engine.providers)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Real-time computer vision: detection, "
                                     "face verification, segmentation and style transfer.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:  # a command whose optional dependency is absent stays listed as broken
            log.debug("command module %s unavailable: %s", name, exc)
            continue
        mod.register(sub)
    parser.set_defaults(commands=tuple(sub.choices))
    return parser


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose < 0 else (logging.INFO if verbose <= 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if _opens_default_command(argv) and DEFAULT_COMMAND in parser.get_default("commands"):
        argv = [DEFAULT_COMMAND, *argv]  # `python main.py [--source X ...]` opens the desktop window
    args = parser.parse_args(argv)
    if args.command is None:  # no sub-command and no UI installed
        parser.print_help()
        return 2
    setup_logging(getattr(args, "verbose", 0))
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at interpreter exit
        return code
    except VisionAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`models list | head`): it has read all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0


def _opens_default_command(argv: list[str]) -> bool:
    """No sub-command given: nothing at all, or options only (but not a request for the top-level help)."""
    return not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help"))
