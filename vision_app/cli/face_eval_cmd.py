"""Evaluation commands for the door kiosk, on labelled folders and clips (research data stays outside):

    python main.py face-eval FOLDER [--model M] [--split] [--json [FILE]]   recognizer figures, threshold
    python main.py face-eval-liveness [--media DIR] [--json [FILE]]         ISO/IEC 30107-3 liveness figures
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vision_app.cli.common import Progress, app_config, model_store


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    p = sub.add_parser("face-eval", help="recognizer figures and the match threshold on a labelled folder "
                       "(one sub-folder of photos per person): verification TAR at FAR, open-set identification")
    add_common(p)
    p.add_argument("folder")
    p.add_argument("--model", help="recognizer to evaluate (default: config face.embedder)")
    p.add_argument("--target-far", type=float, default=None, help="open-set false accepts per attempt the "
                   "recommended threshold is chosen for (default: config face.open_set_far, 0.003 = 0.3 %%)")
    p.add_argument("--split", action="store_true", help="also report held-out figures: each half of the "
                   "people judged at the threshold tuned on the other half")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", help="the figures as JSON (to stdout, or "
                   "to FILE besides the report)")
    p.set_defaults(func=cmd_face_eval)

    p = sub.add_parser("face-eval-liveness", help="liveness figures (ISO/IEC 30107-3 APCER/BPCER) on the spoof "
                       "stills and clips, and the kiosk's grant rate and time to grant on live clips")
    add_common(p)
    p.add_argument("--media", metavar="DIR", help="the media folder with spoof/ and video/live/ (default: "
                   "<model folder>/../media, i.e. ../shared/media in development)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", help="the figures as JSON (to stdout, or "
                   "to FILE besides the report)")
    p.set_defaults(func=cmd_face_eval_liveness)


def _emit(doc: dict, target: str | None, report: str) -> None:
    text = json.dumps(doc, indent=2) + "\n"
    if target == "-":
        print(text, end="")
        return
    print(report)
    if target:
        Path(target).write_text(text, encoding="utf-8")


def cmd_face_eval(args: argparse.Namespace) -> int:
    from vision_app.gallery.calibrate import calibrate, embed_folder, format_report, labelled_images
    from vision_app.gallery.enroll import FaceAnalyzer
    from vision_app.gallery.threshold import ThresholdRule
    from vision_app.stages import StageContext

    cfg = app_config(args)
    items = labelled_images(Path(args.folder))
    ctx = StageContext(cfg, model_store(args))
    analyzer = FaceAnalyzer.from_context(ctx, args.model)
    print(f"embedding {len(items)} photos from {args.folder} with {analyzer.model[0]} …", file=sys.stderr)
    bar = Progress(len(items), "photos")
    data = embed_folder(analyzer, items, on_progress=lambda n, _total: bar.update(n))
    bar.done()
    rule = ThresholdRule.from_config(cfg.face, ctx.models.entry(analyzer.model[0]) if ctx.models else None)
    cal = calibrate(data, args.target_far or cfg.face.open_set_far, cfg.face.match_threshold, rule, args.split,
                    source=f"{Path(args.folder).name}, {len(set(data.labels))} people, {len(data.labels)} photos")
    _emit(cal.to_dict(), args.json, format_report(cal))
    return 0


def cmd_face_eval_liveness(args: argparse.Namespace) -> int:
    import tempfile

    from vision_app.access.evaluate import clip_sets, evaluate_clips, passive_stills, still_sets
    from vision_app.access.liveness_report import format_report, to_json
    from vision_app.errors import ConfigError
    from vision_app.face.quality import QualityGates
    from vision_app.gallery.enroll import FaceAnalyzer
    from vision_app.gallery.gallery import Gallery
    from vision_app.gallery.identify import build_face_stage
    from vision_app.stages import StageContext

    store = model_store(args)
    media = Path(args.media) if args.media else store.root.parent / "media"
    if not (media / "spoof").is_dir() or not (media / "video" / "live").is_dir():
        raise ConfigError(f"{media} has no spoof/ and video/live/ folders; pass the media folder with --media")
    stills, clips = still_sets(media), clip_sets(media)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = app_config(args, **{"face.gallery": str(Path(tmp) / "eval.db")})
        ctx = StageContext(cfg, store)
        with Gallery(cfg.face.gallery) as gallery:
            stage = build_face_stage(ctx)
            try:
                analyzer = FaceAnalyzer(stage.detector, stage.embedder, QualityGates.from_config(cfg.face))
                print(f"passive check on {len(stills)} stills …", file=sys.stderr)
                still_results = passive_stills(stage.detector, stage.passive, stills)
                bar = Progress(len(clips), "clips", rate=False)
                done = [0]

                def step(msg: str) -> None:
                    bar.update(done[0])
                    done[0] += 1
                clip_results = evaluate_clips(stage, analyzer, gallery, cfg, clips, step)
                bar.update(len(clips))
                bar.done()
            finally:
                stage.close()
    _emit(to_json(still_results, clip_results, cfg), args.json, format_report(still_results, clip_results, cfg, media))
    return 0
