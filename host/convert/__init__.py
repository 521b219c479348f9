"""Conversion: a Keras model → a bundle of validated TFLite variants.

Rooms: :mod:`.core` (the flow and its config/result), :mod:`.selective` (accuracy-budgeted int8), :mod:`.ptq` (equalization, bias correction),
:mod:`.qat` (quantization-aware fine-tuning), :mod:`.choose` (the default variant),
:mod:`.tasks` (task specs and metrics). The recipe registry, evaluation and fidelity statistics are in
:mod:`keras_edge.host.tflite` (shared with pruning); the click commands in :mod:`keras_edge.commands.convert`.
"""

from .choose import BoardTimes, choose_default, loss_of
from .core import ConvertConfig, ConvertResult, convert
from ..tflite.variants import DEFAULT_VARIANTS, VARIANTS, IoType

__all__ = ["DEFAULT_VARIANTS", "VARIANTS", "BoardTimes", "ConvertConfig", "ConvertResult", "IoType", "choose_default",
           "convert", "loss_of"]
