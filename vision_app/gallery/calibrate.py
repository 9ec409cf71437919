"""Threshold calibration on a labelled folder (one sub-folder per identity).

Every image gives one embedding (largest face, quality gates on). Genuine scores are the cosines of all
same-identity pairs, impostor scores those of all different-identity pairs, both computed by the
matcher's own TemplateIndex. FAR(t) = share of impostor pairs scoring >= t (a stranger let in),
FRR(t) = share of genuine pairs scoring < t (an enrolled person refused).

The threshold for a target FAR is the smallest t with FAR(t) <= target. A folder with n impostor pairs
cannot show a FAR below about 3/n (the "rule of three": zero false accepts in n tries bounds the true
rate by 3/n at 95 % confidence), so when n * target < 3 the threshold is put just above the highest
impostor score instead (observed FAR 0) and the report says the target is not demonstrable.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.gallery.enroll import FaceAnalyzer, read_image
from vision_app.gallery.gallery import Gallery
from vision_app.gallery.matcher import Matcher, TemplateIndex

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
RULE_OF_THREE = 3.0


def labelled_images(folder: Path) -> list[tuple[str, Path]]:
    """(identity, image path) for every image in each sub-folder of `folder`, sorted."""
    if not folder.is_dir():
        raise GalleryError(f"{folder} is not a folder; expected one sub-folder of photos per identity")
    items = [(d.name, p) for d in sorted(folder.iterdir()) if d.is_dir()
             for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if len({lab for lab, _ in items}) < 2:
        raise GalleryError(f"{folder}: found {len(items)} images in fewer than 2 identity sub-folders; "
                           f"calibration needs at least 2 people with photos")
    return items


@dataclass
class Embedded:
    """labels (M,) identity per embedding; paths (M,); embeddings (M, D) float32; skipped (path, why)."""

    labels: list[str]
    paths: list[Path]
    embeddings: NDArray[np.float32]
    model: tuple[str, str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def embed_folder(analyzer: FaceAnalyzer, items: Sequence[tuple[str, Path]]) -> Embedded:
    labels, paths, embs, skipped = [], [], [], []
    for label, path in items:
        result = analyzer.sample(read_image(path), single=False)
        if isinstance(result, str):
            skipped.append((path, result))
            continue
        labels.append(label)
        paths.append(path)
        embs.append(result.embedding)
    dim = analyzer.embedder.dim or 128
    return Embedded(labels, paths, np.stack(embs) if embs else np.zeros((0, dim), np.float32),
                    analyzer.model, skipped)


def pair_scores(labels: Sequence[str], embeddings: NDArray[np.float32],
                model: tuple[str, str]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(genuine, impostor) cosine scores over all unordered pairs, via the matcher's TemplateIndex."""
    n = len(labels)
    # each image its own "person": column j of person_scores is image j
    scores = TemplateIndex(embeddings, np.arange(n), [str(i) for i in range(n)], model) \
        .person_scores(embeddings)
    lab = np.asarray(labels)
    iu = np.triu_indices(n, 1)
    same = (lab[:, None] == lab[None, :])[iu]
    s = scores[iu]
    return s[same], s[~same]


def stats(x: NDArray[np.float32]) -> dict[str, float]:
    if len(x) == 0:
        return {"count": 0}
    out = {"count": int(len(x)), "mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
           "max": float(x.max())}
    out.update({f"p{q}": float(np.percentile(x, q)) for q in PERCENTILES})
    return out


def far_frr(genuine: NDArray[np.float32], impostor: NDArray[np.float32],
            threshold: float) -> tuple[float, float]:
    """(FAR, FRR) at `threshold`: accepted means score >= threshold."""
    far = float((impostor >= threshold).mean()) if len(impostor) else math.nan
    frr = float((genuine < threshold).mean()) if len(genuine) else math.nan
    return far, frr


def threshold_for_far(impostor: NDArray[np.float32], target: float) -> tuple[float, bool]:
    """(threshold, demonstrable). The smallest score threshold whose FAR on these pairs is <= target;
    when the pairs are too few to show that FAR (n * target < 3), just above the highest impostor."""
    n = len(impostor)
    if n == 0:
        raise GalleryError("no impostor pairs: calibration needs photos of at least 2 people")
    demonstrable = n * target >= RULE_OF_THREE
    allowed = int(math.floor(n * target)) if demonstrable else 0
    top = np.sort(impostor)[::-1]
    # accept-if-score>=t: t just above the (allowed+1)-th highest impostor lets `allowed` through
    return float(np.nextafter(top[allowed], np.float32(2.0))), demonstrable


def recommend(threshold: float) -> float:
    """The config value: the threshold rounded UP to 0.01 (rounding down would raise the FAR)."""
    return math.ceil(threshold * 100 - 1e-9) / 100


def open_set_check(data: Embedded, threshold: float, unknown: int) -> dict[str, Any]:
    """The kiosk question through a real (temporary, encrypted) Gallery and Matcher: enrol the first
    photo of every identity but the last `unknown` ones, then identify all other photos."""
    ids = sorted(set(data.labels))
    known = ids[:max(1, len(ids) - unknown)]
    first: dict[str, int] = {}
    for i, lab in enumerate(data.labels):
        if lab in known and lab not in first:
            first[lab] = i
    probes = [i for i in range(len(data.labels)) if i not in first.values()]
    with tempfile.TemporaryDirectory() as tmp, Gallery(Path(tmp) / "eval.db") as gallery:
        for lab, i in first.items():
            gallery.enroll(lab, data.embeddings[i:i + 1], *data.model)
        matches = Matcher(gallery, data.model, threshold).identify(data.embeddings[probes])
    known_p = [(i, m) for i, m in zip(probes, matches) if data.labels[i] in known]
    unknown_p = [(i, m) for i, m in zip(probes, matches) if data.labels[i] not in known]
    return {
        "enrolled": len(first), "known_probes": len(known_p), "unknown_probes": len(unknown_p),
        "rank1_correct": sum(m.best == data.labels[i] for i, m in known_p),
        "accepted_correct": sum(m.identity == data.labels[i] for i, m in known_p),
        "accepted_wrong": sum(m.identity not in (None, data.labels[i]) for i, m in known_p),
        "unknown_rejected": sum(m.identity is None for _, m in unknown_p),
    }


@dataclass
class Calibration:
    genuine: NDArray[np.float32]
    impostor: NDArray[np.float32]
    target_far: float
    threshold: float          # exact threshold for the target (see threshold_for_far)
    demonstrable: bool
    recommended: float        # rounded up to 0.01: the value for face.match_threshold
    table: list[tuple[float, float, float]]  # (threshold, FAR, FRR)
    open_set: dict[str, Any]
    data: Embedded

    def to_dict(self) -> dict[str, Any]:
        return {"genuine": stats(self.genuine), "impostor": stats(self.impostor),
                "target_far": self.target_far, "threshold": self.threshold,
                "demonstrable": self.demonstrable, "recommended_threshold": self.recommended,
                "far_frr": [{"threshold": t, "far": a, "frr": r} for t, a, r in self.table],
                "open_set": self.open_set, "model": list(self.data.model),
                "images": len(self.data.labels), "identities": len(set(self.data.labels)),
                "skipped": [{"path": str(p), "reason": r} for p, r in self.data.skipped]}


def calibrate(data: Embedded, target_far: float = 0.001, unknown: int = -1,
              thresholds: Sequence[float] = ()) -> Calibration:
    """Score distributions, FAR/FRR table and the threshold for `target_far` (0 < target < 1).
    unknown: identities kept out of the open-set check (-1 = one in six, at least one)."""
    if not 0.0 < target_far < 1.0:
        raise GalleryError(f"target FAR must be between 0 and 1 (e.g. 0.001 for 0.1 %), got {target_far}")
    genuine, impostor = pair_scores(data.labels, data.embeddings, data.model)
    if len(genuine) == 0:
        raise GalleryError("no genuine pairs: calibration needs at least 2 usable photos of someone")
    thr, demonstrable = threshold_for_far(impostor, target_far)
    rec = recommend(thr)
    grid = sorted({round(x, 2) for x in (thresholds or np.arange(0.2, 0.71, 0.05))} | {rec})
    table = [(t, *far_frr(genuine, impostor, t)) for t in grid]
    n_ids = len(set(data.labels))
    unk = max(1, n_ids // 6) if unknown < 0 else unknown
    open_set = open_set_check(data, rec, min(unk, n_ids - 1))
    return Calibration(genuine, impostor, target_far, thr, demonstrable, rec, table, open_set, data)


def histogram(genuine: NDArray[np.float32], impostor: NDArray[np.float32], bins: int = 24,
              width: int = 30) -> list[str]:
    """Text histogram of both distributions on shared bins (each bar scaled to its own maximum)."""
    lo = math.floor(min(genuine.min(), impostor.min()) * 20) / 20
    hi = math.ceil(max(genuine.max(), impostor.max()) * 20) / 20
    edges = np.linspace(lo, hi, bins + 1)
    g, _ = np.histogram(genuine, edges)
    i, _ = np.histogram(impostor, edges)
    lines = [f"{'score':>13}  {'impostor':<{width}} {'genuine':<{width}}"]
    for k in range(bins):
        bi = "#" * int(round(width * i[k] / max(i.max(), 1)))
        bg = "#" * int(round(width * g[k] / max(g.max(), 1)))
        lines.append(f"{edges[k]:+.2f}..{edges[k + 1]:+.2f}  {bi:<{width}} {bg:<{width}} "
                     f"{i[k]:>5} {g[k]:>4}")
    return lines


def format_report(cal: Calibration) -> str:
    d = cal.data
    out = [f"model {d.model[0]} {d.model[1]}: {len(d.labels)} images of {len(set(d.labels))} identities"
           + (f", {len(d.skipped)} skipped" if d.skipped else "")]
    out += [f"  skipped {p}: {why}" for p, why in d.skipped]
    head = ["count", "mean", "std", "min", "max"] + [f"p{q}" for q in PERCENTILES]
    out.append("")
    out.append(f"{'pairs':<9}" + "".join(f"{h:>8}" for h in head))
    for name, x in (("genuine", cal.genuine), ("impostor", cal.impostor)):
        st = stats(x)
        out.append(f"{name:<9}{st['count']:>8}" + "".join(f"{st[h]:>8.3f}" for h in head[1:]))
    out.append("")
    out += histogram(cal.genuine, cal.impostor)
    out.append("")
    out.append(f"{'threshold':>9}  {'FAR':>8}  {'FRR':>8}   (FAR: impostor pairs accepted, FRR: genuine "
               f"pairs refused)")
    for t, far, frr in cal.table:
        mark = "  <- recommended" if t == cal.recommended else ""
        out.append(f"{t:>9.2f}  {100 * far:>7.2f}%  {100 * frr:>7.2f}%{mark}")
    out.append("")
    n_imp = len(cal.impostor)
    if cal.demonstrable:
        out.append(f"threshold for FAR <= {100 * cal.target_far:g} %: {cal.threshold:.4f}")
    else:
        out.append(f"{n_imp} impostor pairs cannot show a FAR of {100 * cal.target_far:g} % (needs >= "
                   f"{math.ceil(RULE_OF_THREE / cal.target_far)} with none accepted); using the conservative "
                   f"threshold just above the highest impostor score: {cal.threshold:.4f} "
                   f"(observed FAR 0, 95 % upper bound {100 * RULE_OF_THREE / n_imp:.2f} %)")
    far, frr = far_frr(cal.genuine, cal.impostor, cal.recommended)
    out.append(f"recommended face.match_threshold = {cal.recommended:.2f} (FAR {100 * far:.2f} %, "
               f"FRR {100 * frr:.2f} % on this folder)")
    o = cal.open_set
    out.append(f"open-set check at {cal.recommended:.2f} (one photo enrolled for {o['enrolled']} identities): "
               f"rank-1 {o['rank1_correct']}/{o['known_probes']}, accepted as the right person "
               f"{o['accepted_correct']}/{o['known_probes']}, accepted as someone else {o['accepted_wrong']}, "
               f"never-enrolled photos rejected {o['unknown_rejected']}/{o['unknown_probes']}")
    return "\n".join(out)
