"""The board side on emulated aarch64: the installed `keras-edge` CLI on both CPUs, the device tests on one.

Every test runs the real arm64 Debian bookworm Python under qemu (cortex-a72 with a Pi 4 cpuinfo,
cortex-a76 with a Pi 5 cpuinfo) with the real LiteRT aarch64 wheel, on the digits bundle made on
the host. Nothing here asserts a time: emulated timings say nothing about a board.
"""

from __future__ import annotations

import json
import re
import signal

import armenv
import pytest
from armenv import DEVICE_TESTS

LITERT = "ai_edge_litert 2.3.0"
AT_HWCAP, AT_HWCAP2 = 16, 26
# bit i of AT_HWCAP on arm64 (linux uapi asm/hwcap.h) = the cpuinfo "Features" name at index i
HWCAP_NAMES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
               "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2_SME = 1 << 23


def fixture_features(board) -> set[str]:
    text = (armenv.FIXTURES / board.board.name / "proc/cpuinfo").read_text()
    return set(next(line for line in text.splitlines() if line.startswith("Features")).split(":", 1)[1].split())


def status(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}"


def readable(text: str, limit: int = 4000) -> str:
    """The end of an emulated program's output, without the pytest/pluggy frames of a faulthandler dump."""
    noise = ("/dist-packages/_pytest/", "/dist-packages/pluggy/")
    lines = [ln for ln in text.splitlines() if not (ln.lstrip().startswith('File "') and any(n in ln for n in noise))]
    return "\n".join(lines)[-limit:]


def ok(r, what: str) -> str:
    assert r.returncode == 0, f"{what} {status(r.returncode)}:\n{readable(r.stdout)}\n{readable(r.stderr)}"
    return r.stdout


def test_emulated_cpu_has_what_the_board_cpuinfo_claims(board):
    """The fake cpuinfo must not promise LiteRT more than the emulated core does; dotprod must match."""
    code = ("import ctypes, json, platform; g = ctypes.CDLL(None).getauxval; g.restype = ctypes.c_ulong\n"
            f"print(json.dumps([platform.machine(), g({AT_HWCAP}), g({AT_HWCAP2})]))")
    machine, hwcap, hwcap2 = json.loads(ok(board.python("-c", code), "python -c"))
    emulated = {name for i, name in enumerate(HWCAP_NAMES) if hwcap >> i & 1}
    claimed = fixture_features(board) - {"evtstrm"}  # the kernel's timer event stream, not a CPU feature
    assert machine == "aarch64"
    assert claimed <= emulated, f"the {board.board.title} cpuinfo claims {claimed - emulated}; qemu {board.board.cpu} lacks them"
    assert ("asimddp" in emulated) == ("asimddp" in claimed), f"dotprod: qemu {board.board.cpu} vs the cpuinfo"
    assert not hwcap2 & HWCAP2_SME, "SME is on: QEMU_CPU fell back to `max`, whose SME paths change int8 results"


def test_doctor_reports_aarch64_neon_and_the_pi_core(board):
    argv = ["doctor"]
    r = board.keras_edge(*argv)
    board.transcript("doctor", argv, r)
    out = ok(r, "doctor")
    assert f"selected: {LITERT}" in out and "(aarch64)" in out and "NEON" in out

    d = json.loads(ok(board.keras_edge("doctor", "--json"), "doctor --json"))
    cpu, want = d["system"]["cpu"], {"pi4": ("Cortex-A72", "0xd08"), "pi5": ("Cortex-A76", "0xd0b")}[board.board.name]
    assert d["system"]["arch"] == "aarch64"
    assert (cpu["model"], cpu["arm_part"]) == want
    assert "NEON" in cpu["features"]
    assert ("dotprod" in cpu["features"]) == (board.board.name == "pi5")
    assert "qemu-aarch64" in cpu["board"]  # the prefix's device-tree model says it is an emulator
    assert d["selected_runtime"] == LITERT and d["tensorflow"] is None
    assert d["opencv"]["installed"]


def test_verify_passes_every_variant(board, bundle):
    rep = json.loads(ok(board.keras_edge("verify", bundle, "--json"), "verify"))
    assert rep["ok"] and rep["runtime"] == LITERT and not rep["problems"]
    assert {v["variant"]: v["verdict"] for v in rep["variants"]} == {v: "pass" for v in
                                                                    ("fp32", "fp16", "dynamic", "int8", "int16x8")}
    assert all(v["samples"] == 8 for v in rep["variants"])


def test_run_classifies_real_images_with_top_k(board, fixtures, bundle):
    pairs = [(p, d.name) for d in sorted((fixtures / "data/eval").iterdir()) for p in sorted(d.glob("*.png"))[:2]]
    assert len(pairs) == 20
    r = board.keras_edge("run", bundle, *[p for p, _ in pairs], "--top-k", "3", "--json")
    rows = [json.loads(line) for line in ok(r, "run").splitlines()]
    assert len(rows) == len(pairs)
    assert all(row["runtime"] == "ai_edge_litert" and row["backend"] == "cpu-xnnpack" for row in rows)
    assert all(len(row["top_k"]) == 3 and row["top_k"][0]["score"] >= row["top_k"][1]["score"] >= row["top_k"][2]["score"]
               for row in rows)
    hits = sum(row["top_k"][0]["label"] == cls for row, (_, cls) in zip(rows, pairs))
    assert hits >= 16, f"{hits}/20 right; the model is ~95% accurate on the host, a broken pipeline ~10%"

    image, cls = next((p, c) for row, (p, c) in zip(rows, pairs) if row["top_k"][0]["label"] == c)
    argv = ["run", str(bundle), str(image), "--top-k", "3"]
    r = board.keras_edge(*argv)
    board.transcript("run", argv, r)
    line = re.fullmatch(rf"{re.escape(str(image))}: (\d) [01]\.\d{{3}}  (\d) [01]\.\d{{3}}  (\d) [01]\.\d{{3}}  \(.* ms\)",
                        ok(r, "run (text)").splitlines()[0])
    assert line and line.group(1) == cls and len(set(line.groups())) == 3, r.stdout
    assert f"1/1 inputs ran on cpu-xnnpack ({LITERT}" in r.stdout + r.stderr


def test_bench_measures_in_emulated_worker_processes(board, bundle, tmp_path):
    out = tmp_path / "bench.json"
    argv = ["bench", str(bundle), "--variant", "int8,fp32", "--runs", "5", "--warmup", "1", "--min-seconds", "0",
            "--threads", "1", "-o", str(out)]
    r = board.keras_edge(*argv)
    board.transcript("bench", argv, r)
    ok(r, "bench")
    rep = json.loads(out.read_text())
    assert rep["environment"]["arch"] == "aarch64" and rep["environment"]["runtime"] == LITERT
    assert [(x["variant"], x["threads"], x["error"]) for x in rep["results"]] == [("int8", 1, None), ("fp32", 1, None)]
    assert all(x["runs"] >= 5 and 0 < x["min_ms"] <= x["median_ms"] <= x["p99_ms"] and x["rss_mb"] > 0
               for x in rep["results"])


@pytest.mark.parametrize("suite_board", armenv.DEVICE_SUITE_BOARDS)
def test_device_tests_pass_under_emulated_python(suite_board, device_suites):
    """tests/device and the device-only unit tests, run by pytest on the emulated Python (started in
    the background by the device_suites fixture)."""
    proc, log = device_suites[suite_board]
    code = proc.wait(timeout=1800)
    out = log.read_text()
    last = out.strip().splitlines()[-1] if out.strip() else ""
    assert code == 0, f"emulated pytest of {' '.join(DEVICE_TESTS)} {status(code)}:\n{readable(out)}"
    assert " passed" in last and "skipped" not in last and "deselected" not in last, out[-2000:]


def test_legacy_tflite_runtime_verifies_on_aarch64(board, bundle):
    """tflite-runtime 2.14.0 with numpy < 2: the default (int8) and the float variants pass; a variant
    using op versions newer than 2.14 fails with a message naming the runtime, not a crash."""
    code = "import numpy, tflite_runtime; print(numpy.__version__, tflite_runtime.__version__)"
    numpy_version, tfl_version = ok(board.python("-c", code, legacy=True), "legacy python").split()
    assert int(numpy_version.split(".")[0]) < 2 and tfl_version == "2.14.0"

    r = board.keras_edge("verify", bundle, "--json", legacy=True)
    assert r.returncode in (0, 1) and r.stdout, f"verify (legacy) {status(r.returncode)}:\n{readable(r.stderr)}"
    rep = json.loads(r.stdout)
    assert rep["runtime"] == "tflite_runtime 2.14.0"
    verdicts = {v["variant"]: v for v in rep["variants"]}
    assert all(verdicts[n]["verdict"] == "pass" for n in ("int8", "fp32", "fp16", "int16x8")), rep
    failed = {n: v["message"] for n, v in verdicts.items() if v["verdict"] != "pass"}
    assert set(failed) <= {"dynamic"}, failed
    assert all("tflite_runtime 2.14.0" in msg for msg in failed.values()), failed
    assert r.returncode == (1 if failed else 0)
