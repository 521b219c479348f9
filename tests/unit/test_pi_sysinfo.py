"""What `doctor` reads on a Raspberry Pi, against copies of a Pi 4's and a Pi 5's /proc and /sys.

tests/fixtures/pi4 and pi5 hold the files as Raspberry Pi OS bookworm (64-bit) shows them: cpuinfo with
the core's part number and features, the device-tree model (NUL-terminated), the cpufreq governor and
the SoC thermal zone in millidegrees. The same cpuinfo files are what the emulated boards of
`make test-arm` show LiteRT. Device-only: runs in the board environment too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keras_edge.device.engine import sysinfo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

PI = {
    "pi4": {"model": "Cortex-A72", "arm_part": "0xd08", "board": "Raspberry Pi 4 Model B Rev 1.4",
            "features": ["NEON"], "governor": "ondemand", "temperature_c": 51.121},
    "pi5": {"model": "Cortex-A76", "arm_part": "0xd0b", "board": "Raspberry Pi 5 Model B Rev 1.0",
            "features": ["NEON", "dotprod", "fp16", "fp16 arithmetic"], "governor": "performance",
            "temperature_c": 62.45},
}


@pytest.mark.parametrize("name", sorted(PI))
def test_cpu_board_and_features(name):
    want = PI[name]
    cpu = sysinfo.cpuinfo(FIXTURES / name)
    assert cpu == {"model": want["model"], "board": want["board"], "arm_part": want["arm_part"],
                   "features": want["features"]}


def test_dotprod_tells_a_pi5_from_a_pi4():
    assert "dotprod" in sysinfo.cpuinfo(FIXTURES / "pi5")["features"]
    assert "dotprod" not in sysinfo.cpuinfo(FIXTURES / "pi4")["features"]


@pytest.mark.parametrize("name", sorted(PI))
def test_governor_and_temperature(name):
    assert sysinfo.governor(FIXTURES / name) == PI[name]["governor"]
    assert sysinfo.temperature_c(FIXTURES / name) == pytest.approx(PI[name]["temperature_c"])


@pytest.mark.parametrize("name", sorted(PI))
def test_environment_block_carries_the_board(name):
    env = sysinfo.environment(runtime="ai_edge_litert 2.3.0", backend="cpu-xnnpack", root=FIXTURES / name)
    assert env["cpu"]["board"] == PI[name]["board"] and env["cpu"]["model"] == PI[name]["model"]
    assert env["governor"] == PI[name]["governor"]
    assert env["temperature_c"] == pytest.approx(PI[name]["temperature_c"])
    assert (env["runtime"], env["backend"]) == ("ai_edge_litert 2.3.0", "cpu-xnnpack")


def test_a_machine_without_these_files_reports_none(tmp_path):
    assert sysinfo.governor(tmp_path) is None and sysinfo.temperature_c(tmp_path) is None
    assert sysinfo.cpuinfo(tmp_path)["board"] is None


def test_unreadable_thermal_zone_is_skipped(tmp_path):
    (tmp_path / "sys/class/thermal/thermal_zone0").mkdir(parents=True)
    (tmp_path / "sys/class/thermal/thermal_zone0/temp").write_text("not a number\n")
    (tmp_path / "sys/class/thermal/thermal_zone1").mkdir()
    (tmp_path / "sys/class/thermal/thermal_zone1/temp").write_text("47250\n")
    assert sysinfo.temperature_c(tmp_path) == pytest.approx(47.25)


@pytest.mark.parametrize("text, flags, now", [
    ("throttled=0x0\n", [], False),
    ("throttled=0x50005\n", ["under-voltage now", "throttled now", "under-voltage occurred", "throttling occurred"], True),
    ("throttled=0x80000\n", ["soft temperature limit occurred"], False),
])
def test_parse_throttled(text, flags, now):
    got = sysinfo.parse_throttled(text)
    assert got["flags"] == flags and got["throttled_now"] is now and got["value"] == text.split("=")[1].strip()


@pytest.mark.parametrize("text", ["", "error=2 error_msg=\"Command not registered\"", "throttled=zz"])
def test_parse_throttled_rejects_what_is_not_a_value(text):
    assert sysinfo.parse_throttled(text) is None


def test_throttling_asks_vcgencmd(tmp_path, monkeypatch):
    """A stand-in `vcgencmd` on PATH answering as a Pi 4 on a weak power supply does."""
    tool = tmp_path / "vcgencmd"
    tool.write_text('#!/bin/sh\n[ "$1" = get_throttled ] && echo "throttled=0x50005" || exit 1\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    got = sysinfo.throttling()
    assert got is not None and got["throttled_now"] and "under-voltage occurred" in got["flags"]


def test_throttling_is_none_without_vcgencmd(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert sysinfo.throttling() is None


def test_litert_gpu_is_refused_on_a_pi4_cpu_that_would_sigill():
    missing = sysinfo.litert_gpu_missing_flags(FIXTURES / "pi4", machine="aarch64")
    assert {"asimddp", "lrcpc", "aes"} <= set(missing)


def test_litert_gpu_is_allowed_on_a_pi5_cpu_and_off_arm():
    assert sysinfo.litert_gpu_missing_flags(FIXTURES / "pi5", machine="aarch64") == []
    assert sysinfo.litert_gpu_missing_flags(FIXTURES / "pi4", machine="x86_64") == []
