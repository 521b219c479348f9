"""Building the package: no setuptools warnings from our own pyproject.toml, and the data files travel.

The wheel is built from a copy of the tracked files (as a fresh clone has them), without build
isolation, with this environment's setuptools (the `dev` extra pins one that reads the SPDX licence).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# what setuptools says about a project's configuration: deprecations, data folders it would drop, …
CONFIG_WARNING = re.compile(r"Warning|deprecated|absent from the `packages`|is not a valid", re.IGNORECASE)


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_wheel_builds_without_setuptools_warnings_and_carries_the_playbooks(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to list the tracked files")
    src = _tracked_copy(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # distutils warns when it is set
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(tmp_path / "dist"),
                           str(src)], capture_output=True, text=True, timeout=300, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    warnings = [ln for ln in output.splitlines() if CONFIG_WARNING.search(ln)]
    assert not warnings, "\n".join(warnings)
    (wheel,) = (tmp_path / "dist").glob("keras_edge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT / "host").as_posix() for p in (ROOT / "host" / "deploy" / "ansible").rglob("*")
               if p.is_file() and p.suffix in (".yml", ".sh")}
    assert shipped and {f"keras_edge/host/{p}" for p in shipped} <= names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in zipfile.ZipFile(wheel).read(meta).decode()
