"""Face analysis on photos, one or thousands (models load once):

    python main.py identify IMAGE|FOLDER... [--db PATH] [--json]   who is this? (1:N against the gallery)
    python main.py liveness IMAGE|FOLDER... [--json]               passive anti-spoofing verdict per face

identify --json prints {"faces": [{"xyxy": [x1, y1, x2, y2], "identity": "name" or null,
"similarity": 0.71, "accepted": true, "best": "name" or null, "quality": null or "reason"}]};
a face failing a quality gate (too small, blurry, turned) is never accepted.
liveness --json prints {"faces": [{"xyxy": [...], "live": false, "score": 0.12}]} (score = MiniFASNet
real-score 0..1). Both list faces best detection score first, boxes in image pixels.
With several images or a folder (searched recursively, natural order) every image gives one JSON line
{"image": PATH, "faces": [...]}, or {"image": PATH, "error": "..."} when it cannot be read; the batch
goes on and the exit code is 1 when any image failed (0 otherwise).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vision_app.cli.common import app_config, model_store
from vision_app.errors import GalleryError, VisionAppError
from vision_app.stages import StageContext


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("identify", help="identify the faces in images (files or folders) against the gallery")
    add_common(p)
    p.add_argument("images", nargs="+", metavar="IMAGE|FOLDER", help="image files (jpg, png, ...) or folders")
    p.add_argument("--db", metavar="PATH", help="gallery file (default: config face.gallery, "
                   "else <user data>/gallery.db)")
    p.add_argument("--threshold", type=float, help="match threshold, used as it is (default: config "
                   "face.match_threshold with the gallery-size rule face.threshold_rule)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("liveness", help="passive liveness (photo / screen attack) of the faces in images")
    add_common(p)
    p.add_argument("images", nargs="+", metavar="IMAGE|FOLDER", help="image files (jpg, png, ...) or folders")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_liveness)


def _xyxy(box: Any) -> list[float]:
    return [round(float(v), 1) for v in box]


def expand_images(args: list[str]) -> tuple[list[Path], bool]:
    """(paths, single): files as given, folders → their image files, recursively, in natural order;
    single: exactly one image file was named (its output keeps the one-image form)."""
    from vision_app.errors import SourceError
    from vision_app.gallery.evalset import IMAGE_SUFFIXES, natural_key

    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES),
                           key=lambda f: (str(f.parent).lower(), natural_key(f)))
            if not found:
                raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder {p}")
            out += found
        else:
            out.append(p)
    return out, len(args) == 1 and not Path(args[0]).is_dir()


class BatchIdentifier:
    """Detector, recognizer, gates and the gallery's matcher, loaded once for many images."""

    def __init__(self, ctx: StageContext, db: str | None = None) -> None:
        from vision_app.face.quality import QualityGates
        from vision_app.face.stage import build_detector, build_embedder
        from vision_app.gallery.gallery import default_gallery_path
        from vision_app.gallery.identify import open_matcher

        self.embedder = build_embedder(ctx)
        gallery, matcher = open_matcher(ctx, self.embedder, db)
        if gallery is None or matcher is None:
            raise GalleryError(f"no gallery at {default_gallery_path(db or ctx.config.face.gallery)}; enrol "
                               f"people first (python main.py gallery enroll NAME IMG... --db PATH)")
        self.gallery, self.matcher = gallery, matcher
        if ctx.config.face.threshold_rule == "fixed":
            self.matcher.rule = None  # --threshold: exactly that threshold
        self.detector = build_detector(ctx)
        self.gates = QualityGates.from_config(ctx.config.face)

    def faces(self, image: np.ndarray) -> list[dict]:
        """One dict per detected face (see the module docstring) for an (H, W, 3) uint8 BGR image."""
        from vision_app.face.align import align_face

        faces = self.detector.detect(image)
        out = []
        for box, lm in zip(faces.xyxy, faces.landmarks):
            aligned = align_face(image, lm)
            reason = self.gates.check(box, lm, aligned)
            crop = aligned if self.embedder.spec.arcface112 else self.embedder.align(image, lm)
            m = self.matcher.identify(self.embedder.embed([crop]))[0]
            sim = None if m.best is None or math.isnan(m.similarity) else round(float(m.similarity), 4)
            ok = m.accepted and reason is None
            out.append({"xyxy": _xyxy(box), "identity": m.identity if ok else None, "similarity": sim,
                        "accepted": bool(ok), "best": m.best, "quality": reason})
        return out

    def close(self) -> None:
        self.gallery.close()


def _run_batch(images: tuple[list[Path], bool], analyse: Callable[[np.ndarray], list[dict]], as_json: bool,
               table: Callable[[Path, list[dict]], None]) -> int:
    """Every image through `analyse`; per-image error lines; exit code 1 when any image failed."""
    from vision_app.cli.detect_cmd import read_image

    failed = 0
    paths, single = images
    for path in paths:
        try:
            faces = analyse(read_image(str(path)))
        except VisionAppError as exc:
            if single:
                raise
            failed += 1
            if as_json:
                print(json.dumps({"image": str(path), "error": str(exc)}), flush=True)
            else:
                print(f"{path}: ERROR {exc}", flush=True)
            continue
        if as_json:
            print(json.dumps({"faces": faces} if single else {"image": str(path), "faces": faces}), flush=True)
        else:
            table(path, faces)
    if failed:
        print(f"{failed} of {len(paths)} images could not be analysed", file=sys.stderr)
    return 1 if failed else 0


def _identify_table(path: Path, faces: list[dict]) -> None:
    print(f"{path}: {len(faces)} face(s)")
    for f in faces:
        who = f["identity"] or "unknown"
        sim = "-" if f["similarity"] is None else f"{f['similarity']:.3f}"
        extra = f" (best {f['best']})" if f["identity"] is None and f["best"] else ""
        extra += f" [{f['quality']}]" if f["quality"] else ""
        print(f"  {who:<16} similarity {sim:>6}  box {f['xyxy']}{extra}")


def cmd_identify(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"face.match_threshold": args.threshold}
    if args.threshold is not None:
        overrides["face.threshold_rule"] = "fixed"
    paths = expand_images(args.images)
    ctx = StageContext(app_config(args, **overrides), model_store(args))
    ident = BatchIdentifier(ctx, args.db)
    try:
        return _run_batch(paths, ident.faces, args.json, _identify_table)
    finally:
        ident.close()


def _liveness(ctx: StageContext) -> Callable[[np.ndarray], list[dict]]:
    from vision_app.face.stage import build_detector, build_passive

    detector, passive = build_detector(ctx), build_passive(ctx)

    def run(image: np.ndarray) -> list[dict]:
        faces = detector.detect(image)
        return [{"xyxy": _xyxy(box), "live": r.live, "score": round(r.score, 4)}
                for box, r in zip(faces.xyxy, passive.check(image, faces.xyxy))]
    return run


def _liveness_table(path: Path, faces: list[dict]) -> None:
    print(f"{path}: {len(faces)} face(s)")
    for f in faces:
        print(f"  {'LIVE' if f['live'] else 'SPOOF':<5}  real-score {f['score']:.3f}  box {f['xyxy']}")


def cmd_liveness(args: argparse.Namespace) -> int:
    paths = expand_images(args.images)
    return _run_batch(paths, _liveness(StageContext(app_config(args), model_store(args))), args.json,
                      _liveness_table)
