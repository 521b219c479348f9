"""Pruning and distillation in Keras 3: magnitude and channel pruning, one fine-tuning loop.

Rooms: :mod:`.base` (configs, results, method names; no Keras), :mod:`.api` (the registry and
``prune_with``), :mod:`.magnitude`, :mod:`.channels` with :mod:`.graph` (the layer-graph walk), and
:mod:`.distill`. Imports only go base ← graph ← distill ← magnitude/channels ← api: no circle.
"""

from .api import PRUNE_METHODS, prune_model, prune_with
from .base import Criterion, PruneConfig, PruneMethod, PruneResult, PruneSpec, Schedule

__all__ = ["PRUNE_METHODS", "Criterion", "PruneConfig", "PruneMethod", "PruneResult", "PruneSpec", "Schedule",
           "prune_model", "prune_with"]
