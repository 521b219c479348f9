"""Run inputs through every variant of a bundle and save the raw outputs (no dequantization).

The same code runs on the x86 host (imported) and on emulated aarch64 (``python dump_outputs.py BUNDLE
INPUTS.npz OUT.npz``), so the cross-architecture test compares like with like. One thread, CPU
(XNNPACK), one sample per invoke, quantized as ``keras-edge verify`` does. Only the device package
is imported. INPUTS.npz holds float model inputs as ``input_i`` (the layout of reference.npz).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np

from keras_edge.device.contract.bundle import VariantStatus, check_variant, read_manifest
from keras_edge.device.engine.core import EngineOptions, load
from keras_edge.device.inputs.preprocess import quantize
from keras_edge.device.health.verify import load_reference


def dump(bundle: Path, ins: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{variant}/out{j}`` → raw outputs stacked over the samples of ``ins`` (default: reference.npz),
    plus ``{variant}/backend``, ``runtime`` and ``machine`` as string arrays (loadable without pickle)."""
    m = read_manifest(bundle)
    if ins is None:
        ins, _ = load_reference(bundle, m)
    arrays: dict[str, np.ndarray] = {"machine": np.array(platform.machine())}
    for v in m.variants:
        if v.status is VariantStatus.CONVERSION_FAILED:
            continue
        shapes = tuple(tuple(1 if (k == 0 and d < 0) else d for k, d in enumerate(t.shape)) for t in v.inputs)
        engine = load(check_variant(bundle, v), EngineOptions(threads=1, input_shapes=shapes))
        outs: list[list[np.ndarray]] = [[] for _ in engine.outputs]
        for k in range(ins[0].shape[0]):
            feed = [quantize(x[k:k + 1].astype(np.float32), s.dtype, s.scale, s.zero_point)
                    for x, s in zip(ins, engine.inputs)]
            for j, o in enumerate(engine.run(feed)):
                outs[j].append(o)
        for j, o in enumerate(outs):
            arrays[f"{v.name}/out{j}"] = np.concatenate(o)
        arrays[f"{v.name}/backend"] = np.array(str(engine.backend))
        arrays["runtime"] = np.array(engine.runtime.label)
    return arrays


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: dump_outputs.py BUNDLE INPUTS.npz OUT.npz")
    with np.load(sys.argv[2], allow_pickle=False) as z:
        inputs = [z[f"input_{i}"] for i in range(len(z.files))]
    np.savez(sys.argv[3], **dump(Path(sys.argv[1]), inputs))
