"""Matching: enrol one real photo per person, identify the others (open set), 1:1 verify, model checks,
and the in-memory index against a brute-force reference."""
from __future__ import annotations

import numpy as np
import pytest

from vision_app.errors import GalleryError
from vision_app.face.quality import QualityGates
from vision_app.gallery.enroll import FaceAnalyzer, enroll_images
from vision_app.gallery.gallery import Gallery
from vision_app.gallery.matcher import Matcher, TemplateIndex

MODEL = ("edgeface-xs", "512d-1")  # the default recognizer, which enrolled the gallery
KNOWN = [f"id{i:02d}" for i in range(1, 11)]


@pytest.fixture(scope="module")
def analyzer(face_detector, face_embedder, app_config):
    return FaceAnalyzer(face_detector, face_embedder, QualityGates.from_config(app_config.face))


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, analyzer, identity_photos):
    """A gallery with the first enrolable photo of id01..id10; (gallery, {person: enrolled path},
    {path: refusal})."""
    gallery = Gallery(tmp_path_factory.mktemp("gallery") / "g.db")
    chosen, refused = {}, {}
    for person in KNOWN:
        for path in identity_photos[person]:
            try:
                enroll_images(gallery, person, [path], analyzer)
            except GalleryError as exc:
                refused[path] = str(exc)
                continue
            chosen[person] = path
            break
    yield gallery, chosen, refused
    gallery.close()


@pytest.fixture(scope="module")
def probes(identity_photos, identity_embeddings, enrolled):
    """(label, embedding) of every identity photo not enrolled (largest face)."""
    _, chosen, _ = enrolled
    labels, emb = identity_embeddings
    paths = [p for person in identity_photos for p in identity_photos[person]]
    assert len(paths) == len(labels)
    return [(lab, e) for lab, e, p in zip(labels, emb, paths) if p not in chosen.values()]


def test_enrolment_needs_exactly_one_face(enrolled, media_dir):
    gallery, chosen, refused = enrolled
    assert sorted(chosen) == KNOWN
    group = media_dir / "faces" / "id09" / "1.jpg"  # a second person in the photo
    assert "2 faces" in refused[group] and chosen["id09"] != group
    assert all(p.templates == 1 for p in gallery.people())
    assert all(len(gallery.thumbnails(p)) == 1 for p in KNOWN)


def test_identify_known_people_and_unknowns(enrolled, probes, app_config):
    gallery, _, _ = enrolled
    matcher = Matcher(gallery, MODEL, app_config.face.match_threshold)
    known = [(lab, e) for lab, e in probes if lab in KNOWN]
    strangers = [(lab, e) for lab, e in probes if lab not in KNOWN]
    assert len(known) >= 30 and len(strangers) == 8
    matches = matcher.identify(np.stack([e for _, e in known]))
    top1 = np.mean([m.best == lab for (lab, _), m in zip(known, matches)])
    accepted = np.mean([m.identity == lab for (lab, _), m in zip(known, matches)])
    assert top1 >= 0.95
    assert accepted >= 0.90
    assert not any(m.identity not in (None, lab) for (lab, _), m in zip(known, matches))
    unknown = matcher.identify(np.stack([e for _, e in strangers]))
    assert [m.identity for m in unknown] == [None] * len(strangers)
    assert all(m.best in KNOWN and m.similarity < app_config.face.match_threshold for m in unknown)


def test_verify_one_to_one(enrolled, probes, app_config):
    gallery, _, _ = enrolled
    matcher = Matcher(gallery, MODEL, app_config.face.match_threshold)
    lab, e = next((lab, e) for lab, e in probes if lab == "id06")
    assert matcher.verify("id06", e).accepted
    assert not matcher.verify("id07", e).accepted
    with pytest.raises(GalleryError, match="not in the gallery"):
        matcher.verify("nobody", e)


def test_refuses_to_compare_across_models(enrolled, probes):
    gallery, _, _ = enrolled
    other = Matcher(gallery, ("mobilefacenet", "128d-2"), 0.4)
    with pytest.raises(GalleryError, match="different models"):
        other.identify(probes[0][1])
    same = Matcher(gallery, MODEL, 0.4)
    with pytest.raises(GalleryError, match="different models"):
        same.identify(probes[0][1], model=("arcface", "r100"))


def test_matcher_follows_gallery_changes(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with Gallery(tmp_path / "g.db") as g, Gallery(tmp_path / "g.db") as other_process:
        m = Matcher(g, MODEL, 0.5)
        assert m.identify(x[0])[0].identity is None and m.identify(x[0])[0].best is None
        g.enroll("a", x[:1], *MODEL)
        assert m.identify(x[0])[0].identity == "a"
        other_process.enroll("b", x[1:2], *MODEL)  # another connection's commit is seen too
        assert m.identify(x[1])[0].identity == "b"
        other_process.rename("b", "bee")
        assert m.identify(x[1])[0].identity == "bee"
        g.remove("a")
        assert m.identify(x[0])[0].identity is None


@pytest.mark.parametrize("people, per_person, queries", [(1, 1, 1), (5, 1, 3), (7, 4, 5), (50, 3, 20)])
def test_index_matches_brute_force(people, per_person, queries):
    rng = np.random.default_rng(people * 100 + per_person)
    t = people * per_person
    emb = rng.standard_normal((t, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    owner = rng.permutation(np.repeat(np.arange(people), per_person))  # interleaved on purpose
    names = [f"p{i}" for i in range(people)]
    q = emb[rng.integers(0, t, queries)] + 0.3 * rng.standard_normal((queries, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    index = TemplateIndex(emb, owner, names, MODEL)
    got = index.person_scores(q)
    sims = q @ emb.T
    want = np.stack([sims[:, owner == i].max(axis=1) for i in range(people)], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-6)
    for m, row in zip(index.search(q, 0.6), want):
        assert m.best == names[int(row.argmax())]
        assert m.accepted == (row.max() >= 0.6) and (m.identity is not None) == m.accepted
        # the kiosk's candidates: the best people (best template each), best first
        k = min(5, people)
        assert [n for n, _ in m.candidates] == [names[j] for j in np.argsort(-row, kind="stable")[:k]]
        np.testing.assert_allclose([v for _, v in m.candidates], np.sort(row)[::-1][:k], atol=1e-6)


def test_threshold_follows_the_gallery_size(tmp_path):
    """With the gallery-size rule the matcher's threshold rises as templates are added, and its
    operating point says what false-accept rate the threshold gives."""
    from vision_app.gallery.far import FarCurve
    from vision_app.gallery.threshold import ThresholdRule

    rule = ThresholdRule(0.25, "gallery_size", 0.01, FarCurve((1e-2, 1e-3, 1e-4), (0.2, 0.3, 0.4)), "m")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((100, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with Gallery(tmp_path / "g.db") as g:
        m = Matcher(g, MODEL, 0.25, rule)
        g.enroll("a", x[:1], *MODEL)
        m.identify(x[0])
        assert m.threshold == 0.25 and m.operating_point.templates == 1
        g.enroll("b", x[1:10], *MODEL)
        assert m.identify(x[0])[0].threshold == pytest.approx(0.3)
        g.enroll("c", x[10:100], *MODEL)
        assert m.identify(x[0])[0].threshold == pytest.approx(0.4)
        assert m.operating_point.estimated_far == pytest.approx(0.01) and m.operating_point.people == 3
