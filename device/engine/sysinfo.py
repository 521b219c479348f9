"""What machine this is: CPU model and features, cores, OS, governor, temperature, throttling.

Readers take a ``root`` so tests can point them at fixture copies of ``/proc`` and ``/sys`` from real
boards. Nothing here imports TensorFlow or OpenCV.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

# /proc/cpuinfo "CPU part" for ARM Ltd. (implementer 0x41) cores found on boards
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510",
             "0xd47": "Cortex-A710", "0xd4d": "Cortex-A715", "0xd80": "Cortex-A520", "0xd81": "Cortex-A720"}

# cpuinfo flag → the name people know, per architecture (what matters for int8/fp16 kernels)
X86_FEATURES = {"sse4_2": "SSE4.2", "avx": "AVX", "fma": "FMA", "avx2": "AVX2", "f16c": "F16C",
                "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
                "avx512_bf16": "AVX-512 BF16", "amx_int8": "AMX-INT8"}
ARM_FEATURES = {"neon": "NEON", "asimd": "NEON", "asimddp": "dotprod", "asimdhp": "fp16 arithmetic",
                "fphp": "fp16", "i8mm": "i8mm", "sve": "SVE", "sve2": "SVE2", "bf16": "BF16", "sme": "SME"}

# bits of `vcgencmd get_throttled`
THROTTLE_BITS = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
                 3: "soft temperature limit now", 16: "under-voltage occurred", 17: "frequency capping occurred",
                 18: "throttling occurred", 19: "soft temperature limit occurred"}


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def cpu_flags(root: Path = Path("/")) -> set[str]:
    """The raw feature flags of the first CPU in /proc/cpuinfo (x86 `flags`, ARM `Features`)."""
    for line in (_read(root, "proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


# LiteRT 2.3.0's aarch64 GPU accelerator library is built for ARMv8.2 with crypto; on a CPU without
# these it prints a fatal message and raises SIGILL, killing the process (seen on a Cortex-A72, the Pi 4).
LITERT_GPU_ARM_FLAGS = ("aes", "sha2", "crc32", "atomics", "fphp", "asimdhp", "asimdrdm", "lrcpc", "asimddp")


def litert_gpu_missing_flags(root: Path = Path("/"), machine: str | None = None) -> list[str]:
    """CPU features LiteRT's aarch64 GPU accelerator needs that this CPU lacks (empty off ARM64)."""
    if (machine or platform.machine()) not in ("aarch64", "arm64"):
        return []
    flags = cpu_flags(root)
    return [f for f in LITERT_GPU_ARM_FLAGS if f not in flags]


def cpuinfo(root: Path = Path("/")) -> dict[str, Any]:
    """CPU model, architecture-specific features and (on ARM) the core type, from /proc/cpuinfo."""
    text = _read(root, "proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            fields.setdefault(k, v)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    arch = platform.machine()
    is_arm = "Features" in fields or "CPU implementer" in fields or arch in ("aarch64", "arm64", "armv7l")
    table = ARM_FEATURES if is_arm else X86_FEATURES
    features = sorted({name for flag, name in table.items() if flag in flags})
    part = fields.get("CPU part", "").lower()
    model = fields.get("model name") or ARM_PARTS.get(part) or fields.get("Hardware") or platform.processor() or "unknown"
    if is_arm and part in ARM_PARTS:
        model = ARM_PARTS[part]
    board = (_read(root, "proc/device-tree/model") or "").strip("\x00\n ") or None
    return {"model": model, "board": board, "arm_part": part or None, "features": features}


def governor(root: Path = Path("/")) -> str | None:
    g = _read(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return g.strip() if g else None


def temperature_c(root: Path = Path("/")) -> float | None:
    """The first thermal zone's temperature (the SoC on a Pi), in °C."""
    zones = sorted((root / "sys/class/thermal").glob("thermal_zone*/temp")) if (root / "sys/class/thermal").is_dir() else []
    for z in zones:
        try:
            return int(z.read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return None


def parse_throttled(text: str) -> dict[str, Any] | None:
    """``throttled=0x50005`` → its value and the conditions it flags."""
    if "=" not in text:
        return None
    try:
        value = int(text.strip().split("=", 1)[1], 16)
    except ValueError:
        return None
    return {"value": hex(value), "flags": [name for bit, name in THROTTLE_BITS.items() if value >> bit & 1],
            "throttled_now": bool(value & 0b1111)}


def throttling() -> dict[str, Any] | None:
    """Raspberry Pi firmware's throttling state (``vcgencmd get_throttled``) when that tool exists."""
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_throttled(out)


def cores() -> dict[str, int]:
    from .runtime import default_threads

    return {"logical": os.cpu_count() or 1, "usable": default_threads()}


def environment(runtime: str | None = None, backend: str | None = None, root: Path = Path("/")) -> dict[str, Any]:
    """The environment block every benchmark result carries."""
    uname = platform.uname()
    env: dict[str, Any] = {
        "runtime": runtime, "backend": backend, "cpu": cpuinfo(root), "cores": cores(),
        "os": f"{uname.system} {uname.release}", "arch": uname.machine,
        "python": sys.version.split()[0], "numpy": np.__version__,
        "governor": governor(root), "temperature_c": temperature_c(root), "throttling": throttling(),
    }
    if "cv2" in sys.modules:
        env["opencv"] = sys.modules["cv2"].__version__
    return env


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, because ru_maxrss survives exec on Linux and
    would report the (possibly much larger) parent that started this worker."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20
