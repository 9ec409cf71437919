"""The kiosk's question on a labelled set: open-set identification against a gallery of one photo each.

Protocol (the same on any folder, so figures compare): people sorted by name; every other person (the
1st, 3rd, ...) is enrolled with their first usable photo; their other photos are the genuine probes;
every photo of the people not enrolled is a stranger. Each probe is matched 1:N through the matcher's
TemplateIndex (best template per person, best person); at a threshold t it is accepted as the right
person, accepted as someone else (a wrong-person accept) or refused; a stranger is accepted or refused.
False accepts = wrong-person accepts + strangers accepted, as a share of all attempts.

Held-out figures (split_folds): the people are split into two halves (pairs of neighbours alternate:
1, 2 → A; 3, 4 → B; ...), the threshold for one half comes from the other half's impostor pairs, and
the two halves' figures are pooled: no probe is judged by a threshold tuned on its own people.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.gallery.matcher import TemplateIndex


@dataclass(frozen=True)
class OpenSetResult:
    """Counts at one threshold. enrolled: people in the gallery; genuine / strangers: probes of enrolled
    people / of the others; right, wrong: genuine probes accepted as the right / another person;
    strangers_accepted: strangers accepted as someone."""

    threshold: float
    enrolled: int
    genuine: int
    strangers: int
    right: int
    wrong: int
    strangers_accepted: int
    label: str = ""

    @property
    def attempts(self) -> int:
        return self.genuine + self.strangers

    @property
    def false_accepts(self) -> int:
        return self.wrong + self.strangers_accepted

    @property
    def right_rate(self) -> float:
        return self.right / self.genuine if self.genuine else float("nan")

    @property
    def false_accept_rate(self) -> float:
        return self.false_accepts / self.attempts if self.attempts else float("nan")

    @property
    def stranger_rate(self) -> float:
        return self.strangers_accepted / self.strangers if self.strangers else float("nan")

    def __add__(self, other: "OpenSetResult") -> "OpenSetResult":
        """Pooled counts of two disjoint runs (e.g. the two held-out halves); threshold = nan."""
        return OpenSetResult(float("nan"), self.enrolled + other.enrolled, self.genuine + other.genuine,
                             self.strangers + other.strangers, self.right + other.right,
                             self.wrong + other.wrong, self.strangers_accepted + other.strangers_accepted,
                             self.label)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "attempts": self.attempts, "false_accepts": self.false_accepts,
                "right_rate": self.right_rate, "false_accept_rate": self.false_accept_rate,
                "stranger_rate": self.stranger_rate}


@dataclass(frozen=True)
class OpenSetScores:
    """Best person and score per probe. known: probe's person is enrolled; correct: best is that person."""

    enrolled: int
    best: NDArray[np.float32]
    known: NDArray[np.bool_]
    correct: NDArray[np.bool_]

    def best_at(self, false_accept_rate: float, label: str = "") -> OpenSetResult:
        """The threshold with the most right accepts whose false accepts stay within the rate (of all
        attempts): for comparing recognizers at the same false-accept rate (chosen on these photos)."""
        order = np.argsort(-self.best, kind="stable")
        s = self.best[order]
        fa = np.cumsum((~(self.known & self.correct))[order])   # accepting the k+1 best: false accepts
        ends = np.append(np.nonzero(s[1:] != s[:-1])[0], len(s) - 1)  # a threshold takes whole ties
        ok = ends[fa[ends] <= false_accept_rate * len(s)]
        if len(ok) == 0:
            return self.at(float(np.nextafter(s[0], np.float32(2.0))), label)
        return self.at(float(s[ok[-1]]), label)

    def at(self, threshold: float, label: str = "") -> OpenSetResult:
        acc = self.best >= threshold
        return OpenSetResult(float(threshold), self.enrolled, int(self.known.sum()), int((~self.known).sum()),
                             int((acc & self.known & self.correct).sum()),
                             int((acc & self.known & ~self.correct).sum()), int((acc & ~self.known).sum()), label)


def enrolled_people(people: Sequence[str]) -> list[str]:
    """Every other person of the sorted names: the 1st, 3rd, ..."""
    return sorted(people)[::2]


def open_set_scores(labels: Sequence[str], embeddings: NDArray[np.float32], model: tuple[str, str],
                    people: Sequence[str] | None = None) -> OpenSetScores:
    """Run the protocol on (M,) labels and (M, D) embeddings (photos in each person's order, first =
    enrolment photo), restricted to `people` (default: everyone). Needs two people at least."""
    lab = np.asarray(labels)
    pool = sorted(set(lab.tolist()) if people is None else set(people))
    if len(pool) < 2:
        raise GalleryError(f"open-set identification needs photos of at least 2 people, got {len(pool)}")
    enrolled = enrolled_people(pool)
    first = {p: int(np.nonzero(lab == p)[0][0]) for p in enrolled if (lab == p).any()}
    gallery_rows = list(first.values())
    in_pool = np.isin(lab, pool)
    probe = in_pool.copy()
    probe[gallery_rows] = False
    names = list(first)
    index = TemplateIndex(embeddings[gallery_rows], np.arange(len(names)), names, model)
    scores = index.person_scores(embeddings[probe])
    j = scores.argmax(axis=1)
    plab = lab[probe]
    return OpenSetScores(len(names), scores.max(axis=1).astype(np.float32), np.isin(plab, names),
                         np.asarray(index.names)[j] == plab)


def split_folds(people: Sequence[str]) -> tuple[list[str], list[str]]:
    """Two halves of the sorted people, neighbours' pairs alternating (1, 2 → A; 3, 4 → B; ...), so
    each half keeps the enrolled / stranger alternation of the protocol."""
    srt = sorted(people)
    return [p for i, p in enumerate(srt) if (i // 2) % 2 == 0], [p for i, p in enumerate(srt) if (i // 2) % 2 == 1]
