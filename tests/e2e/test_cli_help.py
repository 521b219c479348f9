"""`keras-edge <cmd> --help` works for every command and imports no TensorFlow (DESIGN.md: lazy imports).

Each command runs in a fresh interpreter, so modules imported by other tests cannot hide an import.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from keras_edge.cli import COMMANDS

CHILD = """
import contextlib, io, json, sys
from keras_edge.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "help": out.getvalue(), "tensorflow": "tensorflow" in sys.modules}))
"""


def run_help(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_registered_module_exists(command):
    entry = COMMANDS[command]
    assert importlib.util.find_spec(entry.module) is not None, f"{command}: {entry.module} does not exist"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_exits_zero_without_tensorflow(command):
    result = run_help(command, "--help")
    assert result["rc"] == 0
    assert f"Usage: keras-edge {command}" in result["help"]
    assert not result["tensorflow"], f"`keras-edge {command} --help` imported TensorFlow"


def test_top_level_help_lists_every_command_without_tensorflow():
    result = run_help("--help")
    assert result["rc"] == 0
    listed = {line.split()[0] for line in result["help"].split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)
    assert not result["tensorflow"]
