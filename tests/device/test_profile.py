"""`keras-edge profile` in the device-only environment, on the demo's real digits bundle.

Structure and the XNNPACK column are checked here; whether the ops' times add up to the whole model is a
matter of speed and lives in `make bench` (benchmarks/board.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from keras_edge.cli import main
from keras_edge.device.engine.runtime import RuntimeName, select_runtime

LEGACY = select_runtime().name is RuntimeName.TFLITE_RUNTIME
QUICK = ["--threads", "1", "--passes", "3", "--min-seconds", "0"]


@pytest.fixture(scope="module")
def bundle() -> Path:
    root = os.environ.get("KERAS_EDGE_FIXTURES")
    if not root or not (Path(root) / "bundles" / "digits" / "manifest.json").is_file():
        pytest.fail("KERAS_EDGE_FIXTURES does not point at the demo fixtures; run `make test-device`")
    return Path(root) / "bundles" / "digits"


def profile_json(capsys, *args) -> dict:
    code = main(["profile", *map(str, args), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_profile_of_the_int8_variant_lists_every_op_with_time_share_and_xnnpack(capsys, bundle):
    p = profile_json(capsys, bundle, "--variant", "int8", *QUICK)
    rows = p["rows"]
    assert p["variant"] == "int8" and p["model"] == "int8.tflite" and p["ops"] == len(rows) > 3
    assert [r["index"] for r in rows] == list(range(len(rows)))
    convs = [r for r in rows if r["op"] == "CONV_2D"]
    assert convs and all(r["macs"] > 0 and r["inputs"][0]["dtype"] == "int8" for r in convs)
    assert any(r["op"] == "FULLY_CONNECTED" for r in rows)
    # the runner runs int8 with XNNPACK on LiteRT; tflite_runtime 2.14's x86 wheel on builtin kernels
    assert all(r["xnnpack"] is (not LEGACY) for r in convs)
    assert all(r["why_not"] for r in rows if not r["xnnpack"])
    if LEGACY:   # no TFLite schema there: the table without per-op times, and one note saying why
        assert p["whole_ms"] is None and any("per-op times need the TFLite schema" in n for n in p["notes"])
        return
    assert p["whole_ms"] > 0 and p["passes"] >= 3
    assert all(r["ms"] is not None and r["ms"] >= 0 for r in rows)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-3)
    assert p["sum_ms"] == pytest.approx(p["ops_ms"] + p["overhead_ms"], rel=1e-3)


def test_int16x8_runs_on_builtin_kernels_and_the_profile_says_why(capsys, bundle):
    if LEGACY:
        pytest.skip("tflite_runtime 2.14 predates the int16x8 op versions this converter writes")
    p = profile_json(capsys, bundle, "--variant", "int16x8", "--no-times")
    int16 = [r for r in p["rows"] if any(t["dtype"] == "int16" for t in r["inputs"] + r["outputs"] if not t["const"])]
    assert int16 and len(int16) >= len(p["rows"]) - 2      # all but the float<->int16 edges compute in int16
    assert all(not r["xnnpack"] and r["why_not"].startswith("int16 activations") for r in int16)
    assert all(r["family"] == "builtin-int16" for r in int16)
    assert p["xnnpack_ops"] == 0


def test_text_table_and_a_plot_without_matplotlib(capsys, bundle, tmp_path):
    png = tmp_path / "ops.png"
    code = main(["profile", str(bundle), "--variant", "fp32", "--top", "3", "--plot", str(png), *QUICK])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0].startswith(f"profile of {bundle} variant fp32 (fp32.tflite)")
    assert lines[1].split() == ["#", "op", "inputs", "→", "outputs", "ms", "share", "XNNPACK"]
    assert len([ln for ln in lines[2:] if ln.split()[0].isdigit()]) == 3
    assert any(ln.startswith("XNNPACK runs ") for ln in lines)
    try:
        import matplotlib  # noqa: F401
    except ImportError:   # the board environment: one line saying how to get the plot, and still exit 0
        assert "plot: not drawn: the plot needs matplotlib" in out.err and "pip install matplotlib" in out.err
        assert not png.exists()
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_error_line(capsys, bundle, tmp_path):
    assert main(["profile", str(bundle), "--variant", "int4"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: bundle 'digits' has no variant 'int4'")
    assert main(["profile", str(tmp_path / "none.tflite")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["profile", str(bundle / "fp32.tflite"), "--on", "pi@board"]) == 2
    assert "--on needs a bundle directory" in capsys.readouterr().err
