"""Hostile raw model outputs (NaN, ±inf, huge, denormal, empty, wrong shapes, float16/float64) fed to every
decoder and post-processing step: detection decoders of every layout (+ NMS, box mapping, drawing), YuNet
(+ alignment, drawing), MiniFASNet, the face mesh, segmentation masks and overlays, style output
conversion. Never a crash other than our own error types with a message, never a hang; what comes out is
well-formed (finite boxes, valid class ids, images of the frame's size).

A model replaced on disk, a broken export or a TensorRT FP16 engine that overflows all produce such
tensors; the pipeline catches stage errors, but a raw ValueError / OverflowError from deep inside numpy or
OpenCV would be counted as an unexplained fault on every frame and a NaN box would crash the drawing.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.fuzz import FakeEngine, no_hang, outputs_for, probability_rows, shapes_like, tensors
from vision_app.detect.decoders import DECODERS, DecodeSpec
from vision_app.detect.detector import DetectParams, Detector
from vision_app.detect.nms import nms
from vision_app.draw import draw_detections, draw_faces, render_result
from vision_app.errors import ModelError, VisionAppError
from vision_app.face.detector import STRIDES, FaceDetector
from vision_app.face.mesh import FaceMesh, mean_ear
from vision_app.face.passive import PassiveLiveness
from vision_app.segment.masks import Segmenter
from vision_app.segment.overlay import MODES, OverlayRenderer
from vision_app.style.stylizers import JohnsonStylizer, MagentaStylizer
from vision_app.style.vectors import StyleVectorCache
from vision_app.tensor_io import blob_to_image
from vision_app.types import Detections, Faces, Frame

# numpy's overflow / invalid-value RuntimeWarnings are what garbage in garbage out looks like here
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
IMG = np.random.default_rng(7).integers(0, 255, (48, 64, 3), np.uint8)


OUR_ERRORS = {c.__name__ for c in (VisionAppError, *VisionAppError.__subclasses__())}


def ours(exc: BaseException) -> None:
    """An allowed failure: our own error type, with a message that says something."""
    assert isinstance(exc, VisionAppError) and len(str(exc)) > 20, repr(exc)


def check_candidates(c, num_classes: int) -> None:
    k = len(c)
    assert c.xyxy.shape == (k, 4) and c.xyxy.dtype == np.float32
    assert c.scores.shape == (k,) and c.class_id.shape == (k,) and c.class_id.dtype == np.int32
    assert np.isfinite(c.xyxy).all() and np.isfinite(c.scores).all()
    assert ((c.class_id >= 0) & (c.class_id < num_classes)).all()


# ---- detection decoders, every layout, on a small 64x64 input with 3 classes ---------------------------
C = 3
ANCHORS = [[10, 13], [16, 30], [33, 23]]
HEADS = [{"output": "h32", "stride": 32, "anchors": ANCHORS}, {"output": "h16", "stride": 16, "anchors": ANCHORS}]
LAYOUTS = {  # name -> (decode table, expected output shapes)
    "yolo_anchor": ({"type": "yolo_anchor", "heads": HEADS}, {"h32": (1, 3 * (5 + C), 2, 2),
                                                              "h16": (1, 3 * (5 + C), 4, 4)}),
    "yolo_anchor nahwc no-sigmoid": ({"type": "yolo_anchor", "heads": HEADS, "layout": "nahwc", "sigmoid": False},
                                     {"h32": (1, 3, 2, 2, 5 + C), "h16": (1, 3, 4, 4, 5 + C)}),
    "yolov5 heads": ({"type": "yolov5", "heads": HEADS}, {"h32": (1, 3 * (5 + C), 2, 2),
                                                         "h16": (1, 3 * (5 + C), 4, 4)}),
    "yolov7 concat": ({"type": "yolov7", "output": "out", "strides": [8, 16, 32]}, {"out": (1, 3 * 84, 5 + C)}),
    "yolox": ({"type": "yolox", "output": "out"}, {"out": (1, 84, 5 + C)}),
    "yolov8": ({"type": "yolov8", "output": "out", "strides": [8, 16, 32]}, {"out": (1, 4 + C, 84)}),
    "yolo11": ({"type": "yolo11", "output": "out", "strides": [8, 16, 32]}, {"out": (1, 4 + C, 84)}),
}


def test_every_registered_layout_is_fuzzed() -> None:
    assert {t["type"] for t, _ in LAYOUTS.values()} == set(DECODERS)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@FUZZ
@given(data=st.data(), conf=st.sampled_from([0.0, 0.01, 0.25, 0.9, 1.0]))
def test_detection_decoders(fuzz_counts, layout: str, data: st.DataObject, conf: float) -> None:
    table, shapes = LAYOUTS[layout]
    decoder = DECODERS[table["type"]](DecodeSpec("fuzz", table, C, (64, 64)))
    outputs = data.draw(outputs_for(shapes))
    fuzz_counts[f"decoder {layout}"] += 1
    with no_hang():
        try:
            cand = decoder(outputs, conf)
        except VisionAppError as exc:
            ours(exc)
            return
        check_candidates(cand, C)
        keep = nms(cand.xyxy, cand.scores, 0.45, cand.class_id, max_detections=100, max_candidates=500)
        assert len(set(keep.tolist())) == len(keep) and (keep < len(cand)).all()


@pytest.fixture(scope="module")
def detectors(store):
    """Detector objects for the manifest's detection models (their real decode tables), on fake engines."""
    out = {}
    for name, shapes in (("yolo-fastest-1.1-xl", {"l120": (1, 255, 10, 10), "l129": (1, 255, 20, 20)}),
                         ("yolox-nano", {"output": (1, 3549, 85)})):
        entry = store.entry(name)
        w, h = entry.input["size"]
        engine = FakeEngine(name, {entry.input.get("name") or "input": (1, 3, h, w)}, shapes)
        out[name] = (Detector(entry, engine, DetectParams()), shapes)
    return out


@pytest.mark.parametrize("model", ["yolo-fastest-1.1-xl", "yolox-nano"])
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_detector_postprocess_and_drawing(fuzz_counts, detectors, model: str, data: st.DataObject) -> None:
    """The manifest models' real outputs sizes: decode + NMS + un-letterbox + Detections + drawing."""
    detector, shapes = detectors[model]
    outputs = data.draw(outputs_for(shapes))
    fuzz_counts[f"detector {model} postprocess+draw"] += 1
    _, box_map = detector.preprocess(IMG)
    with no_hang():
        try:
            dets = detector.postprocess(outputs, box_map)
        except VisionAppError as exc:
            ours(exc)
            return
        assert isinstance(dets, Detections) and np.isfinite(dets.xyxy).all()
        assert (dets.xyxy[:, 0::2] >= 0).all() and (dets.xyxy[:, 0::2] <= IMG.shape[1]).all()
        draw_detections(IMG.copy(), dets)


# ---- face: YuNet, alignment, MiniFASNet, mesh ------------------------------------------------------------
def yunet_shapes(h: int, w: int) -> dict[str, tuple[int, ...]]:
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    shapes = {}
    for s in STRIDES:
        n = (ph // s) * (pw // s)
        shapes.update({f"cls_{s}": (1, n, 1), f"obj_{s}": (1, n, 1), f"bbox_{s}": (1, n, 4), f"kps_{s}": (1, n, 10)})
    return shapes


@FUZZ
@given(data=st.data(), threshold=st.sampled_from([0.0, 0.3, 0.6, 1.0]))
def test_yunet_decoder_and_drawing(fuzz_counts, data: st.DataObject, threshold: float) -> None:
    engine = FakeEngine("yunet", {"input": (1, 3, None, None)}, yunet_shapes(48, 64))
    engine.next = data.draw(outputs_for(yunet_shapes(48, 64), drop=True))
    fuzz_counts["yunet outputs -> FaceDetector+draw"] += 1
    with no_hang():
        try:
            faces = FaceDetector(engine, threshold).detect(IMG)
        except VisionAppError as exc:
            ours(exc)
            return
        assert isinstance(faces, Faces)
        assert np.isfinite(faces.xyxy).all() and np.isfinite(faces.landmarks).all()
        assert np.isfinite(faces.score).all()
        draw_faces(IMG.copy(), faces)


class FaceModels:
    """A StageContext stand-in whose engines are fakes answering with fuzzed outputs drawn from `data`."""

    def __init__(self, config, models, data: st.DataObject) -> None:
        self.config, self.models, self.backend = config, models, "fake"
        f = config.face
        self.engines = {
            f.detector: FakeEngine("yunet", {"input": (1, 3, None, None)}, yunet_shapes(48, 64)),
            f.embedder: FakeEngine("mobilefacenet", {"input": (1, 3, 112, 112)}, {"output": (1, 128)}),
            f.passive_models[0]: FakeEngine("v2", {"input": (None, 3, 80, 80)}, {"prob": (None, 3)}),
            f.passive_models[1]: FakeEngine("v1se", {"input": (1, 3, 80, 80)}, {"prob": (1, 3)}),
            f.mesh_model: FakeEngine("mesh", {"input_1": (1, 3, 192, 192)},
                                     {"conv2d_21": (1, 1, 1, 1404), "conv2d_31": (1, 1, 1, 1)}),
        }
        yunet = yunet_shapes(48, 64)
        def detector_outputs(feed: object) -> dict[str, np.ndarray]:
            # right shapes (shape errors are the YuNet test's) and, half the time, plausible faces (every
            # grid point confident, boxes of a cell or two): then faces reach alignment, embedding,
            # liveness and the mesh, whose outputs are the garbage
            out = data.draw(outputs_for(yunet, fuzz_shapes=False))
            if data.draw(st.sampled_from([True, False])):
                rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
                out.update({k: (np.ones_like(v) if k[:3] in ("cls", "obj") else
                                rng.normal(0.5, 0.5, v.shape).astype(np.float32)) for k, v in out.items()})
            return out

        self.engines[f.detector].next = detector_outputs
        def answer(expected, healthy=None):  # noqa: ANN001, ANN202 - garbage one call in three
            healthy = outputs_for(expected, fuzz_shapes=False) if healthy is None else healthy
            return data.draw(st.sampled_from([healthy, healthy, outputs_for(expected)]).flatmap(lambda x: x))

        def batch(feed) -> int:  # noqa: ANN001
            return len(next(iter(feed.values())))

        self.engines[f.embedder].next = lambda feed: answer({"output": (batch(feed), 128)})
        for name in f.passive_models:
            self.engines[name].next = lambda feed: answer(
                {"prob": (batch(feed), 3)}, probability_rows(batch(feed)).map(lambda p: {"prob": p}))
        self.engines[f.mesh_model].next = lambda feed: answer({"conv2d_21": (1, 1, 1, 1404), "conv2d_31": (1, 1, 1, 1)})

    def engine(self, name: str) -> FakeEngine:
        return self.engines[name]


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_face_stage_on_hostile_outputs_of_all_five_models(fuzz_counts, store, tmp_path_factory,
                                                          data: st.DataObject) -> None:
    """The face stage end to end (detect, size/quality gates, align, embed, passive, mesh, tracking and
    liveness over frames, drawing), every model answering garbage."""
    from vision_app.config import load_config
    from vision_app.gallery.identify import build_face_stage
    from vision_app.pipeline import Pipeline

    # small faces allowed: most fuzzed boxes then go on to alignment, embedding, liveness and the mesh
    cfg = load_config(None, {"face.gallery": str(tmp_path_factory.getbasetemp() / "none.db"),
                             "face.min_face_px": 2.0})
    stage = build_face_stage(FaceModels(cfg, store, data))
    errors: list[str] = []
    pipeline = Pipeline([stage], render=render_result, on_error=lambda kind, msg: errors.append(msg))
    fuzz_counts["all face models -> FaceStage+draw"] += 1
    with no_hang(20):
        for i in range(3):
            result = pipeline.run(Frame(IMG, i, i / 10, "fuzz"))
            assert result.image.shape == IMG.shape
            fuzz_counts["  (faces analysed by the face stage)"] += sum(
                1 for o in result.extras.get("face", ()) if not (o.quality or "").startswith("too small"))
    foreign = {kind: n for kind, n in pipeline.error_counts.items() if kind[1] not in OUR_ERRORS}
    assert not foreign, (foreign, errors)


BOXES = st.lists(st.tuples(*[st.floats(-1e6, 1e6)] * 4), min_size=0, max_size=3).map(
    lambda b: np.array(b, np.float32).reshape(-1, 4))


@FUZZ
@given(data=st.data(), boxes=BOXES)
def test_minifasnet_outputs(fuzz_counts, data: st.DataObject, boxes: np.ndarray) -> None:
    n = len(boxes)
    v2 = FakeEngine("minifasnet-v2", {"input": (None, 3, 80, 80)}, {"prob": (None, 3)})
    v1 = FakeEngine("minifasnet-v1se", {"input": (1, 3, 80, 80)}, {"prob": (1, 3)})  # fixed batch: per face
    v2.next = data.draw(outputs_for({"prob": (n, 3)}))
    per_face = [data.draw(outputs_for({"prob": (1, 3)})) for _ in range(n)]
    calls = iter(per_face)
    v1.next = lambda feed: next(calls)
    fuzz_counts["minifasnet outputs -> PassiveLiveness"] += 1
    with no_hang():
        try:
            results = PassiveLiveness(v2, v1, 0.5).check(IMG, boxes)
        except VisionAppError as exc:
            ours(exc)
            return
        assert len(results) == n
        for r in results:
            assert isinstance(r.live, bool) and len(r.probs) == 3
            assert 0.0 <= r.score <= 1.001 and all(0.0 <= p <= 1.001 for p in r.probs)
            assert not r.live or r.score >= 0.5


@FUZZ
@given(data=st.data(), box=BOXES.filter(len))
def test_face_mesh_outputs(fuzz_counts, data: st.DataObject, box: np.ndarray) -> None:
    engine = FakeEngine("face-mesh", {"input_1": (1, 3, 192, 192)},
                        {"conv2d_21": (1, 1, 1, 1404), "conv2d_31": (1, 1, 1, 1)})
    engine.next = data.draw(outputs_for({"conv2d_21": (1, 1, 1, 1404), "conv2d_31": (1, 1, 1, 1)}))
    fuzz_counts["face mesh outputs -> FaceMesh"] += 1
    with no_hang():
        try:
            res = FaceMesh(engine).run(IMG, box[0])
        except VisionAppError as exc:
            ours(exc)
            return
        assert res.points.shape == (468, 3) and res.points.dtype == np.float32
        assert 0.0 <= res.presence <= 1.0 or np.isnan(res.presence)
        mean_ear(res.points)


# ---- segmentation ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def segmenters(store):
    out = {}
    for name, planes in (("selfie", 1), ("deeplab", 21)):
        entry = store.entry(name)
        w, h = entry.input["size"]
        engine = FakeEngine(name, {entry.input["name"]: (1, 3, h, w)}, {"out": (1, planes, None, None)})
        out[name] = (engine, entry, planes)
    return out


@pytest.mark.parametrize("model", ["selfie", "deeplab"])
@FUZZ
@given(data=st.data(), mode=st.sampled_from(MODES), smoothing=st.sampled_from([0.0, 0.6]),
       hw=st.tuples(st.integers(1, 9), st.integers(1, 9)))
def test_segmentation_masks_and_overlays(fuzz_counts, segmenters, model: str, data: st.DataObject, mode: str,
                                         smoothing: float, hw: tuple[int, int]) -> None:
    engine, entry, planes = segmenters[model]
    seg = Segmenter(engine, entry, smoothing=smoothing, threshold=0.5, foreground=())
    renderer = OverlayRenderer(mode, seg.class_names, opacity=0.5, threshold=0.5, softness=0.1, blur_sigma=0.02,
                               background=None, legend=True)
    fuzz_counts[f"segmentation {model} -> Mask+overlay"] += 1
    with no_hang():
        for new_scene in (True, False):  # two frames: the EMA meets a second (maybe other-shaped) output
            engine.next = data.draw(outputs_for({"out": (1, planes, *hw)}))
            try:
                mask = seg(IMG, new_scene)
                image, _ = renderer.render(IMG, mask)
            except VisionAppError as exc:
                ours(exc)
                continue
            assert mask.labels.shape == IMG.shape[:2] and mask.labels.dtype == np.uint8
            assert int(mask.labels.max()) < len(seg.class_names)
            assert image.shape == IMG.shape and image.dtype == np.uint8


# ---- style -----------------------------------------------------------------------------------------------
@FUZZ
@given(data=st.data(), scale=st.sampled_from([1.0, 255.0]))
def test_style_output_conversion(fuzz_counts, data: st.DataObject, scale: float) -> None:
    blob = data.draw(tensors(data.draw(shapes_like((1, 3, 8, 12)))))
    fuzz_counts["style output -> blob_to_image"] += 1
    with no_hang():
        try:
            img = blob_to_image(blob, scale)
        except VisionAppError as exc:
            ours(exc)
            return
        assert img.dtype == np.uint8 and img.shape == (blob.shape[2], blob.shape[3], 3)


@pytest.fixture(scope="module")
def style_entries(store):
    return {n: store.entry(n) for n in ("johnson_wave", "magenta-predict", "magenta-transfer")}


@settings(FUZZ, max_examples=150)
@given(data=st.data(), strength=st.sampled_from([0.0, 0.5, 1.0]))
def test_stylizers(fuzz_counts, style_entries, data: st.DataObject, strength: float) -> None:
    johnson = FakeEngine("johnson", {"input": (1, 3, None, None)}, {"out": (1, 3, None, None)})
    johnson.next = lambda feed: data.draw(outputs_for({"out": next(iter(feed.values())).shape}))
    predict = FakeEngine("predict", {"style_image": (1, 3, 256, 256)}, {"vec": (1, 100, 1, 1)})
    predict.next = data.draw(outputs_for({"vec": (1, 100, 1, 1)}))
    transfer = FakeEngine("transfer", {"content_image": (1, 3, 384, 384), "style_vec": (1, 100, 1, 1)},
                          {"out": (1, 3, 384, 384)})
    transfer.next = lambda feed: data.draw(outputs_for({"out": (1, 3, 24, 24)}))
    fuzz_counts["style outputs -> Johnson/Magenta stylize"] += 1
    vectors = StyleVectorCache(predict, style_entries["magenta-predict"], model_sha="fuzz", disk_dir=None, memory={})
    with no_hang():
        for make in (lambda: JohnsonStylizer(johnson, style_entries["johnson_wave"], working_size=32),
                     lambda: MagentaStylizer(transfer, style_entries["magenta-transfer"], vectors,
                                             np.full((1, 100, 1, 1), 0.1, np.float32), strength=strength,
                                             content_every=1)):
            try:
                out = make().stylize(IMG, True)
            except VisionAppError as exc:
                ours(exc)
                continue
            assert out.shape == IMG.shape and out.dtype == np.uint8


def test_magenta_predict_vector_of_another_size(style_entries) -> None:
    """A predict model whose vector does not fit the transfer model: a ModelError saying so, not numpy's
    broadcasting ValueError on every frame."""
    predict = FakeEngine("predict", {"style_image": (1, 3, 256, 256)}, {"vec": (1, 100, 1, 1)})
    predict.next = {"vec": np.zeros((1, 99, 1, 1), np.float32)}
    transfer = FakeEngine("transfer", {"content_image": (1, 3, 384, 384), "style_vec": (1, 100, 1, 1)},
                          {"out": (1, 3, 384, 384)})
    vectors = StyleVectorCache(predict, style_entries["magenta-predict"], model_sha="x", disk_dir=None, memory={})
    stylizer = MagentaStylizer(transfer, style_entries["magenta-transfer"], vectors,
                               np.zeros((1, 100, 1, 1), np.float32), strength=0.5, content_every=1)
    with pytest.raises(ModelError, match=r"style vectors of shape \(1, 99, 1, 1\)"):
        stylizer.stylize(IMG, True)
