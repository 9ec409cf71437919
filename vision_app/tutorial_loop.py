"""The detection loop most tutorials write, as a whole process: the baseline of `bench --tasks throughput`.

    python -m vision_app.tutorial_loop VIDEO OUT.mp4 [--model yolo-fastest-1.1-xl] [--models DIR] [--plain]

One thread: read a frame -> preprocess -> infer on one ONNX Runtime session with 2 intra-op threads ->
decode + NMS -> draw the boxes on a copy -> write it to an mp4v video, until the video ends. No tracking.
Prints one JSON line: frames, detections (boxes drawn, all frames together), seconds of the loop and
its fps.

Two flavours:
- default: the app's own preprocessing, decoder, NMS and drawing, so the comparison measures only how
  the app schedules the work (this loop gets every per-frame saving the app's code has);
- `--plain`: written as tutorials write it, with cv2 and numpy only (`cv2.dnn.blobFromImage`, every
  anchor decoded with numpy, `cv2.dnn.NMSBoxesBatched`, `cv2.rectangle`/`cv2.putText`); for the
  manifest's `yolo_anchor` detectors (anchors and strides read from the manifest entry).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from vision_app.models import ModelEntry

TUTORIAL_THREADS = 2


def main(argv: Sequence[str] | None = None) -> int:
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
    ap.add_argument("--plain", action="store_true", help="cv2 + numpy only, as tutorials write it")
    args = ap.parse_args(argv)
    store = ModelStore.open(args.models)
    entry = store.entry(args.model)
    if args.plain:
        if entry.decode.get("type") != "yolo_anchor":
            print(f"error: --plain decodes yolo_anchor detectors only; {entry.name} is "
                  f"{entry.decode.get('type')!r}: use the default flavour", file=sys.stderr)
            return 2
        return drive(args.video, args.output, plain_step(str(store.path(args.model)), entry))
    engine = OnnxRuntimeEngine(store.path(args.model), threads=TUTORIAL_THREADS, name=args.model)
    detector = Detector(entry, engine, DetectParams())

    def step(img: Any) -> tuple[Any, int]:
        frame = np.asarray(img, np.uint8)  # typed view, no copy
        dets = detector(frame)
        return draw_detections(frame.copy(), dets), len(dets)

    try:
        return drive(args.video, args.output, step)
    finally:
        detector.close()


def drive(video: str, output: str, step: Callable[[Any], tuple[Any, int]]) -> int:
    """Read every frame of `video`, `step(frame) -> (annotated BGR image, boxes drawn)`, write the images to
    an mp4v `output`; print the JSON line (see the module doc) and return the exit code."""
    import cv2

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        print(f"error: cannot open {video}", file=sys.stderr)
        return 1
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer: cv2.VideoWriter | None = None
    n = found = 0
    t0 = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        vis, count = step(frame)
        found += count
        if writer is None:
            writer = cv2.VideoWriter(output, cv2.VideoWriter.fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
        writer.write(vis)
        n += 1
    if writer is not None:
        writer.release()
    loop_s = time.perf_counter() - t0
    cap.release()
    print(json.dumps({"frames": n, "detections": found, "loop_s": round(loop_s, 3),
                      "fps": round(n / loop_s, 2) if loop_s else 0.0}))
    return 0


def plain_step(model_path: str, entry: ModelEntry) -> Callable[[Any], tuple[Any, int]]:
    """One frame in the tutorials' own style (see the module doc), for a `yolo_anchor` detector."""
    import cv2
    import numpy as np
    import onnxruntime as ort

    in_w, in_h = entry.input["size"]
    swap_rb = entry.preprocess.get("color", "rgb") == "rgb"
    heads = {h["output"]: h for h in entry.decode["heads"]}
    so = ort.SessionOptions()
    so.intra_op_num_threads = TUTORIAL_THREADS
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    output_names = [o.name for o in sess.get_outputs()]

    def step(frame: Any) -> tuple[Any, int]:
        h, w = frame.shape[:2]
        blob = cv2.dnn.blobFromImage(frame, 1 / 255.0, (in_w, in_h), swapRB=swap_rb, crop=False)
        outs = sess.run(output_names, {input_name: blob})
        boxes, scores, classes = [], [], []
        for name, out in zip(output_names, outs):
            head = heads[name]
            gh, gw = out.shape[2], out.shape[3]
            o = out.reshape(len(head["anchors"]), -1, gh, gw).transpose(0, 2, 3, 1)
            p = 1 / (1 + np.exp(-o))
            cols, rows = np.meshgrid(np.arange(gw), np.arange(gh))
            for a, (aw, ah) in enumerate(head["anchors"]):
                conf = p[a, ..., 4:5] * p[a, ..., 5:]
                cls = conf.argmax(-1)
                sc = conf.max(-1)
                m = sc > 0.25
                cx = (p[a, ..., 0][m] + cols[m]) / gw * w
                cy = (p[a, ..., 1][m] + rows[m]) / gh * h
                bw = np.exp(o[a, ..., 2][m]) * aw / in_w * w
                bh = np.exp(o[a, ..., 3][m]) * ah / in_h * h
                for x, y, bw_, bh_, s_, c in zip(cx, cy, bw, bh, sc[m], cls[m]):
                    boxes.append([int(x - bw_ / 2), int(y - bh_ / 2), int(bw_), int(bh_)])
                    scores.append(float(s_))
                    classes.append(int(c))
        kept = cv2.dnn.NMSBoxesBatched(boxes, scores, classes, 0.25, 0.45) if boxes else []
        keep = np.asarray(kept, dtype=int).flatten()
        vis = frame.copy()
        for i in keep:
            x, y, bw_, bh_ = boxes[i]
            cv2.rectangle(vis, (x, y), (x + bw_, y + bh_), (0, 255, 0), 2)
            cv2.putText(vis, f"{classes[i]} {scores[i]:.2f}", (x, max(y - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (0, 255, 0), 1)
        return vis, len(keep)

    return step


if __name__ == "__main__":
    sys.exit(main())
