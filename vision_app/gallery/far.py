"""False-accept arithmetic: genuine / impostor pair scores, TAR at a FAR, and per-comparison FAR curves.

FAR(t) = share of impostor pairs scoring >= t (a stranger let in by one comparison); TAR(t) = share of
genuine pairs scoring >= t. A FAR is only stated where the impostor pairs can show it: at least
MIN_ERRORS pairs must reach the threshold (n * FAR >= MIN_ERRORS), otherwise the figure is one or two
lucky pairs. FarCurve is a recognizer's FAR as a function of the threshold, measured by `face-eval` and
kept in the model's manifest entry (`calibration`); the kiosk's gallery-size rule reads it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError, ModelError
from vision_app.gallery.matcher import TemplateIndex

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
RULE_OF_THREE = 3.0
MIN_ERRORS = 10          # impostor pairs at/above a threshold needed before its FAR is stated
TAR_FARS = (1e-3, 1e-4, 1e-5)
CURVE_FARS = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7)


def pair_scores(labels: Sequence[str], embeddings: NDArray[np.float32],
                model: tuple[str, str]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(genuine, impostor) cosine scores over all unordered pairs, via the matcher's TemplateIndex, in
    blocks of rows so 4,000+ photos (8 M pairs) need no 4,000 x 4,000 temporary per label test."""
    n = len(labels)
    index = TemplateIndex(embeddings, np.arange(n), [str(i) for i in range(n)], model)
    lab = np.asarray(labels)
    gen, imp = [], []
    step = 512
    for r0 in range(0, n, step):
        rows = index.person_scores(embeddings[r0:r0 + step])       # (b, n): image j is "person" j
        for k in range(rows.shape[0]):
            i = r0 + k
            s = rows[k, i + 1:]
            same = lab[i + 1:] == lab[i]
            gen.append(s[same])
            imp.append(s[~same])
    cat = (lambda parts: np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32))
    return cat(gen), cat(imp)


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


def _top(impostor: NDArray[np.float32], k: int) -> NDArray[np.float32]:
    """The k+1 highest impostor scores, highest first (np.partition: no full sort of 8 M pairs)."""
    k = min(k, len(impostor) - 1)
    part = np.partition(impostor, len(impostor) - 1 - k)[len(impostor) - 1 - k:]
    return np.sort(part)[::-1]


def threshold_for_far(impostor: NDArray[np.float32], target: float) -> tuple[float, bool]:
    """(threshold, demonstrable). The smallest score threshold whose FAR on these pairs is <= target;
    when the pairs are too few to show that FAR (n * target < 3), just above the highest impostor."""
    n = len(impostor)
    if n == 0:
        raise GalleryError("no impostor pairs: calibration needs photos of at least 2 people")
    demonstrable = n * target >= RULE_OF_THREE
    allowed = int(math.floor(n * target)) if demonstrable else 0
    top = _top(impostor, allowed)
    # accept-if-score>=t: t just above the (allowed+1)-th highest impostor lets `allowed` through
    return float(np.nextafter(top[allowed], np.float32(2.0))), demonstrable


def recommend(threshold: float) -> float:
    """The config value: the threshold rounded UP to 0.01 (rounding down would raise the FAR)."""
    return math.ceil(threshold * 100 - 1e-9) / 100


@dataclass(frozen=True)
class TarAtFar:
    """One verification row: at `far`, the threshold, the TAR there and the impostor pairs behind it
    (stated is False when fewer than MIN_ERRORS impostor pairs reach the threshold)."""

    far: float
    threshold: float
    tar: float
    impostor_pairs: int
    accepted_impostors: int
    stated: bool


def tar_table(genuine: NDArray[np.float32], impostor: NDArray[np.float32],
              fars: Sequence[float] = TAR_FARS) -> list[TarAtFar]:
    rows = []
    for far in fars:
        allowed = int(math.floor(len(impostor) * far))
        stated = allowed >= MIN_ERRORS
        t = float(np.nextafter(_top(impostor, allowed)[-1], np.float32(2.0))) if len(impostor) else math.nan
        tar = float((genuine >= t).mean()) if len(genuine) else math.nan
        rows.append(TarAtFar(far, t, tar, len(impostor), int((impostor >= t).sum()), stated))
    return rows


@dataclass(frozen=True)
class FarCurve:
    """A recognizer's per-comparison false-accept rate as a function of the cosine threshold: far (K,)
    decreasing, threshold (K,) increasing; source: where it was measured; pairs: impostor pairs behind it.
    Between points log10(FAR) is interpolated linearly in the threshold; past the last point the last
    segment is extrapolated (extrapolated() says so)."""

    far: tuple[float, ...]
    threshold: tuple[float, ...]
    source: str = ""
    pairs: int = 0

    def __post_init__(self) -> None:
        f, t = np.asarray(self.far, float), np.asarray(self.threshold, float)
        if len(f) < 2 or f.shape != t.shape or (f <= 0).any() or (np.diff(f) >= 0).any() or (np.diff(t) < 0).any():
            raise ModelError(f"a FAR curve needs >= 2 points with far decreasing (> 0) and threshold not "
                             f"decreasing, got far={list(self.far)} threshold={list(self.threshold)}")

    @classmethod
    def from_entry(cls, entry: Any) -> "FarCurve | None":
        """From a manifest entry's `calibration` table ({far, threshold, source, pairs}); None without one."""
        cal: Mapping[str, Any] = getattr(entry, "calibration", {}) or {}
        if not cal:
            return None
        try:
            return cls(tuple(float(x) for x in cal["far"]), tuple(float(x) for x in cal["threshold"]),
                       str(cal.get("source", "")), int(cal.get("pairs", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"manifest model '{entry.name}': calibration must have far = [...] and "
                             f"threshold = [...] lists of numbers ({exc})") from exc

    @classmethod
    def measure(cls, impostor: NDArray[np.float32], source: str = "",
                fars: Sequence[float] = CURVE_FARS) -> "FarCurve":
        """The curve at the FARs these impostor pairs can show (>= MIN_ERRORS pairs at each)."""
        usable = [f for f in fars if len(impostor) * f >= MIN_ERRORS]
        if len(usable) < 2:
            raise GalleryError(f"{len(impostor)} impostor pairs cannot show a FAR curve (needs >= "
                               f"{math.ceil(MIN_ERRORS / fars[1])} pairs); use more people")
        ts = [threshold_for_far(impostor, f)[0] for f in usable]
        return cls(tuple(usable), tuple(float(t) for t in np.maximum.accumulate(ts)), source, len(impostor))

    def _logs(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return np.log10(np.asarray(self.far, float)), np.asarray(self.threshold, float)

    def threshold_for(self, far: float) -> float:
        """The threshold whose per-comparison FAR is `far` (0 < far < 1)."""
        lf, t = self._logs()
        x = math.log10(max(far, 1e-300))
        if x >= lf[0]:
            return float(t[0]) if x <= lf[0] else float(t[0] + (t[1] - t[0]) * (x - lf[0]) / (lf[1] - lf[0]))
        if x <= lf[-1]:
            return float(t[-1] + (t[-1] - t[-2]) * (x - lf[-1]) / (lf[-1] - lf[-2]))
        return float(np.interp(-x, -lf, t))

    def far_at(self, threshold: float) -> float:
        """The per-comparison FAR at `threshold` (interpolated; extrapolated past the ends)."""
        lf, t = self._logs()
        if threshold > t[-1] and t[-1] > t[-2]:
            return float(10 ** (lf[-1] + (lf[-1] - lf[-2]) * (threshold - t[-1]) / (t[-1] - t[-2])))
        if threshold < t[0] and t[1] > t[0]:
            return float(min(1.0, 10 ** (lf[0] + (lf[1] - lf[0]) * (threshold - t[0]) / (t[1] - t[0]))))
        return float(10 ** np.interp(threshold, t, lf))

    def extrapolated(self, far: float) -> bool:
        return far < self.far[-1]

    def to_manifest(self) -> str:
        """The manifest line for this curve (paste into the model's entry)."""
        far = ", ".join(f"{f:g}" for f in self.far)
        thr = ", ".join(f"{t:.4f}" for t in self.threshold)
        return (f'calibration = {{ source = "{self.source}", pairs = {self.pairs}, far = [{far}], '
                f"threshold = [{thr}] }}")
