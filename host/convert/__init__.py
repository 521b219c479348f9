"""Conversion: a Keras model → a bundle of validated TFLite variants.

Rooms: :mod:`.core` (the flow and its config/result), :mod:`.variants` (the quantization recipe
registry), :mod:`.selective` (accuracy-budgeted int8), :mod:`.ptq` (equalization, bias correction),
:mod:`.qat` (quantization-aware fine-tuning), :mod:`.fidelity` (intervals, KL, budget verdicts),
:mod:`.evaluate` (running variants in the board's engine), :mod:`.choose` (the default variant),
:mod:`.cli` (the click commands).
"""

from .choose import BoardTimes, choose_default, loss_of
from .core import ConvertConfig, ConvertResult, convert
from .variants import DEFAULT_VARIANTS, VARIANTS, IoType

__all__ = ["DEFAULT_VARIANTS", "VARIANTS", "BoardTimes", "ConvertConfig", "ConvertResult", "IoType", "choose_default",
           "convert", "loss_of"]
