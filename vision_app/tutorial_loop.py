"""The detection loop most tutorials write, as a whole process: the baseline of `bench --tasks throughput`.

    python -m vision_app.tutorial_loop VIDEO OUT.mp4 [--model yolo-fastest-1.1-xl] [--models DIR]

One thread: read a frame -> preprocess -> infer on one ONNX Runtime session with 2 intra-op threads ->
decode + NMS -> draw the boxes on a copy -> write it to an mp4v video, until the video ends. It uses the
app's own preprocessing, decoder, NMS and drawing (so the comparison measures how the app schedules the
work, not whose decoder is faster), and no tracking. Prints one JSON line: frames, seconds of the loop
and its fps.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

TUTORIAL_THREADS = 2


def main(argv: Sequence[str] | None = None) -> int:
    import cv2
    import numpy as np

    from engines.onnxruntime import OnnxRuntimeEngine
    from vision_app.detect.detector import DetectParams, Detector
    from vision_app.draw import draw_detections
    from vision_app.models import ModelStore

    ap = argparse.ArgumentParser(prog="python -m vision_app.tutorial_loop", description=__doc__.split("\n")[0])
    ap.add_argument("video")
    ap.add_argument("output")
    ap.add_argument("--model", default="yolo-fastest-1.1-xl")
    ap.add_argument("--models", default=None, help="model folder (default: VISION_APP_MODELS)")
    args = ap.parse_args(argv)
    store = ModelStore.open(args.models)
    entry = store.entry(args.model)
    engine = OnnxRuntimeEngine(store.path(args.model), threads=TUTORIAL_THREADS, name=args.model)
    detector = Detector(entry, engine, DetectParams())
    cap = cv2.VideoCapture(args.video)
    if not cap.isOpened():
        print(f"error: cannot open {args.video}", file=sys.stderr)
        return 1
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer: cv2.VideoWriter | None = None
    n = 0
    t0 = time.perf_counter()
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frame = np.asarray(img, np.uint8)  # typed view, no copy
        dets = detector(frame)
        out = draw_detections(frame.copy(), dets)
        if writer is None:
            writer = cv2.VideoWriter(args.output, cv2.VideoWriter.fourcc(*"mp4v"), fps,
                                     (frame.shape[1], frame.shape[0]))
        writer.write(out)
        n += 1
    if writer is not None:
        writer.release()
    loop_s = time.perf_counter() - t0
    cap.release()
    detector.close()
    print(json.dumps({"frames": n, "loop_s": round(loop_s, 3), "fps": round(n / loop_s, 2) if loop_s else 0.0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
