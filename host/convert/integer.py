"""The integer route: when TensorFlow's converter leaves ops of an int8 model in float.

Asked for pure int8, the converter keeps an op it has no int8 kernel for in float (DEQUANTIZE → op →
QUANTIZE) and says nothing; the ``int8`` recipe catches that and fails the variant. This route then
tries, in order, and keeps the first that works:

1. a float-exact rewrite of the layers that lower to such ops (:mod:`.rewrite`: LayerNormalization's
   ``-mean``, the NEG of every LayerNorm, ConvNeXt and transformer block) → a true ``int8`` variant;
2. ``int8-mixed``: int8 wherever there is a kernel, the remaining ops in float, named in the report,
   its latency beside fp32's in the table;
3. nothing: one line with the ops and the next step.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from keras_edge.device.contract import bundle as B

from ..tflite.evaluate import summary
from ..tflite.variants import float_ops, named_ops

Log = Callable[[str], None]
FLOAT_LEFT = "ops that cannot be fully integer-quantized"
REWRITE_CHECK_SAMPLES = 8


def left_in_float(v: B.Variant) -> list[str]:
    """The ops a failed int8 variant names as left in float ([] when it failed for another reason)."""
    if v.status is not B.VariantStatus.CONVERSION_FAILED or not v.reason.startswith(FLOAT_LEFT):
        return []
    return named_ops(v.reason) or [s.strip() for s in v.reason.split(":", 1)[1].split("(")[0].split(",") if s.strip()]


def integer_route(job, variants: list[B.Variant], log: Log) -> tuple[Any, dict[str, Any] | None]:
    """Replace a failed ``int8`` (ops left in float) by a rewritten integer-only one, else add ``int8-mixed``.

    Returns (the job to improve int8 with: its model is the rewritten one when the rewrite was used, and
    what the route tried, for the report; None when int8 did not fail on float ops)."""
    from ..tflite.rewrite import integer_friendly

    at = next((i for i, v in enumerate(variants) if v.name == "int8"), None)
    left = left_in_float(variants[at]) if at is not None else []
    if not left:
        return job, None
    log(f"int8: the converter leaves {', '.join(left)} in float; looking for an integer route")
    info: dict[str, Any] = {"float_ops": left, "tried": []}
    rewritten = integer_friendly(job.model, job.data.calib.x[:REWRITE_CHECK_SAMPLES])
    model = job.model
    if rewritten.applied:
        v = job.convert("int8", "int8", rewritten.model, {"rewrites": rewritten.applied})
        info["tried"].append({"route": "rewrite", "rewrites": rewritten.applied, "float_change": rewritten.float_change,
                              "status": str(v.status), "reason": v.reason})
        log(f"  int8 with {rewritten.text} rewritten (float outputs change by {rewritten.float_change:.1e} of their "
            f"range): {summary(v)}")
        if v.status is B.VariantStatus.OK:
            variants[at] = v
            info["kept"] = "int8"
            return replace(job, model=rewritten.model), info
        model = rewritten.model   # what is left in float after the rewrite is what int8-mixed keeps in float
    else:
        info["tried"].append({"route": "rewrite", "status": "not applied", "reason": rewritten.why})
        log(f"  rewrite: not applied ({rewritten.why})")
    asked = next((i for i, v in enumerate(variants) if v.name == "int8-mixed"), None)   # --variants named it
    v = job.convert("int8-mixed", "int8-mixed", model) if asked is None or model is not job.model else variants[asked]
    if v.status is B.VariantStatus.OK and v.file:
        floats = float_ops((job.tmp / v.file).read_bytes())
        v = replace(v, metrics={**v.metrics, "float_ops": floats})
        info["tried"].append({"route": "int8-mixed", "status": str(v.status), "float_ops": floats})
        if asked is None:
            variants.append(v)
        else:
            variants[asked] = v
        info["kept"] = "int8-mixed"
        log(f"  int8-mixed (int8, with {', '.join(floats) or 'nothing'} in float): {summary(v)}")
        return job, info
    info["tried"].append({"route": "int8-mixed", "status": str(v.status), "reason": v.reason})
    log(f"  int8-mixed: {summary(v)}")
    info["next_step"] = next_step(left)
    log(f"  no integer variant: {info['next_step']}")
    return job, info


def next_step(ops: list[str]) -> str:
    """What a user can do when no integer route works, for the ops named."""
    return (f"replace the layers that lower to {', '.join(ops)} with ones built from ops that have int8 kernels "
            "(add, sub, mul, mean, rsqrt, fully connected, conv), or keep fp16/dynamic for this model; int16x8 "
            "(--variants int16x8) quantizes more ops but runs on slow reference kernels, not XNNPACK")
