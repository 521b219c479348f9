"""Deploy and `bench --on` against boards that have the keras-edge runner, and `--install-runner`.

The "runner" board links this test environment as its ``~/keras-edge/venv``, so the board runs
the real `keras-edge verify` and `keras-edge bench` (LiteRT, no TensorFlow import) over ssh on
the real digits bundle converted in this session.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

import keras_edge
from sshd import lab  # noqa: F401  (the fixture)
from test_deploy import deploy, make_bundle

from keras_edge.device.contract import bundle as B
from keras_edge.host.errors import RemoteError
from keras_edge.host.deploy.core import build_wheel
from keras_edge.host.deploy.remote import remote_bench
from keras_edge.host.deploy.ssh import SshOptions

NETWORK = os.environ.get("KERAS_EDGE_NETWORK_TESTS") == "1"


@pytest.fixture
def digits(digits_bundle, tmp_path) -> Path:
    """A private copy of the session's digits bundle (bench --on writes into its report.json)."""
    out = tmp_path / "bundles" / "digits"
    shutil.copytree(digits_bundle.bundle, out)
    return out


def test_the_runner_on_the_board_refuses_a_bundle_it_cannot_run(lab, tmp_path, capsys):
    board = lab.start("board1", runner=Path(sys.prefix))
    fake = make_bundle(tmp_path, "v1")  # checksums are right, but the .tflite files are not models
    rc, out, err = deploy(capsys, lab, fake, "board1")
    assert rc == 2
    assert "[board1] failed: keras-edge verify failed on the board: verify failed: bundle 'toy' records no reference data" in err
    assert "; nothing was switched\n" in err and "current is still" not in err   # no current yet: nothing to name
    assert board.link("toy") is None
    assert board.versions("toy") == [] and board.hidden("toy") == []  # the rejected copy is removed


def test_real_bundle_verified_by_the_runner_then_bench_on_the_board(lab, digits, capsys):
    board = lab.start("board1", runner=Path(sys.prefix))
    version = B.content_hash(digits)
    rc, out, err = deploy(capsys, lab, digits, "board1")
    assert rc == 0, err
    assert f"[board1] deployed: current -> {version} (verified: sha256 + keras-edge verify)" in err
    assert board.link("digits") == version

    entry = remote_bench(digits, "board1", ["--runs", "5", "--warmup", "1", "--min-seconds", "0", "--threads", "1"],
                         ssh=SshOptions(config=lab.config))
    assert entry.version == version and entry.host == "board1"
    [result] = entry.bench["results"]
    assert result["variant"] == B.read_manifest(digits).default and result["threads"] == 1
    assert result["median_ms"] > 0
    assert entry.board["arch"] and entry.board["os"]
    assert entry.fingerprint.endswith(f"{entry.board['arch']}-{entry.board['os_id']}".lower().replace("_", "-"))
    report = json.loads((digits / B.REPORT_JSON).read_text())
    # keyed by board kind and host: two identical boards no longer overwrite each other
    assert report["boards"][f"{entry.fingerprint}@board1"] == entry.to_dict()
    assert report["fleet"][entry.fingerprint]["hosts"] == ["board1"]
    assert B.content_hash(digits) == version  # the report is not part of the version


def test_cli_bench_on_prints_the_board_table_and_report_shows_it_beside_the_workstation(lab, digits, digits_demo, capsys):
    from keras_edge.cli import main

    lab.start("board1", runner=Path(sys.prefix))
    rc, out, err = deploy(capsys, lab, digits, "board1")
    assert rc == 0, err
    code = main(["bench", str(digits), "--on", "board1", "-F", str(lab.config), "--variant", "int8",
                 "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "board " in out and "int8" in out and "median ms" in out and "stored in" in out
    assert main(["report", str(digits)]) == 0
    capsys.readouterr()
    md = (digits / B.REPORT_MD).read_text()
    assert "### Board: " in md and "| int8 | 1 |" in md and "workstation p50 ms (same threads)" in md and "| int8 | 1 | cpu-xnnpack |" in md
    # reconverting into the same bundle chooses the default by the board's measurements
    code = main(["convert", str(digits_demo.model), "-o", str(digits), "--calib", str(digits_demo.train),
                 "--eval", str(digits_demo.eval), "--variants", "int8", "--calib-samples", "50", "--eval-samples", "50"])
    err = capsys.readouterr().err
    assert code == 0, err
    m = B.read_manifest(digits)
    assert m.default == "int8" and "on board " in m.default_reason and "bench --on" in m.default_reason
    assert "choosing the default with the latencies measured on board" in err


def test_bench_on_a_board_that_runs_another_version_says_so(lab, digits, tmp_path, capsys):
    lab.start("board1", runner=Path(sys.prefix))
    ssh = SshOptions(config=lab.config)
    with pytest.raises(RemoteError, match=r"bundle digits is not deployed on the board; run keras-edge deploy first"):
        remote_bench(digits, "board1", [], ssh=ssh)
    other = make_bundle(tmp_path, "other", name="digits")
    (tmp_path / "lab" / "board1" / "home" / "keras-edge" / "bundles" / "digits").mkdir(parents=True)
    os.symlink(B.content_hash(other), tmp_path / "lab" / "board1" / "home" / "keras-edge" / "bundles" / "digits" / "current")
    with pytest.raises(RemoteError, match=rf"runs version {B.content_hash(other)} of digits, not this bundle's "
                                          rf"{B.content_hash(digits)}; deploy this bundle first"):
        remote_bench(digits, "board1", [], ssh=ssh)
    assert not (digits / B.REPORT_JSON).exists() or not json.loads((digits / B.REPORT_JSON).read_text()).get("boards")


def test_install_runner_builds_copies_the_wheel_and_reports_an_offline_pip(lab, tmp_path, capsys):
    """Offline board (pip may not reach an index): wheel built, copied, venv made, one clear error."""
    board = lab.start("board1", env={"PIP_NO_INDEX": "1"})
    wheel = build_wheel(tmp_path / "wheel")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"keras_edge/cli.py", "keras_edge/commands/board.py", "keras_edge/host/deploy/core.py", "keras_edge/host/deploy/scripts.py",
            "keras_edge/host/deploy/ansible/keras_edge_deploy.yml",
            "keras_edge/host/deploy/ansible/roles/keras_edge/files/prepare.sh"} <= set(names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Provides-Extra: device" in meta

    fake = make_bundle(tmp_path, "v1")
    rc, out, err = deploy(capsys, lab, fake, "board1", extra=["--install-runner", "--wheel", wheel])
    assert rc == 2
    assert f"[board1] installing the runner ({wheel.name})" in err
    assert "[board1] failed: installing the runner failed: pip install on the board failed: " in err
    copied = board.home / "keras-edge" / "wheels" / wheel.name
    assert B.sha256_file(copied) == B.sha256_file(wheel)
    assert (board.home / "keras-edge" / "venv" / "bin" / "pip").exists()
    assert board.link("toy") is None


@pytest.mark.skipif(not NETWORK, reason="installs the device extra from PyPI on the board: set KERAS_EDGE_NETWORK_TESTS=1")
def test_install_runner_from_pypi_then_the_runner_verifies(lab, digits, capsys):
    board = lab.start("board1")
    rc, out, err = deploy(capsys, lab, digits, "board1", extra=["--install-runner"])
    assert rc == 0, err
    assert "runner keras-edge, version " in err and " installed; runtime ai_edge_litert" in err
    assert "(verified: sha256 + keras-edge verify)" in err
    assert out.splitlines()[1].endswith("; runtime ai_edge_litert 2.3.0")
    assert (board.home / "keras-edge" / "venv" / "bin" / "keras-edge").exists()
