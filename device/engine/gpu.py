"""GPU adapters: which one the GPU accelerator picked, what kind it is, and trying it in a child process.

LiteRT 2.3.0's GPU accelerator (WebGPU over Dawn) logs the adapter it selects to file descriptor 2
when it creates its GPU environment::

    Selected adapter: llvmpipe (LLVM 15.0.6, 256 bits), arch=software, vendor=mesa, backend=Vulkan, adapterType=CPU / Software

:func:`parse_adapter` reads that line; on Vulkan the driver's own name and version come from the
Vulkan loader (:func:`vulkan_devices`). A software rasterizer (llvmpipe, lavapipe, SwiftShader) is
an adapter but not a GPU: it runs on the CPU, and is never reported or chosen as one.

A GPU compile can hang (minutes of shader compilation) or crash the process (a driver that SIGSEGVs
once TensorFlow is loaded, an accelerator built for a newer CPU that SIGILLs). :func:`probe` therefore
tries the model in a fresh process (:mod:`.gpu_child`, started by :mod:`.launcher`) with a time limit,
and turns a timeout or a signal into one line.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import signal
import tempfile
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .launcher import run_child

# A first compile on a 2-core machine's software rasterizer took 22-29 s for MobileNetV2 (the driver's shader
# cache was cold; warm, 0.3 s). Two minutes leaves room for that and still cuts a hung driver short.
DEFAULT_TIMEOUT_S = 120.0
TRIAL_RUNS = 5
SOFTWARE_NAMES = ("llvmpipe", "lavapipe", "swiftshader", "softpipe", "warp")
SOFTWARE_WORDS = "software rasterizer on the CPU, not a GPU"


class AdapterType(StrEnum):
    DISCRETE = "discrete"
    INTEGRATED = "integrated"
    SOFTWARE = "software"      # a rasterizer running on the CPU
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Adapter:
    """The adapter the GPU accelerator runs on: name, API backend, kind and driver."""

    name: str
    backend: str | None = None             # Vulkan, OpenCL, OpenGL ES, Metal, D3D12
    type: AdapterType = AdapterType.UNKNOWN
    vendor: str | None = None
    driver: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", AdapterType(self.type))

    @property
    def is_software(self) -> bool:
        return self.type is AdapterType.SOFTWARE

    @property
    def is_gpu(self) -> bool:
        """A hardware GPU (an unknown kind is not assumed to be one)."""
        return self.type in (AdapterType.DISCRETE, AdapterType.INTEGRATED)

    def describe(self) -> str:
        kind = {AdapterType.DISCRETE: "discrete GPU", AdapterType.INTEGRATED: "integrated GPU",
                AdapterType.SOFTWARE: SOFTWARE_WORDS, AdapterType.UNKNOWN: "adapter of unknown kind"}[self.type]
        parts = [p for p in (self.backend, kind, f"driver {self.driver}" if self.driver else None) if p]
        return f"{self.name} ({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "type": str(self.type), "software": self.is_software, "is_gpu": self.is_gpu}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Adapter":
        return cls(name=str(d["name"]), backend=d.get("backend"), type=AdapterType(d.get("type", "unknown")),
                   vendor=d.get("vendor"), driver=d.get("driver"))


_SELECTED = re.compile(r"Selected adapter: (?P<rest>.+)$", re.MULTILINE)
_KEYS = ("arch", "vendor", "backend", "adapterType")


def parse_adapter(log: str, vulkan: list[dict[str, Any]] | None = None) -> Adapter | None:
    """The adapter named in a GPU accelerator's log, or None when the log names none."""
    m = _SELECTED.search(log)
    if not m:
        return None
    rest = m.group("rest").strip()
    cuts = [(rest.find(f", {k}="), k) for k in _KEYS if f", {k}=" in rest]
    name = rest[:min(c for c, _ in cuts)] if cuts else rest
    fields: dict[str, str] = {}
    for start, key in sorted(cuts):
        value = rest[start + len(key) + 3:]
        nxt = [c for c, _ in cuts if c > start]
        fields[key] = value[:min(nxt) - start - len(key) - 3].strip() if nxt else value.strip()
    kind = classify(name, fields.get("adapterType", ""), fields.get("arch", ""))
    driver = None
    for dev in vulkan or []:
        if dev.get("name") == name:
            driver = " ".join(p for p in (dev.get("driver"), dev.get("driver_info")) if p) or None
            if kind is AdapterType.UNKNOWN:
                kind = {1: AdapterType.INTEGRATED, 2: AdapterType.DISCRETE, 4: AdapterType.SOFTWARE}.get(
                    dev.get("type"), AdapterType.UNKNOWN)
    return Adapter(name=name, backend=fields.get("backend") or None, type=kind, vendor=fields.get("vendor") or None,
                   driver=driver)


def classify(name: str, adapter_type: str, arch: str = "") -> AdapterType:
    """Dawn's adapterType (``Discrete GPU``, ``Integrated GPU``, ``CPU / Software``) and the name's hints."""
    t = adapter_type.lower()
    if "cpu" in t or "software" in t or arch.lower() == "software" or any(s in name.lower() for s in SOFTWARE_NAMES):
        return AdapterType.SOFTWARE
    if "discrete" in t:
        return AdapterType.DISCRETE
    if "integrated" in t:
        return AdapterType.INTEGRATED
    return AdapterType.UNKNOWN


def unsupported_ops(log: str) -> list[str]:
    """The ops the GPU delegate listed as unsupported (they run on the CPU, or the compile fails)."""
    lines = log.splitlines()
    for i, ln in enumerate(lines):
        if "operations are not supported by GPU delegate" in ln:
            out = []
            for op in lines[i + 1:]:
                if not re.match(r"^[A-Z_0-9]+: ", op.strip()):
                    break
                out.append(op.strip())
            return out
    return []


_SPLIT = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations? will run on the CPU")
_NONE = re.compile(r"No operations will run on the GPU, and all (\d+) operations? will run on the CPU")


def delegation(log: str) -> tuple[int, int] | None:
    """(ops on the GPU, ops in the model) when the GPU delegate reported a split, else None (all on the GPU)."""
    m = _SPLIT.search(log)
    if m:
        return int(m.group(1)), int(m.group(1)) + int(m.group(2))
    m = _NONE.search(log)
    return (0, int(m.group(1))) if m else None


def ensure_runtime_dir() -> None:
    """Dawn wants $XDG_RUNTIME_DIR; a service or ssh session without one gets a private temporary one."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="keras-edge-xdg-")  # mode 0700


# --- Vulkan: the driver's name and version, through the loader (no Python package needed) ---------

_VK_STRUCTURE_TYPE_APPLICATION_INFO = 0
_VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO = 1
_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2 = 1000059001
_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES = 1000196000


class _AppInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("pApplicationName", ctypes.c_char_p),
                ("applicationVersion", ctypes.c_uint32), ("pEngineName", ctypes.c_char_p),
                ("engineVersion", ctypes.c_uint32), ("apiVersion", ctypes.c_uint32)]


class _InstanceInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("pApplicationInfo", ctypes.POINTER(_AppInfo)), ("enabledLayerCount", ctypes.c_uint32),
                ("ppEnabledLayerNames", ctypes.c_void_p), ("enabledExtensionCount", ctypes.c_uint32),
                ("ppEnabledExtensionNames", ctypes.c_void_p)]


class _DriverProps(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("driverID", ctypes.c_uint32),
                ("driverName", ctypes.c_char * 256), ("driverInfo", ctypes.c_char * 256),
                ("conformanceVersion", ctypes.c_uint8 * 4)]


class _Props2(ctypes.Structure):
    # VkPhysicalDeviceProperties2: the head of VkPhysicalDeviceProperties, then room for the rest
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("apiVersion", ctypes.c_uint32),
                ("driverVersion", ctypes.c_uint32), ("vendorID", ctypes.c_uint32), ("deviceID", ctypes.c_uint32),
                ("deviceType", ctypes.c_int), ("deviceName", ctypes.c_char * 256), ("rest", ctypes.c_uint8 * 4096)]


def vulkan_devices() -> list[dict[str, Any]]:
    """Every Vulkan physical device: name, type (1 integrated, 2 discrete, 4 CPU), driver and version.

    Raises OSError when there is no Vulkan loader or no instance can be created (no ICD installed).
    """
    vk = ctypes.CDLL(ctypes.util.find_library("vulkan") or "libvulkan.so.1")
    app = _AppInfo(_VK_STRUCTURE_TYPE_APPLICATION_INFO, None, b"keras-edge", 1, b"keras-edge", 1, (1 << 22) | (1 << 12))
    info = _InstanceInfo(_VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app), 0, None, 0, None)
    instance = ctypes.c_void_p()
    vk.vkCreateInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    rc = vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance))
    if rc != 0:
        raise OSError(f"vkCreateInstance failed ({rc}: no Vulkan driver (ICD) is installed or usable)")
    try:
        vk.vkEnumeratePhysicalDevices.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p]
        vk.vkGetPhysicalDeviceProperties2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        count = ctypes.c_uint32(0)
        vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
        handles = (ctypes.c_void_p * count.value)()
        vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
        found = []
        for h in handles[:count.value]:
            drv = _DriverProps(_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, None)
            props = _Props2(_VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, ctypes.cast(ctypes.pointer(drv), ctypes.c_void_p))
            vk.vkGetPhysicalDeviceProperties2(ctypes.c_void_p(h), ctypes.byref(props))
            v = props.apiVersion
            found.append({"name": props.deviceName.decode(errors="replace"), "type": int(props.deviceType),
                          "driver": drv.driverName.decode(errors="replace") or None,
                          "driver_info": drv.driverInfo.decode(errors="replace") or None,
                          "api_version": f"{v >> 22}.{(v >> 12) & 0x3FF}.{v & 0xFFF}"})
        return found
    finally:
        vk.vkDestroyInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        vk.vkDestroyInstance(instance, None)


# --- the probe: compile and run the model on the GPU in a child process ----------------------------

CHILD_MODULE = "keras_edge.device.engine.gpu_child"

@dataclass
class GpuProbe:
    """What trying the GPU in a child found. ``ok`` False: ``reason`` says why, in one line."""

    ok: bool
    reason: str | None = None
    adapter: Adapter | None = None
    compile_ms: float | None = None
    fully_accelerated: bool | None = None
    unsupported: list[str] = field(default_factory=list)
    max_abs_vs_cpu: float | None = None
    gpu_ms: float | None = None           # median of a short trial, output read (completion included)
    cpu_ms: float | None = None
    vulkan: list[dict[str, Any]] | None = None
    vulkan_error: str | None = None
    integer_quantized: bool = False
    rss_mb: float | None = None           # the child's peak resident memory
    wall_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["adapter"] = self.adapter.to_dict() if self.adapter else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GpuProbe":
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in names}
        kw["adapter"] = Adapter.from_dict(d["adapter"]) if d.get("adapter") else None
        return cls(**kw)


def probe(model: str | os.PathLike, threads: int = 1, input_shapes: tuple = (), trial: bool = False,
          timeout: float = DEFAULT_TIMEOUT_S) -> GpuProbe:
    """Compile and run ``model`` on LiteRT's GPU accelerator in a fresh process, within ``timeout`` seconds.

    ``trial``: also time a few runs on the GPU and on the CPU (for ``--accelerator auto``).
    """
    job = {"model": str(model), "threads": threads, "input_shapes": [list(s) if s else None for s in input_shapes],
           "trial": trial}
    out = run_child(CHILD_MODULE, job, timeout)
    if out.timed_out:
        return GpuProbe(False, f"the GPU compile and first run did not finish within {timeout:g} s (raise the "
                               "time limit; a first compile fills the driver's shader cache and is "
                               "the slow one)", wall_ms=timeout * 1000)
    if out.signal:
        return GpuProbe(False, f"the GPU driver crashed the probe ({signal_name(out.signal)})", wall_ms=out.wall_ms)
    if out.data is None:
        return GpuProbe(False, f"the GPU probe failed ({out.last_error_line})", wall_ms=out.wall_ms)
    result = GpuProbe.from_dict(out.data)
    result.wall_ms = out.wall_ms
    return result


def signal_name(num: int) -> str:
    try:
        return f"signal {num}, {signal.Signals(num).name}"
    except ValueError:
        return f"signal {num}"


_LAST: list[Adapter] = []
VULKAN_SEEN: list[dict[str, Any]] = []   # what the child queried before loading, to name the driver


def remember(adapter: Adapter | None) -> Adapter | None:
    """The GPU environment logs its adapter once per process; later loads reuse what it said."""
    if adapter is not None:
        _LAST[:] = [adapter]
    return _LAST[0] if _LAST else None


def last_adapter(vulkan: list[dict[str, Any]] | None = None) -> Adapter | None:
    return _LAST[0] if _LAST else None


# --- what a board needs for the GPU path, each item with its fix (for ``doctor``) -------------------

ICD_DIRS = ("usr/share/vulkan/icd.d", "etc/vulkan/icd.d", "usr/local/share/vulkan/icd.d")


def requirements(root: Path = Path("/"), machine: str | None = None) -> list[dict[str, Any]]:
    """The pieces LiteRT's GPU path needs here: Vulkan loader, a Vulkan driver, device access, CPU features."""
    import glob
    import platform

    from .sysinfo import cpuinfo, litert_gpu_missing_flags

    machine = machine or platform.machine()
    board = cpuinfo(root).get("board") or ""
    pi5 = "Raspberry Pi 5" in board
    checks = []
    missing = litert_gpu_missing_flags(root, machine)
    if machine in ("aarch64", "arm64"):
        checks.append({"item": "CPU features LiteRT's GPU accelerator needs (ARMv8.2: dotprod, fp16, crypto)",
                       "ok": not missing, "detail": ", ".join(missing) + " missing" if missing else "present",
                       "fix": "none on this CPU (a Pi 4's Cortex-A72 lacks them and would die with SIGILL): "
                              "use the CPU backend"})
    loader = any(glob.glob(str(root / "usr/lib/*/libvulkan.so.1")) + glob.glob(str(root / "usr/lib/libvulkan.so.1")))
    if root == Path("/"):
        loader = loader or bool(ctypes.util.find_library("vulkan"))
    checks.append({"item": "Vulkan loader (libvulkan.so.1)", "ok": bool(loader), "detail": "found" if loader else "absent",
                   "fix": "sudo apt-get install libvulkan1"})
    icds = sorted(Path(p).name for d in ICD_DIRS for p in glob.glob(str(root / d / "*.json")))
    want = "broadcom_icd" if pi5 else None
    ok = bool(icds) and (want is None or any(want in i for i in icds))
    fix = ("sudo apt-get install mesa-vulkan-drivers (Mesa's v3dv driver for the Pi 5's VideoCore VII: "
           "broadcom_icd.aarch64.json)" if pi5 else
           "sudo apt-get install mesa-vulkan-drivers (on Debian 12, from bookworm-backports: 22.3 is too old for "
           "LiteRT's WebGPU accelerator)")
    checks.append({"item": "Vulkan driver (ICD file)", "ok": ok, "detail": ", ".join(icds) or "none", "fix": fix})
    nodes = sorted(glob.glob(str(root / "dev/dri/renderD*")))
    usable = [n for n in nodes if os.access(n, os.R_OK | os.W_OK)]
    checks.append({"item": "GPU device node (/dev/dri/renderD*) this user can open",
                   "ok": bool(usable), "detail": ", ".join(Path(n).name for n in nodes) or "none",
                   "fix": ("add this user to the render and video groups (sudo usermod -aG render,video $USER), "
                           "then log in again") if nodes else
                          "no GPU device here: only a software adapter (llvmpipe, on the CPU) can run the GPU path"})
    return checks
