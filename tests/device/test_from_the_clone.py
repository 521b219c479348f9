"""Every command works from the repository root with a regular (non-editable) install, as the README's board
install leaves it: nothing in the clone shadows the installed package, and no child process picks up the
working directory's files. Run as a user would: the installed `keras-edge` script and `python -m`, in the
clone's root, with no PYTHONSAFEPATH (make sets it for the other device tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}


def _run(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bundle() -> Path:
    root = os.environ.get("KERAS_EDGE_FIXTURES")
    if not root or not (Path(root) / "bundles" / "digits" / "manifest.json").is_file():
        pytest.fail("KERAS_EDGE_FIXTURES does not point at the demo fixtures; run `make test-device`")
    return Path(root) / "bundles" / "digits"


def test_the_clone_root_holds_no_folder_named_like_the_package():
    assert not (ROOT / "keras_edge").exists(), "a keras_edge/ folder in the clone would shadow the installed package"
    import keras_edge

    installed = Path(keras_edge.__file__).resolve()
    assert "site-packages" in installed.parts and not installed.is_relative_to(ROOT / "face"), \
        "this env must be a regular (non-editable) install"


def test_python_m_keras_edge_help_from_the_root():
    p = _run(sys.executable, "-m", "keras_edge", "--help")
    assert p.returncode == 0, p.stderr
    assert "convert" in p.stdout and "bench" in p.stdout


def test_bench_from_the_root_runs_its_worker_from_the_install(bundle):
    p = _run(str(BIN / "keras-edge"), "bench", str(bundle / "int8.tflite"), "--runs", "5", "--min-seconds", "0",
             "--warmup", "1", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)["results"][0]
    assert result["runs"] >= 5 and result["median_ms"] > 0 and result["backend"].startswith("cpu")


def test_bench_of_a_bundle_with_gpu_and_auto_from_the_root(bundle):
    for accel in ("gpu", "auto"):
        # int8: what every runtime here runs (the default may be `dynamic`, which tflite-runtime 2.14 cannot)
        p = _run(str(BIN / "keras-edge"), "bench", str(bundle), "--variant", "int8", "--runs", "3", "--min-seconds",
                 "0", "--warmup", "1", "--accelerator", accel, "--gpu-timeout", "60", "--json", timeout=600)
        assert p.returncode == 0, f"{accel}: {p.stderr}"
        rows = json.loads(p.stdout)["results"]
        assert {r["accelerator"] for r in rows} == {accel, "cpu"}, rows


def test_run_with_accelerator_auto_from_the_root(bundle):
    images = sorted((Path(os.environ["KERAS_EDGE_FIXTURES"]) / "data").rglob("*.png"))[:3]
    p = _run(str(BIN / "keras-edge"), "run", str(bundle), *map(str, images), "--variant", "int8", "--accelerator", "auto",
             "--gpu-timeout", "60", "--json")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rows) == len(images) and all(r["ok"] for r in rows)


def test_doctor_from_the_root():
    p = _run(str(BIN / "keras-edge"), "doctor", "--json", timeout=600)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert any(r["usable"] for r in d["runtimes"]), d["runtimes"]
