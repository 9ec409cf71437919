"""`gallery enroll-folder FOLDER`: enrol an office at once, one sub-folder of photos per person.

Each sub-folder is one person, named after it. Photos are tried in natural order (up to max_photos
usable ones); a photo that cannot be read or fails the enrolment checks (exactly one face, quality
gates) is skipped and listed with the reason; a person with no usable photo is reported and not
created. Each person is one transaction (enroll_images' all-or-nothing applies per person), so an
interruption leaves every finished person enrolled and nobody half-enrolled.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vision_app.errors import GalleryError
from vision_app.gallery.enroll import FaceAnalyzer, FaceSample, read_image, store_samples
from vision_app.gallery.evalset import IMAGE_SUFFIXES, person_photos
from vision_app.gallery.gallery import Gallery
from vision_app.gallery.records import check_name

log = logging.getLogger(__name__)


@dataclass
class PersonOutcome:
    """name; templates stored (0 = not created); skipped: (photo, why); error: why the person was not
    created (no usable photo, already enrolled, bad name, ...)."""

    name: str
    templates: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    error: str = ""


def person_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise GalleryError(f"{folder} is not a folder; expected one sub-folder of photos per person")
    people = sorted(d for d in folder.iterdir() if d.is_dir())
    if not people:
        loose = sum(1 for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        raise GalleryError(f"{folder} has no sub-folders: put each person's photos in a folder named after "
                           f"them ({loose} loose image(s) found)")
    return people


def enroll_person(gallery: Gallery, folder: Path, analyzer: FaceAnalyzer, max_photos: int = 0,
                  thumbnails: bool = True) -> PersonOutcome:
    """One person from one folder (see the module docstring)."""
    out = PersonOutcome(folder.name)
    try:
        name = check_name(folder.name)
    except GalleryError as exc:
        out.error = str(exc)
        return out
    if gallery.has(name):
        out.error = "already in the gallery (remove them first, or add photos with 'gallery enroll --add')"
        return out
    photos = person_photos(folder)
    samples: list[FaceSample] = []
    sources: list[str] = []
    for photo in photos:
        if max_photos and len(samples) >= max_photos:
            break
        try:
            result = analyzer.sample(read_image(photo))
        except GalleryError as exc:
            out.skipped.append((photo, str(exc)))
            continue
        if isinstance(result, str):
            out.skipped.append((photo, result))
        else:
            samples.append(result)
            sources.append(photo.name)
    if not samples:
        out.error = "no usable photo" if photos else "no photos in the folder"
        return out
    try:
        out.templates = store_samples(gallery, name, samples, sources, analyzer.model, thumbnails=thumbnails)
    except GalleryError as exc:
        out.error = str(exc)
    return out


def enroll_folder(gallery: Gallery, folder: Path, analyzer: FaceAnalyzer, max_photos: int = 0,
                  thumbnails: bool = True,
                  on_person: Callable[[int, int, PersonOutcome], None] | None = None) -> list[PersonOutcome]:
    """Every sub-folder of `folder` as one person; on_person(done, total, outcome) after each."""
    if max_photos < 0:
        raise GalleryError(f"--max-photos must be >= 0 (0 = every photo), got {max_photos}")
    people = person_folders(folder)
    outcomes = []
    for k, d in enumerate(people, 1):
        outcome = enroll_person(gallery, d, analyzer, max_photos, thumbnails)
        outcomes.append(outcome)
        if on_person is not None:
            on_person(k, len(people), outcome)
    log.info("enroll-folder %s: %d of %d people enrolled", folder, sum(o.templates > 0 for o in outcomes),
             len(outcomes))
    return outcomes
