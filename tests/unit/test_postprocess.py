"""device/postprocess.py: heads decoded from hand-built raw outputs, NMS, box/mask geometry, misfits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keras_edge.device.contract.bundle import TensorSpec
from keras_edge.device.contract.errors import BundleError, ModelError
from keras_edge.device.outputs.postprocess import (UNKNOWN, Postprocessor, boxes_to_image, boxes_to_input,
                                           infer_postprocess, mask_to_image, nms)
from keras_edge.device.inputs.preprocess import PreprocessSpec, quantize, resize
from keras_edge.device.contract.tasks import PostprocessSpec, Task

MODES = ("stretch", "crop", "letterbox")
SIZES = [(77, 131), (131, 77), (64, 96), (1, 3), (333, 97), (50, 50)]


def spec_of(mode: str, h: int = 64, w: int = 96) -> PreprocessSpec:
    return PreprocessSpec(height=h, width=w, resize=mode, interpolation="nearest")


# ------------------------------------------------------------------------------------------- geometry

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hw", SIZES)
def test_box_round_trip_is_exact(mode, hw):
    h, w = hw
    rng = np.random.default_rng(h * 1000 + w)
    xy = np.sort(rng.uniform(0, 1, (20, 2, 2)), axis=1)
    boxes = np.stack([xy[:, 0, 0] * w, xy[:, 0, 1] * h, xy[:, 1, 0] * w, xy[:, 1, 1] * h], 1)
    pp = spec_of(mode, 63, 97)   # odd target too
    back = boxes_to_image(boxes_to_input(boxes, pp, hw), pp, hw, clip=False)
    np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-9)
    fwd = boxes_to_input(boxes_to_image(boxes_to_input(boxes, pp, hw), pp, hw, clip=False), pp, hw)
    np.testing.assert_allclose(fwd, boxes_to_input(boxes, pp, hw), rtol=0, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hw", [(77, 131), (131, 77), (240, 320)])
def test_boxes_follow_the_real_resize(mode, hw):
    """A filled rectangle resized by preprocess.resize lands where boxes_to_input says (within a pixel)."""
    h, w = hw
    img = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = int(w * 0.4), int(h * 0.45), int(w * 0.6), int(h * 0.55)   # inside any centre crop
    img[y1:y2, x1:x2] = 255
    pp = spec_of(mode, 63, 97)
    out = resize(img, pp)
    ys, xs = np.nonzero(out > 127)
    seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    want = boxes_to_input(np.array([[x1, y1, x2, y2]], np.float64), pp, hw)[0]
    assert np.abs(seen - want).max() <= 1.0, (seen, want)


def test_boxes_to_image_clips_to_the_image():
    pp = spec_of("letterbox")
    out = boxes_to_image(np.array([[-20.0, -20.0, 200.0, 200.0]]), pp, (50, 100))
    assert out.tolist() == [[0.0, 0.0, 100.0, 50.0]]


def test_boxes_without_geometry_stay_in_input_pixels():
    b = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert boxes_to_image(b, None, (10, 10)).tolist() == b.tolist()
    assert boxes_to_image(b, spec_of("crop"), None).tolist() == b.tolist()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hw", [(77, 131), (131, 77), (96, 64)])
@pytest.mark.parametrize("out_hw", [(64, 96), (16, 24)])
def test_mask_follows_the_real_resize(mode, hw, out_hw):
    """A label image resized like the input, then mapped back, agrees with itself where the model saw it."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    truth = ((xx * 2 // w) + 2 * (yy * 2 // h) + 1).astype(np.uint8)   # 4 blocks, classes 1..4
    pp = spec_of(mode)
    seen = resize(truth, pp)                                        # what the model would predict, perfectly
    if out_hw != (64, 96):                                          # a coarser output map
        seen = seen[::64 // out_hw[0], ::96 // out_hw[1]]
    back = mask_to_image(seen, pp, hw)
    assert back.shape == (h, w) and back.dtype == np.uint8
    known = back != UNKNOWN
    # nearest-neighbour resampling may move a class edge by a pixel or two (more for the coarse map):
    # away from the edges the mapped-back map must equal the truth exactly
    r = 3 if out_hw == (64, 96) else 10
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    # (the image border counts as an edge: a coarse cell there may hold letterbox padding)
    interior = cv2.dilate(truth, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=255) == cv2.erode(truth, kernel)
    assert interior.sum() > 0.05 * h * w
    assert (back[known & interior] == truth[known & interior]).all()
    assert (back[known] == truth[known]).mean() > (0.9 if out_hw == (64, 96) else 0.75)
    if mode == "crop" and w / h != 96 / 64:
        assert (~known).any()                                       # outside the crop: unknown
    else:
        assert known.all()                                          # letterbox padding cut away, stretch covers all


def test_mask_crop_marks_outside_unknown_exactly():
    pp = spec_of("crop")                       # 64x96 target, 3:2
    m = mask_to_image(np.ones((64, 96), np.uint8), pp, (7, 13))   # crop 7x10 at x0=1 (round(10.5)=10)
    assert (m[:, 1:11] == 1).all() and (m[:, 0] == UNKNOWN).all() and (m[:, 11:] == UNKNOWN).all()


# ------------------------------------------------------------------------------------------- NMS

def test_nms_is_class_aware_unless_agnostic():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float64)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, classes, 0.5, 100).tolist() == [0, 2, 3]
    assert nms(boxes, scores, classes, 0.5, 100, class_agnostic=True).tolist() == [0, 3]
    assert nms(boxes, scores, classes, 0.5, 2).tolist() == [0, 2]
    assert nms(boxes, scores, classes, 0.99, 100).tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------------- heads

def yolo_spec(**kw) -> PostprocessSpec:
    kw.setdefault("num_classes", 2)
    return PostprocessSpec(Task.DETECTION, {"predictions": 0}, head="yolo", **kw)


YOLO_ROWS = np.array([[0.50, 0.50, 0.25, 0.25, 0.90, 0.10],    # class 0 at the centre
                      [0.51, 0.50, 0.25, 0.25, 0.80, 0.10],    # its duplicate: suppressed
                      [0.20, 0.20, 0.10, 0.10, 0.05, 0.70],    # class 1 top-left
                      [0.80, 0.80, 0.10, 0.10, 0.10, 0.20]],   # below threshold
                     np.float32)


def test_yolo_decodes_thresholds_and_suppresses():
    pp = PreprocessSpec(height=64, width=64)
    post = Postprocessor(yolo_spec(), [TensorSpec("out", (1, 4, 6), "float32")], pp, labels=["square", "circle"])
    r = post([YOLO_ROWS[None]], (128, 256))     # stretch: x×4, y×2
    assert [(d.class_id, d.label, round(d.score, 2)) for d in r.detections] == [(0, "square", 0.9), (1, "circle", 0.7)]
    np.testing.assert_allclose(r.detections[0].box, [96, 48, 160, 80], atol=1e-4)
    np.testing.assert_allclose(r.detections[1].box, [38.4, 19.2, 64, 32], atol=1e-4)
    r_in = post([YOLO_ROWS[None]], None)          # model-input pixels
    np.testing.assert_allclose(r_in.detections[0].box, [24, 24, 40, 40], atol=1e-4)
    d = r.to_dict(["square", "circle"])
    assert d["task"] == "detection" and d["detections"][0]["label"] == "square"


def test_yolo_transposed_and_objectness_and_pixels():
    pp = PreprocessSpec(height=64, width=64)
    rows = YOLO_ROWS.copy()
    rows[:, :4] *= 64
    # transposed (1, 4+C, N), pixel units
    post = Postprocessor(yolo_spec(box_units="pixels"), [TensorSpec("out", (1, 6, 4), "float32")], pp)
    r = post([rows.T[None].copy()], None)
    assert [d.class_id for d in r.detections] == [0, 1]
    np.testing.assert_allclose(r.detections[0].box, [24, 24, 40, 40], atol=1e-3)
    # objectness column multiplies the class score
    obj = np.concatenate([rows[:, :4], np.array([[0.5], [0.5], [1.0], [1.0]], np.float32), rows[:, 4:]], 1)
    post = Postprocessor(yolo_spec(box_units="pixels", objectness=True), [TensorSpec("out", (1, 4, 7), "float32")], pp)
    r = post([obj[None]], None)
    assert [(d.class_id, round(d.score, 3)) for d in r.detections] == [(1, 0.7), (0, 0.45)]


def test_yolo_without_num_classes_infers_layout():
    pp = PreprocessSpec(height=64, width=64)
    many = np.repeat(YOLO_ROWS, 5, axis=0)           # 20 boxes, 6 values: (1,20,6) and (1,6,20)
    post = Postprocessor(yolo_spec(num_classes=None), [TensorSpec("out", (1, 6, 20), "float32")], pp)
    assert post.notes and "transposed" in post.notes[0]
    assert [d.class_id for d in post([many.T[None].copy()], None).detections] == [0, 1]


def test_yolo_logits():
    pp = PreprocessSpec(height=64, width=64)
    rows = YOLO_ROWS.copy()
    p = np.clip(rows[:, 4:], 1e-6, 1 - 1e-6)
    rows[:, 4:] = np.log(p / (1 - p))
    post = Postprocessor(yolo_spec(scores="logits"), [TensorSpec("out", (1, 4, 6), "float32")], pp)
    assert [round(d.score, 3) for d in post([rows[None]], None).detections] == [0.9, 0.7]


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_quantized_outputs_are_dequantized(dtype):
    pp = PreprocessSpec(height=64, width=64)
    scale, zp = 1 / 255, (-128 if dtype == "int8" else 0)
    q = quantize(YOLO_ROWS[None], dtype, scale, zp)
    post = Postprocessor(yolo_spec(), [TensorSpec("out", (1, 4, 6), dtype, scale, zp)], pp)
    r = post([q], (64, 64))
    assert [d.class_id for d in r.detections] == [0, 1]
    assert abs(r.detections[0].score - 0.9) < 1 / 255
    np.testing.assert_allclose(r.detections[0].box, [24, 24, 40, 40], atol=0.5)


def tflite_outputs(names=("TFLite_Detection_PostProcess", "TFLite_Detection_PostProcess:1",
                          "TFLite_Detection_PostProcess:2", "TFLite_Detection_PostProcess:3"), n=5):
    return [TensorSpec(names[0], (1, n, 4), "float32"), TensorSpec(names[1], (1, n), "float32"),
            TensorSpec(names[2], (1, n), "float32"), TensorSpec(names[3], (1,), "float32")]


def tflite_raw(n=5):
    boxes = np.zeros((1, n, 4), np.float32)
    boxes[0, 0] = [0.25, 0.5, 0.75, 1.0]      # ymin xmin ymax xmax
    boxes[0, 1] = [0.0, 0.0, 0.5, 0.25]
    boxes[0, 2] = [0.1, 0.1, 0.2, 0.2]
    classes = np.array([[2, 0, 1, 0, 0]], np.float32)
    scores = np.array([[0.95, 0.6, 0.1, 0.9, 0.9]], np.float32)   # entries 3, 4 lie beyond the count
    return [boxes, classes, scores, np.array([3], np.float32)]


def test_infer_and_decode_tflite_postprocess():
    outs = tflite_outputs()
    spec, notes = infer_postprocess(outs)
    assert spec.head == "tflite_postprocess" and spec.outputs == {"boxes": 0, "classes": 1, "scores": 2,
                                                                              "count": 3}
    assert notes and "TFLite_Detection_PostProcess" in notes[0] and "by name" in notes[0]
    pp = PreprocessSpec(height=100, width=200, resize="letterbox")
    post = Postprocessor(spec, outs, pp, labels=["a", "b", "c"])
    r = post(tflite_raw(), (200, 200))     # letterbox 200x200 → 100x100 inside 100x200 at x0=50
    assert [(d.class_id, d.label) for d in r.detections] == [(2, "c"), (0, "a")]   # 0.1 < 0.25, beyond count ignored
    # box 0 in input pixels: x 100..200, y 25..75 → image: (x-50)*2, y*2 → x 100..300 clipped to 200
    np.testing.assert_allclose(r.detections[0].box, [100, 50, 200, 150], atol=1e-4)
    np.testing.assert_allclose(r.detections[1].box, [0, 0, 0, 100], atol=1e-4)


def test_tflite_postprocess_reordered_outputs_are_told_apart():
    outs = tflite_outputs(("boxes", "scores", "classes", "num"))
    outs = [outs[0], outs[2], outs[1], outs[3]]      # boxes, "classes"-named at 1?  re-order: names say
    outs = [TensorSpec("detection_boxes", (1, 5, 4), "float32"), TensorSpec("detection_scores", (1, 5), "float32"),
            TensorSpec("detection_classes", (1, 5), "float32"), TensorSpec("num_detections", (1,), "float32")]
    spec, notes = infer_postprocess(outs)
    assert spec.outputs == {"boxes": 0, "classes": 2, "scores": 1, "count": 3}
    # nameless, scores first: decided at the first call, and said so
    outs = tflite_outputs(("StatefulPartitionedCall:0", "StatefulPartitionedCall:1", "StatefulPartitionedCall:2",
                           "StatefulPartitionedCall:3"))
    spec, notes = infer_postprocess(outs)
    assert "first inference" in notes[0]
    post = Postprocessor(spec, outs, PreprocessSpec(height=100, width=100))
    b, c, s, n = tflite_raw()
    r = post([b, s, c, n], None)                    # scores where classes were assumed
    assert [d.class_id for d in r.detections] == [2, 0] and post.notes and "whole numbers" in post.notes[0]
    r = post([b, s, c, n], None)                    # the decision sticks
    assert [round(d.score, 2) for d in r.detections] == [0.95, 0.6]


def test_ssd_head(tmp_path):
    anchors = np.array([[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.2, 0.2], [0.75, 0.75, 0.2, 0.2]])
    np.save(tmp_path / "anchors.npy", anchors)
    spec = PostprocessSpec(Task.DETECTION, {"deltas": 0, "scores": 1}, head="ssd", num_classes=2,
                           anchors="anchors.npy", background=0, scores="logits")
    outs = [TensorSpec("deltas", (1, 3, 4), "float32"), TensorSpec("scores", (1, 3, 3), "float32")]
    post = Postprocessor(spec, outs, PreprocessSpec(height=100, width=100), bundle_dir=tmp_path)
    deltas = np.zeros((1, 3, 4), np.float32)
    deltas[0, 1] = [1.0, 0.0, 0.0, np.log(2) / 0.2]    # moved down by 0.1*0.2, twice as wide
    logits = np.array([[[0, 5, 0], [0, 0, 5], [5, 0, 0]]], np.float32)   # anchor 2 is background
    r = post([deltas, logits], None)
    assert [d.class_id for d in r.detections] == [0, 1]
    np.testing.assert_allclose(r.detections[0].box, [25, 25, 75, 75], atol=1e-3)
    np.testing.assert_allclose(r.detections[1].box, [5, 17, 45, 37], atol=1e-3)
    assert abs(r.detections[0].score - np.exp(5) / (np.exp(5) + 2)) < 1e-5


def test_ssd_anchor_problems(tmp_path):
    spec = PostprocessSpec(Task.DETECTION, {"deltas": 0, "scores": 1}, head="ssd", anchors="a.npy")
    outs = [TensorSpec("deltas", (1, 3, 4), "float32"), TensorSpec("scores", (1, 3, 2), "float32")]
    with pytest.raises(BundleError, match="a.npy is missing"):
        Postprocessor(spec, outs, None, bundle_dir=tmp_path)
    np.save(tmp_path / "a.npy", np.zeros((5, 4)))
    with pytest.raises(ModelError, match=r"anchors are \(5, 4\)"):
        Postprocessor(spec, outs, None, bundle_dir=tmp_path)


@pytest.mark.parametrize("spec,outs,words", [
    (yolo_spec(), [TensorSpec("out", (1, 10, 9), "float32")], "6 values per box"),
    (yolo_spec(), [TensorSpec("out", (1, 100), "float32")], "yolo head wants"),
    (PostprocessSpec(Task.DETECTION, {"boxes": 0, "classes": 1, "scores": 2, "count": 3},
                     head="tflite_postprocess"), [TensorSpec("a", (1, 10), "float32")], "output 1, the model has 1"),
    (PostprocessSpec(Task.DETECTION, {"boxes": 0, "classes": 1, "scores": 2, "count": 3},
                     head="tflite_postprocess"),
     [TensorSpec("a", (1, 10, 3), "float32")] + [TensorSpec("b", (1, 10), "float32")] * 2 +
     [TensorSpec("n", (1,), "float32")], r"a \(1, 10, 3\)"),
    (PostprocessSpec(Task.SEGMENTATION, {"mask": 0}), [TensorSpec("logits", (1, 10), "float32")], "segmentation"),
    (PostprocessSpec.classification(), [TensorSpec("img", (1, 8, 8, 3), "float32")], "classification"),
])
def test_outputs_that_do_not_fit_raise_model_error(spec, outs, words):
    with pytest.raises(ModelError, match=words) as e:
        Postprocessor(spec, outs, PreprocessSpec(height=64, width=64))
    assert "do not fit task" in e.value.what


# ------------------------------------------------------------------------------------ other tasks

def test_segmentation_multiclass_and_single_channel():
    pp = PreprocessSpec(height=4, width=4)
    m = np.zeros((1, 4, 4, 3), np.float32)
    m[0, :, :, 0] = 1
    m[0, :2, :2, 2] = 2          # a quarter is class 2
    m[0, 3, :, 1] = 3            # the bottom row is class 1
    post = Postprocessor(PostprocessSpec(Task.SEGMENTATION, {"mask": 0}, num_classes=3),
                         [TensorSpec("m", (1, 4, 4, 3), "float32")], pp)
    r = post([m], (8, 12))
    assert r.class_map.shape == (8, 12)
    assert r.class_areas == pytest.approx({0: 0.5, 1: 0.25, 2: 0.25})
    assert r.to_dict()["mask_hw"] == [8, 12] and "class_map" not in r.to_dict()
    single = Postprocessor(PostprocessSpec(Task.SEGMENTATION, {"mask": 0}, threshold=0.5),
                           [TensorSpec("m", (1, 4, 4), "float32")], pp)
    prob = np.zeros((1, 4, 4), np.float32)
    prob[0, :, :1] = 0.8
    assert single([prob], None).class_areas == pytest.approx({0: 0.75, 1: 0.25})


def test_embedding_matches_references(tmp_path):
    np.savez(tmp_path / "refs.npz", cat=np.array([1.0, 0, 0]), dog=np.array([0.0, 1, 0]), both=np.array([1.0, 1, 0]))
    spec = PostprocessSpec(Task.EMBEDDING, {"embedding": 0}, references="refs.npz")
    post = Postprocessor(spec, [TensorSpec("e", (1, 3), "float32")], None, bundle_dir=tmp_path)
    r = post([np.array([[2.0, 0.1, 0]], np.float32)], None)
    assert [n for n, _ in r.matches] == ["cat", "both", "dog"]
    assert r.matches[0][1] == pytest.approx(2 / np.sqrt(4.01), abs=1e-6)
    with pytest.raises(ModelError, match="reference 'cat' has 3 values, the embedding 4"):
        Postprocessor(spec, [TensorSpec("e", (1, 4), "float32")], None, bundle_dir=tmp_path)


def test_bare_outputs_are_reported_by_name():
    outs = [TensorSpec("pred", (1, 20, 6), "float32"), TensorSpec("aux", (1, 2), "int8", 0.5, 1)]
    spec, notes = infer_postprocess(outs)
    assert spec.task is Task.OTHER and "pred (1, 20, 6)" in notes[0]
    r = Postprocessor(spec, outs, None)([np.zeros((1, 20, 6), np.float32), np.array([[3, 5]], np.int8)], None)
    assert list(r.named) == ["pred", "aux"] and r.named["aux"].tolist() == [1.0, 2.0]
    d = r.to_dict()
    assert d["outputs"]["pred"]["shape"] == [20, 6] and d["outputs"]["aux"] == [1.0, 2.0]
    spec, notes = infer_postprocess([TensorSpec("probs", (1, 10), "float32")])
    assert spec.task is Task.CLASSIFICATION and "classifier" in notes[0]
    r = Postprocessor(spec, [TensorSpec("probs", (1, 10), "float32")], None)([np.eye(10, dtype=np.float32)[3:4]], None)
    assert r.top[0] == (3, 1.0)


# ------------------------------------------------------------------------------------ lines and drawings

def test_task_lines_and_drawings():
    from keras_edge.device.run.draw import PALETTE, annotate
    from keras_edge.device.outputs.postprocess import Detection, TaskResult
    from keras_edge.render import result_line
    from keras_edge.device.run.runner import Result

    labels = ("background", "circle", "square")
    det = TaskResult(Task.DETECTION, detections=[Detection((12.4, 40, 118, 300.2), 0.912, 2, "square"),
                                                 Detection((1, 2, 3, 4), 0.77, 1)])
    r = Result("scene.jpg", task=det, infer_ms=1.0, postprocess_ms=0.5, labels=labels)
    assert result_line(r).startswith("scene.jpg: 2 objects: square 0.91 [12,40,118,300], circle 0.77 [1,2,3,4]")
    assert r.to_dict({})["task"]["detections"][1]["label"] == "circle"
    assert r.to_dict({})["timing_ms"]["postprocess"] == 0.5
    none = Result("x.jpg", task=TaskResult(Task.DETECTION, detections=[]))
    assert "x.jpg: no objects" in result_line(none)

    cm = np.zeros((40, 60), np.uint8)
    cm[:, 30:] = 1
    cm[:10, :10] = UNKNOWN
    seg = TaskResult(Task.SEGMENTATION, class_map=cm, class_areas={0: 0.45, 1: 0.55})
    rs = Result("s.png", task=seg, labels=labels)
    assert "s.png: mask: circle 55.0%, background 45.0%" in result_line(rs)
    img = np.full((40, 60, 3), 200, np.uint8)
    out = annotate(img, rs)
    assert out.shape == img.shape and (img == 200).all()                  # the input is not drawn on
    assert (out[:10, :10] == 200).all()                                    # unknown pixels: no overlay
    want = (0.5 * 200 + 0.5 * PALETTE[1].astype(float)).round()
    assert np.abs(out[20, 45].astype(float) - want).max() <= 1            # alpha 0.5 overlay in the class colour

    emb = TaskResult(Task.EMBEDDING, embedding=np.ones(8, np.float32), matches=[("cat", 0.93), ("dog", 0.4)])
    assert "embedding 8-d: cat 0.930, dog 0.400" in result_line(Result("e.png", task=emb))
    reg = TaskResult(Task.REGRESSION, named={"age": np.array([31.5]), "map": np.zeros((20, 20))})
    line = result_line(Result("r.png", task=reg))
    assert "age [31.5]" in line and "map [20, 20] [0, 0]" in line
    big = np.full((320, 200, 3), 200, np.uint8)
    drawn = annotate(big, Result("scene.jpg", task=det, labels=labels))
    assert (drawn[300, 13:117] != 200).any(axis=1).mean() > 0.9           # the box's bottom edge
    assert (drawn[100:250, 30:100] == 200).all()                          # inside the box: untouched


def test_quantized_probabilities_past_one_are_clipped():
    """One int8 scale for pixel boxes and scores (0.25 a step here) rounds a 0.99 score to 1.0 + a step: a
    probability is never reported above 1 (seen on a real int8-selective detector)."""
    pp = PreprocessSpec(height=64, width=64)
    scale = 0.25
    rows = np.array([[32, 32, 16, 16, 1.0 + scale, 1.0 + scale, 0.0]])          # cx, cy, w, h, obj, two classes
    q = np.round(rows / scale).astype(np.int8)
    post = Postprocessor(yolo_spec(box_units="pixels", objectness=True),
                         [TensorSpec("out", (1, 1, 7), "int8", scale=scale, zero_point=0)], pp)
    r = post([q[None]], None)
    assert len(r.detections) == 1 and r.detections[0].score == 1.0
