"""`profile --on HOST`: the board's own per-op profile over ssh, kept in report.json per board kind and variant.

The "board" is a real sshd on 127.0.0.1 whose ``~/keras-edge/venv`` links this test environment, so it runs the
real `keras-edge profile` (LiteRT, no TensorFlow) on the digits bundle converted in this session.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from sshd import lab  # noqa: F401  (the fixture)
from test_deploy import deploy

from keras_edge.cli import main
from keras_edge.device.contract import bundle as B


@pytest.fixture
def digits(digits_bundle, tmp_path) -> Path:
    out = tmp_path / "bundles" / "digits"
    shutil.copytree(digits_bundle.bundle, out)
    return out


def test_profile_on_a_board_prints_its_table_and_keeps_it_per_kind_and_variant(lab, digits, capsys):
    lab.start("board1", runner=Path(sys.prefix))
    rc, _, err = deploy(capsys, lab, digits, "board1")
    assert rc == 0, err
    args = ["profile", str(digits), "--on", "board1", "-F", str(lab.config), "--variant", "int8", "--threads", "1",
            "--passes", "3", "--min-seconds", "0", "--top", "3"]
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.startswith("board ") and "(board1), bundle version" in out.out
    assert "variant int8 (int8.tflite)" in out.out and "XNNPACK runs " in out.out
    assert "stored in" in out.out and "under profiles" in out.out
    report = json.loads((digits / B.REPORT_JSON).read_text())
    [(key, run)] = report["profiles"].items()
    assert key == f"{run['fingerprint']}/int8" and run["host"] == "board1"
    assert run["profile"]["format"] == "keras-edge-profile/1" and run["profile"]["rows"]
    assert run["version"] == B.content_hash(digits)
    assert main(["report", str(digits)]) == 0
    capsys.readouterr()
    assert f"### Profile on {key}" in (digits / B.REPORT_MD).read_text()
