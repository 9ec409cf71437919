"""Calibration arithmetic on hand-made scores (FAR, TAR tables, FAR curves, the gallery-size rule, the
open-set protocol), and the shipped threshold agrees with the shipped calibration."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vision_app.gallery.calibrate import Embedded, calibrate, far_frr, format_report, recommend, threshold_for_far
from vision_app.gallery.far import MIN_ERRORS, FarCurve, tar_table
from vision_app.gallery.openset import open_set_scores, split_folds
from vision_app.gallery.threshold import ThresholdRule

MODEL = ("edgeface-xs", "512d-1")


@pytest.mark.parametrize("n, target, top, want_t, want_demo", [
    # too few pairs to show the target: just above the highest impostor
    (1000, 0.001, [0.5, 0.4, 0.3], 0.5, False),
    # 10,000 pairs at 0.1 %: 10 may pass, the threshold sits just above the 11th highest
    (10000, 0.001, [0.9 - 0.01 * k for k in range(12)], 0.8, True),
    (100, 0.05, [0.7, 0.6, 0.5, 0.45, 0.44, 0.43, 0.42], 0.43, True),
])
def test_threshold_for_far(n, target, top, want_t, want_demo):
    imp = np.concatenate([np.float32(top), np.full(n - len(top), -0.5, np.float32)])
    t, demo = threshold_for_far(imp, target)
    assert demo == want_demo
    assert t > np.float32(want_t) and t == pytest.approx(want_t, abs=1e-6)
    far, _ = far_frr(np.zeros(1, np.float32), imp, t)
    assert far <= target or not demo and far == 0


@pytest.mark.parametrize("t, want", [(0.3973, 0.40), (0.40, 0.40), (0.4001, 0.41), (-0.05, -0.05)])
def test_recommend_rounds_up(t, want):
    assert recommend(t) == pytest.approx(want)


def test_tar_table_states_a_far_only_with_enough_pairs():
    rng = np.random.default_rng(0)
    imp = rng.normal(0, 0.1, 200_000).astype(np.float32)
    gen = rng.normal(0.6, 0.15, 5000).astype(np.float32)
    rows = tar_table(gen, imp, (1e-3, 1e-4, 1e-5))
    assert [r.stated for r in rows] == [True, True, False]  # 2 pairs at 1e-5 < MIN_ERRORS
    for r in rows[:2]:
        assert r.accepted_impostors <= r.far * len(imp) and r.impostor_pairs == len(imp)
        assert r.tar == pytest.approx((gen >= r.threshold).mean())
    assert rows[0].threshold < rows[1].threshold and rows[0].tar > rows[1].tar


def test_far_curve_measure_interpolate_and_extrapolate():
    rng = np.random.default_rng(1)
    imp = rng.normal(0, 0.1, 1_000_000).astype(np.float32)
    curve = FarCurve.measure(imp, "synthetic")
    assert curve.far[-1] * len(imp) >= MIN_ERRORS and len(curve.far) == 7  # 1e-2 .. 1e-5 shown by 1 M pairs
    for far, t in zip(curve.far, curve.threshold):
        assert (imp >= t).mean() <= far and curve.threshold_for(far) == pytest.approx(t)
        assert curve.far_at(t) == pytest.approx(far, rel=1e-6)
    mid = curve.threshold_for(2e-4)  # between the 3e-4 and 1e-4 points
    assert curve.threshold[3] < mid < curve.threshold[4] and curve.far_at(mid) == pytest.approx(2e-4, rel=1e-6)
    assert curve.threshold_for(1e-7) > curve.threshold[-1] and curve.extrapolated(1e-7)
    with pytest.raises(Exception, match="far decreasing"):
        FarCurve((1e-3, 1e-2), (0.2, 0.3))


def test_gallery_size_rule():
    curve = FarCurve((1e-2, 1e-3, 1e-4, 1e-5), (0.20, 0.30, 0.40, 0.50), "synthetic", 10**6)
    rule = ThresholdRule(0.25, "gallery_size", 0.01, curve, "m")
    small, mid, big = rule.at(1, 1), rule.at(10, 5), rule.at(100, 100)
    assert small.threshold == 0.25 and small.estimated_far < 0.01  # the configured floor holds
    assert mid.threshold == pytest.approx(0.30) and mid.estimated_far == pytest.approx(0.01)
    assert big.threshold == pytest.approx(0.40) and big.estimated_far == pytest.approx(0.01)
    assert "at most 1 % of attempts" in big.describe() and "100 people / 100 templates" in big.describe()
    fixed = ThresholdRule(0.25, "fixed", 0.01, curve, "m").at(100, 100)
    assert fixed.threshold == 0.25 and fixed.estimated_far == pytest.approx(100 * curve.far_at(0.25))
    assert "unknown" in ThresholdRule(0.4, "gallery_size", 0.01, None, "m").at(10, 10).describe()


def test_open_set_protocol_counts():
    # 4 people, 3 photos each, perfectly separable: a, c enrolled (photo 1); b, d strangers
    labels = [p for p in "abcd" for _ in range(3)]
    basis = np.eye(4, dtype=np.float32)
    emb = np.stack([basis["abcd".index(p)] for p in labels])
    s = open_set_scores(labels, emb, MODEL)
    r = s.at(0.5)
    assert (r.enrolled, r.genuine, r.strangers) == (2, 4, 6)
    assert (r.right, r.wrong, r.strangers_accepted, r.false_accepts, r.attempts) == (4, 0, 0, 0, 10)
    assert s.at(-0.5).strangers_accepted == 6 and s.at(-0.5).false_accept_rate == pytest.approx(0.6)
    assert split_folds(list("abcdefgh")) == (list("abef"), list("cdgh"))


def test_calibrate_on_the_identity_photos(identity_embeddings, app_config, store):
    labels, emb = identity_embeddings
    data = Embedded(list(labels), [Path(f"{i}.jpg") for i in range(len(labels))], emb, MODEL, photos=len(labels))
    rule = ThresholdRule.from_config(app_config.face, store.entry("edgeface-xs"))
    cal = calibrate(data, 0.003, app_config.face.match_threshold, rule, split=True)
    assert len(cal.genuine) == 93 and len(cal.impostor) == 1035
    assert cal.curve is None and not any(r.stated for r in cal.tar)  # 1035 pairs show no FAR of 1e-3
    assert cal.recommended >= cal.impostor.max()  # too few pairs: just above the highest impostor
    labels_seen = [r.label for r in cal.open_set]
    assert labels_seen[0].startswith("configured") and labels_seen[1].startswith("kiosk rule")
    for r in cal.open_set:
        assert (r.enrolled, r.strangers) == (6, 29) and r.false_accepts == 0 and r.right_rate >= 0.9
    assert cal.held_out is not None and cal.held_out.attempts == cal.open_set[0].attempts
    text = format_report(cal)
    assert "too few to state this FAR" in text and "recommended face.match_threshold = " in text
    assert "held out" in text and not math.isnan(cal.to_dict()["genuine"]["mean"])


def test_shipped_threshold_is_the_shipped_calibration(app_config, store):
    """face.match_threshold is what `face-eval faces-eval/celeba` recommends for the default recognizer:
    open-set target face.open_set_far with 73 people enrolled, from the manifest's celeba curve."""
    face = app_config.face
    curve = FarCurve.from_entry(store.entry(face.embedder))
    assert curve is not None and "celeba" in curve.source and curve.pairs > 4_000_000
    assert face.match_threshold == recommend(curve.threshold_for(face.open_set_far / 73))


def test_best_threshold_at_a_false_accept_rate():
    # 5 genuine probes (2 right at .9/.8, 1 wrong at .7, 2 right at .6/.5) and 5 strangers (.65, .3, ...)
    from vision_app.gallery.openset import OpenSetScores

    best = np.float32([0.9, 0.8, 0.7, 0.6, 0.5, 0.65, 0.3, 0.2, 0.1, 0.0])
    known = np.array([True] * 5 + [False] * 5)
    correct = np.array([True, True, False, True, True] + [False] * 5)
    s = OpenSetScores(3, best, known, correct)
    assert s.best_at(0.0).threshold == pytest.approx(0.8) and s.best_at(0.0).right == 2
    r = s.best_at(0.2)  # two false accepts allowed of 10 attempts: down to .5 (wrong .7, stranger .65)
    assert (r.threshold, r.right, r.false_accepts) == (pytest.approx(0.5), 4, 2)
    assert s.best_at(0.1).threshold == pytest.approx(0.7) and s.best_at(0.1).false_accepts == 1
    assert s.best_at(1.0).right == 4 and np.isclose(s.best_at(1.0).threshold, 0.0)
