"""Make LiteRT's GPU accelerator find an adapter here, or say in one line why the GPU suite skips.

``python tests/gpu/gpuenv.py ensure`` (run with the device venv's Python by ``make test-gpu``):
exit 0 when an adapter is found, possibly after installing Mesa's Vulkan driver as root with apt-get
(on Debian 12 from bookworm-backports: bookworm's own Mesa 22.3 lacks what LiteRT's WebGPU
accelerator requires); otherwise print ``gpu tests: skipped: <why>`` and exit 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BACKPORTS = Path("/etc/apt/sources.list.d/bookworm-backports.sources")
BACKPORTS_TEXT = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
PACKAGES = ["mesa-vulkan-drivers", "libvulkan1"]


def adapter() -> tuple[bool, str]:
    """(found, what): the adapter LiteRT's GPU accelerator selects for a tiny model, tried in a child."""
    from keras_edge.device.engine.gpu import probe
    from keras_edge.device.engine.probe_model import PROBE_TFLITE

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.tflite"
        path.write_bytes(PROBE_TFLITE)
        p = probe(path, timeout=300)
    if p.ok and p.adapter is not None:
        return True, p.adapter.describe()
    return False, p.reason or "the GPU accelerator named no adapter"


def codename() -> str:
    for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines() if Path("/etc/os-release").is_file() else []:
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


def install() -> str | None:
    """Install the driver; None on success, else why not (one line)."""
    if os.geteuid() != 0:
        return "not root, so the Vulkan driver cannot be installed (run as root, or install mesa-vulkan-drivers " \
               "and libvulkan1 from bookworm-backports yourself)"
    if not shutil.which("apt-get"):
        return "no apt-get to install the Vulkan driver (mesa-vulkan-drivers, libvulkan1)"
    release = ["-t", "bookworm-backports"] if codename() == "bookworm" else []
    if release and not BACKPORTS.is_file():
        BACKPORTS.write_text(BACKPORTS_TEXT, encoding="utf-8")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *release, *PACKAGES]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1]
            return f"driver install failed ({' '.join(cmd[:2])}: {tail[:160]})"
    return None


def ensure() -> int:
    found, what = adapter()
    if not found:
        why = install()
        if why is None:
            found, what = adapter()
            why = None if found else f"adapter not found after installing the driver ({what})"
        if why is not None:
            print(f"gpu tests: skipped: {why}")
            return 1
    print(f"gpu tests: adapter {what}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["ensure"]:
        sys.exit("usage: gpuenv.py ensure")
    sys.exit(ensure())
