"""The match threshold for the gallery at hand, and the false-accept rate it gives.

A stranger at the kiosk is compared with every template; they get in when any comparison reaches the
threshold. With a per-comparison false-accept rate FAR(t) (the recognizer's FarCurve, measured by
`face-eval` and kept in its manifest entry), the chance per attempt is at most T x FAR(t) for T
templates (union bound; templates of one person are alike, so the real rate is lower: on
faces-eval/celeba the measured open-set rate was about a quarter of the bound). The rule (config
face.threshold_rule = "gallery_size"): threshold = max(face.match_threshold, t) where FAR(t) =
face.open_set_far / T, so the bound stays at the target however large the gallery grows; "fixed" keeps
face.match_threshold. Either way the log and the kiosk's admin panel say what rate the threshold gives.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision_app.gallery.far import FarCurve

RULES = ("gallery_size", "fixed")


@dataclass(frozen=True)
class OperatingPoint:
    """threshold: the one in force; templates / people: the gallery's size; rule_threshold: what the
    gallery-size rule asks for (None without a curve or with rule "fixed"); per_comparison_far: FAR at
    the threshold (None without a curve); estimated_far: the per-attempt bound T x FAR; extrapolated:
    the curve had to be extended past its last measured point."""

    threshold: float
    configured: float
    rule: str
    target: float
    templates: int
    people: int
    model: str
    rule_threshold: float | None = None
    per_comparison_far: float | None = None
    estimated_far: float | None = None
    extrapolated: bool = False
    source: str = ""

    def describe(self) -> str:
        size = f"{self.people} people / {self.templates} templates"
        if self.per_comparison_far is None or self.estimated_far is None:
            return (f"match threshold {self.threshold:.3f} for {size}: model {self.model} has no FAR "
                    f"calibration, so the false-accept rate for this gallery size is unknown; run "
                    f"`python main.py face-eval` on a labelled folder and add its calibration line")
        how = (f"face.match_threshold {self.configured:.2f} (rule: fixed)" if self.rule == "fixed" else
               f"the larger of face.match_threshold {self.configured:.2f} and {self.rule_threshold:.3f}, "
               f"the threshold for a per-comparison FAR of {100 * self.target:g} % / {max(self.templates, 1)}")
        extra = " (extrapolated past the calibration's last point)" if self.extrapolated else ""
        return (f"match threshold {self.threshold:.3f} for {size} ({how}): a stranger is accepted in at "
                f"most {100 * self.estimated_far:.3g} % of attempts (templates x per-comparison FAR "
                f"{self.per_comparison_far:.2g}{extra}; {self.model} calibration: {self.source or 'manifest'})")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ThresholdRule:
    """configured: face.match_threshold (the floor; the threshold itself with rule "fixed"); rule: one of
    RULES; target: face.open_set_far, false accepts per attempt the rule holds the bound to; curve: the
    recognizer's FarCurve or None; model: its name (for messages)."""

    configured: float
    rule: str = "gallery_size"
    target: float = 0.003
    curve: FarCurve | None = None
    model: str = ""

    @classmethod
    def from_config(cls, face_cfg: Any, entry: Any | None) -> "ThresholdRule":
        """From the [face] config section and the recognizer's manifest entry (None: no curve)."""
        curve = FarCurve.from_entry(entry) if entry is not None else None
        return cls(float(face_cfg.match_threshold), str(face_cfg.threshold_rule), float(face_cfg.open_set_far),
                   curve, getattr(entry, "name", "") or str(face_cfg.embedder))

    def at(self, templates: int, people: int) -> OperatingPoint:
        """The threshold and its false-accept bound for a gallery of `templates` templates of `people`."""
        base = dict(configured=self.configured, rule=self.rule, target=self.target, templates=int(templates),
                    people=int(people), model=self.model, source=self.curve.source if self.curve else "")
        if self.curve is None:
            return OperatingPoint(self.configured, **base)  # type: ignore[arg-type]
        n = max(int(templates), 1)
        rule_t = self.curve.threshold_for(self.target / n) if self.rule == "gallery_size" else None
        threshold = max(self.configured, rule_t) if rule_t is not None else self.configured
        per = self.curve.far_at(threshold)
        return OperatingPoint(threshold, rule_threshold=rule_t, per_comparison_far=per,
                              estimated_far=min(1.0, n * per),
                              extrapolated=self.curve.extrapolated(min(per, self.target / n)),
                              **base)  # type: ignore[arg-type]


def gallery_operating_point(config: Any, store: Any, gallery_path: str | Path) -> OperatingPoint | str:
    """The operating point of the gallery file for the configured recognizer (what the kiosk's admin
    panel shows), or a sentence saying why there is none (no gallery yet, no model folder)."""
    from vision_app.gallery.gallery import Gallery

    path = Path(gallery_path)
    if not path.is_file():
        return f"no gallery at {path} yet: nobody can be recognised"
    face = config.face
    entry = store.entry(face.embedder) if store is not None else None
    with Gallery(path, face.gallery_key or None, busy_timeout_s=face.gallery_busy_timeout_s) as gallery:
        people = gallery.people()
    return ThresholdRule.from_config(face, entry).at(sum(p.templates for p in people), len(people))

