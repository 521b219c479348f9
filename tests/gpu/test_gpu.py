"""LiteRT's GPU path for real: run, verify, bench and doctor through the venv's keras-edge, on this
machine's adapter, checked against the CPU within the GPU tolerance the manifest records.

`make test-gpu` installs the Vulkan driver where it can (see gpuenv.py) and points KERAS_EDGE_FIXTURES at
the demo's digits bundle. On a CI runner the adapter is Mesa's llvmpipe, a software rasterizer on the CPU:
the tests then also check that nothing calls it a GPU. Each command runs as a separate process (the
GPU accelerator's native teardown and any driver crash stay out of the test process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from keras_edge.device.engine.gpu import SOFTWARE_WORDS, Adapter, probe
from keras_edge.device.engine.probe_model import PROBE_TFLITE

KERAS_EDGE = str(Path(sys.executable).with_name("keras-edge"))
FLOAT_VARIANTS = ("fp32", "fp16", "dynamic")


def cli(*args, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([KERAS_EDGE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


@pytest.fixture(scope="module")
def adapter() -> Adapter:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.tflite"
        path.write_bytes(PROBE_TFLITE)
        p = probe(path, timeout=300)
    if not p.ok or p.adapter is None:
        pytest.skip(f"no GPU adapter here: {p.reason}")
    return p.adapter


@pytest.fixture(scope="module")
def fx() -> Path:
    root = os.environ.get("KERAS_EDGE_FIXTURES")
    if not root or not (Path(root) / "bundles" / "digits" / "manifest.json").is_file():
        pytest.fail("KERAS_EDGE_FIXTURES does not point at the demo fixtures; run `make test-gpu`")
    return Path(root)


@pytest.fixture(scope="module")
def bundle(fx) -> Path:
    return fx / "bundles" / "digits"


@pytest.fixture(scope="module")
def manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def tolerance(manifest: dict, variant: str) -> dict:
    return next(v for v in manifest["variants"] if v["name"] == variant)["tolerance"]


def scores(stdout: str) -> np.ndarray:
    """Every class score of every input, in input order, from `run --json --top-k 10`."""
    rows = [json.loads(line) for line in stdout.splitlines()]
    out = np.zeros((len(rows), 10))
    for i, r in enumerate(rows):
        for p in r["top_k"]:
            out[i, p["index"]] = p["score"]
    return out


def test_manifest_records_a_gpu_tolerance_per_variant(manifest):
    for v in manifest["variants"]:
        if v["status"] != "conversion_failed":
            t = v["tolerance"]
            assert t["gpu_max_abs"] > t["max_abs"], v["name"]


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8"])
def test_run_on_the_gpu_matches_the_cpu_within_the_gpu_tolerance(adapter, fx, bundle, manifest, variant):
    folder = fx / "data" / "eval" / "3"
    g = cli("run", bundle, folder, "--variant", variant, "--accelerator", "gpu", "--json", "--top-k", "10")
    c = cli("run", bundle, folder, "--variant", variant, "--json", "--top-k", "10")
    assert g.returncode == 0 and c.returncode == 0, g.stderr + c.stderr
    rows = [json.loads(line) for line in g.stdout.splitlines()]
    assert {r["backend"] for r in rows} == {"gpu-litert"}
    a = rows[0]["adapter"]
    assert a["adapter_used"] and a["name"] == adapter.name and a["backend"] == adapter.backend
    assert a["type"] == str(adapter.type) and a["software"] == adapter.is_software
    # both stay within their bound of the Keras outputs, so within the sum of the two of each other
    tol = tolerance(manifest, variant)
    diff = np.max(np.abs(scores(g.stdout) - scores(c.stdout)))
    assert diff <= tol["gpu_max_abs"] + tol["max_abs"], diff
    assert np.mean(scores(g.stdout).argmax(1) == scores(c.stdout).argmax(1)) >= tol["min_agreement"]
    human = cli("run", bundle, folder, "--variant", variant, "--accelerator", "gpu")
    assert human.returncode == 0 and "ran on gpu-litert" in human.stdout
    assert (SOFTWARE_WORDS in human.stderr) == adapter.is_software
    if variant == "int8":
        assert "integer-quantized model on the GPU" in human.stderr


def test_verify_on_the_gpu_uses_the_gpu_tolerance(adapter, bundle, manifest):
    r = cli("verify", bundle, "--accelerator", "gpu", "--variant", ",".join((*FLOAT_VARIANTS, "int8")), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    assert rep["ok"] and rep["adapter"]["name"] == adapter.name
    for v in rep["variants"]:
        assert v["backend"] == "gpu-litert" and v["verdict"] == "pass", v
        assert v["bound"] == tolerance(manifest, v["variant"])["gpu_max_abs"]
        assert v["max_abs"] <= v["bound"]
    human = cli("verify", bundle, "--accelerator", "gpu", "--variant", "fp32")
    assert human.returncode == 0 and "outputs within the GPU tolerance" in human.stdout
    assert f"gpu adapter (ran on): {adapter.name}" in human.stdout
    assert (SOFTWARE_WORDS in human.stdout) == adapter.is_software


def test_verify_reads_an_older_manifest_without_a_gpu_tolerance(adapter, bundle, tmp_path):
    copy = shutil.copytree(bundle, tmp_path / "digits")
    m = json.loads((copy / "manifest.json").read_text())
    for v in m["variants"]:
        if v.get("tolerance"):
            v["tolerance"].pop("gpu_max_abs", None)
    (copy / "manifest.json").write_text(json.dumps(m))
    r = cli("verify", copy, "--accelerator", "gpu", "--variant", "fp32")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "records no GPU tolerance" in r.stdout and "PASS" in r.stdout


def test_a_variant_the_gpu_cannot_run_at_all_falls_back_with_the_reason(adapter, bundle):
    r = cli("verify", bundle, "--accelerator", "gpu", "--variant", "int16x8")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "GPU not used: the GPU accelerator can run none of the model's" in r.stdout
    assert "INT16" in r.stdout and "on cpu" in r.stdout


def test_bench_shows_gpu_and_cpu_side_by_side(adapter, bundle):
    r = cli("bench", bundle, "--variant", "fp32", "--accelerator", "gpu", "--runs", "5", "--warmup", "1",
            "--min-seconds", "0", "--json")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert [x["backend"] for x in results] == ["gpu-litert", "cpu-xnnpack"]
    assert [x["accelerator"] for x in results] == ["gpu", "cpu"]
    for x in results:
        assert x["runs"] >= 5 and all(x[k] > 0 for k in ("init_ms", "first_ms", "median_ms", "p90_ms", "p99_ms", "rss_mb"))
        assert x["p99_ms"] >= x["p90_ms"] >= x["median_ms"]
    g = results[0]
    assert g["adapter"]["name"] == adapter.name and g["adapter"]["software"] == adapter.is_software
    assert g["gpu"]["probe_ms"] > 0 and g["gpu"]["fully_accelerated"] is True
    human = cli("bench", bundle, "--variant", "fp32", "--accelerator", "gpu", "--runs", "3", "--warmup", "0",
                "--min-seconds", "0")
    assert human.returncode == 0, human.stderr
    assert "gpu timings include completion" in human.stdout
    assert "fp32, " in human.stdout and "gpu-litert median" in human.stdout and "vs cpu-xnnpack" in human.stdout
    assert f"adapter: {adapter.name}" in human.stdout
    assert (SOFTWARE_WORDS in human.stdout) == adapter.is_software


def test_doctor_names_the_adapter_and_never_calls_software_a_gpu(adapter):
    r = cli("doctor", "--json")
    assert r.returncode == 0, r.stderr
    g = json.loads(r.stdout)["gpu"]
    assert g["available"] and g["agrees_with_cpu"]
    assert g["adapter"]["name"] == adapter.name and g["adapter"]["backend"] and g["adapter"]["type"] == str(adapter.type)
    assert g["software"] == adapter.is_software
    if g["adapter"]["backend"] == "Vulkan":
        assert g["adapter"]["driver"] and any(v["name"] == adapter.name for v in g["vulkan"])
    human = cli("doctor")
    line = next(ln for ln in human.stdout.splitlines() if ln.startswith("gpu:"))
    if adapter.is_software:
        assert line.startswith("gpu: no GPU;") and SOFTWARE_WORDS in line and "auto uses the CPU" in line
    else:
        assert "works on" in line and adapter.name in line


def test_auto_never_picks_a_software_adapter(adapter, fx, bundle):
    r = cli("run", bundle, fx / "data" / "eval" / "3", "--variant", "fp32", "--accelerator", "auto", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note: auto:")]
    assert len(notes) == 1, r.stderr
    if adapter.is_software:
        assert {x["backend"] for x in rows} == {"cpu-xnnpack"}
        assert rows[0]["adapter"]["software"] and not rows[0]["adapter"]["adapter_used"]
        assert SOFTWARE_WORDS in notes[0] and notes[0].endswith("running on CPU")
    else:  # a hardware GPU: auto timed both and kept the faster, saying so
        assert "GPU chosen" in notes[0] or "not faster" in notes[0]


def no_adapter_env(tmp_path: Path) -> dict[str, str]:
    """A Vulkan loader that finds no driver: the adapter is truly absent for that process."""
    empty = tmp_path / "no-icd.json"
    return {"VK_ICD_FILENAMES": str(empty), "VK_DRIVER_FILES": str(empty), "VK_ADD_DRIVER_FILES": ""}


def test_no_adapter_falls_back_to_the_cpu_in_one_line(fx, bundle, tmp_path):
    folder = fx / "data" / "eval" / "3"
    r = cli("run", bundle, folder, "--variant", "fp32", "--accelerator", "gpu", "--json", env=no_adapter_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert {json.loads(x)["backend"] for x in r.stdout.splitlines()} == {"cpu-xnnpack"}
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note: GPU not used:")]
    assert len(notes) == 1 and notes[0].endswith("running on CPU"), r.stderr
    d = cli("doctor", env=no_adapter_env(tmp_path))
    assert d.returncode == 0 and "gpu: not available (" in d.stdout


def test_no_fallback_is_an_error_exit(fx, bundle, tmp_path):
    r = cli("run", bundle, fx / "data" / "eval" / "3", "--variant", "fp32", "--accelerator", "gpu", "--no-fallback",
            env=no_adapter_env(tmp_path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_gpu_compile_over_its_time_limit_becomes_one_line(adapter, fx, bundle):
    folder = fx / "data" / "eval" / "3"
    r = cli("run", bundle, folder, "--variant", "fp32", "--accelerator", "gpu", "--gpu-timeout", "0.01")
    assert r.returncode == 0 and "did not finish within 0.01 s" in r.stderr and "raise the time limit" in r.stderr
    r = cli("run", bundle, folder, "--variant", "fp32", "--accelerator", "gpu", "--gpu-timeout", "0.01", "--no-fallback")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def host_python() -> str:
    py = os.environ.get("KERAS_EDGE_HOST_PYTHON")
    if not py or not Path(py).is_file():
        pytest.skip("KERAS_EDGE_HOST_PYTHON (the workstation venv with TensorFlow) is not set; `make test-gpu` sets it")
    return py


def test_doctor_in_the_workstation_venv_with_tensorflow_does_not_crash(adapter):
    py = host_python()
    r = subprocess.run([str(Path(py).with_name("keras-edge")), "doctor"], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-500:]}"
    assert "tensorflow:" in r.stdout and any(ln.startswith("gpu: ") for ln in r.stdout.splitlines())


def test_a_driver_crash_in_the_probe_becomes_one_line(adapter, bundle, tmp_path):
    """The real crash: a process that has imported TensorFlow, then creates the GPU environment (SIGSEGV
    with Mesa's llvmpipe). A sitecustomize makes the probe's child import TensorFlow first."""
    py = host_python()
    (tmp_path / "sitecustomize.py").write_text("import tensorflow  # noqa: F401\n")
    code = ("import sys; from keras_edge.device.engine.gpu import probe; p = probe(sys.argv[1], timeout=300); "
            "print(p.ok, p.reason)")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run([py, "-c", code, str(bundle / "fp32.tflite")], capture_output=True, text=True, env=env,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-500:]
    out = r.stdout.strip().splitlines()[-1]
    # drivers that survive TensorFlow pass; the ones that do not are reported, not fatal
    assert out == "True None" or out.startswith("False the GPU driver crashed the probe (signal 11, SIGSEGV)"), out
