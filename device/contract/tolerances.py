"""How far a variant's outputs may stray from the Keras model's, by quantization mode: one table for both sides.

The workstation writes each variant's verify tolerance as ``max(2 x its measured error, floor)``; the board
adds the GPU slack when a GPU accelerator runs it. A new quantization mode is one row here (and its recipe among
the workstation's variant recipes); a mode named ``<base>-<suffix>`` (``int8-selective``) takes its base's row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModeTolerance:
    floor: float        # the least verify tolerance: a board may use other kernels than the workstation
    gpu_slack: float    # what the GPU accelerators' fp16 arithmetic (their default precision) adds


# GPU slack measured GPU (llvmpipe) against CPU on the digits CNN's 360 eval images, softmax outputs: fp32 and fp16
# up to 6.1e-3; dynamic 2.4e-2; int8 5.9e-2 (the GPU dequantizes and re-rounds each layer: 15 uint8 steps).
MODES: dict[str, ModeTolerance] = {
    "fp32": ModeTolerance(floor=1e-4, gpu_slack=1e-2),
    "fp16": ModeTolerance(floor=5e-3, gpu_slack=1e-2),
    "dynamic": ModeTolerance(floor=1e-2, gpu_slack=3e-2),
    "int8": ModeTolerance(floor=1e-2, gpu_slack=6e-2),
    "int16x8": ModeTolerance(floor=1e-2, gpu_slack=6e-2),
}
# an unknown mode: the loosest row (a bundle from a newer keras-edge still verifies, never too strictly)
UNKNOWN = ModeTolerance(floor=max(m.floor for m in MODES.values()), gpu_slack=max(m.gpu_slack for m in MODES.values()))


def tolerance(mode: str) -> ModeTolerance:
    """The row for a variant mode (``int8-selective`` counts as int8)."""
    return MODES.get(mode) or MODES.get(mode.split("-")[0]) or UNKNOWN


def gpu_slack(mode: str) -> float:
    return tolerance(mode).gpu_slack


def floor(mode: str) -> float:
    return tolerance(mode).floor
