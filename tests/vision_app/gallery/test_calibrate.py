"""Threshold calibration: FAR/FRR arithmetic on hand-made scores, and the config default agrees with a
calibration on the real identity photos."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vision_app.gallery.calibrate import (Embedded, calibrate, far_frr, format_report, recommend,
                                       threshold_for_far)

MODEL = ("mobilefacenet", "128d-1")


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


def test_far_frr_definitions():
    g = np.float32([0.5, 0.6, 0.7, 0.8])
    i = np.float32([0.1, 0.2, 0.6])
    assert far_frr(g, i, 0.6) == (pytest.approx(1 / 3), pytest.approx(1 / 4))
    assert far_frr(g, i, 0.61) == (0.0, pytest.approx(0.5))


def test_config_threshold_is_the_calibrated_one(identity_embeddings, app_config):
    labels, emb = identity_embeddings
    data = Embedded(list(labels), [Path(f"{i}.jpg") for i in range(len(labels))], emb, MODEL)
    cal = calibrate(data, target_far=0.001)
    assert len(cal.genuine) == 93 and len(cal.impostor) == 1035
    assert not cal.demonstrable  # 1035 pairs cannot show 0.1 %: the conservative rule applies
    assert cal.threshold > cal.impostor.max()
    assert cal.recommended == app_config.face.match_threshold
    far, frr = far_frr(cal.genuine, cal.impostor, cal.recommended)
    assert far == 0.0 and frr <= 0.10
    o = cal.open_set
    assert (o["enrolled"], o["unknown_probes"]) == (10, 8)
    assert o["unknown_rejected"] == 8 and o["accepted_correct"] >= 0.9 * o["known_probes"]
    text = format_report(cal)
    assert "recommended face.match_threshold = " + f"{cal.recommended:.2f}" in text
    assert "genuine" in text and "impostor" in text and not math.isnan(cal.to_dict()["genuine"]["mean"])
