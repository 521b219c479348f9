"""The JSON types a manifest's fields must have, checked before any ``from_dict`` trusts them.

A manifest comes from whoever made the bundle. ``from_dict`` converts with ``str()``/``int()``, which
quietly accepts a file name given as a number or a list of variants given as an object, and the
mistake surfaces later as a traceback far from the file. :func:`check_manifest` walks the raw JSON
once and names the first field of the wrong type (``variants[0].file is a number, not text``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import BundleError

TEXT, INT, NUMBER, LIST, OBJECT, BOOL = "text", "a whole number", "a number", "a list", "an object", "true/false"
SHA256 = re.compile(r"[0-9a-f]{64}")
# dtypes a TFLite tensor (or the Keras model it came from) can have
DTYPES = frozenset({"float16", "float32", "float64", "bfloat16", "int4", "int8", "uint8", "int16", "uint16", "int32",
                    "uint32", "int64", "uint64", "bool", "complex64", "complex128", "string"})

TENSOR = {"name": TEXT, "shape": LIST, "dtype": TEXT, "scale": NUMBER, "zero_point": INT}
TOLERANCE = {"max_abs": NUMBER, "min_agreement": NUMBER, "gpu_max_abs": (NUMBER, None), "output_max_abs": LIST}
VARIANT = {"name": TEXT, "mode": TEXT, "status": TEXT, "file": (TEXT, None), "sha256": (TEXT, None), "bytes": INT,
           "reason": (TEXT, None), "inputs": LIST, "outputs": LIST, "tolerance": (OBJECT, None), "metrics": (OBJECT, None),
           "input_order": LIST, "output_order": LIST}
MANIFEST = {"format": TEXT, "name": TEXT, "preprocess": (OBJECT, None), "inputs": LIST, "outputs": LIST, "variants": LIST,
            "task": TEXT, "labels": (TEXT, None), "default": (TEXT, None), "default_reason": (TEXT, None),
            "reference": (TEXT, None), "source": (OBJECT, None), "tools": (OBJECT, None), "created": (TEXT, None),
            "postprocess": (OBJECT, None), "input_preprocess": LIST}
PREPROCESS = {"height": INT, "width": INT, "channels": INT, "color": TEXT, "resize": TEXT, "interpolation": TEXT,
              "scale": NUMBER, "mean": LIST, "std": LIST, "preset": (TEXT, None), "baked": BOOL, "pad_value": INT,
              "reason": (TEXT, None)}
# only the fields read as numbers, paths or output indexes: the names (head, scores, box units) are checked
# by their enums when the spec is read
POSTPROCESS = {"task": TEXT, "outputs": OBJECT, "num_classes": (INT, None), "objectness": BOOL, "anchors": (TEXT, None),
               "variances": LIST,
               "background": (INT, None), "score_threshold": NUMBER, "iou_threshold": NUMBER, "max_detections": INT,
               "class_agnostic": BOOL, "threshold": NUMBER, "references": (TEXT, None)}


def _is(value: Any, kind: str | None) -> bool:
    if kind is None:
        return value is None
    if kind == TEXT:
        return isinstance(value, str)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 63
    if kind == NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == LIST:
        return isinstance(value, list)
    return isinstance(value, dict)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number" if math.isfinite(value) else f"{value!r}"
    return {str: "text", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _fail(where: str, problem: str) -> BundleError:
    return BundleError(f"manifest.json is malformed: {where} {problem}", "reconvert the bundle with `keras-edge convert`")


def check_object(d: Any, schema: dict[str, Any], where: str) -> dict[str, Any]:
    """``d`` as a dict whose known keys have their schema's types (unknown keys are left to the reader)."""
    if not isinstance(d, dict):
        raise _fail(where or "the top level", f"is {_describe(d)}, not an object")
    for key, kinds in schema.items():
        if key not in d:
            continue
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if not any(_is(d[key], k) for k in kinds):
            want = " or ".join("null" if k is None else k for k in kinds)
            raise _fail(f"{where}.{key}" if where else key, f"is {_describe(d[key])}, not {want}")
    return d


def _each(items: list, kind: str, where: str) -> None:
    for i, v in enumerate(items):
        if not _is(v, kind):
            raise _fail(f"{where}[{i}]", f"is {_describe(v)}, not {kind}")


def check_tensor(d: Any, where: str) -> None:
    check_object(d, TENSOR, where)
    _each(d.get("shape", []), INT, f"{where}.shape")
    dtype = d.get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise _fail(f"{where}.dtype", f"{dtype!r} is not a tensor type")


def check_manifest(d: Any) -> None:
    """Refuse a manifest any of whose fields has the wrong JSON type, naming the first such field."""
    check_object(d, MANIFEST, "")
    for key in ("inputs", "outputs"):
        for i, t in enumerate(d.get(key, [])):
            check_tensor(t, f"{key}[{i}]")
    if d.get("preprocess") is not None:
        _check_preprocess(d["preprocess"], "preprocess")
    for i, p in enumerate(d.get("input_preprocess", [])):
        if p is not None:
            _check_preprocess(p, f"input_preprocess[{i}]")
    if d.get("postprocess") is not None:
        post = check_object(d["postprocess"], POSTPROCESS, "postprocess")
        _each(post.get("variances", []), NUMBER, "postprocess.variances")
        for role, index in post.get("outputs", {}).items():
            if not _is(index, INT):
                raise _fail(f"postprocess.outputs.{role}", f"is {_describe(index)}, not {INT}")
    for i, v in enumerate(d.get("variants", [])):
        where = f"variants[{i}]"
        check_object(v, VARIANT, where)
        for key in ("inputs", "outputs"):
            for j, t in enumerate(v.get(key, [])):
                check_tensor(t, f"{where}.{key}[{j}]")
        for key in ("input_order", "output_order"):
            _each(v.get(key, []), INT, f"{where}.{key}")
        if v.get("tolerance") is not None:
            tol = check_object(v["tolerance"], TOLERANCE, f"{where}.tolerance")
            _each(tol.get("output_max_abs", []), NUMBER, f"{where}.tolerance.output_max_abs")
        sha = v.get("sha256")
        if sha is not None and not SHA256.fullmatch(sha):
            raise _fail(f"{where}.sha256", "is not a sha256 (64 hexadecimal digits)")
        if v.get("bytes", 0) < 0:
            raise _fail(f"{where}.bytes", "is negative")


def _check_preprocess(d: Any, where: str) -> None:
    spec = check_object(d, PREPROCESS, where)
    for key in ("mean", "std"):
        _each(spec.get(key, []), NUMBER, f"{where}.{key}")
