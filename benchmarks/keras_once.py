"""What a user's script does today: load the Keras model, load one image, ``predict`` once, print the result.

    python keras_once.py MODEL.keras IMAGE PRESET      (PRESET: tf | raw)

Prints one JSON line with the top-1 class: the "first result" that the cold-start benchmark waits for.
"""

from __future__ import annotations

import json
import sys


def main(model_path: str, image: str, preset: str) -> int:
    import keras
    import numpy as np

    model = keras.models.load_model(model_path)
    h, w, c = model.input_shape[1:]
    img = keras.utils.load_img(image, target_size=(h, w), color_mode="grayscale" if c == 1 else "rgb")
    x = keras.utils.img_to_array(img)[None]
    if preset == "tf":
        x = x / 127.5 - 1.0
    y = model.predict(x, verbose=0)
    print(json.dumps({"top1": int(np.argmax(y[0])), "score": float(np.max(y[0]))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
