"""`face-eval`: what a recognizer does on a labelled folder, and the threshold to ship.

1. Verification over all pairs (far.py): TAR at FAR 1e-3, 1e-4, 1e-5 with the threshold and the number of
   impostor pairs behind each (a FAR is stated only where >= far.MIN_ERRORS pairs reach it), and the
   per-comparison FAR curve for the model's manifest entry (`calibration`).
2. Open-set identification (openset.py: photo 1 of every other person enrolled, their other photos as
   genuine probes, everyone else's photos as strangers) at the configured threshold, at the kiosk's
   gallery-size rule with the shipped calibration, and at the recommended threshold: the one whose
   per-comparison FAR is target / (people enrolled), from this folder's own impostor pairs.
3. With split=True, held-out figures: each half of the people judged at the threshold the other half's
   impostor pairs give (openset.split_folds), pooled: figures on people the threshold was not tuned on.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.gallery.evalset import Embedded, embed_folder, labelled_images  # noqa: F401  (the API)
from vision_app.gallery.far import (MIN_ERRORS, FarCurve, TarAtFar, far_frr, pair_scores, recommend, stats,
                                    tar_table, threshold_for_far)
from vision_app.gallery.openset import OpenSetResult, enrolled_people, open_set_scores, split_folds
from vision_app.gallery.threshold import ThresholdRule

log = logging.getLogger(__name__)

MATCHED_RATES = (0.001, 0.002, 0.003)  # open-set false-accept rates recognizers are compared at

__all__ = ["Calibration", "calibrate", "format_report", "far_frr", "recommend", "threshold_for_far",
           "Embedded", "embed_folder", "labelled_images"]


def folder_threshold(impostor: NDArray[np.float32], per_comparison: float, source: str = "") -> tuple[float, str]:
    """(threshold, how) for a per-comparison FAR from these impostor pairs: read off their FAR curve, or,
    when the pairs are too few to show that FAR, just above the highest impostor (observed FAR 0)."""
    if len(impostor) * per_comparison >= MIN_ERRORS:
        return threshold_for_far(impostor, per_comparison)[0], f"FAR {per_comparison:.2g} on {source or 'these'} pairs"
    t, _ = threshold_for_far(impostor, per_comparison)
    return t, (f"{len(impostor)} impostor pairs cannot show a FAR of {per_comparison:.2g}: just above the "
               f"highest impostor score")


@dataclass
class Calibration:
    data: Embedded
    genuine: NDArray[np.float32]
    impostor: NDArray[np.float32]
    target: float                      # open-set false accepts per attempt the threshold is chosen for
    tar: list[TarAtFar]
    curve: FarCurve | None
    recommended: float                 # rounded up to 0.01: the value for face.match_threshold
    recommended_how: str
    open_set: list[OpenSetResult]
    held_out: OpenSetResult | None = None
    held_out_thresholds: list[float] = field(default_factory=list)
    matched: list[OpenSetResult] = field(default_factory=list)  # best threshold per false-accept rate

    def to_dict(self) -> dict[str, Any]:
        d = self.data
        return {"model": list(d.model), "photos": d.photos, "images": len(d.labels),
                "identities": len(set(d.labels)), "genuine": stats(self.genuine), "impostor": stats(self.impostor),
                "verification": [vars(r) for r in self.tar],
                "calibration": None if self.curve is None else {"far": list(self.curve.far),
                                                                 "threshold": list(self.curve.threshold),
                                                                 "pairs": self.curve.pairs},
                "open_set_target": self.target, "recommended_threshold": self.recommended,
                "recommended_how": self.recommended_how, "open_set": [r.to_dict() for r in self.open_set],
                "held_out": None if self.held_out is None else {**self.held_out.to_dict(),
                                                                 "thresholds": self.held_out_thresholds},
                "at_false_accept_rates": [r.to_dict() for r in self.matched],
                "skipped": [{"path": str(p), "reason": r} for p, r in d.skipped],
                "label_conflicts": [str(p) for p in d.conflicts], "duplicates": [str(p) for p in d.duplicates]}


def _held_out(data: Embedded, target: float) -> tuple[OpenSetResult, list[float]]:
    lab = np.asarray(data.labels)
    results, used = [], []
    a, b = split_folds(sorted(set(data.labels)))
    for test, tune in ((a, b), (b, a)):
        rows = np.isin(lab, tune)
        _, imp = pair_scores(list(lab[rows]), data.embeddings[rows], data.model)
        t, _ = folder_threshold(imp, target / max(len(enrolled_people(test)), 1))
        used.append(t)
        results.append(open_set_scores(data.labels, data.embeddings, data.model, test).at(t, "held-out"))
    return results[0] + results[1], used


def calibrate(data: Embedded, target: float = 0.003, configured: float | None = None,
              rule: ThresholdRule | None = None, split: bool = False, source: str = "") -> Calibration:
    """All figures for one embedded folder. target: open-set false accepts per attempt (0 < target < 1);
    configured: face.match_threshold; rule: the kiosk's gallery-size rule with the shipped calibration."""
    if not 0.0 < target < 1.0:
        raise GalleryError(f"target false-accept rate must be between 0 and 1 (e.g. 0.003 for 0.3 %), got {target}")
    genuine, impostor = pair_scores(data.labels, data.embeddings, data.model)
    if len(genuine) == 0 or len(impostor) == 0:
        raise GalleryError("calibration needs at least 2 usable photos of one person and photos of 2 people")
    try:
        curve: FarCurve | None = FarCurve.measure(impostor, source)
    except GalleryError as exc:
        log.info("no FAR curve: %s", exc)
        curve = None
    scores = open_set_scores(data.labels, data.embeddings, data.model)
    n = scores.enrolled
    t_rec, how = folder_threshold(impostor, target / n, source)
    rec = recommend(t_rec)
    rows = []
    if configured is not None:
        rows.append(scores.at(configured, "configured face.match_threshold"))
    if rule is not None and rule.curve is not None:
        op = rule.at(n, n)
        rows.append(scores.at(op.threshold, f"kiosk rule ({rule.model} calibration, {n} templates)"))
    rows.append(scores.at(rec, f"recommended ({100 * target:g} % / {n} enrolled per comparison)"))
    cal = Calibration(data, genuine, impostor, target, tar_table(genuine, impostor), curve, rec, how, rows,
                      matched=[scores.best_at(f, f"best at <= {100 * f:g} % false accepts (in-sample)")
                               for f in MATCHED_RATES])
    if split:
        if len(set(data.labels)) < 8:
            raise GalleryError("--split needs at least 8 people (two halves of enrolled people and strangers)")
        cal.held_out, cal.held_out_thresholds = _held_out(data, target)
    return cal


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
        lines.append(f"{edges[k]:+.2f}..{edges[k + 1]:+.2f}  {bi:<{width}} {bg:<{width}} {i[k]:>8} {g[k]:>6}")
    return lines


def _open_set_line(r: OpenSetResult) -> str:
    return (f"  {r.threshold:>6.3f}  {r.right:>5}/{r.genuine:<5} {100 * r.right_rate:5.1f} %  {r.wrong:>5}  "
            f"{r.strangers_accepted:>5}/{r.strangers:<5} {r.false_accepts:>4}/{r.attempts:<5} "
            f"{100 * r.false_accept_rate:6.3f} %  {r.label}")


def format_report(cal: Calibration) -> str:
    d = cal.data
    why = Counter(r.split(" (")[0].split(":")[0] for _, r in d.skipped)
    out = [f"model {d.model[0]} {d.model[1]}: {d.photos} photos, {len(d.labels)} used, of "
           f"{len(set(d.labels))} people"]
    if d.skipped:
        out.append(f"  {len(d.skipped)} without a usable face: " + ", ".join(f"{k} {v}" for k, v in why.most_common()))
    if d.conflicts:
        out.append(f"  {len(d.conflicts)} left out: the same photo under two or more people (labelling error): "
                   + ", ".join(str(p) for p in d.conflicts[:6]) + (" …" if len(d.conflicts) > 6 else ""))
    if d.duplicates:
        out.append(f"  {len(d.duplicates)} repeated copies of a person's photo left out")
    head = ["count", "mean", "std", "min", "max", "p1", "p50", "p99"]
    out += ["", f"{'pairs':<9}" + "".join(f"{h:>10}" for h in head)]
    for name, x in (("genuine", cal.genuine), ("impostor", cal.impostor)):
        st = stats(x)
        out.append(f"{name:<9}{st['count']:>10}" + "".join(f"{st[h]:>10.3f}" for h in head[1:]))
    out += [""] + histogram(cal.genuine, cal.impostor) + ["", "verification over all pairs:"]
    out.append(f"  {'FAR':>7}  {'threshold':>9}  {'TAR':>7}  impostor pairs (at/above the threshold)")
    for r in cal.tar:
        if r.stated:
            out.append(f"  {r.far:>7.0e}  {r.threshold:>9.4f}  {100 * r.tar:6.2f} %  {r.impostor_pairs:,} "
                       f"({r.accepted_impostors:,})")
        else:
            out.append(f"  {r.far:>7.0e}  {'-':>9}  {'-':>7}  {r.impostor_pairs:,}: too few to state this FAR "
                       f"(needs >= {math.ceil(MIN_ERRORS / r.far):,} pairs)")
    if cal.curve is not None:
        out += ["", "per-comparison FAR curve (the model's manifest `calibration`):", "  " + cal.curve.to_manifest()]
    first = cal.open_set[-1]
    out += ["", f"open-set identification: {first.enrolled} people enrolled (photo 1 of every other person), "
            f"{first.genuine} genuine probes (their other photos), {first.strangers} stranger photos "
            f"(everyone else)",
            f"  {'thresh':>6}  {'accepted right':>20}  {'wrong':>5}  {'strangers acc.':>11} {'false accepts':>19}"]
    out += [_open_set_line(r) for r in cal.open_set]
    out.append("the same false-accept rate, threshold chosen on these photos (to compare recognizers):")
    out += [_open_set_line(r) for r in cal.matched]
    if cal.held_out is not None:
        ts = ", ".join(f"{t:.3f}" for t in cal.held_out_thresholds)
        out += [f"held out (each half of the people at the threshold from the other half's impostor pairs: {ts}):",
                _open_set_line(cal.held_out)]
    out += ["", f"recommended face.match_threshold = {cal.recommended:.2f} for open-set false accepts <= "
            f"{100 * cal.target:g} % of attempts with {first.enrolled} people enrolled ({cal.recommended_how}; "
            f"larger galleries need more: face.threshold_rule = \"gallery_size\")"]
    return "\n".join(out)
