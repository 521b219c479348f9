"""int8-qat's fine-tuning in a fresh process: ``python -P -m keras_edge.host.convert.qat_child JOB_JSON OUT_JSON``.

By the time convert reaches QAT, its process has run TensorFlow's converter (whose int8 calibration runs
TensorFlow's own bundled TFLite interpreter), LiteRT interpreters for every variant and the int8-ptq steps.
Fine-tuning is the longest and most allocation-heavy step of all; a fresh interpreter that imports only
TensorFlow and Keras runs it on a heap nothing else has touched, gives its memory back when it ends, and
when it dies in native code convert reports that as int8-qat's result instead of dying with it.

JOB_JSON: {"model": .keras path, "data": .npz with x (and y), "epochs", "seed", "imports": [...],
"safe_mode": bool, "out_weights": .npz path}. OUT_JSON: {"applied", "detail", "log": [lines]}; the fine-tuned
weights go to out_weights as w0..wN (the parent sets them on its own copy of the model).
No pickle: the model travels as .keras, arrays as .npz read with allow_pickle=False.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def run(job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from keras_edge.host.model_io import import_user_modules
    from keras_edge.host.tfenv import import_tf

    import_tf(False)
    import keras

    from .qat import qat_finetune

    custom = import_user_modules(tuple(job.get("imports", ())))
    model = keras.models.load_model(job["model"], compile=False, safe_mode=bool(job.get("safe_mode", True)),
                                    custom_objects=custom or None)
    with np.load(job["data"], allow_pickle=False) as data:
        x = data["x"]
        y = data["y"] if "y" in data.files else None
    lines: list[str] = []
    limit = job.get("time_limit")
    res = qat_finetune(model, x, y, epochs=int(job["epochs"]), seed=int(job["seed"]), log=lines.append,
                       time_limit=float(limit) if limit is not None else None)
    if res.applied:
        weights = res.model.get_weights()
        np.savez(job["out_weights"], **{f"w{i}": w for i, w in enumerate(weights)})
    return {"applied": res.applied, "detail": res.detail, "log": lines}


def main(argv: list[str]) -> int:
    job, out = json.loads(argv[0]), argv[1]
    result = run(job)
    tmp = f"{out}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
