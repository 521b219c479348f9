"""TFLite conversion and measurement primitives shared by convert and prune: the variant recipes
(:mod:`.variants`), running a .tflite on arrays (:mod:`.evaluate`) and fidelity statistics (:mod:`.fidelity`)."""
