"""The bundle contract (device/bundle.py): manifest round-trip, validation, checksums, paths, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.device.contract.errors import BundleError
from keras_edge.device.inputs.preprocess import PreprocessSpec

MODEL_BYTES = b"TFL3 stand-in variant bytes " * 8
LABELS = "abcdefghij"   # one per class of the (1, 10) output


def make_manifest(**overrides) -> B.Manifest:
    """A manifest with every field filled, one ok variant (fp32.tflite) and one that failed to convert."""
    spec = PreprocessSpec.from_preset("torch", 16, 16, 3, resize="letterbox", reason="--preprocess torch")
    fields = dict(
        name="tiny",
        preprocess=spec,
        inputs=(B.TensorSpec("pixels", (1, 16, 16, 3), "float32"),),
        outputs=(B.TensorSpec("probs", (1, 10), "float32"),),
        variants=(
            B.Variant(name="fp32", mode="fp32", status="ok", file="fp32.tflite",
                      sha256=B.hashlib.sha256(MODEL_BYTES).hexdigest(), bytes=len(MODEL_BYTES),
                      inputs=(B.TensorSpec("pixels", (1, 16, 16, 3), "uint8", scale=0.0078125, zero_point=128),),
                      outputs=(B.TensorSpec("probs", (-1, 10), "float32"),),
                      tolerance=B.Tolerance(max_abs=1e-4, min_agreement=0.875),
                      metrics={"accuracy": 0.97, "latency_ms": 0.123}),
            B.Variant(name="int8", mode="int8", status="conversion_failed", reason="ops that cannot be quantized: X"),
        ),
        labels="labels.txt",
        default="fp32",
        default_reason="fastest",
        reference=B.REFERENCE,
        source={"file": "tiny.keras", "sha256": "ab" * 32, "kind": "keras"},
        tools={"keras-edge": "0.1.0"},
        created="2025-01-01T00:00:00+00:00",
    )
    fields.update(overrides)
    return B.Manifest(**fields)


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A bundle directory on disk matching make_manifest()."""
    d = tmp_path / "bundle"
    d.mkdir()
    (d / "fp32.tflite").write_bytes(MODEL_BYTES)
    (d / "labels.txt").write_text("".join(f"{c}\n" for c in LABELS), encoding="utf-8")
    B.write_manifest(d, make_manifest())
    return d


def write_raw_manifest(directory: Path, data) -> None:
    (directory / B.MANIFEST).write_text(json.dumps(data), encoding="utf-8")


def test_manifest_round_trips_through_json():
    manifest = make_manifest()
    again = B.Manifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert again == manifest


def test_manifest_round_trips_without_preprocessing_spec():
    manifest = make_manifest(preprocess=None)
    assert B.Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest


def test_read_manifest_returns_what_write_manifest_wrote(bundle_dir):
    assert B.read_manifest(bundle_dir) == make_manifest()


def test_manifest_json_is_plain_and_versioned(bundle_dir):
    data = json.loads((bundle_dir / B.MANIFEST).read_text(encoding="utf-8"))
    assert data["format"] == "keras-edge/1"
    assert data["variants"][0]["status"] == "ok"
    assert data["preprocess"]["resize"] == "letterbox"


def test_unknown_format_version_is_refused_naming_both_versions(tmp_path):
    data = make_manifest().to_dict()
    data["format"] = "keras-edge/2"
    write_raw_manifest(tmp_path, data)
    with pytest.raises(BundleError) as exc:
        B.read_manifest(tmp_path)
    assert "keras-edge/2" in str(exc.value) and "keras-edge/1" in str(exc.value)


def test_manifest_without_format_is_not_a_bundle(tmp_path):
    write_raw_manifest(tmp_path, {"name": "x"})
    with pytest.raises(BundleError, match="no \"format\" field"):
        B.read_manifest(tmp_path)


def test_manifest_that_is_not_json_is_refused(tmp_path):
    (tmp_path / B.MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="not valid JSON"):
        B.read_manifest(tmp_path)


@pytest.mark.parametrize("breakage", [
    pytest.param(lambda d: d.pop("variants"), id="missing-variants"),
    pytest.param(lambda d: d.update(variants=None), id="variants-null"),
    pytest.param(lambda d: d["variants"][0].update(status="bogus"), id="unknown-status"),
    pytest.param(lambda d: d["inputs"][0].update(shape=5), id="shape-not-a-list"),
    pytest.param(lambda d: d.update(preprocess="tf"), id="preprocess-not-an-object"),
    pytest.param(lambda d: d["preprocess"].update(resize="zoom"), id="unknown-resize"),
    pytest.param(lambda d: d["preprocess"].update(height=0), id="zero-height"),
    pytest.param(lambda d: d["variants"][0].update(tolerance=5), id="tolerance-not-an-object"),
])
def test_malformed_manifest_is_a_bundle_error(tmp_path, breakage):
    data = make_manifest().to_dict()
    breakage(data)
    write_raw_manifest(tmp_path, data)
    with pytest.raises(BundleError, match="malformed"):
        B.read_manifest(tmp_path)


def test_manifest_listing_a_variant_twice_is_refused():
    v = make_manifest().variants[0]
    with pytest.raises(BundleError, match="twice"):
        make_manifest(variants=(v, v))


def test_ok_variant_without_file_is_refused():
    with pytest.raises(BundleError, match="'fp32' has no file"):
        B.Variant(name="fp32", mode="fp32", status="ok")


def test_read_manifest_on_missing_directory_says_so(tmp_path):
    with pytest.raises(BundleError, match="is not a directory"):
        B.read_manifest(tmp_path / "nope")


def test_read_manifest_on_directory_without_manifest_says_so(tmp_path):
    with pytest.raises(BundleError, match="has no manifest.json"):
        B.read_manifest(tmp_path)


def test_check_variant_returns_path_of_intact_file(bundle_dir):
    manifest = B.read_manifest(bundle_dir)
    assert B.check_variant(bundle_dir, manifest.variant("fp32")) == (bundle_dir / "fp32.tflite").resolve()


def test_check_variant_refuses_checksum_mismatch_naming_the_variant(bundle_dir):
    (bundle_dir / "fp32.tflite").write_bytes(MODEL_BYTES[:-1] + b"!")
    manifest = B.read_manifest(bundle_dir)
    with pytest.raises(BundleError, match=r"variant 'fp32'.*does not match its checksum"):
        B.check_variant(bundle_dir, manifest.variant("fp32"))


def test_check_variant_refuses_missing_file(bundle_dir):
    (bundle_dir / "fp32.tflite").unlink()
    manifest = B.read_manifest(bundle_dir)
    with pytest.raises(BundleError, match=r"variant 'fp32'.*missing"):
        B.check_variant(bundle_dir, manifest.variant("fp32"))


def test_check_variant_refuses_a_variant_that_failed_to_convert(bundle_dir):
    manifest = B.read_manifest(bundle_dir)
    with pytest.raises(BundleError, match=r"'int8' failed to convert \(ops that cannot be quantized: X\)"):
        B.check_variant(bundle_dir, manifest.variant("int8"))


def test_unknown_variant_name_lists_the_choices(bundle_dir):
    with pytest.raises(BundleError, match="choose one of: fp32, int8"):
        B.read_manifest(bundle_dir).variant("fp16")


@pytest.mark.parametrize("relpath", ["../x", "a/../../x", "/etc/passwd", ""])
def test_inside_refuses_paths_that_leave_the_bundle(tmp_path, relpath):
    with pytest.raises(BundleError, match="bundle path"):
        B.inside(tmp_path, relpath)


def test_inside_refuses_a_symlink_that_escapes(tmp_path):
    root = tmp_path / "bundle"
    root.mkdir()
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", root / "link")
    with pytest.raises(BundleError, match="leaves the bundle directory"):
        B.inside(root, "link")


def test_inside_accepts_a_nested_path(tmp_path):
    assert B.inside(tmp_path, "models/fp32.tflite") == tmp_path.resolve() / "models" / "fp32.tflite"


@pytest.mark.parametrize("field,value", [("file", "../fp32.tflite"), ("file", "/tmp/fp32.tflite")])
def test_read_manifest_refuses_variant_paths_outside_the_bundle(bundle_dir, field, value):
    data = json.loads((bundle_dir / B.MANIFEST).read_text(encoding="utf-8"))
    data["variants"][0][field] = value
    write_raw_manifest(bundle_dir, data)
    with pytest.raises(BundleError, match="bundle path"):
        B.read_manifest(bundle_dir)


@pytest.mark.parametrize("key", ["labels", "reference"])
def test_read_manifest_refuses_labels_or_reference_outside_the_bundle(bundle_dir, key):
    data = json.loads((bundle_dir / B.MANIFEST).read_text(encoding="utf-8"))
    data[key] = "../../" + key
    write_raw_manifest(bundle_dir, data)
    with pytest.raises(BundleError, match="leaves the bundle directory"):
        B.read_manifest(bundle_dir)


def test_read_manifest_refuses_a_variant_symlinked_outside(bundle_dir, tmp_path):
    outside = tmp_path / "elsewhere.tflite"
    outside.write_bytes(MODEL_BYTES)
    (bundle_dir / "fp32.tflite").unlink()
    os.symlink(outside, bundle_dir / "fp32.tflite")
    with pytest.raises(BundleError, match="leaves the bundle directory"):
        B.read_manifest(bundle_dir)


def test_read_labels(bundle_dir):
    assert B.read_labels(bundle_dir, B.read_manifest(bundle_dir)) == list(LABELS)


def test_staged_dir_replaces_a_previous_bundle_on_success(bundle_dir):
    with B.staged_dir(bundle_dir) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in bundle_dir.parent.iterdir()) == ["bundle"], "no partial or old copies left"


def test_staged_dir_refuses_to_replace_a_directory_that_is_not_a_bundle(tmp_path):
    target = tmp_path / "documents"
    target.mkdir()
    (target / "thesis.txt").write_text("precious")
    with pytest.raises(BundleError, match="not a keras-edge bundle; refusing to replace it"):
        with B.staged_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["thesis.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents"]


def test_staged_dir_fills_an_empty_existing_directory(tmp_path):
    (tmp_path / "out").mkdir()
    with B.staged_dir(tmp_path / "out") as tmp:
        (tmp / "new.txt").write_text("new")
    assert (tmp_path / "out" / "new.txt").read_text() == "new"


def test_staged_dir_creates_a_missing_target(tmp_path):
    target = tmp_path / "a" / "out"
    with B.staged_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert (target / "new.txt").read_text() == "new"


def test_staged_dir_keeps_the_previous_bundle_when_the_body_raises(bundle_dir):
    before = {p.name: p.read_bytes() for p in bundle_dir.iterdir()}
    with pytest.raises(RuntimeError, match="boom"):
        with B.staged_dir(bundle_dir) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert {p.name: p.read_bytes() for p in bundle_dir.iterdir()} == before
    assert sorted(p.name for p in bundle_dir.parent.iterdir()) == ["bundle"], "the partial directory must be removed"


def test_staged_dir_leaves_no_target_when_the_body_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with B.staged_dir(tmp_path / "out"):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_refuses_a_target_that_is_a_file(tmp_path):
    target = tmp_path / "out"
    target.write_text("a file")
    with pytest.raises(BundleError, match="is not a directory"):
        with B.staged_dir(target) as tmp:
            (tmp / "x").write_text("x")
    assert target.read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_content_hash_is_stable_for_the_same_manifest(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    B.write_manifest(a, make_manifest())
    B.write_manifest(b, make_manifest())
    assert B.content_hash(a) == B.content_hash(b)


def test_content_hash_changes_when_a_variant_sha_changes(bundle_dir):
    before = B.content_hash(bundle_dir)
    m = make_manifest()
    changed = B.dataclasses.replace(m.variants[0], sha256="0" * 64)
    B.write_manifest(bundle_dir, B.dataclasses.replace(m, variants=(changed, m.variants[1])))
    assert B.content_hash(bundle_dir) != before
