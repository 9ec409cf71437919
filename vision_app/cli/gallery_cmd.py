"""Face gallery and access-log commands:

    python main.py gallery enroll NAME IMG... [--db PATH]   (list, remove, rename, export, import)
    python main.py gallery enroll-folder FOLDER | migrate --model NAME   (gallery_bulk_cmd.py)
    python main.py verify-log [--db PATH]                   check the access log's hash chain
"""
from __future__ import annotations

import argparse
import getpass
import json
import os

from vision_app.cli.common import app_config, model_store
from vision_app.errors import ConfigError, GalleryError


def _db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH", help="gallery file (default: config face.gallery, "
                   "else <user data>/gallery.db)")
    p.add_argument("--key", metavar="PATH", help="gallery key file (default: config face.gallery_key, "
                   "else the gallery path + .key)")


def _pass_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--passphrase-env", metavar="VAR", help="take the export passphrase from this "
                   "environment variable")
    g.add_argument("--ask-passphrase", action="store_true", help="prompt for the export passphrase")


def register(sub: argparse._SubParsersAction) -> None:
    from vision_app.cli import add_common

    g = sub.add_parser("gallery", help="manage the face gallery (enrol, list, remove, rename, export, import)")
    gsub = g.add_subparsers(dest="gallery_command", metavar="ACTION", required=True)
    p = gsub.add_parser("enroll", help="enrol a person from photos (one face per photo, quality-checked)")
    p.add_argument("name")
    p.add_argument("images", nargs="+", metavar="IMG")
    p.add_argument("--add", action="store_true", help="add templates to a person already enrolled")
    p.add_argument("--no-thumbnails", action="store_true", help="do not store (encrypted) face thumbnails")
    p.set_defaults(func=cmd_enroll)
    p = gsub.add_parser("list", help="everyone enrolled: name, templates, created")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = gsub.add_parser("remove", help="delete a person and all their templates")
    p.add_argument("name")
    p.set_defaults(func=cmd_remove)
    p = gsub.add_parser("rename", help="rename a person")
    p.add_argument("old")
    p.add_argument("new")
    p.set_defaults(func=cmd_rename)
    p = gsub.add_parser("export", help="write everyone to one JSON file (templates stay encrypted)")
    p.add_argument("file")
    _pass_options(p)
    p.set_defaults(func=cmd_export)
    p = gsub.add_parser("import", help="add everyone from an export file (all or nothing)")
    p.add_argument("file")
    _pass_options(p)
    p.add_argument("--source-key", metavar="PATH", help="key file of the gallery the export came from")
    p.add_argument("--merge", action="store_true", help="add templates to people already enrolled")
    p.set_defaults(func=cmd_import)
    from vision_app.cli.gallery_bulk_cmd import register_actions

    register_actions(gsub)
    for action in gsub.choices.values():
        add_common(action)
        _db_options(action)

    p = sub.add_parser("verify-log", help="check the access log's hash chain (exit 1 when broken)")
    add_common(p)
    p.add_argument("--db", metavar="PATH", help="access log file (default: config access.log_db, else "
                   "<user data>/access_log.db)")
    p.set_defaults(func=cmd_verify_log)


def open_gallery(args: argparse.Namespace, create: bool = False):
    """The gallery of --db / config; only enrol and import create a missing one."""
    from vision_app.gallery.gallery import Gallery, default_gallery_path

    cfg = app_config(args)
    path = default_gallery_path(args.db or cfg.face.gallery)
    if not create and not path.is_file():
        raise GalleryError(f"no gallery at {path}: enrol someone first (python main.py gallery enroll NAME "
                           f"IMG...) or pass --db PATH")
    return Gallery(path, args.key or cfg.face.gallery_key or None, busy_timeout_s=cfg.face.gallery_busy_timeout_s)


def _analyzer(args: argparse.Namespace, model: str | None = None):
    from vision_app.gallery.enroll import FaceAnalyzer
    from vision_app.stages import StageContext

    return FaceAnalyzer.from_context(StageContext(app_config(args), model_store(args)), model)


def _passphrase(args: argparse.Namespace, confirm: bool) -> str | None:
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if not value:
            raise ConfigError(f"environment variable {args.passphrase_env} is not set or empty")
        return value
    if args.ask_passphrase:
        first = getpass.getpass("export passphrase: ")
        if confirm and getpass.getpass("again: ") != first:
            raise ConfigError("the two passphrases differ")
        return first
    return None


def cmd_enroll(args: argparse.Namespace) -> int:
    from vision_app.gallery.enroll import enroll_images

    analyzer = _analyzer(args)
    with open_gallery(args, create=True) as gallery:
        n = enroll_images(gallery, args.name, args.images, analyzer, add=args.add,
                          thumbnails=not args.no_thumbnails)
        print(f"enrolled {args.name.strip()}: {n} template(s) in {gallery.path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with open_gallery(args) as gallery:
        people = gallery.people()
        models = gallery.models()
        path = gallery.path
    if args.json:
        print(json.dumps({"gallery": str(path), "people": [p.__dict__ for p in people],
                          "models": [{"model": m, "version": v, "templates": c}
                                     for (m, v), c in models.items()]}))
        return 0
    if not people:
        print(f"{path}: nobody enrolled yet (python main.py gallery enroll NAME IMG...)")
        return 0
    width = max(len(p.name) for p in people)
    print(f"{'name':<{width}}  templates  created")
    for p in people:
        print(f"{p.name:<{width}}  {p.templates:>9}  {p.created}")
    print(f"{len(people)} people, {sum(p.templates for p in people)} templates ("
          + ", ".join(f"{m} {v}" for m, v in models) + f") in {path}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with open_gallery(args) as gallery:
        n = gallery.remove(args.name)
    print(f"removed {args.name.strip()} ({n} template(s))")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    with open_gallery(args) as gallery:
        gallery.rename(args.old, args.new)
    print(f"renamed {args.old.strip()} to {args.new.strip()}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from vision_app.gallery.gallery_io import export_gallery

    passphrase = _passphrase(args, confirm=True)
    with open_gallery(args) as gallery:
        n = export_gallery(gallery, args.file, passphrase)
    how = "a passphrase" if passphrase else "this gallery's key (import needs that key file)"
    print(f"exported {n} people to {args.file}, templates encrypted with {how}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from vision_app.gallery.gallery_io import import_gallery

    passphrase = _passphrase(args, confirm=False)
    with open_gallery(args, create=True) as gallery:
        people, templates = import_gallery(gallery, args.file, passphrase, args.source_key, args.merge)
    print(f"imported {people} people, {templates} template(s) from {args.file}")
    return 0


def cmd_verify_log(args: argparse.Namespace) -> int:
    from vision_app.access.accesslog import AccessLog, default_log_path

    path = default_log_path(args.db or app_config(args).access.log_db)
    if not path.is_file():
        raise GalleryError(f"access log {path} not found; pass --db PATH")
    with AccessLog(path) as access_log:
        report = access_log.verify_chain()
    if report.ok:
        print(f"{path}: {report.rows} rows, chain intact (head {report.head[:16]}…)")
        return 0
    print(f"{path}: CHAIN BROKEN at row seq {report.bad_seq}: {report.problem} "
          f"({report.rows} rows read)")
    return 1
