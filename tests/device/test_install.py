"""The board environment: a regular (non-editable) install of the device extra, with no TensorFlow."""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path


def test_tensorflow_is_not_installed_here():
    assert importlib.util.find_spec("tensorflow") is None
    assert importlib.util.find_spec("keras") is None


def test_package_is_installed_under_the_keras_edge_namespace_only():
    import keras_edge.device

    site = Path(sysconfig.get_paths()["purelib"])
    assert Path(keras_edge.device.__file__).resolve().is_relative_to(site.resolve())
    for generic in ("host", "device", "calibration"):
        assert not (site / generic).exists(), f"a generic top-level '{generic}' package was installed"
    assert (site / "keras_edge" / "host").is_dir() and (site / "keras_edge" / "calibration").is_dir()


def test_cli_help_does_not_import_tensorflow(capsys):
    from keras_edge.cli import main

    assert main(["--help"]) == 0
    assert "convert" in capsys.readouterr().out
    assert "tensorflow" not in sys.modules


def test_host_command_on_the_board_says_what_to_install(capsys, tmp_path):
    from keras_edge.cli import main

    code = main(["convert", str(tmp_path / "m.keras"), "-o", str(tmp_path / "b"), "--calib", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "keras-edge[host]" in err and len(err.strip().splitlines()) == 1
