"""`python main.py detect IMAGE`: run a detector on one image and print what it found.

Table by default; with --json exactly
{"detections": [{"label": "bus", "class_id": 5, "score": 0.93, "xyxy": [x1, y1, x2, y2]}, ...]}
in source-image pixels, highest score first.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from vision_app.cli.common import app_config, model_store
from vision_app.detect.detector import Detector
from vision_app.detect.stage import detect_params
from vision_app.errors import SourceError, VisionAppError
from vision_app.stages import StageContext
from vision_app.types import Detections


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("detect", help="detect objects in one image (table or --json)")
    add_common(p)
    p.add_argument("image", help="image file (jpg, png, ...)")
    p.add_argument("--model", help="detector model name (python main.py models list --task detect)")
    p.add_argument("--conf", type=float, help="confidence threshold (default from config: 0.25)")
    p.add_argument("--iou", type=float, help="NMS IoU threshold (default from config: 0.45)")
    p.add_argument("--agnostic", action="store_true", default=None, help="class-agnostic NMS")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--output", "-o", help="also save the annotated image here")
    p.set_defaults(func=cmd_detect)


def read_image(path: str) -> np.ndarray:
    """BGR uint8 (H, W, 3); SourceError when the file is missing or not an image."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"image '{p}' not found")
    data = np.fromfile(str(p), np.uint8)  # imdecode also handles non-ASCII paths on Windows
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise SourceError(f"'{p}' is not an image OpenCV can decode (expected jpg, png, bmp, webp, tiff)")
    return img


def detections_json(dets: Detections) -> dict:
    return {"detections": [
        {"label": dets.label(i), "class_id": int(dets.class_id[i]),
         "score": round(float(dets.confidence[i]), 4),
         "xyxy": [round(float(v), 1) for v in dets.xyxy[i]]}
        for i in range(len(dets))]}


def detections_table(dets: Detections, header: str) -> str:
    lines = [header, f"  {'label':<14} {'class':>5} {'score':>6} {'x1':>7} {'y1':>7} {'x2':>7} {'y2':>7}"]
    for i in range(len(dets)):
        x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        lines.append(f"  {dets.label(i):<14} {int(dets.class_id[i]):>5} {float(dets.confidence[i]):>6.3f} "
                     f"{x1:>7.1f} {y1:>7.1f} {x2:>7.1f} {y2:>7.1f}")
    return "\n".join(lines)


def cmd_detect(args: argparse.Namespace) -> int:
    cfg = app_config(args, **{"detect.model": args.model, "detect.confidence": args.conf,
                              "detect.iou": args.iou, "detect.class_agnostic": args.agnostic})
    image = read_image(args.image)
    store = model_store(args)
    ctx = StageContext(cfg, store)
    name = cfg.detect.model
    entry = store.entry(name)
    detector = Detector(entry, ctx.engine(name), detect_params(cfg.detect))
    try:
        dets = detector(image)
    finally:
        detector.close()
    if args.output:
        from vision_app.draw import draw_detections

        out = draw_detections(image.copy(), dets)
        if not cv2.imwrite(args.output, out):
            raise VisionAppError(f"cannot write '{args.output}': unknown image extension or folder missing")
    if args.json:
        print(json.dumps(detections_json(dets)))
    else:
        h, w = image.shape[:2]
        print(detections_table(dets, f"{args.image}  {w}x{h}  {name}  {len(dets)} detection(s)  "
                                     f"(conf {cfg.detect.confidence:.2f}, IoU {cfg.detect.iou:.2f})"))
    return 0
