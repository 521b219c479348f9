"""GPU adapter identity, delegation and the GPU tolerance: parsing what LiteRT and Vulkan report.

The log lines are verbatim from LiteRT 2.3.0 on Debian 12 with Mesa 25.0.7 (llvmpipe); the board checks
read the Pi 5 fixture copy of /proc and /sys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.device.engine.gpu import (SOFTWARE_WORDS, Adapter, AdapterType, classify, delegation, parse_adapter,
                                   requirements, unsupported_ops)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LLVMPIPE = ("I0000 00:00:1796269514.324095    3924 environment.cc:532] Selected adapter: llvmpipe (LLVM 15.0.6, "
            "256 bits), arch=software, vendor=mesa, backend=Vulkan, adapterType=CPU / Software\n")
VULKAN = [{"name": "llvmpipe (LLVM 15.0.6, 256 bits)", "type": 4, "driver": "llvmpipe",
           "driver_info": "Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)", "api_version": "1.4.305"}]
INT16 = """ERROR: Following operations are not supported by GPU delegate:
CONV_2D: Tensor type(INT16) is not supported. digits_cnn_1/max_pooling2d_1/MaxPool2d
DEQUANTIZE: Unsupported dequantization type.
No operations will run on the GPU, and all 10 operations will run on the CPU.
"""


def test_llvmpipe_is_a_software_adapter_with_its_driver():
    a = parse_adapter("INFO: noise\n" + LLVMPIPE, VULKAN)
    assert a == Adapter("llvmpipe (LLVM 15.0.6, 256 bits)", "Vulkan", AdapterType.SOFTWARE, "mesa",
                        "llvmpipe Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)")
    assert a.is_software and not a.is_gpu
    assert SOFTWARE_WORDS in a.describe() and "GPU (" not in a.describe()
    assert Adapter.from_dict(json.loads(json.dumps(a.to_dict()))) == a


@pytest.mark.parametrize("name,kind,arch,want", [
    ("NVIDIA GeForce RTX 4090", "Discrete GPU", "", AdapterType.DISCRETE),
    ("V3D 7.1.7.0", "Integrated GPU", "", AdapterType.INTEGRATED),
    ("SwiftShader Device (Subzero)", "Unknown", "", AdapterType.SOFTWARE),
    ("Mali-G610", "Unknown", "", AdapterType.UNKNOWN),
])
def test_adapter_kinds(name, kind, arch, want):
    assert classify(name, kind, arch) is want


def test_no_adapter_line_names_no_adapter():
    assert parse_adapter("INFO: [gpu_registry.cc:130] Attempting to load GPU accelerator") is None


def test_the_vulkan_device_type_settles_an_unknown_kind():
    line = "Selected adapter: V3D 7.1, vendor=broadcom, backend=Vulkan, adapterType=Unknown"
    a = parse_adapter(line, [{"name": "V3D 7.1", "type": 1, "driver": "V3DV Mesa", "driver_info": "Mesa 24.2"}])
    assert a.type is AdapterType.INTEGRATED and a.backend == "Vulkan" and a.driver == "V3DV Mesa Mesa 24.2"


def test_delegation_split_and_unsupported_ops():
    assert delegation(INT16) == (0, 10)
    assert delegation("7 operations will run on the GPU, and the remaining 3 operations will run on the CPU.") == (7, 10)
    assert delegation(LLVMPIPE) is None
    assert unsupported_ops(INT16) == ["CONV_2D: Tensor type(INT16) is not supported. digits_cnn_1/max_pooling2d_1/MaxPool2d",
                                      "DEQUANTIZE: Unsupported dequantization type."]


def test_gpu_tolerance_is_optional_and_backwards_compatible():
    old = B.Tolerance.from_dict({"max_abs": 1e-4, "min_agreement": 0.875})
    assert old.gpu_max_abs is None
    assert old.max_abs_on(False) == 1e-4
    assert old.max_abs_on(True, "fp32") == pytest.approx(1e-4 + B.gpu_slack("fp32"))
    assert old.max_abs_on(True, "int8-selective") == pytest.approx(1e-4 + B.gpu_slack("int8"))
    new = B.Tolerance.from_dict({"max_abs": 1e-4, "gpu_max_abs": 0.0101})
    assert new.max_abs_on(True) == 0.0101 and new.max_abs_on(False) == 1e-4


def test_a_pi5_without_the_v3dv_driver_is_told_what_to_install(tmp_path):
    checks = {c["item"].split(" (")[0]: c for c in requirements(FIXTURES / "pi5", machine="aarch64")}
    icd = checks["Vulkan driver"]
    assert not icd["ok"] and "v3dv" in icd["fix"] and "mesa-vulkan-drivers" in icd["fix"]
    node = checks["GPU device node"]
    assert not node["ok"] and "software adapter" in node["fix"]
    assert checks["CPU features LiteRT's GPU accelerator needs"]["ok"]


def test_a_pi4_is_told_its_cpu_cannot_run_the_gpu_accelerator():
    checks = requirements(FIXTURES / "pi4", machine="aarch64")
    cpu = checks[0]
    assert cpu["item"].startswith("CPU features") and not cpu["ok"] and "SIGILL" in cpu["fix"]


def test_a_board_user_outside_the_render_group_is_told_to_join_it(tmp_path):
    root = tmp_path / "root"
    for rel in ("proc/cpuinfo", "proc/device-tree/model"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((FIXTURES / "pi5" / rel).read_bytes())
    (root / "usr/share/vulkan/icd.d").mkdir(parents=True)
    (root / "usr/share/vulkan/icd.d/broadcom_icd.aarch64.json").write_text("{}")
    (root / "dev/dri").mkdir(parents=True)
    node = root / "dev/dri/renderD128"
    node.write_text("")
    node.chmod(0)
    checks = {c["item"].split(" (")[0]: c for c in requirements(root, machine="aarch64")}
    assert checks["Vulkan driver"]["ok"]
    import os

    if os.geteuid() == 0:  # root opens anything: the check then (rightly) passes
        assert checks["GPU device node"]["ok"]
    else:
        assert not checks["GPU device node"]["ok"] and "render" in checks["GPU device node"]["fix"]
