"""`keras-edge prune` without --sparsity: the budgeted search, on the digits demo model (trained here).

One search with two levels (a cheap one and a harsh one) shows the measured curve, a chosen point
within the budget and the file written; a search whose only level cannot meet a tight budget gives
an honest no (exit 1, nothing written).
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from keras_edge.cli import main


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def searched(digits_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "pruned.keras"
    code, stdout, stderr = run("prune", digits_demo.model, "-o", out, "--data", digits_demo.train, "--levels", "0.3,0.6",
                               "--epochs", "3", "--val-split", "0.2", "--max-accuracy-drop", "0.02", "--json")
    return code, out, json.loads(stdout), stderr


def test_search_measures_a_curve_and_keeps_the_fastest_point_within_budget(searched):
    code, out, result, err = searched
    points = result["points"]
    assert [p["level"] for p in points][:1] == [0.3]
    for p in points:   # every point is measured, not assumed
        assert 0 < p["params"] < result["base"]["params"] and p["int8_ms"] > 0 and p["speedup"] > 0
        assert p["within"] == (p["drop"] <= 0.02 + 1e-9)
        # the budget is pruning's own cost, int8 against the unpruned int8; quantization's loss is reported beside it
        assert p["drop"] == pytest.approx(result["base"]["int8_accuracy"] - p["int8_accuracy"], abs=3e-6)
        assert p["quant_loss"] == pytest.approx(result["base"]["accuracy"] - result["base"]["int8_accuracy"], abs=3e-6)
        assert p["float_drop"] == pytest.approx(result["base"]["accuracy"] - p["accuracy"], abs=3e-6)
        assert 1 <= p["epochs"] <= 3
        assert p["recipe"] in ("int8", "int8-ptq")   # the integer file convert would ship, the closer one to Keras
        # the speed-up is the ratio of the two times shown beside it (the unpruned model timed in the same rounds)
        assert p["speedup"] == pytest.approx(p["base_ms"] / p["int8_ms"], rel=1e-3)
        # a level within budget is timed twice (at the level, then all together at the end) and keeps the lower
        assert len(p["speedups"]) == (2 if p["within"] else 1)
        assert p["speedup"] == pytest.approx(min(p["speedups"]), rel=1e-5)
    removed = [p["achieved"] for p in points]
    assert removed == sorted(removed) and removed[0] > 0.2
    fits = [p for p in points if p["within"] and p["speedup"] >= 1.05]
    if fits:
        assert code == 0 and out.is_file()
        assert result["chosen"]["speedup"] == max(p["speedup"] for p in fits)
        assert result["output"] == str(out)
    else:   # an honest no is also a right answer; it must then say so and write nothing
        assert code == 1 and not out.exists() and "no pruning level" in result["verdict"]
    layers = [s["layer"] for s in result["sensitivity"]]   # the demo CNN's three convolutions, each scanned
    assert len(layers) == 3 and all(name.startswith("conv2d") for name in layers)
    assert result["distill"].startswith(("on (measured", "off (measured"))
    assert f"sensitivity {layers[0]}" in err and "level 30%" in err


def test_the_chosen_model_is_the_one_measured(searched):
    code, out, result, _ = searched
    if code != 0:
        pytest.skip("the search found no point within the budget on this run")
    import keras

    model = keras.models.load_model(out)
    assert model.count_params() == result["chosen"]["params"]


def test_an_unreachable_budget_is_an_honest_no(digits_demo, tmp_path):
    out = tmp_path / "never.keras"
    code, stdout, stderr = run("prune", digits_demo.model, "-o", out, "--data", digits_demo.train, "--levels", "0.9",
                               "--channel-multiple", "1", "--epochs", "1", "--max-accuracy-drop", "0", "--no-distill")
    assert code == 1 and not out.exists()
    assert "no pruning level within the 0.00 pp budget is faster" in stdout and "no model written" in stdout
    assert "level 90%" in stderr and any(row.startswith("90%") and " over " in row for row in stdout.splitlines())
    table = stdout.split("distillation:")[0].splitlines()
    head, *rows = [ln.replace(" *", "").split() for ln in table]
    assert len(rows) == 2   # the unpruned model and the 90% level
    assert head[4:7] == ["int8", "ms", "unpruned"]   # "int8 ms", "unpruned ms", "speed-up" side by side
    for row in rows:   # unpruned ms / int8 ms is the speed-up shown, up to the 3 decimals printed
        int8_ms, base_ms, speedup = float(row[4]), float(row[5]), float(row[6].rstrip("x"))
        assert speedup == pytest.approx(base_ms / int8_ms, abs=0.01 + 0.0015 / int8_ms * speedup)
