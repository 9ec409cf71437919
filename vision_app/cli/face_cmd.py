"""Face analysis on one image:

    python main.py identify IMAGE [--db PATH] [--json]   who is this? (1:N against the gallery)
    python main.py liveness IMAGE [--json]               passive anti-spoofing verdict per face

identify --json prints {"faces": [{"xyxy": [x1, y1, x2, y2], "identity": "name" or null,
"similarity": 0.71, "accepted": true, "best": "name" or null, "quality": null or "reason"}]};
a face failing a quality gate (too small, blurry, turned) is never accepted.
liveness --json prints {"faces": [{"xyxy": [...], "live": false, "score": 0.12}]} (score = MiniFASNet
real-score 0..1). Both list faces best detection score first, boxes in image pixels.
"""
from __future__ import annotations

import argparse
import json
import math

from vision_app.cli.common import app_config, model_store
from vision_app.errors import GalleryError
from vision_app.stages import StageContext


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("identify", help="identify the faces in one image against the gallery")
    add_common(p)
    p.add_argument("image", help="image file (jpg, png, ...)")
    p.add_argument("--db", metavar="PATH", help="gallery file (default: config face.gallery, "
                   "else <user data>/gallery.db)")
    p.add_argument("--threshold", type=float, help="match threshold (default from config: "
                   "face.match_threshold, calibrated with face-eval)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("liveness", help="passive liveness (photo / screen attack) of the faces in one image")
    add_common(p)
    p.add_argument("image", help="image file (jpg, png, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_liveness)


def _xyxy(box) -> list[float]:
    return [round(float(v), 1) for v in box]


def identify_faces(ctx: StageContext, image, db: str | None = None) -> list[dict]:
    """One dict per detected face (see the module docstring) for an (H, W, 3) uint8 BGR image."""
    from vision_app.face.align import align_face
    from vision_app.face.quality import QualityGates
    from vision_app.face.stage import build_detector, build_embedder
    from vision_app.gallery.gallery import default_gallery_path
    from vision_app.gallery.identify import open_matcher

    embedder = build_embedder(ctx)
    gallery, matcher = open_matcher(ctx, embedder, db)
    if gallery is None or matcher is None:
        raise GalleryError(f"no gallery at {default_gallery_path(db or ctx.config.face.gallery)}; enrol "
                           f"people first (python main.py gallery enroll NAME IMG... --db PATH)")
    try:
        faces = build_detector(ctx).detect(image)
        gates = QualityGates.from_config(ctx.config.face)
        out = []
        for box, lm in zip(faces.xyxy, faces.landmarks):
            aligned = align_face(image, lm)
            reason = gates.check(box, lm, aligned)
            m = matcher.identify(embedder.embed([aligned]))[0]
            sim = None if m.best is None or math.isnan(m.similarity) else round(float(m.similarity), 4)
            ok = m.accepted and reason is None
            out.append({"xyxy": _xyxy(box), "identity": m.identity if ok else None, "similarity": sim,
                        "accepted": bool(ok), "best": m.best, "quality": reason})
        return out
    finally:
        gallery.close()


def cmd_identify(args: argparse.Namespace) -> int:
    from vision_app.cli.detect_cmd import read_image

    image = read_image(args.image)
    ctx = StageContext(app_config(args, **{"face.match_threshold": args.threshold}), model_store(args))
    faces = identify_faces(ctx, image, args.db)
    if args.json:
        print(json.dumps({"faces": faces}))
        return 0
    print(f"{args.image}: {len(faces)} face(s)")
    for f in faces:
        who = f["identity"] or "unknown"
        sim = "-" if f["similarity"] is None else f"{f['similarity']:.3f}"
        extra = f" (best {f['best']})" if f["identity"] is None and f["best"] else ""
        extra += f" [{f['quality']}]" if f["quality"] else ""
        print(f"  {who:<16} similarity {sim:>6}  box {f['xyxy']}{extra}")
    return 0


def liveness_faces(ctx: StageContext, image) -> list[dict]:
    """One {"xyxy", "live", "score"} dict per detected face of an (H, W, 3) uint8 BGR image."""
    from vision_app.face.stage import build_detector, build_passive

    faces = build_detector(ctx).detect(image)
    results = build_passive(ctx).check(image, faces.xyxy)
    return [{"xyxy": _xyxy(box), "live": r.live, "score": round(r.score, 4)}
            for box, r in zip(faces.xyxy, results)]


def cmd_liveness(args: argparse.Namespace) -> int:
    from vision_app.cli.detect_cmd import read_image

    image = read_image(args.image)
    faces = liveness_faces(StageContext(app_config(args), model_store(args)), image)
    if args.json:
        print(json.dumps({"faces": faces}))
        return 0
    print(f"{args.image}: {len(faces)} face(s)")
    for f in faces:
        print(f"  {'LIVE' if f['live'] else 'SPOOF':<5}  real-score {f['score']:.3f}  box {f['xyxy']}")
    return 0
