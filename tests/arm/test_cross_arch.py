"""The same bundle on x86 and on emulated aarch64 (both CPU models), with the same LiteRT version.

Inputs: reference.npz, 3 real eval images per class and 32 seeded noise inputs (the digits model's
softmax saturates at 0/255 on confident inputs, which would hide differences, so the int8 check also
requires enough unsaturated outputs). The int8 variant's outputs for the reference inputs must be
byte-identical (integer outputs) or equal to 1e-5 (a float softmax over its integer logits, which one logit
step would move by far more); on all inputs its outputs must agree within the variant's tolerance (XNNPACK
requantizes differently per architecture: one noise input differs by one step). Float variants must
agree within the tolerance the manifest records for them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from dump_outputs import dump

from keras_edge.device.contract.bundle import read_manifest
from keras_edge.device.inputs.preprocess import preprocess
from keras_edge.device.health.verify import load_reference


@pytest.fixture(scope="session")
def probe_inputs(bundle, fixtures, tmp_path_factory) -> Path:
    """reference.npz's inputs, 3 eval images per class (the bundle's own preprocessing) and 32 noise inputs."""
    m = read_manifest(bundle)
    ref, _ = load_reference(bundle, m)
    assert len(ref) == 1 and m.preprocess is not None, "written for the one-image-input digits bundle"
    images = [preprocess(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), m.preprocess)[None]
              for d in sorted((fixtures / "data/eval").iterdir()) for p in sorted(d.glob("*.png"))[:3]]
    lo, hi = float(ref[0].min()), float(ref[0].max())
    rng = np.random.default_rng(7)
    noise = rng.uniform(lo, hi, (32, *ref[0].shape[1:])) * rng.uniform(0.05, 1.0, (32, 1, 1, 1))
    path = tmp_path_factory.mktemp("cross-arch") / "inputs.npz"
    np.savez(path, input_0=np.concatenate([ref[0], *images, noise.astype(np.float32)]).astype(np.float32))
    return path


def load_inputs(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return [z["input_0"]]


@pytest.fixture(scope="module")
def x86(bundle, probe_inputs) -> dict[str, np.ndarray]:
    return dump(bundle, load_inputs(probe_inputs))


@pytest.fixture(scope="module")
def aarch64(board, bundle, probe_inputs, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp(board.board.name) / "outputs.npz"
    r = board.python(str(Path(__file__).with_name("dump_outputs.py")), str(bundle), str(probe_inputs), str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(out, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_same_runtime_on_both_sides(x86, aarch64):
    assert str(aarch64["machine"]) == "aarch64"
    assert str(aarch64["runtime"]) == str(x86["runtime"]), "compare the same LiteRT version on both sides"


def integer_variants(bundle):
    """Variants whose inputs are quantized: an integer body (int8 classifiers end in a float softmax over it)."""
    m = read_manifest(bundle)
    found = [v for v in m.variants if v.inputs and all(t.quantized for t in v.inputs)]
    assert [v.name for v in found] == ["int8"]  # the digits bundle has one; more would be checked too
    return found


def test_integer_variants_are_byte_identical_on_the_reference_inputs(x86, aarch64, bundle):
    n = len(load_reference(bundle, read_manifest(bundle))[0][0])  # the probe inputs start with them
    for v in integer_variants(bundle):
        for j in range(len(v.outputs)):
            a, b = aarch64[f"{v.name}/out{j}"][:n], x86[f"{v.name}/out{j}"][:n]
            assert a.dtype == b.dtype and a.dtype.kind in "iuf"
            if a.dtype.kind == "f":   # a float softmax over the integer logits: identical logits give equal
                # probabilities up to the softmax's own float rounding; one logit step would move them by ~1e-2
                err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                assert err <= 1e-5, f"{v.name} output {j}: max |aarch64 - x86| {err:.3g}: the integer logits differ"
                continue
            diff = np.flatnonzero(a != b)
            assert diff.size == 0, (f"{v.name} output {j}: {diff.size} of {a.size} values differ between aarch64 and "
                                    f"x86 (at {diff[:5]}: {a.ravel()[diff[:5]]} vs {b.ravel()[diff[:5]]})")


def test_integer_variants_agree_within_tolerance_on_unsaturated_outputs(x86, aarch64, bundle):
    """Beyond the reference inputs XNNPACK's per-architecture requantization may round a tie the other
    way (1 step, seen on noise inputs); the difference must stay within the variant's tolerance."""
    for v in integer_variants(bundle):
        assert v.tolerance is not None, f"{v.name} records no tolerance"
        for j, spec in enumerate(v.outputs):
            a, b = aarch64[f"{v.name}/out{j}"], x86[f"{v.name}/out{j}"]
            if b.dtype.kind == "f":   # the float softmax head: its probabilities within the variant's tolerance
                err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                assert err <= v.tolerance.max_abs, f"{v.name} output {j}: max |aarch64 - x86| {err:.3g}"
                continue
            info = np.iinfo(b.dtype)
            unsaturated = int(np.count_nonzero((b > info.min) & (b < info.max)))
            assert unsaturated >= 50, f"only {unsaturated} unsaturated values in {v.name} output {j}: too weak a check"
            steps = np.abs(a.astype(np.int64) - b.astype(np.int64))
            err = float(steps.max()) * spec.scale
            assert err <= v.tolerance.max_abs, (f"{v.name} output {j}: {np.count_nonzero(steps)} of {a.size} values "
                                                f"differ, by up to {steps.max()} steps ({err:.3g} > {v.tolerance.max_abs:g})")


def test_float_variants_agree_within_the_manifest_tolerance(x86, aarch64, bundle):
    m = read_manifest(bundle)
    floats = [v for v in m.variants if not any(t.quantized for t in v.inputs)]
    assert {v.name for v in floats} == {"fp32", "fp16", "dynamic", "int16x8"}
    for v in floats:
        assert v.tolerance is not None, f"{v.name} records no tolerance"
        for j in range(len(v.outputs)):
            a, b = aarch64[f"{v.name}/out{j}"], x86[f"{v.name}/out{j}"]
            err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            assert err <= v.tolerance.max_abs, f"{v.name} output {j}: max |aarch64 - x86| {err:.3g} > {v.tolerance.max_abs:g}"
