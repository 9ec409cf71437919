"""`python main.py segment IMAGE` and `python main.py stylize IMAGE`: one photo through one stage."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.cli.common import app_config, model_store
from vision_app.errors import ConfigError, SourceError, VisionAppError
from vision_app.pipeline import finish_step
from vision_app.stages import StageContext, build_stage
from vision_app.types import Frame, FrameResult

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("segment", help="segment one image: share of pixels per class, optional overlay")
    add_common(p)
    p.add_argument("image", help="image file")
    p.add_argument("--seg-model", help="selfie | selfie-landscape | deeplab (default from config)")
    p.add_argument("--overlay", choices=["color", "blur", "replace", "cutout"], help="overlay for -o")
    p.add_argument("--opacity", type=float, help="colour overlay opacity 0..1")
    p.add_argument("--background", help="background image for --overlay replace")
    p.add_argument("--json", action="store_true", help='print {"shares": {class: fraction}} as JSON')
    p.add_argument("-o", "--output", help="write the overlay here (cutout to .png keeps transparency)")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("stylize", help="apply a painting's style (or a fixed-style model) to one image")
    add_common(p)
    p.add_argument("image", help="image file")
    p.add_argument("--style", required=True, help="painting image path, or johnson_wave / johnson_udnie "
                   "(research / non-commercial license)")
    p.add_argument("-o", "--output", required=True, help="output image file")
    p.add_argument("--strength", type=float, help="0..1: blend of the painting's style with the image's "
                   "own (painting styles only; default 1)")
    p.add_argument("--working-size", type=int, help="long side of the working resolution for the "
                   "fixed-style models (default from config: 384)")
    p.set_defaults(func=cmd_stylize)


def read_image(path: str) -> NDArray[np.uint8]:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(f"cannot read image {path!r}: expected an existing .jpg/.png/.bmp file")
    return img  # type: ignore[return-value]


def write_image(path: str, img: NDArray[np.uint8]) -> None:
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        ok = cv2.imwrite(path, img)
    except cv2.error as exc:
        raise ConfigError(f"cannot write {path!r}: {exc}; use a .png or .jpg name") from exc
    if not ok:
        raise ConfigError(f"cannot write {path!r}; check the folder and use a .png or .jpg name")


def run_single(args: argparse.Namespace, task: str, overrides: dict[str, Any]) -> tuple[FrameResult, Any]:
    """Build the one stage from config + overrides and run it on the image → (result, stage)."""
    cfg = app_config(args, **overrides)
    ctx = StageContext(cfg, model_store(args))
    stage = build_stage(task, ctx)
    img = read_image(args.image)
    frame = Frame(img, 0, time.monotonic(), args.image)
    try:
        t = time.perf_counter()
        result = stage.process(FrameResult(frame=frame, image=frame.image))
        finish = finish_step(stage)
        if finish is not None:
            result = finish(result)
        log.info("%s took %.1f ms", task, 1000 * (time.perf_counter() - t))
    finally:
        stage.close()
    return result, stage


def cmd_segment(args: argparse.Namespace) -> int:
    result, stage = run_single(args, "segment", {
        "segment.model": args.seg_model, "segment.overlay": args.overlay, "segment.opacity": args.opacity,
        "segment.background": args.background})
    mask = result.mask
    if mask is None:  # the segment stage's finish always sets it; None would be a bug in the stage
        raise VisionAppError(f"segment: the stage returned no mask for {args.image}")
    shares = dict(sorted(mask.shares().items(), key=lambda kv: -kv[1]))
    if args.output:
        out = result.image
        if stage.renderer.mode == "cutout" and args.output.lower().endswith(".png"):
            alpha = np.round(stage.renderer.alpha(mask) * 255).astype(np.uint8)
            out = np.dstack([result.frame.image, alpha])  # BGRA: a transparent background
        write_image(args.output, out)
    if args.json:
        print(json.dumps({"shares": {k: round(v, 4) for k, v in shares.items()}}))
    else:
        model = result.extras.get("segment", {}).get("model", "?")
        print(f"{args.image}: {mask.labels.shape[1]}x{mask.labels.shape[0]} px, model {model}")
        for name, share in shares.items():
            print(f"  {name:14s} {100 * share:5.1f} %")
        if args.output:
            print(f"overlay written to {args.output}")
    return 0


def cmd_stylize(args: argparse.Namespace) -> int:
    result, stage = run_single(args, "style", {
        "style.style": args.style, "style.strength": args.strength, "style.working_size": args.working_size})
    write_image(args.output, result.image)
    info = stage.info
    print(f"{args.output}: {args.style} ({info['family']}, license: {info['license']})")
    if info.get("noncommercial"):
        print(f"note: {', '.join(info['models'])} is for research / non-commercial use only")
    return 0
