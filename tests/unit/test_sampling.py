"""Representative data (calibration/dataset.py): folder indexing, seeded stratified sampling, loading."""

from __future__ import annotations

import collections
import os

import cv2
import numpy as np
import pytest
import skimage.data

from keras_edge.calibration import dataset as D
from keras_edge.device.contract.errors import DataError
from keras_edge.device.inputs.preprocess import PreprocessSpec, preprocess

SPEC = PreprocessSpec.from_preset("raw", 16, 16, 3, color="bgr")   # raw BGR: pixels come through untouched
COUNTS = {"a": 40, "b": 15, "c": 5}


@pytest.fixture(scope="module")
def classes(tmp_path_factory, write_images):
    """60 PNGs in three unequal class folders (40/15/5)."""
    return write_images(tmp_path_factory.mktemp("classes"), COUNTS)


def class_counts(records) -> dict[int, int]:
    return dict(sorted(collections.Counter(r.label for r in records).items()))


# --- scan_folder -------------------------------------------------------------------------------------

def test_scan_folder_labels_images_by_class_subfolder(classes):
    index = D.scan_folder(classes)
    assert index.class_names == ("a", "b", "c")
    assert class_counts(index.records) == {0: 40, 1: 15, 2: 5}
    assert all(r.path.parent.name == index.class_names[r.label] for r in index.records)


def test_scan_folder_of_a_flat_folder_has_no_labels(tmp_path, write_images):
    index = D.scan_folder(write_images(tmp_path, {"": 4}))
    assert index.class_names is None and not index.labeled
    assert len(index.records) == 4 and all(r.label is None for r in index.records)


def test_scan_folder_with_images_beside_class_folders_has_no_labels(tmp_path, write_images):
    write_images(tmp_path, {"a": 2, "": 1})
    assert D.scan_folder(tmp_path).class_names is None


def test_scan_folder_is_recursive_and_ignores_other_files(tmp_path, write_images):
    write_images(tmp_path / "a" / "deeper", {"": 2})
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    index = D.scan_folder(tmp_path)
    assert index.class_names == ("a",) and len(index.records) == 2


def test_scan_folder_of_an_empty_folder_says_there_are_no_images(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="contains no images"):
        D.scan_folder(tmp_path)


def test_scan_folder_of_a_missing_folder_says_so(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        D.scan_folder(tmp_path / "missing")


def test_scan_folder_of_a_file_says_it_is_not_a_folder(tmp_path, write_images):
    write_images(tmp_path, {"": 1})
    with pytest.raises(DataError, match="is not a folder"):
        D.scan_folder(tmp_path / "img_000.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their permissions")
def test_scan_folder_of_an_unreadable_folder_says_permission_denied(tmp_path, write_images):
    write_images(tmp_path / "locked", {"a": 2})
    os.chmod(tmp_path / "locked", 0)
    try:
        with pytest.raises(DataError, match="permission denied"):
            D.scan_folder(tmp_path / "locked")
    finally:
        os.chmod(tmp_path / "locked", 0o755)


# --- sample / split ----------------------------------------------------------------------------------

def test_sample_with_the_same_seed_is_the_same(classes):
    records = D.scan_folder(classes).records
    assert D.sample(records, 12, seed=3) == D.sample(records, 12, seed=3)


def test_sample_with_another_seed_differs(classes):
    records = D.scan_folder(classes).records
    assert D.sample(records, 12, seed=3) != D.sample(records, 12, seed=4)


@pytest.mark.parametrize("n", [6, 12, 25, 59])
def test_sample_preserves_class_proportions_within_one(classes, n):
    records = D.scan_folder(classes).records
    chosen = D.sample(records, n, seed=0)
    assert len(chosen) == n and len(set(r.path for r in chosen)) == n
    got = class_counts(chosen)
    for label, total in enumerate(COUNTS.values()):
        assert abs(got.get(label, 0) - n * total / len(records)) <= 1, (n, got)


def test_sample_of_unlabeled_records_is_seeded_and_distinct(tmp_path, write_images):
    records = D.scan_folder(write_images(tmp_path, {"": 20})).records
    chosen = D.sample(records, 7, seed=1)
    assert len(set(r.path for r in chosen)) == 7
    assert chosen == D.sample(records, 7, seed=1) != D.sample(records, 7, seed=2)


def test_sample_asking_for_more_than_exist_returns_all(classes):
    records = D.scan_folder(classes).records
    assert D.sample(records, 500, seed=0) == list(records)


def test_split_gives_disjoint_calibration_and_evaluation(classes):
    records = D.scan_folder(classes).records
    calib, evals = D.split(records, n_calib=100, n_eval=10, seed=0)
    assert len(evals) == 10
    assert not {r.path for r in calib} & {r.path for r in evals}
    assert len(calib) + len(evals) == len(records)


def test_split_holds_out_at_most_a_fifth(classes):
    calib, evals = D.split(D.scan_folder(classes).records, n_calib=200, n_eval=300, seed=0)
    assert (len(calib), len(evals)) == (48, 12)


# --- load_records ------------------------------------------------------------------------------------

def test_load_records_preprocesses_through_the_device_code_and_keeps_labels(classes):
    index = D.scan_folder(classes)
    records = D.sample(index.records, 9, seed=0)
    ds = D.load_records(records, SPEC, index.class_names)
    assert ds.x.shape == (9, 16, 16, 3) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.y, [r.label for r in records])
    np.testing.assert_array_equal(ds.x[:, 0, 0, 0], 10 * ds.y)   # the class is written into each image
    np.testing.assert_array_equal(ds.x[0], preprocess(cv2.imread(str(records[0].path)), SPEC))
    assert ds.skipped == ()


def test_load_records_skips_undecodable_files_and_counts_them(tmp_path, write_images):
    write_images(tmp_path, {"": 3})
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a jpeg")
    ds = D.load_records(D.scan_folder(tmp_path).records, SPEC)
    assert len(ds) == 3 and ds.y is None
    assert sorted(os.path.basename(p) for p, _ in ds.skipped) == ["empty.png", "text.jpg"]
    reasons = dict((os.path.basename(p), why) for p, why in ds.skipped)
    assert "empty (0 bytes)" in reasons["empty.png"] and "not a decodable image" in reasons["text.jpg"]


def test_load_records_with_nothing_decodable_is_a_data_error(tmp_path):
    (tmp_path / "text.jpg").write_text("this is not a jpeg")
    with pytest.raises(DataError, match="none of the 1 images could be decoded"):
        D.load_records(D.scan_folder(tmp_path).records, SPEC)


def test_load_records_handles_real_photos_in_every_pixel_format(tmp_path):
    """Colour JPEG, grayscale PNG, RGBA PNG, palette PNG and 16-bit PNG all become (H, W, 3) inputs."""
    from PIL import Image

    cv2.imwrite(str(tmp_path / "astronaut.jpg"), skimage.data.astronaut()[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "camera.png"), skimage.data.camera())
    coffee_bgra = cv2.cvtColor(skimage.data.coffee()[:, :, ::-1], cv2.COLOR_BGR2BGRA)
    cv2.imwrite(str(tmp_path / "coffee_rgba.png"), coffee_bgra)
    Image.fromarray(skimage.data.chelsea()).convert("P").save(tmp_path / "chelsea_palette.png")
    cv2.imwrite(str(tmp_path / "camera16.png"), skimage.data.camera().astype(np.uint16) * 257)
    spec = PreprocessSpec.from_preset("unit", 32, 32, 3)
    ds = D.load_records(D.scan_folder(tmp_path).records, spec)
    assert ds.x.shape == (5, 32, 32, 3) and ds.skipped == ()
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    by_name = dict(zip((os.path.basename(s) for s in ds.sources), ds.x))
    np.testing.assert_allclose(by_name["camera16.png"], by_name["camera.png"], atol=1 / 255 + 1e-6)


# --- load_arrays -------------------------------------------------------------------------------------

def test_load_arrays_from_npy(tmp_path):
    x = np.arange(5 * 4, dtype=np.float64).reshape(5, 4)
    np.save(tmp_path / "x.npy", x)
    ds = D.load_arrays(tmp_path / "x.npy")
    assert ds.x.dtype == np.float32 and ds.y is None
    np.testing.assert_array_equal(ds.x, x)


def test_load_arrays_from_npz_with_labels(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(6))
    ds = D.load_arrays(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, np.arange(6))


def test_load_arrays_limit_is_a_seeded_subset(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(20, dtype=np.float32)[:, None], y=np.arange(20))
    a = D.load_arrays(tmp_path / "d.npz", limit=5, seed=1)
    assert len(a) == 5 and np.array_equal(a.x[:, 0], a.y)
    np.testing.assert_array_equal(a.x, D.load_arrays(tmp_path / "d.npz", limit=5, seed=1).x)


def test_load_arrays_refuses_an_array_without_batch_dimension(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(4))
    with pytest.raises(DataError, match="expected a batch of inputs"):
        D.load_arrays(tmp_path / "x.npy")


def test_load_arrays_refuses_a_file_that_is_not_numpy(tmp_path):
    (tmp_path / "x.npy").write_text("not numpy")
    with pytest.raises(DataError, match="not a readable NumPy file"):
        D.load_arrays(tmp_path / "x.npy")


def test_load_arrays_refuses_pickled_objects(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}, {"b": 2}], dtype=object))
    with pytest.raises(DataError, match="not a readable NumPy file"):
        D.load_arrays(tmp_path / "d.npz")


def test_load_arrays_refuses_labels_of_another_length(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.arange(3))
    with pytest.raises(DataError, match="4 inputs but 3 labels"):
        D.load_arrays(tmp_path / "d.npz")


# --- calibration_sets --------------------------------------------------------------------------------

def test_calibration_sets_notes_when_fewer_images_than_requested(tmp_path, write_images):
    write_images(tmp_path, {"a": 6, "b": 4})
    data = D.calibration_sets(tmp_path, SPEC, calib_samples=50)
    assert (len(data.calib), len(data.eval)) == (8, 2)
    assert any("has only 8 calibration images (asked for 50); using them all" in n for n in data.notes)


def test_calibration_sets_from_one_folder_never_evaluates_on_calibration_images(classes):
    data = D.calibration_sets(classes, SPEC, calib_samples=20, eval_samples=10)
    assert (len(data.calib), len(data.eval)) == (20, 10)
    assert not set(data.calib.sources) & set(data.eval.sources)
    assert data.calib.class_names == ("a", "b", "c")


def test_calibration_sets_with_an_eval_folder_uses_it(classes, tmp_path, write_images):
    write_images(tmp_path, {"a": 2, "b": 2, "c": 2}, seed=9)
    data = D.calibration_sets(classes, SPEC, eval_dir=tmp_path, calib_samples=10)
    assert len(data.calib) == 10 and len(data.eval) == 6
    assert all(s.startswith(str(tmp_path)) for s in data.eval.sources)
    np.testing.assert_array_equal(data.eval.y, [0, 0, 1, 1, 2, 2])


def test_calibration_sets_notes_skipped_images(tmp_path, write_images):
    write_images(tmp_path, {"": 10})
    (tmp_path / "broken.png").write_bytes(b"")
    data = D.calibration_sets(tmp_path, SPEC)
    assert len(data.calib) + len(data.eval) == 10
    assert f"skipped 1 image(s) that failed to decode (first: {tmp_path / 'broken.png'} is empty (0 bytes))" in data.notes


def test_calibration_sets_from_arrays_are_disjoint_and_note_shortfall(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(10, dtype=np.float32)[:, None])
    data = D.calibration_sets(tmp_path / "d.npz", None, calib_samples=50)
    assert (len(data.calib), len(data.eval)) == (8, 2)
    assert not set(data.calib.x[:, 0]) & set(data.eval.x[:, 0])
    assert any("gave 8 calibration samples (asked for 50)" in n for n in data.notes)


def test_calibration_sets_from_a_single_array_sample_calibrates_and_evaluates_on_it(tmp_path):
    np.save(tmp_path / "one.npy", np.ones((1, 3), np.float32))
    data = D.calibration_sets(tmp_path / "one.npy", None)
    assert len(data.calib) == 1 and len(data.eval) == 1
