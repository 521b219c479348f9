"""Matching a converted file's tensors to the Keras inputs and outputs (host/convert/iomap.py): by the
signature's names, else by shape, else among outputs of one shape by their values."""

from __future__ import annotations

import numpy as np

from keras_edge.device.contract.bundle import TensorSpec
from keras_edge.host.convert import iomap


def test_signature_names_map_tensors_to_keras_order():
    # the converter's inputs sorted by name (extra, image); outputs named output_<i> or by their Keras names
    assert iomap._order({"extra": 0, "image": 1}, [0, 1], ["image", "extra"], None) == [1, 0]
    assert iomap._order({"output_0": 9, "output_1": 8}, [8, 9], ["scores", "ink"], iomap._OUTPUT_N) == [1, 0]
    assert iomap._order({"ink": 8, "scores": 9}, [8, 9], ["scores", "ink"], iomap._OUTPUT_N) == [1, 0]
    assert iomap._order({"other": 0, "image": 1}, [0, 1], ["image", "extra"], None) is None   # unknown name
    assert iomap._order({"output_0": 8, "output_0b": 9}, [8, 9], ["a", "b"], iomap._OUTPUT_N) is None


def test_outputs_of_one_shape_are_matched_by_their_values():
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(size=(20, 3)).astype(np.float32) for _ in range(3))
    keras_out = [a, b, c[:, :1]]
    file_out = [c[:, :1] + 1e-3, b + 1e-3, a - 1e-3]   # reordered, slightly off (quantization)
    assert iomap.match_outputs(file_out, keras_out) == [2, 1, 0]
    assert iomap.match_outputs(file_out[:2], keras_out) is None                     # a missing output
    assert iomap.match_outputs([a, np.zeros((20, 5), np.float32), c[:, :1]], keras_out) is None   # no shape fits


def test_inputs_are_matched_by_shape_only_when_every_shape_is_unique():
    t = lambda shape: TensorSpec("t", (1, *shape), "float32")  # noqa: E731
    assert iomap.match_inputs([t((4,)), t((16, 16, 1))], [(16, 16, 1), (4,)]) == [1, 0]
    assert iomap.match_inputs([t((4,)), t((4,))], [(4,), (4,)]) is None
