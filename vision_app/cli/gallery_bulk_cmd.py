"""Gallery actions for many people at once:

    python main.py gallery enroll-folder FOLDER [--db PATH] [--max-photos K]   one sub-folder per person
    python main.py gallery migrate --model NAME [--db PATH]                    re-embed with another model

enroll-folder prints one line per person (templates stored, photos skipped and why) and a summary; it
exits 1 when some person could not be enrolled, 0 otherwise. migrate is all or nothing, with a progress
bar; a gallery whose templates have no stored face crop names the people to enrol again.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register_actions(gsub: argparse._SubParsersAction) -> None:
    """Add enroll-folder and migrate to the `gallery` sub-commands (common options are added there)."""
    p = gsub.add_parser("enroll-folder", help="enrol everyone in a folder: one sub-folder of photos per "
                        "person, named after them; bad photos are skipped and listed")
    p.add_argument("folder")
    p.add_argument("--max-photos", type=int, default=0, metavar="K", help="at most K usable photos per "
                   "person (default 0: all)")
    p.add_argument("--no-thumbnails", action="store_true", help="do not store (encrypted) face thumbnails")
    p.set_defaults(func=cmd_enroll_folder)
    p = gsub.add_parser("migrate", help="re-embed every template with another recognizer, from the stored "
                        "face crops (one transaction)")
    p.add_argument("--model", required=True, help="the recognizer to move to (e.g. edgeface-xs); set "
                   "face.embedder to the same afterwards")
    p.set_defaults(func=cmd_migrate)


def cmd_enroll_folder(args: argparse.Namespace) -> int:
    from vision_app.cli.gallery_cmd import _analyzer, open_gallery
    from vision_app.gallery.bulk import PersonOutcome, enroll_folder

    analyzer = _analyzer(args)

    def report(done: int, total: int, o: PersonOutcome) -> None:
        head = f"[{done}/{total}] {o.name}: "
        print(head + (f"{o.templates} template(s)" if o.templates else f"NOT enrolled: {o.error}"), flush=True)
        for photo, why in o.skipped:
            print(f"    skipped {photo}: {why}", flush=True)

    with open_gallery(args, create=True) as gallery:
        outcomes = enroll_folder(gallery, Path(args.folder), analyzer, args.max_photos,
                                 not args.no_thumbnails, on_person=report)
        path = gallery.path
    done = [o for o in outcomes if o.templates]
    failed = [o for o in outcomes if not o.templates]
    print(f"enrolled {len(done)} of {len(outcomes)} people ({sum(o.templates for o in done)} templates, "
          f"{sum(len(o.skipped) for o in outcomes)} photos skipped) in {path}")
    if failed:
        print(f"not enrolled ({len(failed)}): " + "; ".join(f"{o.name} ({o.error})" for o in failed))
    return 1 if failed else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from vision_app.cli.common import Progress, app_config, model_store
    from vision_app.cli.gallery_cmd import open_gallery
    from vision_app.face.stage import build_embedder
    from vision_app.gallery.migrate import migrate_gallery
    from vision_app.stages import StageContext

    cfg = app_config(args)
    embedder = build_embedder(StageContext(cfg, model_store(args)), args.model)
    with open_gallery(args) as gallery:
        bar = Progress(len(gallery.template_rows()), "templates")
        result = migrate_gallery(gallery, embedder, lambda n, _total: bar.update(n))
        bar.done()
        path = gallery.path
    if not result.templates:
        print(f"{path}: every template is already of {args.model}; nothing to do")
        return 0
    print(f"migrated {result.templates} templates of {result.people} people in {path} from "
          + ", ".join(f"{m} {v}" for m, v in result.old_models) + f" to {result.new_model[0]} {result.new_model[1]}")
    if cfg.face.embedder != result.new_model[0]:
        print(f"note: face.embedder is {cfg.face.embedder}; set it to {result.new_model[0]} in your config "
              f"(--config) so the kiosk uses the migrated templates", file=sys.stderr)
    return 0
